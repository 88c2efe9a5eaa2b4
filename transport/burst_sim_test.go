package transport_test

// Bursts of data-connection set-ups on memnet under synctest: with the
// default configuration every honest set-up succeeds, however many are
// started at once, and every remote init function runs exactly once.

import (
	"context"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aemp-go/dataconn/memnet"
	"github.com/aemp-go/dataconn/transport"
)

// burstTarget registers on n the init function "burst", which reads 5
// bytes, answers 1 and records the caller's index (its init data).
type burstTarget struct {
	mu    sync.Mutex
	calls map[string]int
}

func newBurstTarget(n *transport.Node) *burstTarget {
	bt := &burstTarget{calls: map[string]int{}}
	n.HandleDataConn("burst", func(from string, data []any, c net.Conn) {
		defer c.Close()
		key := from + "/" + fmt.Sprint(data...)
		bt.mu.Lock()
		bt.calls[key]++
		bt.mu.Unlock()
		var b [5]byte
		if _, err := io.ReadFull(c, b[:]); err != nil {
			return
		}
		c.Write([]byte{'k'})
	})
	return bt
}

// burstOne runs one set-up: ConnectTo, send 5 bytes, read the 1-byte
// answer.
func burstOne(ctx context.Context, n *transport.Node, target string, timeout time.Duration, i int) error {
	c, err := n.ConnectTo(ctx, target, timeout, "burst", i)
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := c.Write([]byte("hello")); err != nil {
		return err
	}
	var b [1]byte
	if _, err := io.ReadFull(c, b[:]); err != nil {
		return fmt.Errorf("answer: %w", err)
	}
	return nil
}

// burstResult counts the outcomes of a burst.
type burstResult struct {
	ok     atomic.Int64
	failed atomic.Int64
	mu     sync.Mutex
	errs   map[string]int
}

func (r *burstResult) add(err error) {
	if err == nil {
		r.ok.Add(1)
		return
	}
	r.failed.Add(1)
	r.mu.Lock()
	if r.errs == nil {
		r.errs = map[string]int{}
	}
	r.errs[err.Error()]++
	r.mu.Unlock()
}

