package handshake

import (
	"errors"
	"strings"
	"testing"

	"github.com/aemp-go/dataconn/core/wire"
)

// bindPair runs the greetings of two machines (A dials, B accepts: its
// greeting is deferred) to their StartTLS actions.
func bindPair(t *testing.T, ca, cb Config) (a, b *Machine, sa, sb StartTLS) {
	t.Helper()
	cb.DeferGreeting = true
	var err error
	if a, err = New(ca, "nonce-a", t0); err != nil {
		t.Fatal(err)
	}
	if b, err = New(cb, "nonce-b", t0); err != nil {
		t.Fatal(err)
	}
	wa := drain(a)
	b.Receive(t0, wa[0].(Write).Data)
	if acts := drain(b); len(acts) != 1 {
		t.Fatalf("acceptor after the greeting: %#v", acts)
	}
	b.SendGreeting(t0, nil)
	wb := b.Poll()
	a.Receive(t0, wb.(Write).Data)
	find := func(acts []Action) StartTLS {
		for _, x := range acts {
			if st, ok := x.(StartTLS); ok {
				return st
			}
		}
		t.Fatalf("no StartTLS in %#v", acts)
		return StartTLS{}
	}
	return a, b, find(drain(a)), find(drain(b))
}

func bindCfg(id, ext string) Config {
	return Config{NodeID: id, TLS: true, Extra: []wire.KV{{Key: wire.KeyGo, Value: ext}}}
}

// TestTLSBind: two machines whose greetings list ExtTLSBind ask the TLS
// layer for the same binding, the acceptor as the client, and, once TLS
// reports it
// negotiated, end without auth lines (tls_bind, framings chosen from the
// greetings); a different negotiated value fails the handshake with
// ErrAuthFailed.
func TestTLSBind(t *testing.T) {
	cb := bindCfg("B", "1,"+ExtTLSBind)
	cb.AcceptFramings = []string{"json", "msgpack"}
	cb.SendFramings = []string{"json", "msgpack"}
	a, b, sa, sb := bindPair(t, bindCfg("A", "1,"+ExtTLSBind), cb)
	if sa.Bind == "" || sa.Bind != sb.Bind || !strings.HasPrefix(sa.Bind, TLSBindPrefix) || sa.Client || !sb.Client {
		t.Fatalf("StartTLS A %+v, B %+v", sa, sb)
	}
	a.TLSEstablished(t0, TLSInfo{Bound: sa.Bind})
	b.TLSEstablished(t0, TLSInfo{Bound: sb.Bind})
	da, db := drain(a), drain(b)
	if len(da) != 1 || len(db) != 1 {
		t.Fatalf("actions after TLS: A %#v, B %#v (want Done alone, no auth line)", da, db)
	}
	ra, rb := da[0].(Done).Result, db[0].(Done).Result
	if ra.SentAuth != AuthTLSBind || rb.PeerAuth != AuthTLSBind || !ra.TLS || ra.Untrusted || ra.PeerNodeID != "B" || rb.PeerNodeID != "A" {
		t.Fatalf("results %+v / %+v", ra, rb)
	}
	// Each side receives what the other sends: A sends the first of B's
	// list it accepts (json), B the first of A's (msgpack).
	if ra.SendFraming != rb.RecvFraming || rb.SendFraming != ra.RecvFraming || ra.SendFraming != "json" || rb.SendFraming != "msgpack" {
		t.Fatalf("framings A %s/%s, B %s/%s", ra.SendFraming, ra.RecvFraming, rb.SendFraming, rb.RecvFraming)
	}

	a, _, sa, _ = bindPair(t, bindCfg("A", "1,"+ExtTLSBind), bindCfg("B", "1,"+ExtTLSBind))
	a.TLSEstablished(t0, TLSInfo{Bound: sa.Bind[:len(sa.Bind)-1] + "x"})
	acts := drain(a)
	if f, ok := acts[len(acts)-1].(Failed); !ok || !errors.Is(f.Err, ErrAuthFailed) {
		t.Fatalf("wrong binding: %#v", acts)
	}
	a, _, sa, _ = bindPair(t, bindCfg("A", "1,"+ExtTLSBind), bindCfg("B", "1,"+ExtTLSBind))
	a.TLSEstablished(t0, TLSInfo{}) // the TLS layer negotiated nothing
	acts = drain(a)
	if f, ok := acts[len(acts)-1].(Failed); !ok || !errors.Is(f.Err, ErrAuthFailed) {
		t.Fatalf("no binding negotiated: %#v", acts)
	}
}

// TestTLSBindNotApplied: without the extension on both sides, or on a
// data connection, the binding is not asked for and the auth lines are
// sent as before.
func TestTLSBindNotApplied(t *testing.T) {
	dc := bindCfg("A", "1,"+ExtTLSBind)
	dc.Protocol = wire.ProtocolDataConn
	for name, cfgs := range map[string][2]Config{
		"one side":        {bindCfg("A", "1,"+ExtTLSBind), bindCfg("B", "1")},
		"other side":      {bindCfg("A", "1"), bindCfg("B", "1,"+ExtTLSBind)},
		"data connection": {dc, bindCfg("B", "1,"+ExtTLSBind)},
	} {
		t.Run(name, func(t *testing.T) {
			a, _, sa, sb := bindPair(t, cfgs[0], cfgs[1])
			if sa.Bind != "" || sb.Bind != "" {
				t.Fatalf("binding asked: %q %q", sa.Bind, sb.Bind)
			}
			a.TLSEstablished(t0, TLSInfo{})
			acts := drain(a)
			w, ok := acts[0].(Write)
			if !ok || !strings.HasPrefix(string(w.Data), wire.AuthTLS+";") {
				t.Fatalf("no tls_sha3_512 auth line: %#v", acts)
			}
		})
	}
}

// TestTLSBindConfig: a greeting may list the extension only with a
// configuration that authenticates by tls_sha3_512 alone.
func TestTLSBindConfig(t *testing.T) {
	for name, mod := range map[string]func(*Config){
		"secret":          func(c *Config) { c.Secret = []byte("s") },
		"no TLS":          func(c *Config) { c.TLS = false },
		"tls not offered": func(c *Config) { c.OfferAuths = []string{wire.AuthHMAC} },
		"framing not sendable": func(c *Config) {
			c.AcceptFramings = []string{"json", "msgpack"}
			c.SendFramings = []string{"json"}
		},
		"framing sendable, not accepted": func(c *Config) {
			c.AcceptFramings = []string{"json"}
			c.SendFramings = []string{"msgpack", "json"}
		},
	} {
		t.Run(name, func(t *testing.T) {
			c := bindCfg("A", "1,"+ExtTLSBind)
			mod(&c)
			if _, err := New(c, "nonce-a", t0); !errors.Is(err, ErrBadConfig) {
				t.Fatalf("New: %v, want ErrBadConfig", err)
			}
		})
	}
}
