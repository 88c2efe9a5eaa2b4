package handshake

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/aemp-go/dataconn/core/wire"
)

// earlyPair returns an initiator A and an acceptor B that greets first
// (DeferGreeting and EarlyGreeting), both offering hmac_sha3_512_cb over
// the same channel binding.
func earlyPair(t *testing.T) (a, b *Machine) {
	t.Helper()
	binding := bytes.Repeat([]byte{7}, 32)
	auths := []string{AuthHMACCB, wire.AuthHMAC}
	ca := cfgNode("A")
	ca.AcceptAuths, ca.OfferAuths, ca.ChannelBinding = auths, auths, binding
	cb := cfgNode("B")
	cb.AcceptAuths, cb.OfferAuths, cb.ChannelBinding = auths, auths, binding
	cb.DeferGreeting, cb.EarlyGreeting = true, true
	var err error
	if a, err = New(ca, "nonce-a", t0); err != nil {
		t.Fatal(err)
	}
	if b, err = New(cb, "nonce-b", t0); err != nil {
		t.Fatal(err)
	}
	return a, b
}

// writes returns the data of acts, which must all be writes.
func writes(t *testing.T, who string, acts []Action) []byte {
	t.Helper()
	var out []byte
	for _, a := range acts {
		w, ok := a.(Write)
		if !ok {
			t.Fatalf("%s: action %#v, want only writes", who, a)
		}
		out = append(out, w.Data...)
	}
	return out
}

// TestHandshakeEarlyGreeting: an acceptor with EarlyGreeting writes its
// lines at once, reports the peer's greeting, and answers nothing (not
// even to an auth line that came with the greeting) until the go-ahead;
// then it sends its auth line and is done, and the initiator, which
// answered the early greeting at once, is done on that line.
func TestHandshakeEarlyGreeting(t *testing.T) {
	a, b := earlyPair(t)
	bLines := writes(t, "B at New", drain(b))
	if !strings.HasPrefix(string(bLines), "aemp;1;B;") || bytes.Count(bLines, []byte("\n")) != 2 {
		t.Fatalf("B's first write %q, want its greeting and nonce lines", bLines)
	}
	aLines := writes(t, "A at New", drain(a))
	a.Receive(t0, bLines)
	aAuth := writes(t, "A on B's lines", drain(a))
	if !strings.HasPrefix(string(aAuth), AuthHMACCB+";") {
		t.Fatalf("A answered B's lines with %q, want its %s line", aAuth, AuthHMACCB)
	}
	// All of A's lines in one read, as over QUIC.
	b.Receive(t0, append(append([]byte(nil), aLines...), aAuth...))
	acts := drain(b)
	if len(acts) != 1 {
		t.Fatalf("B on A's lines: %#v, want only PeerGreeting", acts)
	}
	pg, ok := acts[0].(PeerGreeting)
	if !ok || pg.Greeting.NodeID != "A" || pg.Protocol != wire.ProtocolMessaging {
		t.Fatalf("B on A's lines: %#v, want PeerGreeting for A", acts[0])
	}
	b.SendGreeting(t0, nil)
	acts = drain(b)
	if len(acts) != 2 {
		t.Fatalf("B after the go-ahead: %#v, want its auth line and Done", acts)
	}
	bAuth := writes(t, "B after the go-ahead", acts[:1])
	done, ok := acts[1].(Done)
	if !ok || done.Result.PeerAuth != AuthHMACCB || done.Result.PeerNodeID != "A" || len(done.Result.Pending) != 0 {
		t.Fatalf("B's last action %#v, want Done for A with %s", acts[1], AuthHMACCB)
	}
	a.Receive(t0, bAuth)
	acts = drain(a)
	if len(acts) != 1 {
		t.Fatalf("A on B's auth line: %#v", acts)
	}
	if d, ok := acts[0].(Done); !ok || d.Result.PeerAuth != AuthHMACCB || d.Result.LocalLines != done.Result.PeerLines {
		t.Fatalf("A on B's auth line: %#v", acts[0])
	}
}

// TestHandshakeEarlyGreetingRefusals: extra keys after an early greeting,
// more than one line after the peer's nonce line before the go-ahead,
// EarlyGreeting without DeferGreeting, and an Abort all fail, and none
// of them lets the acceptor send an auth line.
func TestHandshakeEarlyGreetingRefusals(t *testing.T) {
	peer := []byte("aemp;1;A;hmac_sha3_512_cb,hmac_sha3_512;msgpack;aempgo=1\nnonce-a\n")
	start := func(t *testing.T) *Machine {
		t.Helper()
		_, b := earlyPair(t)
		drain(b)
		b.Receive(t0, peer)
		if acts := drain(b); len(acts) != 1 {
			t.Fatalf("B on A's lines: %#v", acts)
		}
		return b
	}
	failed := func(t *testing.T, b *Machine, rule error) {
		t.Helper()
		acts := drain(b)
		if len(acts) != 1 {
			t.Fatalf("actions %#v, want one Failed", acts)
		}
		f, ok := acts[0].(Failed)
		if !ok || !errors.Is(f.Err, rule) {
			t.Fatalf("action %#v, want Failed with %v", acts[0], rule)
		}
	}
	t.Run("extra keys", func(t *testing.T) {
		b := start(t)
		b.SendGreeting(t0, []wire.KV{{Key: "x", Value: "1"}})
		failed(t, b, ErrBadConfig)
	})
	t.Run("more than a line early", func(t *testing.T) {
		b := start(t)
		b.Receive(t0, []byte(AuthHMACCB+";"))
		if acts := drain(b); len(acts) != 0 {
			t.Fatalf("B on the start of an auth line: %#v", acts)
		}
		b.Receive(t0, bytes.Repeat([]byte{'x'}, wire.MaxLineLen))
		failed(t, b, ErrEarlyData)
	})
	t.Run("abort", func(t *testing.T) {
		b := start(t)
		errNo := errors.New("refused by the caller")
		b.Abort(t0, errNo)
		failed(t, b, errNo)
	})
	t.Run("without DeferGreeting", func(t *testing.T) {
		c := cfgNode("B")
		c.EarlyGreeting = true
		if _, err := New(c, "n", t0); !errors.Is(err, ErrBadConfig) {
			t.Fatalf("New: %v, want ErrBadConfig", err)
		}
	})
}
