package quic_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aemp-go/dataconn/quic"
	"github.com/aemp-go/dataconn/transport"
	"github.com/aemp-go/dataconn/transport/testca"
)

// vDelay is the one-way delay of the in-memory link in virtual time.
const vDelay = 10 * time.Millisecond

// vPair is an initiator a and a target b over a memPackets link in a
// synctest bubble; b's init function "rtt" reports when it starts.
type vPair struct {
	link   *memPackets
	a, b   *transport.Node
	called chan rttCall
	close  func()
}

func newVPair(t *testing.T, tls, reverse bool, ca *testca.CA) *vPair {
	t.Helper()
	return newVPairCfg(t, tls, reverse, ca, nil)
}

// newVPairCfg is newVPair with mod applied to both nodes' configurations.
func newVPairCfg(t *testing.T, tls, reverse bool, ca *testca.CA, mod func(*transport.Config)) *vPair {
	t.Helper()
	return newVPairOld(t, tls, reverse, ca, mod, "")
}

// newVPairOld is newVPairCfg where the node named old ("a", "b" or "")
// runs on a Network that behaves as a version before
// quic.ALPNGreetFirst.
func newVPairOld(t *testing.T, tls, reverse bool, ca *testca.CA, mod func(*transport.Config), old string) *vPair {
	t.Helper()
	p := &vPair{link: newMemPackets(vDelay), called: make(chan rttCall, 4)}
	var closers []func()
	p.close = func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
		closers = nil
	}
	t.Cleanup(p.close)
	mk := func(id string) (*transport.Node, *quic.Network) {
		cfg := transport.Config{NodeID: id, Secret: testSecret, Logger: quietLog()}
		var qcfg quic.Config
		if tls {
			tc, err := ca.Issue(id, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			cfg.Secret, cfg.TLS, qcfg.TLS = nil, tc, tc
		}
		if mod != nil {
			mod(&cfg)
		}
		n, err := transport.NewNode(cfg)
		if err != nil {
			t.Fatal(err)
		}
		nw := quic.NewWithPacketConns(qcfg, p.link.listen)
		if id == old {
			nw = quic.NewOldWithPacketConns(qcfg, p.link.listen)
		}
		closers = append(closers, func() { _ = nw.Close() }, func() { _ = n.Close() })
		return n, nw
	}
	ctx := context.Background()
	var aNet, bNet *quic.Network
	p.a, aNet = mk("a")
	p.b, bNet = mk("b")
	p.b.HandleDataConn("rtt", func(from string, data []any, c net.Conn) {
		call := rttCall{at: time.Now(), from: from, data: data}
		_ = c.Close()
		select {
		case p.called <- call:
		default:
		}
	})
	bAddr, err := p.b.Listen(ctx, bNet, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.a.AddPeer("b", bAddr)
	if reverse {
		aAddr, err := p.a.Listen(ctx, aNet, "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		p.b.AddPeer("a", aAddr)
	} else {
		p.a.AddNetwork(aNet)
	}
	return p
}

// connectFirst brings the messaging connection up (dialed by b when
// reverse) and lets the link go quiet.
func (p *vPair) connectFirst(t *testing.T, reverse bool) {
	t.Helper()
	var err error
	if reverse {
		err = p.b.Connect(context.Background(), "a")
	} else {
		err = p.a.Connect(context.Background(), "b")
	}
	if err != nil {
		t.Fatalf("messaging connection: %v", err)
	}
	// Past every delayed ACK and the acceptor's end of the handshake.
	time.Sleep(time.Second)
	if !slices.Contains(p.a.Peers(), "b") || !slices.Contains(p.b.Peers(), "a") {
		t.Fatal("the messaging connection is not up on both ends")
	}
}

// setup opens one data connection and returns, in virtual time since the
// call, when ConnectTo returned and when the init function started.
func (p *vPair) setup(t *testing.T, seq int) (local, remote time.Duration) {
	t.Helper()
	start := time.Now()
	c, err := p.a.ConnectTo(context.Background(), "b", 5*time.Second, "rtt", int64(seq))
	local = time.Since(start)
	if err != nil {
		t.Fatalf("ConnectTo: %v", err)
	}
	_ = c.Close()
	select {
	case call := <-p.called:
		if call.from != "a" || len(call.data) != 1 || fmt.Sprint(call.data[0]) != fmt.Sprint(seq) {
			t.Fatalf("init function called from %q with %v, want from \"a\" with [%d]", call.from, call.data, seq)
		}
		remote = call.at.Sub(start)
	case <-time.After(10 * time.Second):
		t.Fatal("the init function did not run")
	}
	return local, remote
}

// TestSetupRTTVirtual: over QUIC (real quic-go, real nodes) on an
// in-memory link with a fixed one-way delay, in virtual time
// (testing/synctest: computation takes no time), a data connection on a
// warm pair takes exactly one round trip for the initiator and half a
// round trip until the remote init function starts: with a shared secret
// or with certificates, and whichever node opened the QUIC connection.
// A cold pair (nothing up) takes exactly 3 and 2.5 round trips.
func TestSetupRTTVirtual(t *testing.T) {
	rtt := 2 * vDelay
	warm := func(tls, reverse bool) func(t *testing.T) {
		return func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var ca *testca.CA
				if tls {
					var err error
					if ca, err = testca.New("virtual rtt CA"); err != nil {
						t.Fatal(err)
					}
				}
				p := newVPair(t, tls, reverse, ca)
				p.connectFirst(t, reverse)
				for i := range 3 {
					local, remote := p.setup(t, i)
					t.Logf("set-up %d: initiator %v (%.2f round trips), init function %v (%.2f)", i, local, float64(local)/float64(rtt), remote, float64(remote)/float64(rtt))
					if local != rtt || remote != rtt/2 {
						t.Fatalf("set-up %d: initiator %v, init function %v; want exactly %v and %v (1 and 0.5 round trips)", i, local, remote, rtt, rtt/2)
					}
					// Let delayed ACKs go out between set-ups.
					time.Sleep(time.Second)
				}
				if sent, dropped := p.link.stats(); dropped != 0 {
					t.Fatalf("%d of %d datagrams dropped", dropped, sent)
				}
				p.close()
			})
		}
	}
	t.Run("warm", warm(false, false))
	t.Run("warm-tls", warm(true, false))
	t.Run("reverse", warm(false, true))
	t.Run("reverse-tls", warm(true, true))
	// A cold pair: the QUIC handshake (1 round trip until the client may
	// send), the messaging handshake on its first stream (the client's
	// greeting, the server's greeting and auth, the client's auth: 1
	// round trip more for the initiator, 1.5 for the target), then the
	// direct stream: 3 and 2.5.
	cold := func(tls bool) func(t *testing.T) {
		return func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var ca *testca.CA
				if tls {
					var err error
					if ca, err = testca.New("virtual rtt CA"); err != nil {
						t.Fatal(err)
					}
				}
				p := newVPair(t, tls, false, ca)
				local, remote := p.setup(t, 0)
				t.Logf("cold pair: initiator %v (%.2f round trips), init function %v (%.2f)", local, float64(local)/float64(rtt), remote, float64(remote)/float64(rtt))
				if local != 3*rtt || remote != 5*rtt/2 {
					t.Fatalf("cold pair: initiator %v, init function %v; want exactly %v and %v (3 and 2.5 round trips)", local, remote, 3*rtt, 5*rtt/2)
				}
				p.close()
			})
		}
	}
	t.Run("cold-pair", cold(false))
	t.Run("cold-pair-tls", cold(true))
}

