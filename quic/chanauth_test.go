package quic_test

import (
	"bufio"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aemp-go/dataconn/core/handshake"
	"github.com/aemp-go/dataconn/core/wire"
	"github.com/aemp-go/dataconn/quic"
	"github.com/aemp-go/dataconn/transport"
	"github.com/aemp-go/dataconn/transport/testca"
)

// TestChannelAuthNode: over real QUIC on loopback with certificates on
// both ends, a node without a secret lists handshake.ExtChannelAuth in its
// messaging greeting and authenticates a peer that lists it too without
// auth lines (tls_channel); a peer that does not list it, a node with
// DisableTLSBind, and a node with a secret (which never lists it) keep
// the tls_sha3_512 auth lines. Messages flow after each.
func TestChannelAuthNode(t *testing.T) {
	checkLeaks(t)
	ca, err := testca.New("quic chanauth CA")
	if err != nil {
		t.Fatal(err)
	}
	aTLS, mTLS := issue(t, ca, "a"), issue(t, ca, "m")
	for _, tc := range []struct {
		name     string
		peerExt  string
		mod      func(*transport.Config)
		listed   bool // the node's greeting lists the extension
		wantAuth string
	}{
		{"both list it", "1," + handshake.ExtChannelAuth, nil, true, handshake.AuthChannel},
		{"peer without the extension", "1", nil, true, wire.AuthTLS},
		{"node with DisableTLSBind", "1," + handshake.ExtChannelAuth, func(c *transport.Config) { c.DisableTLSBind = true }, false, wire.AuthTLS},
		{"node with a secret", "1," + handshake.ExtChannelAuth, func(c *transport.Config) { c.Secret = testSecret }, false, wire.AuthTLS},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, _, aAddr := quicNode(t, "a", quic.Config{TLS: aTLS}, func(c *transport.Config) {
				c.Secret, c.TLS = nil, aTLS
				if tc.mod != nil {
					tc.mod(c)
				}
			})
			got := make(chan []any, 1)
			q := a.NewPort(func(d []any) { got <- d })
			ctx := testCtx(t)
			mNet := newNet(t, quic.Config{TLS: mTLS})
			_, addr := transport.SplitAddr(aAddr)
			c, err := mNet.Dial(ctx, addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			m, err := handshake.New(handshake.Config{
				NodeID: "m", VerifiedChannel: true,
				AcceptAuths: []string{wire.AuthTLS}, OfferAuths: []string{wire.AuthTLS},
				Extra: []wire.KV{{Key: wire.KeyGo, Value: tc.peerExt}},
			}, "raw-peer-nonce", time.Now())
			if err != nil {
				t.Fatal(err)
			}
			conn, res, err := transport.Drive(ctx, c, m, transport.DriveOptions{Secure: mNet})
			if err != nil {
				t.Fatalf("handshake: %v", err)
			}
			goExt, _ := res.Peer.Get(wire.KeyGo)
			if slices.Contains(strings.Split(goExt, ","), handshake.ExtChannelAuth) != tc.listed {
				t.Fatalf("the node's greeting lists %q, want the extension listed: %v", goExt, tc.listed)
			}
			if res.SentAuth != tc.wantAuth || res.PeerAuth != tc.wantAuth || !res.TLS {
				t.Fatalf("authenticated with %s/%s, want %s", res.SentAuth, res.PeerAuth, tc.wantAuth)
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

// TestChannelAuthFirstMessage: the acceptor of a messaging stream that
// ends by the channel may write its first message right behind its
// greeting, in one write (it is done once its lines are sent); the
// dialing node, which ends on that nonce line, hands what follows it in
// the same read to the connection, so the message arrives.
func TestChannelAuthFirstMessage(t *testing.T) {
	checkLeaks(t)
	ca, err := testca.New("quic chanauth CA")
	if err != nil {
		t.Fatal(err)
	}
	aTLS, mTLS := issue(t, ca, "a"), issue(t, ca, "m")
	a, _ := dialNode(t, "a", quic.Config{TLS: aTLS}, func(c *transport.Config) { c.Secret, c.TLS = nil, aTLS })
	got := make(chan []any, 1)
	q := a.NewPort(func(d []any) { got <- d })
	ctx := testCtx(t)
	mNet := newNet(t, quic.Config{TLS: mTLS})
	l, err := mNet.Listen(ctx, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a.AddPeer("m", "quic://"+l.Addr().String())
	done := make(chan error, 1)
	go func() {
		err := a.Connect(ctx, "m")
		done <- err
	}()
	c, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	greeting, err := r.ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.ReadString('\n'); err != nil { // the nonce line
		t.Fatal(err)
	}
	g := wire.ParseGreeting(strings.TrimSuffix(greeting, "\n"))
	if v, _ := g.Get(wire.KeyGo); !slices.Contains(strings.Split(v, ","), handshake.ExtChannelAuth) {
		t.Fatalf("the node's greeting %q does not list %s", greeting, handshake.ExtChannelAuth)
	}
	// We send the first framing of the node's list that we can.
	var codec wire.Codec
	for _, f := range g.Framings {
		if cd, ok := wire.CodecByName(f); ok {
			codec = cd
			break
		}
	}
	if codec == nil {
		t.Fatalf("no framing of %v", g.Framings)
	}
	lines := "aemp;1;m;tls_sha3_512;" + strings.Join(g.Framings, ",") + ";aempgo=1," + handshake.ExtChannelAuth + "\nraw-acceptor-nonce\n"
	out, _ := codec.AppendMessage([]byte(lines), wire.Message{q.Name(), "first"})
	if _, err := c.Write(out); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Connect: %v", err)
	}
	select {
	case d := <-got:
		if len(d) != 1 || d[0] != "first" {
			t.Fatalf("port got %v", d)
		}
	case <-ctx.Done():
		t.Fatal("the message behind the greeting was not delivered")
	}
}

// TestChannelAuthCrossConnect: two nodes with certificates and no secret
// that connect to each other at the same moment (both messaging
// handshakes by the channel, each node the acceptor of one) end with one
// connection that carries messages both ways and direct data streams.
func TestChannelAuthCrossConnect(t *testing.T) {
	checkLeaks(t)
	ca, err := testca.New("quic chanauth CA")
	if err != nil {
		t.Fatal(err)
	}
	aTLS, bTLS := issue(t, ca, "a"), issue(t, ca, "b")
	noSecret := func(tc *transport.TLSConfig) func(*transport.Config) {
		return func(c *transport.Config) { c.Secret, c.TLS = nil, tc }
	}
	a, _, aAddr := quicNode(t, "a", quic.Config{TLS: aTLS}, noSecret(aTLS))
	b, _, bAddr := quicNode(t, "b", quic.Config{TLS: bTLS}, noSecret(bTLS))
	a.AddPeer("b", bAddr)
	b.AddPeer("a", aAddr)
	ctx := testCtx(t)
	errs := make(chan error, 2)
	go func() { errs <- a.Connect(ctx, "b") }()
	go func() { errs <- b.Connect(ctx, "a") }()
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatalf("Connect: %v", err)
		}
	}
	for _, pair := range [][2]*transport.Node{{a, b}, {b, a}} {
		from, to := pair[0], pair[1]
		got := make(chan []any, 1)
		q := to.NewPort(func(d []any) { got <- d })
		if err := from.Send(q.ID(), "hello"); err != nil {
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
	}
	s := newSink()
	b.HandleDataConn("test::sink", s.init)
	payload := payloadOf(4, 4<<10)
	c, err := a.ConnectTo(ctx, "b", 10*time.Second, "test::sink", sumHex(payload))
	if err != nil {
		t.Fatalf("ConnectTo: %v", err)
	}
	if _, ok := streamOf(c); !ok {
		t.Fatalf("data connection is a %T, want a direct QUIC stream", c)
	}
	sendAndCheck(t, c, payload)
	if err := s.wait(t); err != nil || s.calls.Load() != 1 {
		t.Fatalf("init: %v, calls %d", err, s.calls.Load())
	}
}
