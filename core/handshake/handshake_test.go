package handshake

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/aemp-go/dataconn/core/wire"
)

var testSecret = []byte("s3cr3t")

func cfgNode(id string) Config {
	return Config{NodeID: id, Secret: testSecret}
}

func TestHandshakePairHMAC(t *testing.T) {
	ca := cfgNode("A")
	ca.Protocol = wire.ProtocolDataConn
	ca.Extra = []wire.KV{{Key: wire.KeyDataConnID, Value: "1@A"}, {Key: wire.KeyGo, Value: "1"}}
	cb := cfgNode("B")
	cb.SendFramings = []string{"json"}
	s, err := newSim(ca, cb, "nonce-a", "nonce-b")
	if err != nil {
		t.Fatal(err)
	}
	s.a.payload = []byte("hello from A\n")
	s.b.payload = []byte("hello from B")
	if err := s.run(all); err != nil {
		t.Fatal(err)
	}
	if s.a.err != nil || s.b.err != nil {
		t.Fatalf("errors: %v / %v", s.a.err, s.b.err)
	}
	ra, rb := s.a.res, s.b.res
	if ra.Protocol != wire.ProtocolDataConn || rb.Protocol != wire.ProtocolDataConn {
		t.Errorf("protocols %q %q", ra.Protocol, rb.Protocol)
	}
	if ra.SendFraming != "msgpack" || rb.RecvFraming != "msgpack" || rb.SendFraming != "json" || ra.RecvFraming != "json" {
		t.Errorf("framings A %s/%s B %s/%s", ra.SendFraming, ra.RecvFraming, rb.SendFraming, rb.RecvFraming)
	}
	if ra.SentAuth != wire.AuthHMAC || rb.PeerAuth != wire.AuthHMAC || ra.TLS || ra.Untrusted {
		t.Errorf("auth %+v", ra)
	}
	if ra.PeerNodeID != "B" || rb.PeerNodeID != "A" {
		t.Errorf("peer ids %q %q", ra.PeerNodeID, rb.PeerNodeID)
	}
	if id, ok := rb.Peer.Get(wire.KeyDataConnID); !ok || id != "1@A" {
		t.Errorf("dataconn id %q", id)
	}
	if ra.LocalLines != rb.PeerLines || rb.LocalLines != ra.PeerLines {
		t.Errorf("lines differ")
	}
	if !bytes.Equal(s.a.stream, s.b.payload) || !bytes.Equal(s.b.stream, s.a.payload) {
		t.Errorf("stream bytes: A got %q, B got %q", s.a.stream, s.b.stream)
	}
	if !s.a.h.Deadline().IsZero() || !s.a.h.Ended() {
		t.Errorf("deadline after Done: %v", s.a.h.Deadline())
	}
	// Inputs after the end are ignored.
	s.a.h.Receive(s.now, []byte("x\n"))
	s.a.h.Tick(s.now.Add(time.Hour))
	if a := s.a.h.Poll(); a != nil {
		t.Errorf("action after Done: %#v", a)
	}
}

func TestHandshakePairTLS(t *testing.T) {
	ca, cb := cfgNode("A"), cfgNode("B")
	ca.TLS, cb.TLS = true, true
	ca.TLSRequired = true
	cb.Secret = nil // TLS alone is enough
	ca.Secret = nil
	s, err := newSim(ca, cb, "zzz", "aaa")
	if err != nil {
		t.Fatal(err)
	}
	s.exporter = []byte("ekm")
	if err := s.run(all); err != nil {
		t.Fatal(err)
	}
	if s.a.err != nil || s.b.err != nil {
		t.Fatalf("errors: %v / %v", s.a.err, s.b.err)
	}
	if s.a.tlsReq.Client || !s.b.tlsReq.Client {
		t.Errorf("client must be the side with the lower nonce (B)")
	}
	if !s.a.res.TLS || s.a.res.SentAuth != wire.AuthTLS || s.b.res.PeerAuth != wire.AuthTLS {
		t.Errorf("result %+v", s.a.res)
	}
	if string(s.a.res.TLSInfo.Exporter) != "ekm" {
		t.Errorf("exporter not kept")
	}
	if !strings.Contains(s.a.res.LocalLines[0], ";tls=1.0") {
		t.Errorf("tls not announced: %q", s.a.res.LocalLines[0])
	}
}

