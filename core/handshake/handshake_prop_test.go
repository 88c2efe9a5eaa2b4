package handshake

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/aemp-go/dataconn/core/wire"
)

var allFramings = []string{"msgpack", "json", "cbor"}

type drawnSide struct {
	cfg     Config
	nonce   string
	payload []byte
}

func drawFramings(t *rapid.T, label string) []string {
	p := rapid.Permutation(allFramings).Draw(t, label+"-perm")
	return p[:rapid.IntRange(1, len(p)).Draw(t, label+"-n")]
}

func drawSide(t *rapid.T, name string, secret []byte) drawnSide {
	cfg := Config{
		NodeID:         name,
		Protocol:       rapid.SampledFrom([]string{"", wire.ProtocolMessaging, wire.ProtocolDataConn}).Draw(t, name+"-proto"),
		Secret:         secret,
		AcceptFramings: drawFramings(t, name+"-accfram"),
		SendFramings:   drawFramings(t, name+"-sndfram"),
		TLS:            rapid.Bool().Draw(t, name+"-tls"),
	}
	if rapid.Bool().Draw(t, name+"-anon") {
		cfg.AcceptAuths = []string{wire.AuthTLS, wire.AuthTLSAnon, wire.AuthHMAC}
		cfg.OfferAuths = []string{wire.AuthTLSAnon, wire.AuthTLS, wire.AuthHMAC, wire.AuthCleartext}
	}
	return drawnSide{
		cfg:     cfg,
		nonce:   rapid.StringMatching(`[A-Za-z0-9+/]{1,20}`).Draw(t, name+"-nonce"),
		payload: rapid.SliceOfN(rapid.Byte(), 0, 64).Draw(t, name+"-payload"),
	}
}

// expectDirection models what sender x sends to receiver y: the method,
// whether a framing exists, and ok when y will accept it all.
func expectDirection(x, y Config, tls bool) (method string, fram, ok bool) {
	offer := orDefault(x.OfferAuths, defaultAuths)
	for _, m := range orDefault(y.AcceptAuths, defaultAuths) {
		if !slices.Contains(offer, m) {
			continue
		}
		if strings.HasPrefix(m, "tls_") && !tls || m == wire.AuthCleartext {
			continue
		}
		if m == wire.AuthHMAC && len(x.Secret) == 0 {
			continue
		}
		method = m
		break
	}
	for _, f := range orDefault(y.AcceptFramings, defaultFramings) {
		if slices.Contains(orDefault(x.SendFramings, defaultFramings), f) {
			fram = true
			break
		}
	}
	if method == "" || !fram {
		return method, fram, false
	}
	if method == wire.AuthHMAC && !bytes.Equal(x.Secret, y.Secret) {
		return method, fram, false
	}
	return method, fram, true
}

func picker(t *rapid.T) func(n int) int {
	return func(n int) int { return rapid.IntRange(0, n-1).Draw(t, "pick") }
}

func TestPropHandshakePair(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		secretA := []byte(rapid.StringMatching(`[ -~]{0,80}`).Draw(t, "secretA"))
		secretB := secretA
		if rapid.IntRange(0, 3).Draw(t, "secret-mode") == 0 {
			secretB = []byte(rapid.StringMatching(`[ -~]{0,80}`).Draw(t, "secretB"))
		}
		a := drawSide(t, "A", secretA)
		b := drawSide(t, "B", secretB)
		b.cfg.DeferGreeting = rapid.Bool().Draw(t, "B-defer")
		if a.nonce == b.nonce {
			b.nonce += "x"
		}
		s, err := newSim(a.cfg, b.cfg, a.nonce, b.nonce)
		if err != nil {
			t.Fatal(err)
		}
		s.a.payload, s.b.payload = a.payload, b.payload
		s.onPeerGreeting = func(x *simSide, pg PeerGreeting) { x.h.SendGreeting(s.now, nil) }
		if err := s.run(picker(t)); err != nil {
			t.Fatal(err)
		}

		tls := a.cfg.TLS && b.cfg.TLS
		mAB, framAB, okAB := expectDirection(a.cfg, b.cfg, tls)
		mBA, framBA, okBA := expectDirection(b.cfg, a.cfg, tls)
		if okAB && okBA {
			if s.a.err != nil || s.b.err != nil {
				t.Fatalf("expected success, got %v / %v", s.a.err, s.b.err)
			}
		} else if s.a.res != nil && s.b.res != nil {
			t.Fatalf("expected failure (%v %v), both Done", okAB, okBA)
		}
		// Different secrets without TLS: both sides detect it.
		if !tls && mAB == wire.AuthHMAC && mBA == wire.AuthHMAC && framAB && framBA && !bytes.Equal(secretA, secretB) {
			if !errors.Is(s.a.err, ErrAuthFailed) || !errors.Is(s.b.err, ErrAuthFailed) {
				t.Fatalf("different secrets: %v / %v", s.a.err, s.b.err)
			}
		}
		for _, x := range []*simSide{s.a, s.b} {
			if !x.ended() {
				t.Fatalf("%s did not end", x.name)
			}
			if x.err != nil {
				var he *Error
				if !errors.As(x.err, &he) {
					t.Fatalf("%s: untyped error %v", x.name, x.err)
				}
				continue
			}
			r := x.res
			if (strings.HasPrefix(r.SentAuth, "tls_") || strings.HasPrefix(r.PeerAuth, "tls_")) && !r.TLS {
				t.Fatalf("%s: tls method without TLS: %+v", x.name, r)
			}
			if r.TLS != tls || r.Untrusted != (r.PeerAuth == wire.AuthTLSAnon) {
				t.Fatalf("%s: result %+v", x.name, r)
			}
			if r.SentAuth == wire.AuthCleartext {
				t.Fatalf("%s sent cleartext", x.name)
			}
			if x.starts > 1 || (x.starts == 1) != tls {
				t.Fatalf("%s: %d StartTLS, tls %v", x.name, x.starts, tls)
			}
		}
		if s.a.res != nil && s.b.res != nil {
			ra, rb := s.a.res, s.b.res
			if ra.SendFraming != rb.RecvFraming || rb.SendFraming != ra.RecvFraming ||
				ra.SentAuth != rb.PeerAuth || rb.SentAuth != ra.PeerAuth {
				t.Fatalf("inconsistent results\nA %+v\nB %+v", ra, rb)
			}
			if ra.SentAuth != mAB || rb.SentAuth != mBA {
				t.Fatalf("methods %s/%s, model %s/%s", ra.SentAuth, rb.SentAuth, mAB, mBA)
			}
			if ra.Protocol != rb.Protocol {
				t.Fatalf("protocols %q %q", ra.Protocol, rb.Protocol)
			}
			wantProto := wire.ProtocolMessaging
			if a.cfg.Protocol == wire.ProtocolDataConn || b.cfg.Protocol == wire.ProtocolDataConn {
				wantProto = wire.ProtocolDataConn
			}
			if ra.Protocol != wantProto {
				t.Fatalf("protocol %q, want %q", ra.Protocol, wantProto)
			}
			if ra.LocalLines != rb.PeerLines || rb.LocalLines != ra.PeerLines {
				t.Fatalf("lines differ")
			}
			if !bytes.Equal(s.a.stream, b.payload) || !bytes.Equal(s.b.stream, a.payload) {
				t.Fatalf("stream bytes lost: A got %q want %q; B got %q want %q", s.a.stream, b.payload, s.b.stream, a.payload)
			}
			if tls && s.a.tlsReq.Client == s.b.tlsReq.Client {
				t.Fatalf("both sides client=%v", s.a.tlsReq.Client)
			}
		}
	})
}

