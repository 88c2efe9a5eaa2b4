package handshake

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"

	"pgregory.net/rapid"

	"github.com/aemp-go/dataconn/core/wire"
)

// chanCfg is a node of this project inside a verified channel, without a
// secret, listing ext in its KeyGo value.
func chanCfg(id, ext string) Config {
	return Config{NodeID: id, VerifiedChannel: true, Extra: []wire.KV{{Key: wire.KeyGo, Value: ext}}}
}

// TestChannelAuth: two machines inside a verified channel whose greetings
// both list ExtChannelAuth end without auth lines: the acceptor as soon
// as it has sent its lines, the initiator on the acceptor's nonce line,
// with what followed it in the same read as Pending; framings chosen from
// the greetings agree.
func TestChannelAuth(t *testing.T) {
	ca := chanCfg("A", "1,qstream,"+ExtChannelAuth)
	cb := chanCfg("B", "1,"+ExtChannelAuth)
	cb.DeferGreeting = true
	cb.AcceptFramings = []string{"json", "msgpack"}
	cb.SendFramings = []string{"msgpack", "json"}
	a, err := New(ca, "nonce-a", t0)
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(cb, "nonce-b", t0)
	if err != nil {
		t.Fatal(err)
	}
	wa := drain(a)
	if len(wa) != 1 {
		t.Fatalf("initiator's first actions: %#v", wa)
	}
	b.Receive(t0, wa[0].(Write).Data)
	if acts := drain(b); len(acts) != 1 {
		t.Fatalf("acceptor after the greeting: %#v", acts)
	}
	b.SendGreeting(t0, nil)
	wb := drain(b)
	if len(wb) != 2 {
		t.Fatalf("acceptor after SendGreeting: %#v (want its lines and Done)", wb)
	}
	lines := wb[0].(Write).Data
	if n := bytes.Count(lines, []byte("\n")); n != 2 {
		t.Fatalf("acceptor wrote %q, want its two lines only", lines)
	}
	rb := wb[1].(Done).Result
	a.Receive(t0, append(bytes.Clone(lines), "first message"...))
	da := drain(a)
	if len(da) != 1 {
		t.Fatalf("initiator after the acceptor's lines: %#v (want Done alone, no auth line)", da)
	}
	ra := da[0].(Done).Result
	if string(ra.Pending) != "first message" || len(rb.Pending) != 0 {
		t.Fatalf("pending %q / %q", ra.Pending, rb.Pending)
	}
	for _, r := range []*Result{ra, rb} {
		if r.SentAuth != AuthChannel || r.PeerAuth != AuthChannel || !r.TLS || r.Untrusted || r.Protocol != wire.ProtocolMessaging {
			t.Fatalf("result %+v", r)
		}
	}
	if ra.PeerNodeID != "B" || rb.PeerNodeID != "A" || ra.LocalLines != rb.PeerLines || rb.LocalLines != ra.PeerLines {
		t.Fatalf("peers or lines: %+v / %+v", ra, rb)
	}
	// A sends the first of B's accepted list it can send (json), B the
	// first of A's (msgpack, the default order).
	if ra.SendFraming != rb.RecvFraming || rb.SendFraming != ra.RecvFraming || ra.SendFraming != "json" || rb.SendFraming != "msgpack" {
		t.Fatalf("framings A %s/%s, B %s/%s", ra.SendFraming, ra.RecvFraming, rb.SendFraming, rb.RecvFraming)
	}
}

