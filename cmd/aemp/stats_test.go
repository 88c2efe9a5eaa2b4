package main

import (
	"testing"
	"time"
)

// aemp node --json --stats prints the node's load periodically: set-ups
// queued and in flight, handshakes, refusals and failures by rule.
func TestNodeStatsEvents(t *testing.T) {
	p := startNode(t, nil, "--secret", testSecret, "--stats", "100ms")
	for range 2 {
		ev := p.wait("stats", 10*time.Second)
		if ev.Node != p.id {
			t.Fatalf("stats event for node %q, want %q", ev.Node, p.id)
		}
		for _, k := range []string{"Queued", "InFlight", "Expectations", "ExpectWaiting", "HeldEarly", "HandshakesInProgress", "HandshakesUnproven", "Refused", "Failed", "Peers"} {
			if _, ok := ev.Stats[k]; !ok {
				t.Fatalf("stats event without %s: %v", k, ev.Stats)
			}
		}
	}
}