func TestHandshakeTLSAnonUntrusted(t *testing.T) {
	ca, cb := cfgNode("A"), cfgNode("B")
	ca.TLS, cb.TLS = true, true
	ca.AcceptAuths = []string{wire.AuthTLSAnon, wire.AuthHMAC}
	cb.OfferAuths = []string{wire.AuthTLSAnon}
	s, _ := newSim(ca, cb, "n1", "n2")
	if err := s.run(all); err != nil {
		t.Fatal(err)
	}
	if s.a.err != nil || s.b.err != nil {
		t.Fatalf("errors: %v / %v", s.a.err, s.b.err)
	}
	if !s.a.res.Untrusted || s.a.res.PeerAuth != wire.AuthTLSAnon || s.b.res.Untrusted {
		t.Errorf("untrusted: A %+v", s.a.res)
	}
}

func TestHandshakeTLSOnlyOneSide(t *testing.T) {
	// Only one side has a certificate: no TLS, hmac.
	ca, cb := cfgNode("A"), cfgNode("B")
	ca.TLS = true
	s, _ := newSim(ca, cb, "n1", "n2")
	if err := s.run(all); err != nil {
		t.Fatal(err)
	}
	if s.a.err != nil || s.b.err != nil || s.a.res.TLS || s.a.res.SentAuth != wire.AuthHMAC {
		t.Fatalf("A %v %+v / B %v", s.a.err, s.a.res, s.b.err)
	}
	// ... unless it requires TLS.
	ca.TLSRequired = true
	s, _ = newSim(ca, cb, "n1", "n2")
	if err := s.run(all); err != nil {
		t.Fatal(err)
	}
	if !errors.Is(s.a.err, ErrTLSRequired) || !errors.Is(s.b.err, ErrPeerClosed) {
		t.Fatalf("errors %v / %v", s.a.err, s.b.err)
	}
}

func TestHandshakeDeferGreeting(t *testing.T) {
	// The acceptor (B, configured "aemp") learns the protocol and the
	// dataconn id from A's greeting before it answers.
	ca := cfgNode("A")
	ca.Protocol = wire.ProtocolDataConn
	ca.Extra = []wire.KV{{Key: wire.KeyDataConnID, Value: "7@A"}}
	cb := cfgNode("B")
	cb.DeferGreeting = true
	s, _ := newSim(ca, cb, "na", "nb")
	if l1, _ := s.b.h.LocalLines(); l1 != "" {
		t.Fatalf("deferred greeting already built: %q", l1)
	}
	var seen PeerGreeting
	s.onPeerGreeting = func(x *simSide, pg PeerGreeting) {
		seen = pg
		// Nothing of B's may have gone towards A yet.
		if x.writes != 0 || len(s.peer(x).inbox) != 0 {
			t.Errorf("B wrote %d times (%q in flight to A) before deciding on its greeting", x.writes, s.peer(x).inbox)
		}
		x.h.SendGreeting(s.now, []wire.KV{{Key: wire.KeyGo, Value: "1"}})
	}
	// Feed A's greeting to B byte by byte to exercise buffering of the
	// nonce line while B is deferred.
	if err := s.run(func(n int) int { return 0 }); err != nil {
		t.Fatal(err)
	}
	if s.a.err != nil || s.b.err != nil {
		t.Fatalf("errors: %v / %v", s.a.err, s.b.err)
	}
	if seen.Protocol != wire.ProtocolDataConn || seen.Greeting.NodeID != "A" {
		t.Errorf("PeerGreeting %+v", seen)
	}
	if id, _ := seen.Greeting.Get(wire.KeyDataConnID); id != "7@A" {
		t.Errorf("id %q", id)
	}
	if got := s.b.res.LocalLines[0]; !strings.HasPrefix(got, "aemp;1;B;") || !strings.HasSuffix(got, ";aempgo=1") {
		t.Errorf("B's line %q", got)
	}
	if s.b.res.Protocol != wire.ProtocolDataConn {
		t.Errorf("B protocol %q", s.b.res.Protocol)
	}
}

