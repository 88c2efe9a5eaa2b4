package tcp_test

import (
	"context"
	"net"
	"testing"
	"time"
)

// A listener's goroutine that served a connection waits a while to
// accept the next one instead of ending (the next handshake then runs
// on a goroutine that already runs, with its stack grown), but a quiet
// listener goes back to its accepting goroutine alone: after a burst of
// data connections, the node's goroutines and descriptors return to what
// they were before it, with both nodes still open.
func TestListenerServersEndWhenQuiet(t *testing.T) {
	a := startNode(t, "a", "127.0.0.1:0", nil)
	b := startNode(t, "b", "127.0.0.1:0", nil)
	linkNodes(a, b)
	taken := make(chan net.Conn, 1)
	b.HandleDataConn("t::take", func(_ string, _ []any, c net.Conn) { taken <- c })
	ctx, cancel := context.WithTimeout(context.Background(), dcTimeout)
	defer cancel()
	if err := a.Connect(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	once := func() {
		c, err := a.ConnectTo(ctx, "b", dcTimeout, "t::take")
		if err != nil {
			t.Fatal(err)
		}
		select {
		case r := <-taken:
			r.Close()
		case <-ctx.Done():
			t.Fatal("init function not called")
		}
		c.Close()
	}
	once() // the first one sets up what every later one reuses
	// The goroutine that served it waits to accept again, for up to a
	// second (transport's idleServerLinger).
	time.Sleep(1500 * time.Millisecond)
	base := snapshot()
	// Sequential and overlapping set-ups: several served connections
	// at once leave several waiting goroutines.
	for range 20 {
		once()
	}
	done := make(chan struct{})
	for range 3 {
		go func() {
			defer func() { done <- struct{}{} }()
			c, err := a.ConnectTo(ctx, "b", dcTimeout, "t::take")
			if err == nil {
				c.Close()
			}
		}()
	}
	for range 3 {
		select {
		case r := <-taken:
			r.Close()
		case <-ctx.Done():
			t.Fatal("init function not called")
		}
	}
	for range 3 {
		<-done
	}
	if err := waitReleased(base, leakSettle); err != nil {
		t.Fatalf("after the data connections, with the nodes open: %v", err)
	}
}
