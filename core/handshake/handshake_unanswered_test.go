package handshake

import (
	"errors"
	"testing"
)

// TestHandshakePeerClosedUnanswered: a stream that ends before the peer's
// greeting arrived is marked Unanswered (the peer cannot have acted on
// it, so the transport may dial again); one that ends after the greeting
// is not, whatever the stage.
func TestHandshakePeerClosedUnanswered(t *testing.T) {
	p := defaultPeer()
	cases := []struct {
		name       string
		feed       string
		unanswered bool
	}{
		{"nothing received", "", true},
		{"half a greeting", p.l1[:10], true},
		{"greeting", p.l1 + "\n", false},
		{"greeting and nonce", p.l1 + "\n" + p.l2 + "\n", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h, err := New(Config{NodeID: "L", Secret: testSecret}, "local-nonce", t0)
			if err != nil {
				t.Fatal(err)
			}
			drain(h)
			if c.feed != "" {
				h.Receive(t0, []byte(c.feed))
				drain(h)
			}
			h.PeerClosed(t0, nil)
			err = lastFailed(drain(h))
			var he *Error
			if !errors.As(err, &he) || !errors.Is(err, ErrPeerClosed) {
				t.Fatalf("err %v, want a *Error for ErrPeerClosed", err)
			}
			if he.Unanswered != c.unanswered {
				t.Fatalf("Unanswered %v, want %v", he.Unanswered, c.unanswered)
			}
		})
	}
}