func TestHandshakeDeferAbort(t *testing.T) {
	cb := cfgNode("B")
	cb.DeferGreeting = true
	h, _ := New(cb, "nb", t0)
	if acts := drain(h); len(acts) != 0 {
		t.Fatalf("deferred machine wrote %#v", acts)
	}
	h.Receive(t0, []byte("aemp-dataconn;1;A;hmac_sha3_512;json;dataconn_id=x\nnonce\n"))
	acts := drain(h)
	if len(acts) != 1 {
		t.Fatalf("actions %#v", acts)
	}
	errUnknown := errors.New("unknown dataconn id")
	h.Abort(t0, errUnknown)
	acts = drain(h)
	if len(acts) != 1 || !errors.Is(acts[0].(Failed).Err, errUnknown) {
		t.Fatalf("actions %#v", acts)
	}
}

// peerScript plays a scripted peer "P" against one machine.
type peerScript struct {
	l1, l2 string
}

func defaultPeer() peerScript {
	return peerScript{l1: "aemp;1;P;tls_sha3_512,hmac_sha3_512;msgpack,json;provider=test", l2: "peer-nonce"}
}

func (p peerScript) greeting() []byte { return []byte(p.l1 + "\n" + p.l2 + "\n") }

func (p peerScript) auth(h *Machine, method string, secret []byte, framing string) []byte {
	l1, l2 := h.LocalLines()
	d, err := AuthData(method, secret, p.l1, p.l2, l1, l2)
	if err != nil {
		d = "bogus"
	}
	return []byte(method + ";" + d + ";" + framing + "\n")
}

