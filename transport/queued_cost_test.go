package transport_test

import (
	"context"
	"errors"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aemp-go/dataconn/internal/burst"
	"github.com/aemp-go/dataconn/memnet"
	"github.com/aemp-go/dataconn/transport"
)

func heapAlloc() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// A set-up queued behind the target's window costs at most 1 KiB of heap
// until it starts (beyond its caller's goroutine, which is the caller's),
// holds no socket and starts no goroutine; cancelling it fails it at once
// with the cancellation rule.
func TestQueuedSetupCost(t *testing.T) {
	const n = 10_000
	synctest.Test(t, func(t *testing.T) {
		w := memnet.New(41, memnet.WithDefaultLink(memnet.LinkConfig{Latency: time.Millisecond}), memnet.WithTrace(0))
		// Window 1: the target holds one pending set-up from a peer.
		target := listening(t, w, "target", func(c *transport.Config) { c.DataConn.MaxExpectPerPeer = 1 })
		release := make(chan struct{})
		target.HandleDataConn("hold", func(_ string, _ []any, c net.Conn) { <-release; c.Close() })
		a := listening(t, w, "a", nil)
		meshPeers(target, a)
		if err := a.Connect(context.Background(), "target"); err != nil {
			t.Fatal(err)
		}
		// One set-up takes the slot and keeps it: its dials are lost.
		w.SetDialLoss(1)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var wg sync.WaitGroup
		first := make(chan error, 1)
		wg.Go(func() { _, err := a.ConnectTo(ctx, "target", time.Hour, "hold"); first <- err })
		synctest.Wait()
		if st := a.Stats(); st.InFlight != 1 || st.Queued != 0 {
			t.Fatalf("stats %+v", st)
		}
		// Warm the runtime's free list of goroutines first, so the
		// baseline and the callers both reuse goroutine descriptors (on a
		// fresh process the baseline would allocate them and the callers
		// reuse them, hiding their cost from the figure).
		warm := make(chan struct{})
		var ww sync.WaitGroup
		for range n {
			ww.Go(func() { <-warm })
		}
		synctest.Wait()
		close(warm)
		ww.Wait()
		// Baseline: n goroutines parked like the callers will be.
		park := make(chan struct{})
		h0 := heapAlloc()
		g0 := runtime.NumGoroutine()
		var pw sync.WaitGroup
		for range n {
			pw.Go(func() { <-park })
		}
		synctest.Wait()
		h1 := heapAlloc()
		close(park)
		pw.Wait()
		synctest.Wait()
		h2 := heapAlloc()
		errs := make(chan error, n)
		for range n {
			wg.Go(func() { _, err := a.ConnectTo(ctx, "target", time.Hour, "hold"); errs <- err })
		}
		synctest.Wait()
		h3 := heapAlloc()
		st := a.Stats()
		if st.Queued != n || st.InFlight != 1 {
			t.Fatalf("stats %+v, want %d queued", st, n)
		}
		if g := runtime.NumGoroutine() - g0; g > n+1 {
			t.Fatalf("%d goroutines for %d queued set-ups: queued set-ups start goroutines", g, n)
		}
		per := (float64(h3-h2) - float64(h1-h0)) / n
		t.Logf("queued set-up: %.0f bytes of heap each (caller goroutine excluded)", per)
		// The race detector's bookkeeping roughly doubles small
		// allocations; the bound is for normal builds.
		limit := 1024.0
		if burst.RaceEnabled {
			limit = 2048
		}
		if per > limit {
			t.Errorf("a queued set-up costs %.0f bytes, want at most %.0f", per, limit)
		}
		// Cancelling fails every one at once.
		cancel()
		for range n {
			if err := <-errs; err == nil {
				t.Fatal("a cancelled set-up succeeded")
			}
		}
		<-first
		wg.Wait()
		close(release)
		closeAll(a, target)
	})
}

// A queued set-up fails like any other: at its own timeout with the usual
// text (its wait counted, nothing run remotely), at once with the
// cancellation rule when its context ends, and at once when the node
// closes.
func TestQueuedSetupFailures(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := memnet.New(42, memnet.WithDefaultLink(memnet.LinkConfig{Latency: time.Millisecond}))
		target := listening(t, w, "target", func(c *transport.Config) { c.DataConn.MaxExpectPerPeer = 1 })
		var calls initCounter
		target.HandleDataConn("f", calls.init)
		a := listening(t, w, "a", nil)
		meshPeers(target, a)
		if err := a.Connect(context.Background(), "target"); err != nil {
			t.Fatal(err)
		}
		// The one slot stays busy: every data dial is lost.
		w.SetDialLoss(1)
		go a.ConnectTo(context.Background(), "target", time.Hour, "f")
		synctest.Wait()

		start := time.Now()
		_, err := a.ConnectTo(context.Background(), "target", 2*time.Second, "f")
		if d := time.Since(start); d != 2*time.Second {
			t.Errorf("queued set-up failed after %v, want its timeout 2s", d)
		}
		if text := dcErr(t, err, "target", transport.ErrDataConnTimeout); text != "target: unable to establish connection within 2 seconds" {
			t.Errorf("text %q", text)
		}

		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error, 1)
		go func() { _, err := a.ConnectTo(ctx, "target", time.Hour, "f"); errc <- err }()
		synctest.Wait()
		cancel()
		start = time.Now()
		err = <-errc
		if time.Since(start) != 0 {
			t.Error("cancelled set-up did not fail at once")
		}
		dcErr(t, err, "target", transport.ErrDataConnCancelled)

		go func() { _, err := a.ConnectTo(context.Background(), "target", time.Hour, "f"); errc <- err }()
		synctest.Wait()
		if st := a.Stats(); st.Queued != 1 {
			t.Fatalf("stats %+v, want one queued", st)
		}
		a.Close()
		err = <-errc
		if !strings.Contains(err.Error(), "node closed") || !errors.Is(err, transport.ErrDataConnCancelled) || !errors.Is(err, transport.ErrClosed) {
			t.Errorf("set-up queued at Close: %v, want ErrDataConnCancelled and ErrClosed", err)
		}
		if calls.n.Load() != 0 {
			t.Error("an init function ran")
		}
		closeAll(target)
	})
}
