package quic_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aemp-go/dataconn/core/handshake"
	"github.com/aemp-go/dataconn/core/wire"
	"github.com/aemp-go/dataconn/quic"
	"github.com/aemp-go/dataconn/transport"
)

// withoutHandshakePackets returns datagram p without its QUIC
// Handshake-level packets (long header, type 2): the sender's Finished
// never arrives, its Initial and 1-RTT packets do. It returns p unchanged
// when it cannot parse it.
func withoutHandshakePackets(p []byte) []byte {
	var out []byte
	rest := p
	for len(rest) > 0 {
		if rest[0]&0x80 == 0 { // short header: the rest is one 1-RTT packet
			return append(out, rest...)
		}
		n, ok := longPacketLen(rest)
		if !ok {
			return p
		}
		if (rest[0]>>4)&3 != 2 {
			out = append(out, rest[:n]...)
		}
		rest = rest[n:]
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// longPacketLen is the length of the QUIC version 1 long-header packet at
// the start of p (RFC 9000, 17.2).
func longPacketLen(p []byte) (int, bool) {
	i := 5 // first byte, version
	for range 2 {
		if i >= len(p) {
			return 0, false
		}
		i += 1 + int(p[i]) // connection ID length and ID
	}
	varint := func() (uint64, bool) {
		if i >= len(p) {
			return 0, false
		}
		l := 1 << (p[i] >> 6)
		if i+l > len(p) {
			return 0, false
		}
		v := uint64(p[i] & 0x3f)
		for j := 1; j < l; j++ {
			v = v<<8 | uint64(p[i+j])
		}
		i += l
		return v, true
	}
	if (p[0]>>4)&3 == 0 { // Initial: token
		tl, ok := varint()
		if !ok {
			return 0, false
		}
		i += int(tl)
	}
	length, ok := varint()
	if !ok || i+int(length) > len(p) {
		return 0, false
	}
	return i + int(length), true
}

// hostileClient plays a client that knows the secret and answers the
// server's early greeting with a valid greeting, nonce and
// hmac_sha3_512_cb line on the stream DialMessaging returns. It returns
// the server's lines as read before answering.
func hostileClient(t *testing.T, cli *quic.Network, c net.Conn) string {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(time.Second))
	var got []byte
	buf := make([]byte, 4096)
	for bytes.Count(got, []byte("\n")) < 2 {
		n, err := c.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			t.Fatalf("reading the server's greeting: %q, %v", got, err)
		}
	}
	auths := []string{handshake.AuthHMACCB, wire.AuthHMAC}
	m, err := handshake.New(handshake.Config{
		NodeID: "a", Secret: testSecret, AcceptAuths: auths, OfferAuths: auths,
		ChannelBinding: cli.ChannelBinding(c),
		Extra:          []wire.KV{{Key: wire.KeyGo, Value: "1"}},
	}, "hostile-nonce", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	m.Receive(time.Now(), got)
	var out []byte
	for a := m.Poll(); a != nil; a = m.Poll() {
		w, ok := a.(handshake.Write)
		if !ok {
			t.Fatalf("client machine: %#v", a)
		}
		out = append(out, w.Data...)
	}
	if bytes.Count(out, []byte("\n")) != 3 {
		t.Fatalf("client lines %q, want greeting, nonce and auth line", out)
	}
	if _, err := c.Write(out); err != nil {
		t.Fatal(err)
	}
	return string(got)
}

// TestGreetFirstHandshakeNotComplete: the server greets first, before
// the client's QUIC handshake is complete, but uses nothing the client
// sends before it is. A client that knows the secret, answers the early
// greeting with valid lines bound to the exporter, and withholds its
// Finished (its Handshake packets are dropped on the path) gets the
// server's greeting and nothing else: no auth line, and the node never
// comes up on the server. The same client with its Finished delivered is
// answered and comes up (so the client is valid and the test can fail).
func TestGreetFirstHandshakeNotComplete(t *testing.T) {
	for _, finished := range []bool{false, true} {
		name := "Finished dropped"
		if finished {
			name = "Finished delivered"
		}
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				link := newMemPackets(vDelay)
				b, err := transport.NewNode(transport.Config{NodeID: "b", Secret: testSecret, Logger: quietLog()})
				if err != nil {
					t.Fatal(err)
				}
				defer b.Close()
				bNet := quic.NewWithPacketConns(quic.Config{}, link.listen)
				defer bNet.Close()
				up := make(chan string, 4)
				defer b.MonitorNodes(func(id string, isUp bool, _ error) {
					if isUp {
						up <- id
					}
				})()
				bAddr, err := b.Listen(context.Background(), bNet, "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				_, hostPort := transport.SplitAddr(bAddr)
				target := netip.MustParseAddrPort(hostPort)
				if !finished {
					link.setFilter(func(_, to netip.AddrPort, p []byte) []byte {
						if to.Port() == target.Port() {
							return withoutHandshakePackets(p)
						}
						return p
					})
				}
				cli := quic.NewWithPacketConns(quic.Config{}, link.listen)
				defer cli.Close()
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				defer cancel()
				c, err := cli.DialMessaging(ctx, hostPort)
				if err != nil {
					t.Fatalf("DialMessaging: %v", err)
				}
				greeting := hostileClient(t, cli, c)
				if !strings.HasPrefix(greeting, "aemp;1;b;") {
					t.Fatalf("server's first bytes %q, want its greeting", greeting)
				}
				// Everything else the server sends, until its handshake
				// timeout has long passed.
				_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
				var after []byte
				buf := make([]byte, 4096)
				for {
					n, err := c.Read(buf)
					after = append(after, buf[:n]...)
					if finished && bytes.IndexByte(after, '\n') >= 0 {
						break
					}
					if err != nil {
						if !finished && !errors.Is(err, os.ErrDeadlineExceeded) && !errors.Is(err, quic.ErrConnectionLost) && !errors.Is(err, quic.ErrStreamReset) {
							t.Fatalf("after the greeting: %v", err)
						}
						break
					}
				}
				select {
				case id := <-up:
					if !finished {
						t.Fatalf("node %q came up on the server without a complete QUIC handshake", id)
					}
				default:
					if finished {
						t.Fatal("the valid client did not come up on the server")
					}
				}
				if finished {
					if !strings.HasPrefix(string(after), handshake.AuthHMACCB+";") {
						t.Fatalf("server's answer %q, want its auth line", after)
					}
				} else if len(after) != 0 {
					t.Fatalf("server sent %q after its greeting to a client whose handshake is not complete", after)
				}
				_ = c.Close()
			})
		})
	}
}

