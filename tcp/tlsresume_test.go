package tcp_test

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"testing"
	"time"

	"github.com/aemp-go/dataconn/transport"
)

// TestTLSResumedDataConns: between nodes of this project over TCP+TLS,
// data connections after the messaging connection resume the TLS session
// (no certificate signature or chain check), in both directions, whoever
// was the TLS client on the messaging connection, and still authenticate
// (tls_sha3_512 over the new session) and carry data.
func TestTLSResumedDataConns(t *testing.T) {
	certs := testTLS(t, "a", "b")
	nodes := make([]*transport.Node, 2)
	type seen struct {
		resumed bool
		from    string
	}
	saw := make(chan seen, 64)
	for i, id := range []string{"a", "b"} {
		nodes[i] = startNode(t, id, "127.0.0.1:0", func(c *transport.Config) { c.Secret = nil; c.TLS = certs[i] })
		nodes[i].HandleDataConn("t::echo", func(from string, _ []any, c net.Conn) {
			defer c.Close()
			tc, ok := c.(*tls.Conn)
			_ = c.SetDeadline(time.Now().Add(dcTimeout))
			_, _ = io.Copy(c, c)
			saw <- seen{resumed: ok && tc.ConnectionState().DidResume, from: from}
		})
	}
	linkNodes(nodes...)
	ctx, cancel := context.WithTimeout(context.Background(), dcTimeout)
	defer cancel()
	if err := nodes[0].Connect(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	resumed := 0
	const rounds = 8
	for i := range rounds {
		from, to := nodes[i%2], nodes[1-i%2]
		c, err := from.ConnectTo(ctx, to.ID(), dcTimeout, "t::echo")
		if err != nil {
			t.Fatalf("round %d: ConnectTo: %v", i, err)
		}
		tc, ok := c.(*tls.Conn)
		if !ok {
			t.Fatalf("data connection is a %T, want *tls.Conn", c)
		}
		_ = c.SetDeadline(time.Now().Add(dcTimeout))
		if _, err := c.Write([]byte("ping")); err != nil {
			t.Fatal(err)
		}
		if err := tc.CloseWrite(); err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(c)
		if err != nil || string(got) != "ping" {
			t.Fatalf("echo %q, %v", got, err)
		}
		_ = c.Close()
		s := <-saw
		if s.from != from.ID() {
			t.Fatalf("init function saw %q", s.from)
		}
		if tc.ConnectionState().DidResume != s.resumed {
			t.Fatalf("round %d: ends disagree on resumption", i)
		}
		if i >= 2 && !s.resumed {
			t.Fatalf("round %d (%s→%s): full TLS handshake, want a resumed one", i, from.ID(), to.ID())
		}
		if s.resumed {
			resumed++
		}
	}
	t.Logf("%d of %d data connections resumed", resumed, rounds)
}

// TestTLSPerlPeerFullHandshake: a peer that greets like a Perl node (no
// aempgo key) gets a full TLS handshake on every connection, and no
// session ticket.
func TestTLSPerlPeerFullHandshake(t *testing.T) {
	certs := testTLS(t, "a", "b")
	a := startNode(t, "a", "127.0.0.1:0", func(c *transport.Config) { c.Secret = nil; c.TLS = certs[0] })
	b := startNode(t, "b", "127.0.0.1:0", func(c *transport.Config) { c.Secret = nil; c.TLS = certs[1]; c.PerlCompat = true })
	resumed := make(chan bool, 8)
	b.HandleDataConn("t::take", func(_ string, _ []any, c net.Conn) {
		tc, ok := c.(*tls.Conn)
		resumed <- ok && tc.ConnectionState().DidResume
		_ = c.Close()
	})
	linkNodes(a, b)
	ctx, cancel := context.WithTimeout(context.Background(), dcTimeout)
	defer cancel()
	for i := range 3 {
		c, err := a.ConnectTo(ctx, "b", dcTimeout, "t::take")
		if err != nil {
			t.Fatalf("ConnectTo %d: %v", i, err)
		}
		tc, ok := c.(*tls.Conn)
		if !ok || tc.ConnectionState().DidResume || <-resumed {
			t.Fatalf("data connection %d to a Perl-style peer resumed TLS (or is a %T)", i, c)
		}
		_ = c.Close()
	}
}
