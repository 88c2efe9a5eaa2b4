package transport

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

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

// TestTicketHoldConn: a held write (the session ticket) goes out in front
// of the next write, before the next read, or on close, and never after
// anything written later.
func TestTicketHoldConn(t *testing.T) {
	got := func(c net.Conn, n int) string {
		t.Helper()
		b := make([]byte, n)
		if _, err := io.ReadFull(c, b); err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	a, b := net.Pipe()
	defer b.Close()
	// A write that is not held blocks (nobody reads) and fails here.
	_ = a.SetDeadline(time.Now().Add(10 * time.Second))
	_ = b.SetDeadline(time.Now().Add(10 * time.Second))
	h := newTicketHoldConn(a)
	write := func(s string) {
		t.Helper()
		done := make(chan error, 1)
		go func() {
			n, err := h.Write([]byte(s))
			if err == nil && n != len(s) {
				err = fmt.Errorf("wrote %d of %d", n, len(s))
			}
			done <- err
		}()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	go func() { _, _ = h.Write([]byte("a")) }()
	if s := got(b, 1); s != "a" {
		t.Fatalf("unheld write: %q", s)
	}
	h.holdNext()
	write("T") // held: returns without the peer reading
	go func() { _, _ = h.Write([]byte("bc")) }()
	if s := got(b, 3); s != "Tbc" {
		t.Fatalf("held write then the next: %q, want \"Tbc\"", s)
	}
	h.holdNext()
	write("U")
	go func() { _, _ = b.Write([]byte("x")) }()
	go func() {
		var one [1]byte
		_, _ = h.Read(one[:]) // flushes U first
	}()
	if s := got(b, 1); s != "U" {
		t.Fatalf("held write before a read: %q", s)
	}
	h.holdNext()
	write("V")
	go func() { _ = h.Close() }()
	if s := got(b, 1); s != "V" {
		t.Fatalf("held write on close: %q", s)
	}
}