func TestHandshakeFailures(t *testing.T) {
	type step func(h *Machine)
	recv := func(s string) step { return func(h *Machine) { h.Receive(t0, []byte(s)) } }
	p := defaultPeer()
	greet := func(h *Machine) { h.Receive(t0, p.greeting()) }
	authWith := func(method string, secret []byte, framing string) step {
		return func(h *Machine) { h.Receive(t0, p.auth(h, method, secret, framing)) }
	}
	cases := []struct {
		name  string
		cfg   func(*Config)
		steps []step
		rule  error
		text  string
	}{
		{"unparsable", nil, []step{recv("HTTP/1.1 200 OK\r\n")}, ErrUnparsableGreeting,
			"unparsable greeting, expected 'aemp', got 'HTTP/1.1 200 OK'"},
		{"other extension", func(c *Config) { c.Protocol = wire.ProtocolDataConn },
			[]step{recv("aemp-foo;1;P;hmac_sha3_512;json\n")}, ErrUnparsableGreeting,
			"unparsable greeting, expected 'aemp-dataconn', got 'aemp-foo'"},
		{"version", nil, []step{recv("aemp;2;P;hmac_sha3_512;json\n")}, ErrVersionMismatch,
			"version mismatch (we: 1, they: 2)"},
		{"version empty", nil, []step{recv("aemp\n")}, ErrVersionMismatch,
			"version mismatch (we: 1, they: )"},
		{"self aemp", nil, []step{recv("aemp;1;L;hmac_sha3_512;json\n")}, ErrSelfConnect,
			"I refuse to talk to myself"},
		{"self dataconn", func(c *Config) { c.Protocol = wire.ProtocolDataConn },
			[]step{recv("aemp-dataconn;1;L;hmac_sha3_512;json\n")}, ErrSelfConnect,
			"I refuse to talk to myself"},
		{"self same line", nil, []step{func(h *Machine) {
			l1, _ := h.LocalLines()
			h.Receive(t0, []byte(l1+"\nother-nonce\n"))
		}}, ErrSelfConnect, "I refuse to talk to myself"},
		{"self upgraded", nil, []step{recv("aemp-dataconn;1;L;hmac_sha3_512;json\n")}, ErrSelfConnect,
			"I refuse to talk to myself"},
		{"echo", nil, []step{func(h *Machine) {
			l1, l2 := h.LocalLines()
			h.Receive(t0, []byte(l1+"\r\n"+l2+"\r\n"))
		}}, ErrEchoAttack, "authentication error, echo attack?"},
		{"same nonce", nil, []step{func(h *Machine) {
			_, l2 := h.LocalLines()
			h.Receive(t0, []byte(p.l1+"\n"+l2+"\n"))
		}}, ErrEchoAttack, "authentication error, echo attack? (identical nonces)"},
		{"no common auth", nil, []step{recv("aemp;1;P;tls_sha3_512,cleartext;json\nn\n")}, ErrNoCommonAuth,
			"tls_sha3_512,cleartext: no common auth type supported"},
		{"no tls no secret", func(c *Config) { c.Secret = nil }, []step{greet}, ErrNoTLSNoSecret,
			"unable to handshake TLS and no shared secret configured"},
		{"tls but only hmac without secret", func(c *Config) { c.TLS, c.Secret = true, nil },
			[]step{recv("aemp;1;P;hmac_sha3_512;json;tls=1.0\nn\n")}, ErrNoCommonAuth,
			"hmac_sha3_512: no common auth type supported (no shared secret configured)"},
		{"no framing", nil, []step{recv("aemp;1;P;hmac_sha3_512;cbor,storable\nn\n")}, ErrNoCommonFraming,
			"cbor,storable: no common framing method supported"},
		{"tls required", func(c *Config) { c.TLS, c.TLSRequired = true, true }, []step{greet}, ErrTLSRequired,
			"TLS required, but the peer cannot speak TLS"},
		{"tls major 2", func(c *Config) { c.TLS, c.TLSRequired = true, true },
			[]step{recv("aemp;1;P;hmac_sha3_512;json;tls=2.0\nn\n")}, ErrTLSRequired,
			"TLS required, but the peer cannot speak TLS"},
		{"wrong secret", nil, []step{greet, authWith(wire.AuthHMAC, []byte("other"), "json")}, ErrAuthFailed,
			"authentication failure/shared secret mismatch"},
		{"flipped auth", nil, []step{greet, func(h *Machine) {
			b := p.auth(h, wire.AuthHMAC, testSecret, "json")
			b[20] ^= 0x01
			h.Receive(t0, b)
		}}, ErrAuthFailed, "authentication failure/shared secret mismatch"},
		{"cleartext not accepted", nil, []step{greet, recv("cleartext;733363723374;json\n")}, ErrAuthNotOffered,
			"cleartext: fatal, selected unsupported rcv auth method"},
		{"tls auth without tls", nil, []step{greet, authWith(wire.AuthTLS, nil, "json")}, ErrAuthNotOffered,
			"tls_sha3_512 authentication without TLS"},
		{"tls_anon without tls", func(c *Config) { c.AcceptAuths = []string{wire.AuthTLSAnon, wire.AuthHMAC} },
			[]step{greet, recv("tls_anon;;json\n")}, ErrAuthNotOffered, "tls_anon authentication without TLS"},
		{"unknown method", nil, []step{greet, recv("hmac_md6_64_256;00;json\n")}, ErrAuthNotOffered,
			"hmac_md6_64_256: fatal, selected unsupported rcv auth method"},
		{"remote framing", nil, []step{greet, authWith(wire.AuthHMAC, testSecret, "cbor")}, ErrNoCommonFraming,
			"cbor: unusable remote framing"},
		{"empty auth line", nil, []step{greet, recv("\n")}, ErrAuthNotOffered,
			": fatal, selected unsupported rcv auth method"},
		{"line too long", nil, []step{recv(strings.Repeat("a", wire.MaxLineLen))}, ErrLineTooLong,
			"handshake line longer than 4096 bytes"},
		{"line too long with LF", nil, []step{recv(strings.Repeat("a", wire.MaxLineLen) + "\n")}, ErrLineTooLong,
			"handshake line longer than 4096 bytes"},
		{"nonce too long", nil, []step{recv(p.l1 + "\n" + strings.Repeat("n", wire.MaxLineLen-1) + "\r\n")}, ErrLineTooLong,
			"handshake line longer than 4096 bytes"},
		{"timeout", nil, []step{greet, func(h *Machine) { h.Tick(t0.Add(DefaultTimeout)) }}, ErrTimeout,
			"handshake timed out (Connection timed out)"},
		{"late input", func(c *Config) { c.Timeout = time.Second },
			[]step{func(h *Machine) { h.Receive(t0.Add(time.Second), p.greeting()) }}, ErrTimeout,
			"handshake timed out (Connection timed out)"},
		{"eof", nil, []step{greet, func(h *Machine) { h.PeerClosed(t0, nil) }}, ErrPeerClosed,
			"connection closed by peer during handshake"},
		{"read error", nil, []step{func(h *Machine) { h.PeerClosed(t0, io.ErrUnexpectedEOF) }}, ErrPeerClosed,
			"connection closed by peer during handshake (unexpected EOF)"},
		{"tls failed", func(c *Config) { c.TLS = true },
			[]step{recv(p.l1 + ";tls=1.0\n" + p.l2 + "\n"), func(h *Machine) { drain(h); h.TLSFailed(t0, errors.New("bad cert")) }},
			ErrTLSFailed, "TLS handshake failed: bad cert"},
		{"raw bytes during tls", func(c *Config) { c.TLS = true },
			[]step{recv(p.l1 + ";tls=1.0\n" + p.l2 + "\n"), func(h *Machine) { drain(h); h.Receive(t0, []byte{0x16}) }},
			ErrBadConfig, "bytes received on the raw stream while the TLS handshake is in progress"},
		{"tls established unasked", nil, []step{greet, recv("hmac_sha3_512;00"), func(h *Machine) { h.TLSEstablished(t0, TLSInfo{}) }},
			ErrBadConfig, "TLSEstablished without a StartTLS action"},
		{"send greeting undeferred", nil, []step{func(h *Machine) { h.SendGreeting(t0, nil) }},
			ErrBadConfig, "SendGreeting called without DeferGreeting or twice"},
		{"early data", func(c *Config) { c.DeferGreeting = true },
			[]step{recv(p.l1 + "\n" + p.l2 + "\nx")}, ErrEarlyData, "peer sent data before receiving our greeting"},
		{"bad deferred extra", func(c *Config) { c.DeferGreeting = true },
			[]step{greet, func(h *Machine) { h.SendGreeting(t0, []wire.KV{{Key: "a;b"}}) }}, ErrBadConfig,
			"bad handshake configuration: greeting key must be non-empty without '=', ';', CR or LF"},
		{"abort nil", nil, []step{func(h *Machine) { h.Abort(t0, nil) }}, ErrBadConfig, "handshake aborted"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := Config{NodeID: "L", Secret: testSecret}
			if c.cfg != nil {
				c.cfg(&cfg)
			}
			h, err := New(cfg, "local-nonce", t0)
			if err != nil {
				t.Fatal(err)
			}
			var acts []Action
			for _, s := range c.steps {
				s(h)
				acts = append(acts, drain(h)...)
			}
			if len(acts) == 0 {
				t.Fatal("no actions")
			}
			f, ok := acts[len(acts)-1].(Failed)
			if !ok {
				t.Fatalf("last action %#v, want Failed", acts[len(acts)-1])
			}
			var he *Error
			if !errors.Is(f.Err, c.rule) || !errors.As(f.Err, &he) || he.Error() != c.text {
				t.Fatalf("error %v (%#v), want %v %q", f.Err, f.Err, c.rule, c.text)
			}
			if he.Timeout() != (c.rule == ErrTimeout) {
				t.Errorf("Timeout() = %v", he.Timeout())
			}
			for _, a := range acts[:len(acts)-1] {
				switch a.(type) {
				case Done, Failed:
					t.Errorf("terminal action before failure %#v", a)
				}
			}
			if !h.Deadline().IsZero() {
				t.Errorf("deadline after failure")
			}
			h.Receive(t0, []byte("more\n"))
			h.PeerClosed(t0, nil)
			if a := h.Poll(); a != nil {
				t.Errorf("action after Failed: %#v", a)
			}
		})
	}
}

