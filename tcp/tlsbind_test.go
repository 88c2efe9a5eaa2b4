package tcp_test

import (
	"context"
	"testing"
	"time"

	"github.com/aemp-go/dataconn/core/handshake"
	"github.com/aemp-go/dataconn/core/wire"
	"github.com/aemp-go/dataconn/tcp"
	"github.com/aemp-go/dataconn/transport"
)

// TestTLSBindMessaging: over real TCP, a node with TLS and no secret
// authenticates a peer of this project whose greeting lists
// handshake.ExtTLSBind by the binding in the TLS handshake (no auth
// lines), and one whose greeting does not with tls_sha3_512 auth lines, as
// before; messages flow on both. A node with DisableTLSBind keeps the
// auth lines even with a peer that lists it.
func TestTLSBindMessaging(t *testing.T) {
	cases := []struct {
		name    string
		ext     string
		disable bool
		want    string
	}{
		{"bound", "1," + handshake.ExtTLSBind, false, handshake.AuthTLSBind},
		{"peer without the extension", "1", false, wire.AuthTLS},
		{"node with DisableTLSBind", "1," + handshake.ExtTLSBind, true, wire.AuthTLS},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			certs := testTLS(t, "a", "m")
			a := startNode(t, "a", "127.0.0.1:0", func(c *transport.Config) {
				c.Secret, c.TLS, c.DisableTLSBind = nil, certs[0], tc.disable
			})
			got := make(chan []any, 1)
			q := a.NewPort(func(d []any) { got <- d })
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, addr := transport.SplitAddr(a.Addrs()[0])
			c, err := tcp.New().Dial(ctx, addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			m, err := handshake.New(handshake.Config{
				NodeID: "m", TLS: true,
				AcceptAuths: []string{wire.AuthTLS}, OfferAuths: []string{wire.AuthTLS},
				Extra: []wire.KV{{Key: wire.KeyGo, Value: tc.ext}},
			}, "raw-peer-nonce-"+tc.name, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			conn, res, err := transport.Drive(ctx, c, m, transport.DriveOptions{TLS: certs[1]})
			if err != nil {
				t.Fatalf("handshake: %v", err)
			}
			if res.SentAuth != tc.want || res.PeerAuth != tc.want || !res.TLS {
				t.Fatalf("authenticated with %s/%s, want %s", res.SentAuth, res.PeerAuth, tc.want)
			}
			codec, _ := wire.CodecByName(res.SendFraming)
			out, _ := codec.AppendMessage(nil, wire.Message{q.Name(), "hello"})
			if _, err := conn.Write(out); err != nil {
				t.Fatal(err)
			}
			select {
			case d := <-got:
				if len(d) != 1 || d[0] != "hello" {
					t.Fatalf("port got %v", d)
				}
			case <-ctx.Done():
				t.Fatal("the message was not delivered")
			}
		})
	}
}
