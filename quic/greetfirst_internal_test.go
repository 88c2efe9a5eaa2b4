package quic

import (
	"crypto/tls"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aemp-go/dataconn/transport/testca"
)

// TestGreetFirstALPNAndNo0RTT: 0-RTT is off on every connection (the
// server's early listener is for 0.5-RTT data only); a Network without
// certificates offers ALPNGreetFirst before ALPN as a client, and its
// listeners select it only once EnableGreetFirst was called; one that
// behaves as an older version, or has certificates, offers and selects
// ALPN only.
func TestGreetFirstALPNAndNo0RTT(t *testing.T) {
	ca, err := testca.New("alpn CA")
	if err != nil {
		t.Fatal(err)
	}
	tc, err := ca.Issue("n", time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	plain, err := ephemeralServerConfig(false)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		n      *Network
		server *tls.Config
		offer  []string
		before []string // selected before EnableGreetFirst
		after  []string
	}{
		{"no certificates", New(Config{}), plain, []string{ALPNGreetFirst, ALPN}, []string{ALPN}, []string{ALPNGreetFirst, ALPN}},
		{"older version", newNetwork(Config{}, true), nil, []string{ALPN}, []string{ALPN}, []string{ALPN}},
		{"certificates", New(Config{TLS: tc}), nil, []string{ALPN}, []string{ALPN}, []string{ALPN}},
	} {
		t.Run(c.name, func(t *testing.T) {
			n := c.n
			if n.listenCfg.Allow0RTT || n.dialCfg.Allow0RTT {
				t.Fatal("0-RTT allowed")
			}
			if !slices.Equal(n.clientTLS.NextProtos, c.offer) {
				t.Fatalf("client offers %v, want %v", n.clientTLS.NextProtos, c.offer)
			}
			base := c.server
			if base == nil {
				if base = n.serverTLS; base == nil {
					sc, err := ephemeralServerConfig(n.old)
					if err != nil {
						t.Fatal(err)
					}
					base = sc
				}
			}
			flag := new(atomic.Bool)
			cfg := serverTLS(base, flag)
			selected := func() []string {
				if cfg.GetConfigForClient != nil {
					if alt, _ := cfg.GetConfigForClient(&tls.ClientHelloInfo{}); alt != nil {
						return alt.NextProtos
					}
				}
				return cfg.NextProtos
			}
			if got := selected(); !slices.Equal(got, c.before) {
				t.Fatalf("server offers %v before EnableGreetFirst, want %v", got, c.before)
			}
			flag.Store(true)
			if got := selected(); !slices.Equal(got, c.after) {
				t.Fatalf("server offers %v after EnableGreetFirst, want %v", got, c.after)
			}
		})
	}
}