// TestChannelAuthNotApplied: the auth lines run as before when only one
// greeting lists the extension, on a data connection, or when a side has
// a secret (it does not list the extension, and its MAC is sent).
func TestChannelAuthNotApplied(t *testing.T) {
	dc := chanCfg("A", "1,"+ExtChannelAuth)
	dc.Protocol = wire.ProtocolDataConn
	secret := chanCfg("B", "1")
	secret.Secret = []byte("s")
	secret.AcceptAuths = []string{AuthHMACCB, wire.AuthTLS, wire.AuthHMAC}
	secret.OfferAuths = secret.AcceptAuths
	for name, tc := range map[string]struct {
		a, b     Config
		wantAuth string // the method A sends
	}{
		"one side":          {chanCfg("A", "1,"+ExtChannelAuth), chanCfg("B", "1"), wire.AuthTLS},
		"other side":        {chanCfg("A", "1"), chanCfg("B", "1,"+ExtChannelAuth), wire.AuthTLS},
		"data connection":   {dc, chanCfg("B", "1,"+ExtChannelAuth), wire.AuthTLS},
		"peer has a secret": {chanCfg("A", "1,"+ExtChannelAuth), secret, wire.AuthTLS},
	} {
		t.Run(name, func(t *testing.T) {
			s, err := newSim(tc.a, tc.b, "nonce-a", "nonce-b")
			if err != nil {
				t.Fatal(err)
			}
			if err := s.run(all); err != nil {
				t.Fatal(err)
			}
			if s.a.res == nil || s.b.res == nil {
				t.Fatalf("failed: %v / %v", s.a.err, s.b.err)
			}
			if s.a.res.SentAuth != tc.wantAuth || s.b.res.SentAuth == AuthChannel || !strings.HasPrefix(string(s.a.authLine), tc.wantAuth+";") {
				t.Fatalf("A sent %s (line %q), B %s", s.a.res.SentAuth, s.a.authLine, s.b.res.SentAuth)
			}
		})
	}
	// Both sides with the secret: hmac_sha3_512_cb as before.
	sa := secret
	sa.NodeID = "A"
	s, err := newSim(sa, secret, "nonce-a", "nonce-b")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.run(all); err != nil || s.a.res == nil || s.b.res == nil {
		t.Fatalf("secret both sides: %v %v %v", err, s.a.err, s.b.err)
	}
	if s.a.res.SentAuth != AuthHMACCB || s.b.res.SentAuth != AuthHMACCB {
		t.Fatalf("secret both sides: %s / %s", s.a.res.SentAuth, s.b.res.SentAuth)
	}
}

// TestChannelAuthConfig: a greeting may list the extension only inside a
// verified channel, without a secret, with tls_sha3_512 accepted and
// offered and the same framings accepted and sendable.
func TestChannelAuthConfig(t *testing.T) {
	for name, mod := range map[string]func(*Config){
		"secret":               func(c *Config) { c.Secret = []byte("s") },
		"channel not verified": func(c *Config) { c.VerifiedChannel = false },
		"tls not offered":      func(c *Config) { c.OfferAuths = []string{wire.AuthHMAC} },
		"tls not accepted":     func(c *Config) { c.AcceptAuths = []string{wire.AuthHMAC} },
		"framing not sendable": func(c *Config) {
			c.AcceptFramings = []string{"json", "msgpack"}
			c.SendFramings = []string{"json"}
		},
		"framing not accepted": func(c *Config) {
			c.AcceptFramings = []string{"msgpack"}
			c.SendFramings = []string{"json", "msgpack"}
		},
	} {
		t.Run(name, func(t *testing.T) {
			c := chanCfg("A", "1,"+ExtChannelAuth)
			mod(&c)
			if _, err := New(c, "nonce-a", t0); !errors.Is(err, ErrBadConfig) {
				t.Fatalf("New: %v, want ErrBadConfig", err)
			}
			c.DeferGreeting = true
			c.Extra = nil
			h, err := New(c, "nonce-a", t0)
			if err != nil {
				t.Fatal(err)
			}
			h.SendGreeting(t0, []wire.KV{{Key: wire.KeyGo, Value: "1," + ExtChannelAuth}})
			if err := lastFailed(drain(h)); !errors.Is(err, ErrBadConfig) {
				t.Fatalf("SendGreeting: %v, want ErrBadConfig", err)
			}
		})
	}
}