// A single flipped byte in either auth line makes its receiver fail.
func TestPropFlippedAuthByte(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		ca, cb := cfgNode("A"), cfgNode("B")
		ca.TLS = rapid.Bool().Draw(t, "tls")
		cb.TLS = ca.TLS
		victim := rapid.SampledFrom([]string{"A", "B"}).Draw(t, "victim")
		s, err := newSim(ca, cb, "nonce-a", "nonce-b")
		if err != nil {
			t.Fatal(err)
		}
		writes := map[string]int{}
		s.tamper = func(from *simSide, data []byte) []byte {
			writes[from.name]++
			if from.name != victim || writes[from.name] != 2 {
				return data
			}
			i := rapid.IntRange(0, len(data)-2).Draw(t, "pos")
			x := rapid.ByteRange(1, 255).Draw(t, "xor")
			data[i] ^= x
			return data
		}
		if err := s.run(picker(t)); err != nil {
			t.Fatal(err)
		}
		receiver := s.b
		if victim == "B" {
			receiver = s.a
		}
		if receiver.res != nil {
			t.Fatalf("receiver accepted a tampered auth line: %+v", receiver.res)
		}
		var he *Error
		if !errors.As(receiver.err, &he) {
			t.Fatalf("receiver error %v", receiver.err)
		}
	})
}

// When the deadline passes mid-handshake, every side still running fails
// with ErrTimeout.
func TestPropTimeout(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		ca, cb := cfgNode("A"), cfgNode("B")
		ca.Timeout = time.Duration(rapid.IntRange(1, 10).Draw(t, "timeout")) * time.Second
		cb.Timeout = ca.Timeout
		ca.TLS = rapid.Bool().Draw(t, "tls")
		cb.TLS = ca.TLS
		s, err := newSim(ca, cb, "nonce-a", "nonce-b")
		if err != nil {
			t.Fatal(err)
		}
		s.pump(s.a)
		s.pump(s.b)
		steps := rapid.IntRange(0, 6).Draw(t, "steps")
		pick := picker(t)
		for i := 0; i < steps; i++ {
			var ready []*simSide
			for _, x := range []*simSide{s.a, s.b} {
				if x.canRecv() {
					ready = append(ready, x)
				}
			}
			if len(ready) == 0 {
				break
			}
			x := ready[pick(len(ready))]
			s.deliver(x, 1+pick(len(x.inbox)))
		}
		late := t0.Add(ca.Timeout + time.Duration(rapid.IntRange(0, 1000).Draw(t, "extra-ms"))*time.Millisecond)
		for _, x := range []*simSide{s.a, s.b} {
			was := x.ended()
			x.h.Tick(late)
			s.pump(x)
			if !was && !errors.Is(x.err, ErrTimeout) {
				t.Fatalf("%s: %v, want timeout", x.name, x.err)
			}
			if !x.h.Deadline().IsZero() || len(x.h.Timers()) != 0 {
				t.Fatalf("%s: deadline %v, timers %v after end", x.name, x.h.Deadline(), x.h.Timers())
			}
		}
	})
}