// TestNodeConnectRTTVirtual: a new node authenticating over a new QUIC
// connection (BenchmarkSetup's node-connect rows), in virtual time as in
// TestSetupRTTVirtual.
//
// With a shared secret and no certificates, both ends offer
// quic.ALPNGreetFirst: the server opens the messaging stream in its first
// flight and greets on it (0.5-RTT data), so the client has the server's
// greeting when its handshake completes (1) and sends its greeting and
// auth line at once; the target checks it, sends its auth line and is
// done at 1.5, the client when that line arrives (2). The same with plain
// hmac_sha3_512 (DisableChannelBinding).
//
// When either end is of an older version (it offers or selects quic.ALPN
// only), the client opens the stream: the QUIC handshake lets it send
// after 1 round trip; the target learns of the stream with the client's
// greeting (1.5) and answers with its greeting and auth line, which
// complete the client's side (2), and the client's auth line completes
// the target's (2.5).
//
// With certificates on both ends and no secret (always quic.ALPN: the
// server greets only clients whose certificate it verified), both
// greetings list handshake.ExtChannelAuth and no auth line is sent: the
// target is done when it has sent its greeting (1.5), the client when
// that greeting arrives (2); DisableTLSBind keeps the auth lines (2 and
// 2.5). The raw row it is compared with, a QUIC handshake plus a 1-byte
// echo on a stream, takes 2.
func TestNodeConnectRTTVirtual(t *testing.T) {
	rtt := 2 * vDelay
	for _, tc := range []struct {
		name          string
		tls           bool
		mod           func(*transport.Config)
		old           string // the node of an older version
		local, remote time.Duration
	}{
		{"tls=false", false, nil, "", 2 * rtt, 3 * rtt / 2},
		{"tls=false,DisableChannelBinding", false, func(c *transport.Config) { c.DisableChannelBinding = true }, "", 2 * rtt, 3 * rtt / 2},
		{"tls=false,old-server", false, nil, "b", 2 * rtt, 5 * rtt / 2},
		{"tls=false,old-client", false, nil, "a", 2 * rtt, 5 * rtt / 2},
		{"tls=true", true, nil, "", 2 * rtt, 3 * rtt / 2},
		{"tls=true,DisableTLSBind", true, func(c *transport.Config) { c.DisableTLSBind = true }, "", 2 * rtt, 5 * rtt / 2},
	} {
		tls := tc.tls
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var ca *testca.CA
				if tls {
					var err error
					if ca, err = testca.New("virtual rtt CA"); err != nil {
						t.Fatal(err)
					}
				}
				p := newVPairOld(t, tls, false, ca, tc.mod, tc.old)
				up := make(chan time.Time, 1)
				cancel := p.b.MonitorNodes(func(id string, isUp bool, _ error) {
					if id == "a" && isUp {
						select {
						case up <- time.Now():
						default:
						}
					}
				})
				defer cancel()
				start := time.Now()
				if err := p.a.Connect(context.Background(), "b"); err != nil {
					t.Fatal(err)
				}
				local := time.Since(start)
				var remote time.Duration
				select {
				case at := <-up:
					remote = at.Sub(start)
				case <-time.After(10 * time.Second):
					t.Fatal("the target did not see the node come up")
				}
				t.Logf("node connect: Connect returned after %v (%.2f round trips), the target had the node up after %v (%.2f)", local, float64(local)/float64(rtt), remote, float64(remote)/float64(rtt))
				if local != tc.local || remote != tc.remote {
					t.Fatalf("node connect: %v and %v, want exactly %v and %v (%.1f and %.1f round trips)", local, remote, tc.local, tc.remote, float64(tc.local)/float64(rtt), float64(tc.remote)/float64(rtt))
				}
				// The raw row on the same link: a new QUIC connection and
				// a 1-byte echo.
				var srvCfg quic.Config
				if tls {
					tc, err := ca.Issue("srv", time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
					if err != nil {
						t.Fatal(err)
					}
					srvCfg.TLS = tc
				}
				// Raw, as in BenchmarkSetup: quic.ALPN only.
				srv := quic.NewOldWithPacketConns(srvCfg, p.link.listen)
				defer srv.Close()
				l, err := srv.Listen(context.Background(), "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				go func() {
					for {
						c, err := l.Accept()
						if err != nil {
							return
						}
						go func() {
							defer c.Close()
							_, _ = io.Copy(c, c)
						}()
					}
				}()
				cliCfg := srvCfg
				if tls {
					tc, err := ca.Issue("cli", time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
					if err != nil {
						t.Fatal(err)
					}
					cliCfg.TLS = tc
				}
				cli := quic.NewOldWithPacketConns(cliCfg, p.link.listen)
				defer cli.Close()
				start = time.Now()
				c, err := cli.Dial(context.Background(), l.Addr().String())
				if err != nil {
					t.Fatal(err)
				}
				var b [1]byte
				if _, err := c.Write([]byte{'p'}); err != nil {
					t.Fatal(err)
				}
				if _, err := io.ReadFull(c, b[:]); err != nil {
					t.Fatal(err)
				}
				if raw := time.Since(start); raw != 2*rtt {
					t.Fatalf("QUIC handshake and echo: %v, want exactly %v (2 round trips)", raw, 2*rtt)
				}
				_ = c.Close()
				_ = cli.Close()
				_ = srv.Close()
				p.close()
			})
		})
	}
}

