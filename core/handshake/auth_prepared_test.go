package handshake

import (
	"errors"
	"testing"

	"github.com/aemp-go/dataconn/core/wire"
)

// TestHandshakePrepare: a check of the peer's auth line prepared in
// advance (Prepare, called while the machine waits for that line) gives the
// same outcome as the check made when the line arrives: the right line is
// accepted, a wrong MAC refused with the same rule and text, and a peer
// that picks another method than ours is checked as before.
func TestHandshakePrepare(t *testing.T) {
	p := defaultPeer()
	pcb := peerScript{l1: "aemp;1;P;hmac_sha3_512_cb,hmac_sha3_512;msgpack,json;aempgo=1", l2: "peer-nonce"}
	cbLine := func(secret []byte) func(h *Machine) []byte {
		return func(h *Machine) []byte {
			l1, l2 := h.LocalLines()
			return []byte(AuthHMACCB + ";" + AuthDataCB(secret, "P", "L", nil, pcb.l1, pcb.l2, l1, l2) + ";json\nrest")
		}
	}
	hmacLine := func(secret []byte) func(h *Machine) []byte {
		return func(h *Machine) []byte { return append(p.auth(h, wire.AuthHMAC, secret, "json"), "rest"...) }
	}
	cases := []struct {
		name    string
		peer    peerScript
		accept  []string
		line    func(h *Machine) []byte
		rule    error  // nil: success
		sent    string // the method we send (the one Prepare computes)
		peerGot string // the method the peer sent
	}{
		{"hmac", p, nil, hmacLine(testSecret), nil, wire.AuthHMAC, wire.AuthHMAC},
		{"hmac wrong secret", p, nil, hmacLine([]byte("other")), ErrAuthFailed, wire.AuthHMAC, ""},
		{"cb", pcb, []string{AuthHMACCB, wire.AuthHMAC}, cbLine(testSecret), nil, AuthHMACCB, AuthHMACCB},
		{"cb wrong secret", pcb, []string{AuthHMACCB, wire.AuthHMAC}, cbLine([]byte("other")), ErrAuthFailed, AuthHMACCB, ""},
		{"peer picks another method", p, []string{wire.AuthHMAC, wire.AuthCleartext},
			func(*Machine) []byte { return []byte("cleartext;733363723374;json\nrest") }, nil, wire.AuthHMAC, wire.AuthCleartext},
		{"peer picks another method, wrong", p, []string{wire.AuthHMAC, wire.AuthCleartext},
			func(*Machine) []byte { return []byte("cleartext;6f74686572;json\nrest") }, ErrAuthFailed, wire.AuthHMAC, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			outcome := func(prepare bool) Action {
				cfg := Config{NodeID: "L", Secret: testSecret, AcceptAuths: tc.accept, OfferAuths: tc.accept}
				h, err := New(cfg, "local-nonce", t0)
				if err != nil {
					t.Fatal(err)
				}
				h.Receive(t0, tc.peer.greeting())
				drain(h)
				if prepare {
					h.Prepare()
					h.Prepare() // idempotent
					if !h.prepOK {
						t.Fatalf("nothing prepared for %s", h.sendAuth)
					}
				}
				h.Receive(t0, tc.line(h))
				acts := drain(h)
				return acts[len(acts)-1]
			}
			plain, prepared := outcome(false), outcome(true)
			switch want := plain.(type) {
			case Done:
				got, ok := prepared.(Done)
				if !ok {
					t.Fatalf("prepared: %#v, unprepared: Done", prepared)
				}
				if tc.rule != nil || got.Result.SentAuth != tc.sent || got.Result.PeerAuth != tc.peerGot ||
					string(got.Result.Pending) != "rest" || got.Result.PeerAuth != want.Result.PeerAuth {
					t.Fatalf("prepared %+v, unprepared %+v", got.Result, want.Result)
				}
			case Failed:
				got, ok := prepared.(Failed)
				if !ok || !errors.Is(got.Err, tc.rule) || !errors.Is(want.Err, tc.rule) || got.Err.Error() != want.Err.Error() {
					t.Fatalf("prepared %#v, unprepared %#v, want rule %v", prepared, plain, tc.rule)
				}
			default:
				t.Fatalf("unprepared ends with %#v", plain)
			}
		})
	}
}

// TestHandshakePrepareOnlyWhenWaitingForAuth: before our auth line is out
// (the peer's lines still missing), Prepare does nothing.
func TestHandshakePrepareOnlyWhenWaitingForAuth(t *testing.T) {
	h, err := New(cfgNode("L"), "local-nonce", t0)
	if err != nil {
		t.Fatal(err)
	}
	h.Prepare()
	if h.prepared || h.prepOK {
		t.Fatal("prepared before the peer's greeting")
	}
	h.Receive(t0, []byte(defaultPeer().l1+"\n"))
	h.Prepare()
	if h.prepared {
		t.Fatal("prepared before the peer's nonce")
	}
}
