package transport

import (
	"crypto/tls"
	"testing"

	"github.com/aemp-go/dataconn/core/peer"
)

// TestTicketForgottenWhenPeerDown: a node keeps a peer's session ticket
// while the peer is up and drops it when the peer goes down, so tickets
// of peers that came and went do not pile up; other peers' stay.
func TestTicketForgottenWhenPeerDown(t *testing.T) {
	n, err := NewNode(Config{NodeID: "a", Secret: []byte("s")})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	for _, p := range []string{"x", "y"} {
		peerCache{r: n.resume, peer: p}.Put("", &tls.ClientSessionState{})
	}
	n.mu.Lock()
	var w pendingWork
	n.actLocked(peer.NodeDown{Peer: "x"}, &w)
	n.mu.Unlock()
	n.finish(originLocal, w, false)
	if n.resume.has("x") {
		t.Error("the ticket of a peer that went down is still held")
	}
	if !n.resume.has("y") {
		t.Error("the ticket of a peer that is still up was dropped")
	}
}