// TestDataStreamDatagramsVirtual: a direct data stream on a warm pair plus
// a 1-byte echo sends no more datagrams (the fewest over five set-ups),
// and takes exactly as long in virtual time, as a raw quic-go stream with
// one request and answer before the
// same echo (the stream-confirmed row of BenchmarkSetup): the header and
// the accept answer are one datagram each way, with nothing on the
// messaging stream. So what the direct stream costs above the raw row is
// the confirmation's round trip, not extra packets.
func TestDataStreamDatagramsVirtual(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newVPair(t, false, false, nil)
		p.b.HandleDataConn("echo", func(_ string, _ []any, c net.Conn) {
			defer c.Close()
			_, _ = io.Copy(c, c)
		})
		p.connectFirst(t, false)
		echo := func(c net.Conn) {
			t.Helper()
			var b [1]byte
			if _, err := c.Write([]byte{'p'}); err != nil {
				t.Fatal(err)
			}
			if _, err := io.ReadFull(c, b[:]); err != nil {
				t.Fatal(err)
			}
		}
		// measure runs one set-up and returns its duration and the
		// datagrams it sent until the echo came back; the stream's close
		// and the ACKs after it settle before the next.
		measure := func(setup func() net.Conn) (time.Duration, int) {
			t.Helper()
			sent0, _ := p.link.stats()
			start := time.Now()
			c := setup()
			echo(c)
			took := time.Since(start)
			sent1, _ := p.link.stats()
			_ = c.Close()
			time.Sleep(time.Second)
			return took, sent1 - sent0
		}
		direct := func() net.Conn {
			c, err := p.a.ConnectTo(context.Background(), "b", 5*time.Second, "echo")
			if err != nil {
				t.Fatal(err)
			}
			return c
		}
		srv := quic.NewWithPacketConns(quic.Config{}, p.link.listen)
		defer srv.Close()
		l, err := srv.Listen(context.Background(), "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				go func() {
					defer c.Close()
					_, _ = io.Copy(c, c)
				}()
			}
		}()
		cli := quic.NewWithPacketConns(quic.Config{}, p.link.listen)
		defer cli.Close()
		warm, err := cli.Dial(context.Background(), l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		echo(warm)
		time.Sleep(time.Second)
		confirmed := func() net.Conn {
			c, err := cli.Dial(context.Background(), l.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			echo(c) // the request and its answer
			return c
		}
		// Which goroutine runs first at one virtual instant is not fixed,
		// and decides now and then whether an ACK rides with the data or
		// goes alone: compare the fewest datagrams over a few set-ups.
		minDirect, minRaw := 1<<30, 1<<30
		for i := range 5 {
			dTook, dSent := measure(direct)
			cTook, cSent := measure(confirmed)
			t.Logf("set-up %d: direct data stream + echo %v, %d datagrams; raw confirmed stream + echo %v, %d datagrams", i, dTook, dSent, cTook, cSent)
			if dTook != 4*vDelay || cTook != 4*vDelay {
				t.Fatalf("set-up %d: direct data stream %v, raw confirmed stream %v; want both exactly %v", i, dTook, cTook, 4*vDelay)
			}
			minDirect, minRaw = min(minDirect, dSent), min(minRaw, cSent)
		}
		if minDirect > minRaw {
			t.Fatalf("a direct data stream and echo took at least %d datagrams, a raw confirmed stream %d", minDirect, minRaw)
		}
		_ = warm.Close()
		_ = cli.Close()
		_ = srv.Close()
		p.close()
	})
}
