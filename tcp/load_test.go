package tcp_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/aemp-go/dataconn/internal/burst"
	"github.com/aemp-go/dataconn/transport"
)

// burstSize is the size of the real-socket burst: 2,000 under the race
// detector, 10,000 without (the CI runs both).
func burstSize() int {
	if burst.RaceEnabled {
		return 2000
	}
	return 10_000
}

// A burst of concurrent set-ups between two nodes on loopback TCP with the
// default configuration: every one succeeds, every init function runs once,
// and nothing leaks once the nodes are closed.
func TestBurstTCP(t *testing.T) {
	warmNetpoller(t)
	base := snapshot()
	n := burstSize()
	func() {
		target := startNode(t, "target", "127.0.0.1:0", nil)
		calls := burst.Serve(target)
		sender := startNode(t, "sender", "127.0.0.1:0", nil)
		linkNodes(target, sender)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		res, err := burst.Run(ctx, []*transport.Node{sender}, "target", n, 60*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("tcp burst of %d: %v", n, res)
		if res.Failed != 0 {
			t.Fatalf("burst of %d: %v", n, res)
		}
		if err := calls.Check([]*transport.Node{sender}, n); err != nil {
			t.Fatal(err)
		}
		sender.Close()
		target.Close()
	}()
	if err := waitReleased(base, leakSettle); err != nil {
		t.Fatal(err)
	}
}

// The same from 20 nodes at once (the handshake cap must not evict honest
// handshakes).
func TestBurstTCPManyNodes(t *testing.T) {
	warmNetpoller(t)
	base := snapshot()
	const nodes = 20
	per := burstSize() / 10 / nodes * 5 // 1,000 in all, 5,000 without -race
	func() {
		target := startNode(t, "target", "127.0.0.1:0", nil)
		calls := burst.Serve(target)
		senders := make([]*transport.Node, nodes)
		for i := range senders {
			senders[i] = startNode(t, fmt.Sprintf("s%02d", i), "127.0.0.1:0", nil)
		}
		linkNodes(append(senders, target)...)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		res, err := burst.Run(ctx, senders, "target", per, 60*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("tcp burst of %d × %d: %v; target %+v; sender %+v", nodes, per, res, target.Stats(), senders[0].Stats())
		if res.Failed != 0 {
			t.Fatalf("burst: %v", res)
		}
		if err := calls.Check(senders, per); err != nil {
			t.Fatal(err)
		}
		for _, s := range senders {
			s.Close()
		}
		target.Close()
	}()
	if err := waitReleased(base, leakSettle); err != nil {
		t.Fatal(err)
	}
}