// runSimBurst starts per concurrent set-ups from each of the senders to
// target, all at once, and waits for every outcome.
func runSimBurst(t *testing.T, senders []*transport.Node, target string, per int, timeout time.Duration) *burstResult {
	t.Helper()
	var res burstResult
	var wg sync.WaitGroup
	for _, s := range senders {
		if err := s.Connect(context.Background(), target); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range senders {
		for i := range per {
			wg.Go(func() { res.add(burstOne(context.Background(), s, target, timeout, i)) })
		}
	}
	wg.Wait()
	return &res
}

func checkBurst(t *testing.T, res *burstResult, bt *burstTarget, senders []*transport.Node, per int) {
	t.Helper()
	if f := res.failed.Load(); f != 0 {
		t.Errorf("%d of %d set-ups failed: %v", f, int64(len(senders)*per), res.errs)
	}
	bt.mu.Lock()
	defer bt.mu.Unlock()
	for _, s := range senders {
		for i := range per {
			if n := bt.calls[fmt.Sprintf("%s/%d", s.ID(), i)]; n != 1 {
				t.Fatalf("init function for %s/%d called %d times", s.ID(), i, n)
			}
		}
	}
	if len(bt.calls) != len(senders)*per {
		t.Fatalf("%d init calls, want %d", len(bt.calls), len(senders)*per)
	}
}

func simBurst(t *testing.T, seed int64, nSenders, per int) {
	synctest.Test(t, func(t *testing.T) {
		// The backlog of a Linux listener (somaxconn 4096).
		w := memnet.New(seed, memnet.WithDefaultLink(memnet.LinkConfig{Latency: time.Millisecond, Jitter: time.Millisecond}), memnet.WithBacklog(4096))
		target := listening(t, w, "target", func(c *transport.Config) { c.Rand = newSimRand(seed, "target") })
		bt := newBurstTarget(target)
		senders := make([]*transport.Node, nSenders)
		for i := range senders {
			name := fmt.Sprintf("s%02d", i)
			senders[i] = listening(t, w, name, func(c *transport.Config) { c.Rand = newSimRand(seed, name) })
		}
		meshPeers(append([]*transport.Node{target}, senders...)...)
		start := time.Now()
		var peak transport.Stats
		stop := make(chan struct{})
		sampled := make(chan struct{})
		go func() {
			defer close(sampled)
			for {
				st := target.Stats()
				peak.Expectations = max(peak.Expectations, st.Expectations)
				peak.ExpectWaiting = max(peak.ExpectWaiting, st.ExpectWaiting)
				peak.HeldEarly = max(peak.HeldEarly, st.HeldEarly)
				peak.HandshakesUnproven = max(peak.HandshakesUnproven, st.HandshakesUnproven)
				for _, s := range senders {
					st := s.Stats()
					peak.Queued = max(peak.Queued, st.Queued)
					peak.InFlight = max(peak.InFlight, st.InFlight)
				}
				select {
				case <-stop:
					return
				case <-time.After(time.Millisecond):
				}
			}
		}()
		res := runSimBurst(t, senders, "target", per, 30*time.Second)
		close(stop)
		<-sampled
		t.Logf("seed %d: %d × %d set-ups in %v virtual time; peaks %+v", seed, nSenders, per, time.Since(start), peak)
		checkBurst(t, res, bt, senders, per)
		// The defaults hold as flow control: the target keeps at most
		// MaxExpectPerPeer (256) pending expectations per peer and at most
		// MaxHandshakes (256) unproven handshakes, the initiators at most
		// the window in flight.
		if peak.Expectations > 256*nSenders || peak.InFlight > 256 || peak.HandshakesUnproven > transport.DefaultMaxHandshakes {
			t.Errorf("peaks beyond the defaults: %+v", peak)
		}
		if nSenders == 1 && per > 256 && (peak.Queued == 0 || peak.Expectations < 128) {
			t.Errorf("no queueing seen in a burst of %d: %+v", per, peak)
		}
		st := target.DataConns().Stats()
		t.Logf("target stats: %+v", st)
		closeAll(append(senders, target)...)
	})
}

func TestSimBurst1000(t *testing.T) { simBurst(t, 1, 1, 1000) }

func TestSimBurst10000FromOne(t *testing.T) { simBurst(t, 2, 1, 10_000) }

// A Perl-flow initiator learns no window: the target queues its
// expectations past MaxExpectPerPeer and answers its round trips only when
// they are recorded, so every set-up succeeds instead of being refused.
func TestSimBurstPerlFlowHeldByTarget(t *testing.T) {
	const seed, limit, per = 4, 8, 300
	synctest.Test(t, func(t *testing.T) {
		w := memnet.New(seed, memnet.WithDefaultLink(memnet.LinkConfig{Latency: time.Millisecond, Jitter: time.Millisecond}))
		target := listening(t, w, "target", func(c *transport.Config) {
			c.Rand = newSimRand(seed, "target")
			c.DataConn.MaxExpectPerPeer = limit
		})
		bt := newBurstTarget(target)
		perl := listening(t, w, "perl", func(c *transport.Config) {
			c.Rand = newSimRand(seed, "perl")
			c.PerlCompat = true
		})
		meshPeers(target, perl)
		res := runSimBurst(t, []*transport.Node{perl}, "target", per, 30*time.Second)
		checkBurst(t, res, bt, []*transport.Node{perl}, per)
		if st := target.DataConns().Stats(); len(st.Refused) != 0 {
			t.Errorf("target refused: %v", st.Refused)
		}
		closeAll(perl, target)
	})
}

func TestSimBurst50x200(t *testing.T) { simBurst(t, 3, 50, 200) }

// A burst mixed with faults: dial loss on every link and one sender that
// crashes in the middle. Every ConnectTo returns exactly once; a success
// ran its init function exactly once, a failure at most once (a crash can
// cut a stream whose init already started), and nothing stays pending.
func TestSimBurstWithFaults(t *testing.T) {
	const seed, nSenders, per = 5, 10, 300
	synctest.Test(t, func(t *testing.T) {
		w := memnet.New(seed, memnet.WithDefaultLink(memnet.LinkConfig{Latency: time.Millisecond, Jitter: time.Millisecond}), memnet.WithBacklog(4096))
		target := listening(t, w, "target", func(c *transport.Config) { c.Rand = newSimRand(seed, "target") })
		bt := newBurstTarget(target)
		senders := make([]*transport.Node, nSenders)
		for i := range senders {
			name := fmt.Sprintf("s%02d", i)
			senders[i] = listening(t, w, name, func(c *transport.Config) { c.Rand = newSimRand(seed, name) })
		}
		meshPeers(append([]*transport.Node{target}, senders...)...)
		for _, s := range senders {
			if err := s.Connect(context.Background(), "target"); err != nil {
				t.Fatal(err)
			}
		}
		w.SetDialLoss(0.05)
		type outcome struct {
			sender, i int
			err       error
		}
		outs := make(chan outcome, nSenders*per)
		var wg sync.WaitGroup
		for si, s := range senders {
			for i := range per {
				wg.Go(func() { outs <- outcome{si, i, burstOne(context.Background(), s, "target", 5*time.Second, i)} })
			}
		}
		time.Sleep(20 * time.Millisecond)
		w.Crash("s03")
		wg.Wait()
		close(outs)
		seen := map[[2]int]bool{}
		ok, failed := 0, 0
		bt.mu.Lock()
		for o := range outs {
			k := [2]int{o.sender, o.i}
			if seen[k] {
				t.Fatalf("two outcomes for %v", k)
			}
			seen[k] = true
			calls := bt.calls[fmt.Sprintf("%s/%d", senders[o.sender].ID(), o.i)]
			switch {
			case o.err == nil:
				ok++
				if calls != 1 {
					t.Errorf("%v succeeded with %d init calls", k, calls)
				}
			default:
				failed++
				if calls > 1 {
					t.Errorf("%v failed (%v) with %d init calls", k, o.err, calls)
				}
			}
		}
		bt.mu.Unlock()
		if len(seen) != nSenders*per {
			t.Fatalf("%d outcomes for %d set-ups", len(seen), nSenders*per)
		}
		t.Logf("seed %d: %d succeeded, %d failed", seed, ok, failed)
		if ok < (nSenders-1)*per/2 {
			t.Errorf("only %d of %d succeeded", ok, nSenders*per)
		}
		// Everything settles: no pending set-up, expectation or hold.
		time.Sleep(time.Minute)
		for _, n := range append([]*transport.Node{target}, senders...) {
			if o, e, h := n.DataConns().Pending(); o+e+h != 0 {
				t.Errorf("%s still holds %d/%d/%d", n.ID(), o, e, h)
			}
		}
		closeAll(append(senders, target)...)
	})
}