func TestHandshakeLineLimits(t *testing.T) {
	p := defaultPeer()
	newH := func() *Machine {
		h, err := New(Config{NodeID: "L", Secret: testSecret}, "local-nonce", t0)
		if err != nil {
			t.Fatal(err)
		}
		drain(h)
		return h
	}
	// A nonce line of exactly MaxLineLen bytes including CR LF is fine.
	h := newH()
	h.Receive(t0, []byte(p.l1+"\n"+strings.Repeat("n", wire.MaxLineLen-2)+"\r\n"))
	if acts := drain(h); len(acts) != 1 {
		t.Fatalf("actions %#v", acts)
	} else if _, ok := acts[0].(Write); !ok {
		t.Fatalf("action %#v", acts[0])
	}
	// A 1 MiB line without LF fails after 4 KiB and never buffers more.
	h = newH()
	chunk := bytes.Repeat([]byte("x"), 1024)
	fed := 0
	for fed < 1<<20 {
		h.Receive(t0, chunk)
		fed += len(chunk)
		if cap(h.buf) > 2*wire.MaxLineLen {
			t.Fatalf("buffer grew to %d", cap(h.buf))
		}
		if h.Ended() {
			break
		}
	}
	if fed != wire.MaxLineLen {
		t.Fatalf("failed after %d bytes, want %d", fed, wire.MaxLineLen)
	}
	if err := lastFailed(drain(h)); !errors.Is(err, ErrLineTooLong) {
		t.Fatalf("err %v", err)
	}
	// A lone CR is kept in the line; CR LF is stripped.
	h = newH()
	h.Receive(t0, []byte("aemp;1;P;hmac_sha3_512;json;k=v\rx\r\nnonce\r\n"))
	drain(h)
	if h.r1 != "aemp;1;P;hmac_sha3_512;json;k=v\rx" || h.r2 != "nonce" {
		t.Fatalf("lines %q %q", h.r1, h.r2)
	}
}

