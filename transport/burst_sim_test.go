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
		res := runSimBurst(t, senders, "target", per, 30*time.Second)
		t.Logf("seed %d: %d × %d set-ups in %v virtual time", seed, nSenders, per, time.Since(start))
		checkBurst(t, res, bt, senders, per)
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