// TestPropChannelAuth: two machines inside a verified channel, each with
// or without the extension, a secret, the data-connection protocol, own
// framing orders, any chunking and stream bytes after the handshake. Both
// decide alike: both end by the channel exactly when both greetings list
// the extension on a messaging connection, otherwise both send auth lines
// (hmac_sha3_512_cb whenever both have the secret); a side with a secret
// never ends by the channel; the framings agree and no stream byte is
// lost.
func TestPropChannelAuth(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		fr := rapid.SliceOfNDistinct(rapid.SampledFrom(allFramings), 1, 3, rapid.ID[string]).Draw(t, "framings")
		side := func(name string) (Config, bool) {
			c := Config{NodeID: name, VerifiedChannel: true, TLS: rapid.Bool().Draw(t, name+"-tls")}
			c.AcceptFramings = rapid.Permutation(fr).Draw(t, name+"-acc")
			c.SendFramings = rapid.Permutation(fr).Draw(t, name+"-snd")
			c.AcceptAuths = []string{AuthHMACCB, wire.AuthTLS, wire.AuthHMAC}
			c.OfferAuths = c.AcceptAuths
			if rapid.Bool().Draw(t, name+"-secret") {
				c.Secret = []byte("s3cr3t")
			}
			if rapid.IntRange(0, 3).Draw(t, name+"-proto") == 0 {
				c.Protocol = wire.ProtocolDataConn
			}
			list := len(c.Secret) == 0 && rapid.Bool().Draw(t, name+"-list")
			ext := "1,qstream"
			if list {
				ext += "," + ExtChannelAuth
			}
			c.Extra = []wire.KV{{Key: wire.KeyGo, Value: ext}}
			return c, list
		}
		ca, listA := side("A")
		cb, listB := side("B")
		cb.DeferGreeting = rapid.Bool().Draw(t, "B-defer")
		s, err := newSim(ca, cb, "nonce-a", "nonce-b")
		if err != nil {
			t.Fatal(err)
		}
		s.a.payload = rapid.SliceOfN(rapid.Byte(), 0, 32).Draw(t, "A-payload")
		s.b.payload = rapid.SliceOfN(rapid.Byte(), 0, 32).Draw(t, "B-payload")
		s.onPeerGreeting = func(x *simSide, pg PeerGreeting) { x.h.SendGreeting(s.now, nil) }
		if err := s.run(picker(t)); err != nil {
			t.Fatal(err)
		}
		byChannel := listA && listB && ca.Protocol == "" && cb.Protocol == ""
		if s.a.res == nil || s.b.res == nil {
			// Only a secret on one side alone fails (its hmac is not
			// checkable), and then nothing ended by the channel.
			if len(ca.Secret) == len(cb.Secret) || byChannel {
				t.Fatalf("failed: %v / %v", s.a.err, s.b.err)
			}
			for _, x := range []*simSide{s.a, s.b} {
				if x.res != nil && x.res.SentAuth == AuthChannel {
					t.Fatalf("%s ended by the channel: %+v", x.name, x.res)
				}
			}
			return
		}
		ra, rb := s.a.res, s.b.res
		for _, x := range []*simSide{s.a, s.b} {
			r := x.res
			if (r.SentAuth == AuthChannel) != byChannel || (r.PeerAuth == AuthChannel) != byChannel {
				t.Fatalf("%s: %s/%s, want by the channel %v", x.name, r.SentAuth, r.PeerAuth, byChannel)
			}
			if byChannel && (x.writes != 1 || x.authLine != nil) {
				t.Fatalf("%s wrote %d times (auth line %q) by the channel", x.name, x.writes, x.authLine)
			}
			if !r.TLS || r.Untrusted {
				t.Fatalf("%s: %+v", x.name, r)
			}
		}
		if len(ca.Secret) > 0 && len(cb.Secret) > 0 && (ra.SentAuth != AuthHMACCB || rb.SentAuth != AuthHMACCB) {
			t.Fatalf("secret on both sides: %s / %s", ra.SentAuth, rb.SentAuth)
		}
		if ra.SendFraming != rb.RecvFraming || rb.SendFraming != ra.RecvFraming || !slices.Contains(fr, ra.SendFraming) {
			t.Fatalf("framings A %s/%s, B %s/%s", ra.SendFraming, ra.RecvFraming, rb.SendFraming, rb.RecvFraming)
		}
		if !bytes.Equal(s.a.stream, s.b.payload) || !bytes.Equal(s.b.stream, s.a.payload) {
			t.Fatalf("stream bytes: A got %q want %q; B got %q want %q", s.a.stream, s.b.payload, s.b.stream, s.a.payload)
		}
	})
}
