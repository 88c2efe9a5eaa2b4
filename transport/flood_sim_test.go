package transport_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aemp-go/dataconn/memnet"
	"github.com/aemp-go/dataconn/transport"
)

// A flood of 10,000 silent connections and an honest burst of 2,000
// data-connection set-ups at the same time: every honest set-up succeeds
// (their handshakes prove themselves and are never dropped; the listener
// waits instead of accepting and closing), and the silent connections are
// dropped down to the cap.
func TestSimSilentFloodAndHonestBurst(t *testing.T) {
	const seed, flood, nSenders, per = 6, 10_000, 10, 200
	synctest.Test(t, func(t *testing.T) {
		// The kernel's backlog holds what the listener does not accept yet.
		w := memnet.New(seed, memnet.WithDefaultLink(memnet.LinkConfig{Latency: time.Millisecond, Jitter: time.Millisecond}),
			memnet.WithBacklog(2*flood), memnet.WithTrace(0))
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
		// The flood: silent connections, opened all at once.
		silent := make([]net.Conn, 0, flood)
		var mu sync.Mutex
		var fw sync.WaitGroup
		for i := range flood {
			fw.Go(func() {
				c, err := w.Host(fmt.Sprintf("evil%d", i%50)).Dial(context.Background(), "target:1")
				if err != nil {
					return
				}
				mu.Lock()
				silent = append(silent, c)
				mu.Unlock()
			})
		}
		var maxUnproven int
		stop := make(chan struct{})
		sampled := make(chan struct{})
		go func() {
			defer close(sampled)
			for {
				maxUnproven = max(maxUnproven, target.Stats().HandshakesUnproven)
				select {
				case <-stop:
					return
				case <-time.After(time.Millisecond):
				}
			}
		}()
		res := runSimBurst(t, senders, "target", per, 30*time.Second)
		fw.Wait()
		close(stop)
		<-sampled
		checkBurst(t, res, bt, senders, per)
		if len(silent) < flood*9/10 {
			t.Fatalf("only %d of %d silent connections opened", len(silent), flood)
		}
		if capN := transport.DefaultMaxHandshakes; maxUnproven > capN {
			t.Errorf("%d unproven handshakes at once, cap %d", maxUnproven, capN)
		}
		// Dropped silent connections read EOF; at most the cap stay.
		time.Sleep(time.Second)
		open := 0
		for _, c := range silent {
			c.SetReadDeadline(time.Now().Add(time.Millisecond))
			var b [1]byte
			if _, err := c.Read(b[:]); errors.Is(err, os.ErrDeadlineExceeded) {
				open++
			}
			c.Close()
		}
		if open > transport.DefaultMaxHandshakes {
			t.Errorf("%d silent connections still open, cap %d", open, transport.DefaultMaxHandshakes)
		}
		st := target.Stats()
		t.Logf("seed %d: %d silent, %d honest set-ups; max unproven %d; %d silent still open; stats %+v", seed, len(silent), nSenders*per, maxUnproven, open, st)
		closeAll(append(senders, target)...)
	})
}

// Attackers that greet and then stall fill every unproven slot: they
// prove nothing, so once they have stalled for a quarter of the handshake
// timeout they make room, and an honest burst arriving behind them in
// the backlog still succeeds in full.
func TestSimStalledGreetingsAndHonestBurst(t *testing.T) {
	const seed, stalled, nSenders, per = 7, 600, 4, 250
	synctest.Test(t, func(t *testing.T) {
		w := memnet.New(seed, memnet.WithDefaultLink(memnet.LinkConfig{Latency: time.Millisecond, Jitter: time.Millisecond}),
			memnet.WithBacklog(4096), memnet.WithTrace(0))
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
		// The stalling attackers: a messaging greeting, then nothing.
		var conns []net.Conn
		for i := range stalled {
			c, err := w.Host(fmt.Sprintf("evil%d", i%20)).Dial(context.Background(), "target:1")
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(c, "aemp;1;evil%d;hmac_sha3_512;json\n", i)
			conns = append(conns, c)
		}
		time.Sleep(10 * time.Millisecond)
		if st := target.Stats(); st.HandshakesUnproven != transport.DefaultMaxHandshakes {
			t.Fatalf("stalled greetings hold %d unproven slots, want all %d", st.HandshakesUnproven, transport.DefaultMaxHandshakes)
		}
		res := runSimBurst(t, senders, "target", per, 30*time.Second)
		checkBurst(t, res, bt, senders, per)
		st := target.Stats()
		t.Logf("seed %d: %d stalled greetings, %d honest set-ups; stats %+v", seed, stalled, nSenders*per, st)
		for _, c := range conns {
			c.Close()
		}
		closeAll(append(senders, target)...)
	})
}