func TestHandshakeCleartextAccepted(t *testing.T) {
	p := defaultPeer()
	h, _ := New(Config{NodeID: "L", Secret: testSecret,
		AcceptAuths: []string{wire.AuthHMAC, wire.AuthCleartext}}, "local-nonce", t0)
	h.Receive(t0, p.greeting())
	h.Receive(t0, []byte("cleartext;733363723374;json\nrest"))
	acts := drain(h)
	d, ok := acts[len(acts)-1].(Done)
	if !ok {
		t.Fatalf("last %#v", acts[len(acts)-1])
	}
	if d.Result.PeerAuth != wire.AuthCleartext || string(d.Result.Pending) != "rest" || d.Result.SendFraming != "msgpack" {
		t.Fatalf("result %+v", d.Result)
	}
}

func TestHandshakeBadConfig(t *testing.T) {
	ok := Config{NodeID: "L"}
	for name, c := range map[string]struct {
		cfg   func(*Config)
		nonce string
	}{
		"empty node":      {func(c *Config) { c.NodeID = "" }, "n"},
		"node with ;":     {func(c *Config) { c.NodeID = "a;b" }, "n"},
		"bad protocol":    {func(c *Config) { c.Protocol = "http" }, "n"},
		"empty nonce":     {nil, ""},
		"nonce LF":        {nil, "a\nb"},
		"long nonce":      {nil, strings.Repeat("n", wire.MaxLineLen)},
		"negative":        {func(c *Config) { c.Timeout = -1 }, "n"},
		"required no tls": {func(c *Config) { c.TLSRequired = true }, "n"},
		"bad auth name":   {func(c *Config) { c.AcceptAuths = []string{"a,b"} }, "n"},
		"tls key":         {func(c *Config) { c.Extra = []wire.KV{{Key: wire.KeyTLS, Value: "1.0"}} }, "n"},
		"value LF":        {func(c *Config) { c.Extra = []wire.KV{{Key: "k", Value: "a\n"}} }, "n"},
		"long greeting":   {func(c *Config) { c.Extra = []wire.KV{{Key: "k", Value: strings.Repeat("v", wire.MaxLineLen)}} }, "n"},
	} {
		cfg := ok
		if c.cfg != nil {
			c.cfg(&cfg)
		}
		if _, err := New(cfg, c.nonce, t0); !errors.Is(err, ErrBadConfig) {
			t.Errorf("%s: err %v", name, err)
		}
	}
	if _, err := New(ok, "n", t0); err != nil {
		t.Fatal(err)
	}
}