// TestGreetFirstSilentDropped: a greeting stream whose client never
// completes its QUIC handshake counts as silent at the Node's handshake
// cap (its peer has said nothing the server read), so it is dropped to
// make room after the short silent grace: with MaxHandshakes 2 taken by
// two such clients, an honest node still connects well within a second,
// long before those clients' QUIC handshakes time out (5 s) or they
// would be dropped as stalled (HandshakeTimeout/4).
func TestGreetFirstSilentDropped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		link := newMemPackets(vDelay)
		mk := func(id string, max int) (*transport.Node, *quic.Network) {
			n, err := transport.NewNode(transport.Config{NodeID: id, Secret: testSecret, Logger: quietLog(), MaxHandshakes: max, HandshakeTimeout: 30 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			nw := quic.NewWithPacketConns(quic.Config{}, link.listen)
			t.Cleanup(func() { _ = nw.Close(); _ = n.Close() })
			return n, nw
		}
		b, bNet := mk("b", 2)
		bAddr, err := b.Listen(context.Background(), bNet, "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		a, aNet := mk("a", 0)
		aAddr, err := a.Listen(context.Background(), aNet, "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		a.AddPeer("b", bAddr)
		_, bHostPort := transport.SplitAddr(bAddr)
		_, aHostPort := transport.SplitAddr(aAddr)
		target, honest := netip.MustParseAddrPort(bHostPort), netip.MustParseAddrPort(aHostPort)
		link.setFilter(func(from, to netip.AddrPort, p []byte) []byte {
			if to == target && from != honest {
				return withoutHandshakePackets(p)
			}
			return p
		})
		for i := range 2 {
			cli := quic.NewWithPacketConns(quic.Config{}, link.listen)
			t.Cleanup(func() { _ = cli.Close() })
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			c, err := cli.DialMessaging(ctx, bHostPort)
			cancel()
			if err != nil {
				t.Fatalf("hostile client %d: %v", i, err)
			}
			t.Cleanup(func() { _ = c.Close() })
			var buf [1]byte
			_ = c.SetReadDeadline(time.Now().Add(time.Second))
			if _, err := c.Read(buf[:]); err != nil || buf[0] != 'a' {
				t.Fatalf("hostile client %d: no greeting from the server (%q, %v)", i, buf, err)
			}
		}
		start := time.Now()
		if err := a.Connect(context.Background(), "b"); err != nil {
			t.Fatalf("honest node: %v", err)
		}
		if took := time.Since(start); took >= time.Second {
			t.Fatalf("honest node connected after %v with the cap held by silent greeting streams, want well within a second", took)
		}
	})
}

// TestGreetFirstFallbackLoopback: over real QUIC on loopback, a node of
// this version and one that behaves as an older version (ALPN "aemp"
// only, quic.NewOld), in both roles, and two of this version: the
// messaging connection comes up on both ends and a data connection
// carries an echo, whichever order the greetings take.
func TestGreetFirstFallbackLoopback(t *testing.T) {
	for _, tc := range []struct {
		name             string
		oldClient, oldSv bool
	}{{"both new", false, false}, {"old server", false, true}, {"old client", true, false}} {
		t.Run(tc.name, func(t *testing.T) {
			mk := func(id string, old bool) (*transport.Node, *quic.Network) {
				n, err := transport.NewNode(transport.Config{NodeID: id, Secret: testSecret, Logger: quietLog()})
				if err != nil {
					t.Fatal(err)
				}
				nw := quic.New(quic.Config{})
				if old {
					nw = quic.NewOld(quic.Config{})
				}
				t.Cleanup(func() { _ = nw.Close(); _ = n.Close() })
				return n, nw
			}
			a, aNet := mk("a", tc.oldClient)
			b, bNet := mk("b", tc.oldSv)
			b.HandleDataConn("echo", func(_ string, _ []any, c net.Conn) {
				defer c.Close()
				buf := make([]byte, 1)
				if _, err := c.Read(buf); err == nil {
					_, _ = c.Write(buf)
				}
			})
			up := make(chan struct{}, 1)
			defer b.MonitorNodes(func(id string, isUp bool, _ error) {
				if id == "a" && isUp {
					select {
					case up <- struct{}{}:
					default:
					}
				}
			})()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			bAddr, err := b.Listen(ctx, bNet, "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			a.AddNetwork(aNet)
			a.AddPeer("b", bAddr)
			if err := a.Connect(ctx, "b"); err != nil {
				t.Fatalf("Connect: %v", err)
			}
			c, err := a.ConnectTo(ctx, "b", 5*time.Second, "echo")
			if err != nil {
				t.Fatalf("ConnectTo: %v", err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			buf := []byte{'x'}
			if _, err := c.Write(buf); err != nil {
				t.Fatal(err)
			}
			buf[0] = 0
			if _, err := io.ReadFull(c, buf); err != nil || buf[0] != 'x' {
				t.Fatalf("echo: %q, %v", buf, err)
			}
			select {
			case <-up:
			case <-ctx.Done():
				t.Fatal("b never had a up")
			}
			if !slices.Contains(b.Peers(), "a") {
				t.Fatalf("b's peers %v, want a", b.Peers())
			}
		})
	}
}
