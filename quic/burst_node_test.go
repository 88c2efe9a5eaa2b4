package quic_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/aemp-go/dataconn/internal/burst"
	"github.com/aemp-go/dataconn/quic"
	"github.com/aemp-go/dataconn/transport"
)

// burstSize is the size of the QUIC burst: 2,000 under the race detector,
// 10,000 without (the CI runs both).
func burstSize() int {
	if burst.RaceEnabled {
		return 2000
	}
	return 10_000
}

// A burst of concurrent set-ups between two nodes over QUIC with the
// default configuration: every one succeeds, every init function runs
// once, and nothing leaks once the nodes and Networks are closed.
func TestBurstQUIC(t *testing.T) {
	checkLeaks(t)
	n := burstSize()
	target, _, _ := quicNode(t, "target", quic.Config{}, nil)
	calls := burst.Serve(target)
	sender, _, _ := quicNode(t, "sender", quic.Config{}, nil)
	sender.AddPeer("target", target.Addrs()...)
	target.AddPeer("sender", sender.Addrs()...)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	res, err := burst.Run(ctx, []*transport.Node{sender}, "target", n, 60*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("quic burst of %d: %v", n, res)
	if res.Failed != 0 {
		t.Fatalf("burst of %d: %v", n, res)
	}
	if err := calls.Check([]*transport.Node{sender}, n); err != nil {
		t.Fatal(err)
	}
}

// The same from 20 nodes at once.
func TestBurstQUICManyNodes(t *testing.T) {
	checkLeaks(t)
	const nodes = 20
	per := burstSize() / 10 / nodes * 5 // 1,000 in all, 5,000 without -race
	target, _, _ := quicNode(t, "target", quic.Config{}, nil)
	calls := burst.Serve(target)
	senders := make([]*transport.Node, nodes)
	for i := range senders {
		senders[i], _, _ = quicNode(t, fmt.Sprintf("s%02d", i), quic.Config{}, nil)
		senders[i].AddPeer("target", target.Addrs()...)
		target.AddPeer(senders[i].ID(), senders[i].Addrs()...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	res, err := burst.Run(ctx, senders, "target", per, 60*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("quic burst of %d × %d: %v", nodes, per, res)
	if res.Failed != 0 {
		t.Fatalf("burst: %v", res)
	}
	if err := calls.Check(senders, per); err != nil {
		t.Fatal(err)
	}
}