func TestHandshakeDeadline(t *testing.T) {
	h, _ := New(Config{NodeID: "L", Secret: testSecret, Timeout: 5 * time.Second}, "n", t0)
	if !h.Deadline().Equal(t0.Add(5 * time.Second)) {
		t.Fatalf("deadline %v", h.Deadline())
	}
	h.Tick(t0.Add(5*time.Second - 1))
	if h.Ended() {
		t.Fatal("ended early")
	}
	h.Tick(t0.Add(5 * time.Second))
	if err := lastFailed(drain(h)); !errors.Is(err, ErrTimeout) {
		t.Fatalf("err %v", err)
	}
}

func TestHandshakeTLSPendingBytes(t *testing.T) {
	p := defaultPeer()
	p.l1 += ";tls=1.0"
	h, _ := New(Config{NodeID: "L", TLS: true}, "zz-local", t0)
	drain(h)
	h.Receive(t0, []byte(p.l1+"\n"+p.l2+"\n\x16\x03\x01"))
	h.Receive(t0, []byte{0x02, 0x00}) // before the caller polled StartTLS
	acts := drain(h)
	if len(acts) != 1 {
		t.Fatalf("actions %#v", acts)
	}
	st, ok := acts[0].(StartTLS)
	if !ok || st.Client || !bytes.Equal(st.Pending, []byte{0x16, 0x03, 0x01, 0x02, 0x00}) {
		t.Fatalf("StartTLS %#v", acts[0])
	}
	// Inside TLS: the auth line goes out, the peer's comes in.
	h.TLSEstablished(t0, TLSInfo{})
	acts = drain(h)
	if w, ok := acts[0].(Write); !ok || !bytes.HasPrefix(w.Data, []byte(wire.AuthTLS+";")) {
		t.Fatalf("auth write %#v", acts)
	}
	h.Receive(t0, append(p.auth(h, wire.AuthTLS, nil, "json"), "data"...))
	acts = drain(h)
	d, ok := acts[0].(Done)
	if !ok || !d.Result.TLS || d.Result.PeerAuth != wire.AuthTLS || string(d.Result.Pending) != "data" {
		t.Fatalf("result %#v", acts)
	}
}

func TestHandshakeFailDropsUnpolledRequests(t *testing.T) {
	p := defaultPeer()
	h, _ := New(Config{NodeID: "L", TLS: true}, "local", t0)
	h.Receive(t0, []byte(p.l1+";tls=1.0\n"+p.l2+"\n"))
	h.Tick(t0.Add(time.Hour))
	acts := drain(h)
	if len(acts) != 2 {
		t.Fatalf("actions %#v", acts)
	}
	if _, ok := acts[0].(Write); !ok {
		t.Fatalf("first %#v", acts[0])
	}
	if f, ok := acts[1].(Failed); !ok || !errors.Is(f.Err, ErrTimeout) {
		t.Fatalf("second %#v", acts[1])
	}
	var ne interface{ Timeout() bool }
	if !errors.As(acts[1].(Failed).Err, &ne) || !ne.Timeout() {
		t.Fatalf("timeout error does not report Timeout()")
	}
}

