package perlrc_test

import (
	"bytes"
	"context"
	"errors"
	"regexp"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aemp-go/dataconn/memnet"
	"github.com/aemp-go/dataconn/transport"
	"github.com/aemp-go/dataconn/transport/perlrc"
)

const nodeFile = "testdata/node.json"

func loadProfile(t *testing.T, name string) *perlrc.Profile {
	t.Helper()
	p, err := perlrc.Load(nodeFile, name)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func nodeConfig(t *testing.T, name string, base transport.Config) transport.Config {
	t.Helper()
	cfg, err := loadProfile(t, name).NodeConfig(base)
	if err != nil {
		t.Fatalf("profile %s: %v", name, err)
	}
	return cfg
}

// TestNodeConfigPerlProfile maps a profile holding Perl's defaults written
// out: json is the only framing both speak, tls_anon and cleartext are
// accepted because the list says so, hmac works without TLS.
func TestNodeConfigPerlProfile(t *testing.T) {
	base := transport.Config{NodeID: "flag-id", HandshakeTimeout: 7 * time.Second, Secret: []byte("base")}
	cfg := nodeConfig(t, "perl", base)
	if cfg.NodeID != "perlish" || !bytes.Equal(cfg.Secret, []byte("s3cr3t")) {
		t.Errorf("node id %q, secret %q", cfg.NodeID, cfg.Secret)
	}
	if !slices.Equal(cfg.Framings, []string{"json"}) {
		t.Errorf("framings %v, want [json] (cbor, json, storable intersected with msgpack, json)", cfg.Framings)
	}
	if !cfg.AllowTLSAnon || !cfg.AllowCleartext || cfg.TLSRequired || cfg.TLS != nil {
		t.Errorf("tls_anon %v, cleartext %v, TLS required %v, TLS %v", cfg.AllowTLSAnon, cfg.AllowCleartext, cfg.TLSRequired, cfg.TLS)
	}
	if cfg.PeerTimeout != 12*time.Second {
		t.Errorf("peer timeout %v, want the global monitor_timeout 12s", cfg.PeerTimeout)
	}
	if cfg.HandshakeTimeout != 7*time.Second {
		t.Errorf("base fields must stay: handshake timeout %v", cfg.HandshakeTimeout)
	}
	if _, err := transport.NewNode(cfg); err != nil {
		t.Errorf("NewNode: %v", err)
	}
	// The secret is a copy: the caller may wipe it.
	cfg.Secret[0] = 'X'
	if again := nodeConfig(t, "perl", base); again.Secret[0] != 's' {
		t.Error("NodeConfig shares the profile's secret")
	}
}

// TestNodeConfigTLS maps a TLS-only profile (cert, auth lists without a
// method usable in clear) to TLSRequired, and a child that lifts the lists
// to TLS with hmac; the framing list keeps msgpack and drops the duplicate.
func TestNodeConfigTLS(t *testing.T) {
	sec := nodeConfig(t, "secure", transport.Config{})
	if sec.TLS == nil || !sec.TLSRequired || sec.AllowTLSAnon || sec.AllowCleartext {
		t.Errorf("secure: TLS %v required %v anon %v cleartext %v", sec.TLS != nil, sec.TLSRequired, sec.AllowTLSAnon, sec.AllowCleartext)
	}
	if sec.PeerTimeout != 2500*time.Millisecond {
		t.Errorf("secure: peer timeout %v, want 2.5s (a string in the file)", sec.PeerTimeout)
	}
	if sec.Framings != nil {
		t.Errorf("secure: framings %v, want the node's default (nil)", sec.Framings)
	}
	both := nodeConfig(t, "tls-and-hmac", transport.Config{})
	if both.TLS == nil || both.TLSRequired || !bytes.Equal(both.Secret, []byte("s3cr3t")) || both.NodeID != "secure" {
		t.Errorf("tls-and-hmac: TLS %v required %v secret %q id %q", both.TLS != nil, both.TLSRequired, both.Secret, both.NodeID)
	}
	if !slices.Equal(both.Framings, []string{"msgpack", "json"}) {
		t.Errorf("tls-and-hmac: framings %v", both.Framings)
	}
}

// TestNodeConfigAnonID gives "anon/" a random suffix from base.Rand.
func TestNodeConfigAnonID(t *testing.T) {
	re := regexp.MustCompile(`^anon/[a-z2-7]{10}$`)
	a := nodeConfig(t, "anon", transport.Config{})
	b := nodeConfig(t, "anon", transport.Config{})
	if !re.MatchString(a.NodeID) || !re.MatchString(b.NodeID) || a.NodeID == b.NodeID {
		t.Errorf("anon ids %q, %q", a.NodeID, b.NodeID)
	}
	fixed := bytes.NewReader(bytes.Repeat([]byte{0}, 64))
	c := nodeConfig(t, "anon", transport.Config{Rand: fixed})
	if c.NodeID != "anon/aaaaaaaaaa" {
		t.Errorf("id from base.Rand of zeros: %q", c.NodeID)
	}
	if _, err := loadProfile(t, "anon").NodeConfig(transport.Config{Rand: bytes.NewReader(nil)}); !errors.Is(err, perlrc.ErrNodeConfig) {
		t.Errorf("empty Rand: %v", err)
	}
}

// TestNodeConfigErrors: every profile that cannot make a node says which
// key and why.
func TestNodeConfigErrors(t *testing.T) {
	for _, c := range []struct {
		profile, key, text string
		tlsErr             bool
	}{
		{"no-framing", "framing_format", "none of", false},
		{"tls-without-cert", "auth_accept", "no certificate", false},
		{"offers-nothing", "auth_offer", "offers neither", false},
		{"accepts-nothing", "auth_accept", "accepts no method", false},
		{"bad-cert", "cert", "parse Perl PEM", true},
	} {
		p := loadProfile(t, c.profile)
		base := transport.Config{NodeID: "keep"}
		cfg, err := p.NodeConfig(base)
		var pe *perlrc.Error
		if !errors.Is(err, perlrc.ErrNodeConfig) || !errors.As(err, &pe) {
			t.Errorf("%s: %v, want a *perlrc.Error wrapping ErrNodeConfig", c.profile, err)
			continue
		}
		if pe.Key != c.key || pe.Profile != c.profile || pe.File != nodeFile || !strings.Contains(err.Error(), c.text) {
			t.Errorf("%s: %q (key %q, profile %q)", c.profile, err, pe.Key, pe.Profile)
		}
		var te *transport.TLSError
		if c.tlsErr != errors.As(err, &te) {
			t.Errorf("%s: TLS error %v in %v", c.profile, c.tlsErr, err)
		}
		if cfg.NodeID != "keep" {
			t.Errorf("%s: on error the base must come back unchanged", c.profile)
		}
	}
}

// TestListenAndSeedAddrs turns Perl's address forms into addresses for
// Listen and Dial.
func TestListenAndSeedAddrs(t *testing.T) {
	p := loadProfile(t, "perl")
	binds, err := p.ListenAddrs()
	if want := []string{":4040", "127.0.0.1:0", "10.0.0.1:4040", "[::1]:4041", ":0"}; err != nil || !slices.Equal(binds, want) {
		t.Errorf("binds %v, %v; want %v", binds, err, want)
	}
	seeds, err := p.SeedAddrs()
	if want := []string{"seed.example:4040", "10.0.0.2:4040", "[fe80::1]:5000", "[fe80::2]:4040"}; err != nil || !slices.Equal(seeds, want) {
		t.Errorf("seeds %v, %v; want %v", seeds, err, want)
	}
	none := loadProfile(t, "anon")
	if b, err := none.ListenAddrs(); b != nil || err != nil {
		t.Errorf("no binds: %v, %v", b, err)
	}
	if s, err := none.SeedAddrs(); s != nil || err != nil {
		t.Errorf("no seeds: %v, %v", s, err)
	}
	for _, c := range []struct{ profile, key string }{{"bad-bind", "binds"}, {"bad-seed", "seeds"}, {"any-port-seed", "seeds"}} {
		p := loadProfile(t, c.profile)
		var err error
		if c.key == "binds" {
			_, err = p.ListenAddrs()
		} else {
			_, err = p.SeedAddrs()
		}
		var pe *perlrc.Error
		if !errors.Is(err, perlrc.ErrBadAddress) || !errors.As(err, &pe) || pe.Key != c.key {
			t.Errorf("%s: %v, want a *perlrc.Error for key %s wrapping ErrBadAddress", c.profile, err, c.key)
		}
	}
}

// TestProfileNodesTalk builds nodes from the profiles and connects them
// over memnet: two nodes sharing the profile's Perl PEM talk over TLS
// (one of them requires it), and a node without a certificate is refused
// by the TLS-only one but talks to the TLS-and-hmac one with hmac.
func TestProfileNodesTalk(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := memnet.New(1)
		defer w.Close()
		mk := func(profile, id string) *transport.Node {
			cfg := nodeConfig(t, profile, transport.Config{})
			cfg.NodeID = id
			n, err := transport.NewNode(cfg)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { n.Close() })
			if _, err := n.Listen(context.Background(), w.Host(id), id+":1"); err != nil {
				t.Fatal(err)
			}
			return n
		}
		sec := mk("secure", "sec")
		both := mk("tls-and-hmac", "both")
		plain := mk("perl", "plain")
		for _, a := range []*transport.Node{sec, both, plain} {
			for _, b := range []*transport.Node{sec, both, plain} {
				if a != b {
					a.AddPeer(b.ID(), b.Addrs()...)
				}
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		ping := func(from, to *transport.Node) error {
			got := make(chan []any, 1)
			p := to.NewPort(func(d []any) { got <- d })
			if err := from.Connect(ctx, to.ID()); err != nil {
				return err
			}
			if err := from.Send(p.ID(), "ping"); err != nil {
				return err
			}
			select {
			case d := <-got:
				if len(d) != 1 || d[0] != "ping" {
					t.Errorf("%s -> %s: %v", from.ID(), to.ID(), d)
				}
				return nil
			case <-time.After(3 * time.Second):
				return errors.New("no message")
			}
		}
		if err := ping(both, sec); err != nil {
			t.Errorf("TLS between nodes sharing the Perl PEM: %v", err)
		}
		if err := ping(plain, both); err != nil {
			t.Errorf("hmac without TLS: %v", err)
		}
		if err := ping(plain, sec); err == nil {
			t.Error("the TLS-only profile accepted a peer without TLS")
		}
	})
}