func TestHandshakePreSecuredTransport(t *testing.T) {
	// Over a transport that is already TLS (QUIC), both sides declare it
	// up front: tls_sha3_512 without StartTLS, no secret needed.
	ca, cb := Config{NodeID: "A", TLSRequired: true, TLS: true}, Config{NodeID: "B"}
	s, err := newSim(ca, cb, "n1", "n2")
	if err != nil {
		t.Fatal(err)
	}
	s.a.h.TLSEstablished(t0, TLSInfo{Exporter: []byte("x")})
	s.b.h.TLSEstablished(t0, TLSInfo{})
	if err := s.run(all); err != nil {
		t.Fatal(err)
	}
	if s.a.err != nil || s.b.err != nil {
		t.Fatalf("errors %v / %v", s.a.err, s.b.err)
	}
	if s.a.starts != 0 || s.b.starts != 0 || !s.a.res.TLS || s.a.res.SentAuth != wire.AuthTLS || string(s.a.res.TLSInfo.Exporter) != "x" {
		t.Fatalf("result %+v (starts %d)", s.a.res, s.a.starts)
	}
	// Only one side secured: the other refuses tls_sha3_512.
	s, _ = newSim(Config{NodeID: "A"}, Config{NodeID: "B", Secret: testSecret}, "n1", "n2")
	s.a.h.TLSEstablished(t0, TLSInfo{})
	if err := s.run(all); err != nil {
		t.Fatal(err)
	}
	if !errors.Is(s.b.err, ErrAuthNotOffered) {
		t.Fatalf("B: %v", s.b.err)
	}
}

// TestHandshakeTLSTicketRole: between nodes of this project, the side
// whose greeting says it holds a TLS session ticket is the TLS client,
// whatever the nonces say; with both, neither, or a peer without KeyGo,
// the lower nonce decides (AEMP).
func TestHandshakeTLSTicketRole(t *testing.T) {
	goKV := wire.KV{Key: wire.KeyGo, Value: "1"}
	ticket := wire.KV{Key: wire.KeyTLSTicket, Value: "1"}
	for _, tc := range []struct {
		name        string
		aKV, bKV    []wire.KV
		wantAClient bool
	}{
		{"nonces (B lower)", []wire.KV{goKV}, []wire.KV{goKV}, false},
		{"A holds a ticket", []wire.KV{goKV, ticket}, []wire.KV{goKV}, true},
		{"B holds a ticket", []wire.KV{goKV}, []wire.KV{goKV, ticket}, false},
		{"both hold one", []wire.KV{goKV, ticket}, []wire.KV{goKV, ticket}, false},
		{"B is not of this project", []wire.KV{goKV, ticket}, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ca, cb := cfgNode("A"), cfgNode("B")
			ca.TLS, cb.TLS = true, true
			ca.Secret, cb.Secret = nil, nil
			ca.Extra, cb.Extra = tc.aKV, tc.bKV
			s, err := newSim(ca, cb, "zzz", "aaa")
			if err != nil {
				t.Fatal(err)
			}
			s.exporter = []byte("ekm")
			if err := s.run(all); err != nil {
				t.Fatal(err)
			}
			if s.a.err != nil || s.b.err != nil {
				t.Fatalf("errors: %v / %v", s.a.err, s.b.err)
			}
			if s.a.tlsReq.Client != tc.wantAClient || s.b.tlsReq.Client == tc.wantAClient {
				t.Fatalf("A client %v, B client %v; want A client %v", s.a.tlsReq.Client, s.b.tlsReq.Client, tc.wantAClient)
			}
			if s.a.tlsReq.Peer.NodeID != "B" || s.b.tlsReq.Peer.NodeID != "A" {
				t.Fatalf("StartTLS peers %q, %q", s.a.tlsReq.Peer.NodeID, s.b.tlsReq.Peer.NodeID)
			}
		})
	}
}
