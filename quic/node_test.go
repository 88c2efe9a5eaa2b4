package quic_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aemp-go/dataconn/core/wire"
	"github.com/aemp-go/dataconn/quic"
	"github.com/aemp-go/dataconn/tcp"
	"github.com/aemp-go/dataconn/transport"
	"github.com/aemp-go/dataconn/transport/testca"
)

// The data-connection suite over QUIC, through transport.Node, on
// loopback.

// testTimeout bounds every wait in these tests.
const testTimeout = 20 * time.Second

var testSecret = []byte("quic node suite secret")

func testCtx(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

func quietLog() *slog.Logger { return slog.New(slog.DiscardHandler) }

// newNode makes a node with the shared secret (changed by mod) that is
// closed at the end of the test.
func newNode(t *testing.T, id string, mod func(*transport.Config)) *transport.Node {
	t.Helper()
	cfg := transport.Config{NodeID: id, Secret: testSecret, Logger: quietLog()}
	if mod != nil {
		mod(&cfg)
	}
	n, err := transport.NewNode(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close() })
	return n
}

// newNet returns a QUIC Network closed at the end of the test, before the
// nodes made earlier (Node.Close waits for running init functions, which
// return once their streams die).
func newNet(t *testing.T, cfg quic.Config) *quic.Network {
	t.Helper()
	nw := quic.New(cfg)
	t.Cleanup(func() { _ = nw.Close() })
	return nw
}

// quicNode makes a node listening on QUIC on a loopback port and returns
// it with its Network and announced address.
func quicNode(t *testing.T, id string, qcfg quic.Config, mod func(*transport.Config)) (*transport.Node, *quic.Network, string) {
	t.Helper()
	n := newNode(t, id, mod)
	nw := newNet(t, qcfg)
	addr, err := n.Listen(testCtx(t), nw, "127.0.0.1:0")
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	if !strings.HasPrefix(addr, "quic://127.0.0.1:") {
		t.Fatalf("announced address %q, want quic://127.0.0.1:PORT", addr)
	}
	return n, nw, addr
}

// dialNode makes a node without listeners that dials over a QUIC Network.
func dialNode(t *testing.T, id string, qcfg quic.Config, mod func(*transport.Config)) (*transport.Node, *quic.Network) {
	t.Helper()
	n := newNode(t, id, mod)
	nw := newNet(t, qcfg)
	n.AddNetwork(nw)
	return n, nw
}

// sink is an init function: it hashes everything it receives, checks the
// hash against the one the initiator put in the init data (if any),
// answers with the hash and closes.
type sink struct {
	calls      atomic.Int32
	mismatches atomic.Int32
	done       chan error
}

func newSink() *sink { return &sink{done: make(chan error, 2048)} }

func (s *sink) init(_ string, data []any, c net.Conn) {
	s.calls.Add(1)
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(testTimeout))
	h := sha256.New()
	_, err := io.Copy(h, c)
	sum := h.Sum(nil)
	if err == nil {
		if len(data) == 0 {
			s.mismatches.Add(1)
		} else if want, ok := data[0].(string); ok && want != "" && want != hex.EncodeToString(sum) {
			s.mismatches.Add(1)
		}
		_, err = c.Write(sum)
	}
	select {
	case s.done <- err:
	default:
	}
}

// wait returns the result of the next init call.
func (s *sink) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-s.done:
		return err
	case <-time.After(testTimeout):
		t.Fatal("init function did not finish")
	}
	return nil
}

func sumHex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func payloadOf(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// exchange sends payload, half-closes, and checks that the far end
// answers with its SHA-256.
func exchange(c net.Conn, payload []byte) error {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(testTimeout))
	if _, err := c.Write(payload); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	cw, ok := c.(transport.CloseWriter)
	if !ok {
		return fmt.Errorf("%T cannot half-close", c)
	}
	if err := cw.CloseWrite(); err != nil {
		return fmt.Errorf("CloseWrite: %w", err)
	}
	got, err := io.ReadAll(c)
	if err != nil {
		return fmt.Errorf("read: %w", err)
	}
	want := sha256.Sum256(payload)
	if !bytes.Equal(got, want[:]) {
		return fmt.Errorf("far end hashed %x, want %x", got, want)
	}
	return nil
}

func sendAndCheck(t *testing.T, c net.Conn, payload []byte) {
	t.Helper()
	if err := exchange(c, payload); err != nil {
		t.Fatal(err)
	}
}

// streamOf returns the QUIC stream under a data connection, unwrapping
// the buffer of bytes that arrived with the handshake.
func streamOf(c net.Conn) (*quic.Stream, bool) {
	for range 4 {
		switch v := c.(type) {
		case *quic.Stream:
			return v, true
		case interface{ Unwrap() net.Conn }:
			c = v.Unwrap()
		default:
			return nil, false
		}
	}
	return nil, false
}

func hostPort(announced string) string {
	_, a := transport.SplitAddr(announced)
	return a
}

// ---- success ----

func TestNodeDataConnHMAC(t *testing.T) {
	checkLeaks(t)
	a, aNet := dialNode(t, "a", quic.Config{}, nil)
	b, _, bAddr := quicNode(t, "b", quic.Config{}, nil)
	a.AddPeer("b", bAddr)
	s := newSink()
	b.HandleDataConn("test::sink", s.init)

	payload := payloadOf(1, 1<<20)
	c, err := a.ConnectTo(testCtx(t), "b", 10*time.Second, "test::sink", sumHex(payload))
	if err != nil {
		t.Fatalf("ConnectTo: %v", err)
	}
	st, ok := streamOf(c)
	if !ok {
		t.Fatalf("data connection is a %T, want a *quic.Stream (possibly behind the pending-bytes wrapper)", c)
	}
	if c.RemoteAddr().Network() != "udp" || c.RemoteAddr().String() != hostPort(bAddr) {
		t.Fatalf("RemoteAddr %s %s, want udp %s", c.RemoteAddr().Network(), c.RemoteAddr(), hostPort(bAddr))
	}
	if _, ok := aNet.TLSState(st); ok {
		t.Fatal("TLSState ok without a TLS configuration: tls_* methods would be offered on throw-away certificates")
	}
	sendAndCheck(t, c, payload)
	if err := s.wait(t); err != nil {
		t.Fatalf("init function: %v", err)
	}
	if s.calls.Load() != 1 || s.mismatches.Load() != 0 {
		t.Fatalf("init calls %d, hash mismatches at the target %d", s.calls.Load(), s.mismatches.Load())
	}
}

func TestNodeDataConnTLS(t *testing.T) {
	checkLeaks(t)
	ca, err := testca.New("quic node CA")
	if err != nil {
		t.Fatal(err)
	}
	aTLS, bTLS := issue(t, ca, "a"), issue(t, ca, "b")

	t.Run("QUIC TLS, no secret: chanauth (no auth lines)", func(t *testing.T) {
		noSecret := func(tc *transport.TLSConfig) func(*transport.Config) {
			return func(c *transport.Config) { c.Secret = nil; c.TLS = tc }
		}
		a, aNet := dialNode(t, "a", quic.Config{TLS: aTLS}, noSecret(aTLS))
		b, _, bAddr := quicNode(t, "b", quic.Config{TLS: bTLS}, noSecret(bTLS))
		a.AddPeer("b", bAddr)
		s := newSink()
		b.HandleDataConn("test::sink", s.init)
		payload := payloadOf(2, 256<<10)
		c, err := a.ConnectTo(testCtx(t), "b", 10*time.Second, "test::sink", sumHex(payload))
		if err != nil {
			t.Fatalf("ConnectTo: %v", err)
		}
		// No second TLS layer: the data connection is the QUIC stream,
		// and its connection verified the peer's certificate.
		st, ok := streamOf(c)
		if !ok {
			t.Fatalf("data connection is a %T, want the QUIC stream itself", c)
		}
		cs, ok := aNet.TLSState(st)
		if !ok || len(cs.PeerCertificates) == 0 || cs.PeerCertificates[0].Subject.CommonName != "b" {
			t.Fatalf("TLSState ok=%v, want the verified certificate of b", ok)
		}
		sendAndCheck(t, c, payload)
		if err := s.wait(t); err != nil || s.calls.Load() != 1 || s.mismatches.Load() != 0 {
			t.Fatalf("init: %v, calls %d, mismatches %d", err, s.calls.Load(), s.mismatches.Load())
		}
	})

	t.Run("node TLS over throw-away QUIC certificates: TLS inside the stream", func(t *testing.T) {
		withTLS := func(tc *transport.TLSConfig) func(*transport.Config) {
			return func(c *transport.Config) { c.Secret = nil; c.TLS = tc }
		}
		a, _ := dialNode(t, "a", quic.Config{}, withTLS(aTLS))
		b, _, bAddr := quicNode(t, "b", quic.Config{}, withTLS(bTLS))
		a.AddPeer("b", bAddr)
		s := newSink()
		b.HandleDataConn("test::sink", s.init)
		payload := payloadOf(3, 64<<10)
		c, err := a.ConnectTo(testCtx(t), "b", 10*time.Second, "test::sink", sumHex(payload))
		if err != nil {
			t.Fatalf("ConnectTo: %v", err)
		}
		tc, ok := c.(*tls.Conn)
		if !ok {
			t.Fatalf("data connection is a %T, want a *tls.Conn: QUIC reported no verified TLS state, so the node must start its own", c)
		}
		if cs := tc.ConnectionState(); len(cs.PeerCertificates) == 0 || cs.PeerCertificates[0].Subject.CommonName != "b" {
			t.Fatal("inner TLS session did not verify b's certificate")
		}
		sendAndCheck(t, c, payload)
		if err := s.wait(t); err != nil || s.calls.Load() != 1 {
			t.Fatalf("init: %v, calls %d", err, s.calls.Load())
		}
	})
}

func issue(t *testing.T, ca *testca.CA, id string) *transport.TLSConfig {
	t.Helper()
	tc, err := ca.Issue(id, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return tc
}

// ---- failures ----

// deadUDPAddr returns a loopback UDP address nothing listens on.
func deadUDPAddr(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := pc.LocalAddr().String()
	_ = pc.Close()
	return a
}

// TestNodeDataConnFailures: every way a data connection over QUIC can
// fail ends in a *transport.DataConnError of the family
// AnyEvent::MP::DataConn, within the set-up timeout, with the init
// function never called.
func TestNodeDataConnFailures(t *testing.T) {
	checkLeaks(t)
	ca, err := testca.New("good CA")
	if err != nil {
		t.Fatal(err)
	}
	other, err := testca.New("other CA")
	if err != nil {
		t.Fatal(err)
	}
	const timeout = 2 * time.Second
	const earlyHold = time.Second
	type setup struct {
		aQUIC, bQUIC quic.Config
		aMod, bMod   func(*transport.Config)
		// addr returns the address a is given for b (default: b's own).
		addr func(t *testing.T, bAddr string) string
		// initFunc is the function a asks for (default: the one b has).
		initFunc string
	}
	certOnly := func(tc *transport.TLSConfig) func(*transport.Config) {
		return func(c *transport.Config) { c.Secret = nil; c.TLS = tc }
	}
	aTLS, bTLS := issue(t, ca, "a"), issue(t, other, "b")
	cases := []struct {
		name  string
		setup setup
		rule  error
		text  []string // substrings of the error text, any of
	}{
		{
			name:  "wrong secret",
			setup: setup{bMod: func(c *transport.Config) { c.Secret = []byte("another secret") }},
			rule:  transport.ErrDataConnFailed,
			text:  []string{"authentication failure/shared secret mismatch"},
		},
		{
			name:  "wrong CA",
			setup: setup{aQUIC: quic.Config{TLS: aTLS}, bQUIC: quic.Config{TLS: bTLS}, aMod: certOnly(aTLS), bMod: certOnly(bTLS)},
			rule:  transport.ErrDataConnFailed,
			text:  []string{"certificate"},
		},
		{
			name: "no listener on the UDP port",
			setup: setup{addr: func(t *testing.T, _ string) string {
				return "quic://" + deadUDPAddr(t)
			}},
			rule: transport.ErrDataConnTimeout,
			text: []string{"unable to establish connection within 2 seconds"},
		},
		{
			// A QUIC endpoint that is not an AEMP node: it completes the
			// QUIC handshake and closes every stream at once.
			name: "peer closes the streams",
			setup: setup{addr: func(t *testing.T, _ string) string {
				nw := newNet(t, quic.Config{})
				l, err := nw.Listen(testCtx(t), "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				go func() {
					for range 100 {
						c, err := l.Accept()
						if err != nil {
							return
						}
						_ = c.Close()
					}
				}()
				return "quic://" + l.Addr().String()
			}},
			rule: transport.ErrDataConnFailed,
			text: []string{"connection closed by peer during handshake"},
		},
		{
			// The QUIC connection and the messaging connection are fine;
			// the target has no such init function.
			name:  "unknown init function",
			setup: setup{initFunc: "test::missing"},
			rule:  transport.ErrDataConnKilled,
			text:  []string{`no init function "test::missing"`},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a, _ := dialNode(t, "a", tc.setup.aQUIC, tc.setup.aMod)
			b, _, bAddr := quicNode(t, "b", tc.setup.bQUIC, func(c *transport.Config) {
				c.DataConn.EarlyHold = earlyHold
				if tc.setup.bMod != nil {
					tc.setup.bMod(c)
				}
			})
			if tc.setup.addr != nil {
				bAddr = tc.setup.addr(t, bAddr)
			}
			a.AddPeer("b", bAddr)
			var called atomic.Int32
			b.HandleDataConn("test::init", func(_ string, _ []any, c net.Conn) { called.Add(1); c.Close() })

			initFunc := "test::init"
			if tc.setup.initFunc != "" {
				initFunc = tc.setup.initFunc
			}
			start := time.Now()
			c, err := a.ConnectTo(testCtx(t), "b", timeout, initFunc)
			took := time.Since(start)
			if err == nil {
				c.Close()
				t.Fatal("ConnectTo succeeded")
			}
			var de *transport.DataConnError
			if !errors.As(err, &de) {
				t.Fatalf("error %T %v, want a *transport.DataConnError", err, err)
			}
			if !errors.Is(err, tc.rule) {
				t.Fatalf("error %q matches the wrong rule, want %v", err, tc.rule)
			}
			if de.Node != "b" || de.Reason.Family != wire.KillReasonDataConn || !strings.HasPrefix(err.Error(), "b: ") {
				t.Fatalf("node %q family %q text %q", de.Node, de.Reason.Family, err)
			}
			if !slices.ContainsFunc(tc.text, func(s string) bool { return strings.Contains(err.Error(), s) }) {
				t.Fatalf("error %q names none of %q", err, tc.text)
			}
			if took > timeout+time.Second {
				t.Fatalf("failure took %v, timeout %v", took, timeout)
			}
			t.Logf("failed after %v: %v", took.Round(time.Millisecond), err)
			// No fixed "nothing arrived" window: a late stream shows up in
			// b's pending counts, and the init function is checked once b
			// holds nothing any more (below).
			if o, e, h := a.DataConns().Pending(); o+e+h != 0 {
				t.Fatalf("a still holds %d outgoing, %d expectations, %d early streams", o, e, h)
			}
			// b may still hold the stream a dialed in parallel with its
			// refused expectation (the fast flow), until EarlyHold.
			held := time.Now()
			for {
				o, e, h := b.DataConns().Pending()
				if o+e+h == 0 {
					break
				}
				if time.Since(held) > earlyHold+2*time.Second {
					t.Fatalf("b still holds %d outgoing, %d expectations, %d early streams", o, e, h)
				}
				time.Sleep(10 * time.Millisecond)
			}
			if d := time.Since(held); d > 50*time.Millisecond {
				t.Logf("b released what it held after %v", d.Round(time.Millisecond))
			}
			if n := called.Load(); n != 0 {
				t.Fatalf("init function ran %d times", n)
			}
		})
	}
}

// udpRelay forwards datagrams between one client and a target until cut,
// after which it drops everything both ways: the target vanishes without a
// word, as in a crash or a cable pulled.
type udpRelay struct {
	front, back *net.UDPConn
	cut         atomic.Bool
	cutBack     atomic.Bool // drops only what the target sends
	client      atomic.Pointer[net.UDPAddr]
	wg          sync.WaitGroup
}

// maxRelayPackets bounds each direction of a relay.
const maxRelayPackets = 1 << 22

func newRelay(t *testing.T, target string) *udpRelay {
	t.Helper()
	ta, err := net.ResolveUDPAddr("udp", target)
	if err != nil {
		t.Fatal(err)
	}
	front, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	back, err := net.DialUDP("udp", nil, ta)
	if err != nil {
		_ = front.Close()
		t.Fatal(err)
	}
	// Room for QUIC's bursts, as far as the system allows (best effort).
	for _, c := range []*net.UDPConn{front, back} {
		_ = c.SetReadBuffer(4 << 20)
		_ = c.SetWriteBuffer(4 << 20)
	}
	r := &udpRelay{front: front, back: back}
	r.wg.Add(2)
	go func() {
		defer r.wg.Done()
		buf := make([]byte, 1<<16)
		for range maxRelayPackets {
			n, from, err := front.ReadFromUDP(buf)
			if err != nil {
				return
			}
			r.client.Store(from)
			if !r.cut.Load() {
				_, _ = back.Write(buf[:n])
			}
		}
	}()
	go func() {
		defer r.wg.Done()
		buf := make([]byte, 1<<16)
		for range maxRelayPackets {
			n, err := back.Read(buf)
			if err != nil {
				return
			}
			if to := r.client.Load(); to != nil && !r.cut.Load() && !r.cutBack.Load() {
				_, _ = front.WriteToUDP(buf[:n], to)
			}
		}
	}()
	t.Cleanup(func() {
		_ = front.Close()
		_ = back.Close()
		r.wg.Wait()
	})
	return r
}

// TestNodeDataConnPeerCrash: while a transfer runs, the target's Network
// is closed, or the target vanishes silently; both ends' I/O fails in
// bounded time instead of hanging.
func TestNodeDataConnPeerCrash(t *testing.T) {
	checkLeaks(t)
	qcfg := quic.Config{IdleTimeout: 1500 * time.Millisecond, KeepAlivePeriod: 150 * time.Millisecond}
	for _, mode := range []string{"network closed", "peer vanished"} {
		t.Run(mode, func(t *testing.T) {
			a, _ := dialNode(t, "a", qcfg, nil)
			b, bNet, bAddr := quicNode(t, "b", qcfg, nil)
			var relay *udpRelay
			if mode == "peer vanished" {
				relay = newRelay(t, hostPort(bAddr))
				bAddr = "quic://" + relay.front.LocalAddr().String()
			}
			a.AddPeer("b", bAddr)

			var received atomic.Int64
			targetErr := make(chan error, 1)
			b.HandleDataConn("test::drain", func(_ string, _ []any, c net.Conn) {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(testTimeout))
				buf := make([]byte, 32<<10)
				for range 1 << 20 {
					n, err := c.Read(buf)
					received.Add(int64(n))
					if err != nil {
						targetErr <- err
						return
					}
				}
				targetErr <- errors.New("drain loop bound reached")
			})
			c, err := a.ConnectTo(testCtx(t), "b", 10*time.Second, "test::drain")
			if err != nil {
				t.Fatalf("ConnectTo: %v", err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(testTimeout))
			initiatorErr := make(chan error, 1)
			go func() {
				chunk := make([]byte, 32<<10)
				for range 1 << 20 {
					if _, err := c.Write(chunk); err != nil {
						initiatorErr <- err
						return
					}
				}
				initiatorErr <- errors.New("write loop bound reached")
			}()
			// Mid-transfer: wait until 256 KiB went through.
			deadline := time.Now().Add(testTimeout)
			for received.Load() < 256<<10 {
				if time.Now().After(deadline) {
					t.Fatalf("transfer did not start (%d bytes in %v)", received.Load(), testTimeout)
				}
				select {
				case err := <-initiatorErr:
					t.Fatalf("initiator failed before the %s: %v", mode, err)
				case err := <-targetErr:
					t.Fatalf("target failed before the %s: %v", mode, err)
				case <-time.After(5 * time.Millisecond):
				}
			}
			start := time.Now()
			if relay != nil {
				relay.cut.Store(true)
			} else if err := bNet.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			bound := 10 * time.Second
			for name, ch := range map[string]chan error{"initiator": initiatorErr, "target": targetErr} {
				select {
				case err := <-ch:
					var qe *quic.Error
					if !errors.As(err, &qe) {
						t.Fatalf("%s: %T %v, want a *quic.Error", name, err, err)
					}
					want := quic.ErrConnectionLost
					if name == "target" && relay == nil {
						want = quic.ErrClosed // its own Network was closed
					}
					if !errors.Is(err, want) {
						t.Fatalf("%s: %v, want %v", name, err, want)
					}
					if relay != nil && !qe.Timeout() {
						t.Fatalf("%s: %v, want the idle timeout", name, err)
					}
					t.Logf("%s failed %v after the %s: %v", name, time.Since(start).Round(time.Millisecond), mode, err)
				case <-time.After(bound):
					t.Fatalf("%s still transferring %v after the %s", name, bound, mode)
				}
			}
			if relay != nil && time.Since(start) < qcfg.IdleTimeout/2 {
				t.Fatalf("a silent peer was detected after %v, before the idle timeout %v could expire", time.Since(start), qcfg.IdleTimeout)
			}
		})
	}
}

// TestNodeDataConnIdleTimeout: without QUIC keep-alives, and with the
// node's messaging keep-alives slower than the QUIC idle timeout, a quiet
// data connection is torn down after the idle timeout and both ends'
// Reads fail with a timeout; with keep-alives it survives several idle
// timeouts.
func TestNodeDataConnIdleTimeout(t *testing.T) {
	checkLeaks(t)
	const idle = time.Second
	slowNodeKeepAlive := func(c *transport.Config) { c.KeepAlive = time.Minute; c.PeerTimeout = 2 * time.Minute }
	for _, keepAlive := range []bool{false, true} {
		t.Run(fmt.Sprintf("keep-alives %v", keepAlive), func(t *testing.T) {
			qcfg := quic.Config{IdleTimeout: idle, KeepAlivePeriod: -1}
			if keepAlive {
				qcfg.KeepAlivePeriod = idle / 10
			}
			a, _ := dialNode(t, "a", qcfg, slowNodeKeepAlive)
			b, _, bAddr := quicNode(t, "b", qcfg, slowNodeKeepAlive)
			a.AddPeer("b", bAddr)
			far := make(chan net.Conn, 1)
			b.HandleDataConn("test::hold", func(_ string, _ []any, c net.Conn) { far <- c })
			c, err := a.ConnectTo(testCtx(t), "b", 5*time.Second, "test::hold")
			if err != nil {
				t.Fatalf("ConnectTo: %v", err)
			}
			defer c.Close()
			var s net.Conn
			select {
			case s = <-far:
				defer s.Close()
			case <-time.After(testTimeout):
				t.Fatal("init function not called")
			}
			quiet := time.Now()
			if keepAlive {
				time.Sleep(3 * idle)
				if err := pingPong(c, s); err != nil {
					t.Fatalf("data connection died although QUIC keep-alives ran: %v", err)
				}
				return
			}
			for name, conn := range map[string]net.Conn{"initiator": c, "target": s} {
				_ = conn.SetReadDeadline(time.Now().Add(testTimeout))
				_, err := conn.Read(make([]byte, 1))
				var ne net.Error
				if !errors.Is(err, quic.ErrConnectionLost) || !errors.As(err, &ne) || !ne.Timeout() {
					t.Fatalf("%s Read on a quiet connection = %v, want ErrConnectionLost by the idle timeout", name, err)
				}
			}
			if d := time.Since(quiet); d < idle/2 || d > idle+5*time.Second {
				t.Fatalf("idle connection closed after %v, idle timeout %v", d, idle)
			}
		})
	}
}

// pingPong writes a byte on c and reads it on s, then the other way.
func pingPong(c, s net.Conn) error {
	for _, p := range [][2]net.Conn{{c, s}, {s, c}} {
		_ = p[1].SetReadDeadline(time.Now().Add(testTimeout))
		if _, err := p[0].Write([]byte{'p'}); err != nil {
			return err
		}
		b := make([]byte, 1)
		if _, err := io.ReadFull(p[1], b); err != nil {
			return err
		}
	}
	return nil
}

// ---- scale ----

// TestNodeThousandDataConns opens 1,000 data connections at once between
// two nodes (1,000 streams on one QUIC connection); each carries its own
// payload, whose SHA-256 is checked at the target (against the init data)
// and at the initiator (against the target's answer).
func TestNodeThousandDataConns(t *testing.T) {
	checkLeaks(t)
	const conns = 1000
	const size = 8 << 10
	// Normally a few seconds; generous for a loaded machine under -race.
	const setupTimeout = 60 * time.Second
	// The default limits (256 concurrent handshakes per listener, 256
	// expectations and 16 early streams per peer) protect a node from a
	// flood; this test is a flood from a friend. On a loaded machine the
	// target may also take longer than the default EarlyHold (3 s) to
	// process a thousand expectations, and a stream held longer is refused.
	roomy := func(c *transport.Config) {
		c.MaxHandshakes = 2 * conns
		c.DataConn.MaxExpectPerPeer = 2 * conns
		c.DataConn.MaxEarlyPerPeer = 2 * conns
		c.DataConn.EarlyHold = setupTimeout
		c.HandshakeTimeout = setupTimeout
	}
	a, _ := dialNode(t, "a", quic.Config{}, roomy)
	b, _, bAddr := quicNode(t, "b", quic.Config{}, roomy)
	a.AddPeer("b", bAddr)
	s := newSink()
	b.HandleDataConn("test::sink", s.init)
	if err := a.Connect(testCtx(t), "b"); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	start := time.Now()
	errs := make(chan error, conns)
	var wg sync.WaitGroup
	for i := range conns {
		wg.Go(func() {
			payload := payloadOf(uint64(i), size)
			c, err := a.ConnectTo(ctx, "b", setupTimeout, "test::sink", sumHex(payload))
			if err != nil {
				errs <- fmt.Errorf("conn %d: ConnectTo: %w", i, err)
				return
			}
			if err := exchange(c, payload); err != nil {
				errs <- fmt.Errorf("conn %d: %w", i, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	var failed []error
	for err := range errs {
		failed = append(failed, err)
	}
	if len(failed) > 0 {
		t.Fatalf("%d of %d data connections failed; first: %v", len(failed), conns, failed[0])
	}
	t.Logf("%d concurrent data connections of %d KiB in %v", conns, size>>10, time.Since(start).Round(time.Millisecond))
	for i := range conns {
		if err := s.wait(t); err != nil {
			t.Fatalf("init function %d: %v", i, err)
		}
	}
	if n, m := s.calls.Load(), s.mismatches.Load(); n != conns || m != 0 {
		t.Fatalf("init ran %d times (want %d), %d hash mismatches at the target", n, conns, m)
	}
	for _, n := range []*transport.Node{a, b} {
		if o, e, h := n.DataConns().Pending(); o+e+h != 0 {
			t.Fatalf("%s still holds %d outgoing, %d expectations, %d early streams", n.ID(), o, e, h)
		}
	}
}

// ---- TCP and QUIC on one node ----

// TestNodeTCPAndQUIC: a node listening on TCP and QUIC at once announces
// both addresses; an initiator's Config.Prefer picks the network its data
// connections use.
func TestNodeTCPAndQUIC(t *testing.T) {
	checkLeaks(t)
	b := newNode(t, "b", nil)
	bQUIC := newNet(t, quic.Config{})
	quicAddr, err := b.Listen(testCtx(t), bQUIC, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tcpAddr, err := b.Listen(testCtx(t), tcp.New(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if got := b.Addrs(); !slices.Equal(got, []string{quicAddr, tcpAddr}) || strings.Contains(tcpAddr, "://") {
		t.Fatalf("announced %q, want [%s %s] (TCP without a scheme)", got, quicAddr, tcpAddr)
	}
	type seen struct{ network string }
	targetSaw := make(chan seen, 8)
	b.HandleDataConn("test::which", func(_ string, _ []any, c net.Conn) {
		targetSaw <- seen{c.LocalAddr().Network()}
		_, _ = io.Copy(c, c)
		_ = c.Close()
	})

	for _, tc := range []struct {
		prefer  string
		learn   string // how the initiator learns b's addresses
		network string // of the data connection's addresses
	}{
		{"quic", "AddPeer", "udp"},
		{"tcp", "AddPeer", "tcp"},
		{"quic", "Announce", "udp"},
		{"tcp", "Announce", "tcp"},
	} {
		t.Run(tc.prefer+" via "+tc.learn, func(t *testing.T) {
			id := "a-" + tc.prefer + "-" + strings.ToLower(tc.learn)
			a := newNode(t, id, func(c *transport.Config) {
				c.Prefer = []string{tc.prefer}
				// Dial the second address only if the first fails, not
				// also when it is merely slow (a loaded machine).
				c.DataConn.DialStagger = testTimeout
			})
			a.AddNetwork(tcp.New())
			a.AddNetwork(newNet(t, quic.Config{}))
			switch tc.learn {
			case "AddPeer":
				a.AddPeer("b", tcpAddr, quicAddr)
			case "Announce":
				// a knows one seed address; b announces all of its
				// listeners with g_slave on the messaging connection.
				seed := tcpAddr
				if tc.prefer == "tcp" {
					seed = quicAddr
				}
				if got, err := a.ConnectAddr(testCtx(t), seed); err != nil || got != "b" {
					t.Fatalf("ConnectAddr: %q, %v", got, err)
				}
				if err := b.Announce(id); err != nil {
					t.Fatal(err)
				}
				deadline := time.Now().Add(testTimeout)
				for len(a.PeerAddrs("b")) < 2 {
					if time.Now().After(deadline) {
						t.Fatalf("a learned only %q", a.PeerAddrs("b"))
					}
					time.Sleep(5 * time.Millisecond)
				}
			}
			if got := a.PeerAddrs("b"); len(got) != 2 || (got[0] == quicAddr) != (tc.prefer == "quic") {
				t.Fatalf("PeerAddrs %q: %s not first", got, tc.prefer)
			}
			c, err := a.ConnectTo(testCtx(t), "b", 10*time.Second, "test::which")
			if err != nil {
				t.Fatalf("ConnectTo: %v", err)
			}
			defer c.Close()
			if c.RemoteAddr().Network() != tc.network || c.LocalAddr().Network() != tc.network {
				t.Fatalf("data connection %s->%s over %s, want %s", c.LocalAddr(), c.RemoteAddr(), c.RemoteAddr().Network(), tc.network)
			}
			_, isQUIC := streamOf(c)
			if isQUIC != (tc.prefer == "quic") {
				t.Fatalf("data connection is a %T", c)
			}
			select {
			case s := <-targetSaw:
				if s.network != tc.network {
					t.Fatalf("target's end is on %s, want %s", s.network, tc.network)
				}
			case <-time.After(testTimeout):
				t.Fatal("init function not called")
			}
			if err := echoed(c); err != nil {
				t.Fatalf("echo over the data connection: %v", err)
			}
		})
	}
}

// echoed writes a byte on c and reads it back from an echoing far end.
func echoed(c net.Conn) error {
	_ = c.SetReadDeadline(time.Now().Add(testTimeout))
	if _, err := c.Write([]byte{'e'}); err != nil {
		return err
	}
	b := make([]byte, 1)
	if _, err := io.ReadFull(c, b); err != nil {
		return err
	}
	if b[0] != 'e' {
		return fmt.Errorf("echo %q, want %q", b, "e")
	}
	return nil
}

// ---- set-up time ----

// TestNodeWarmSetup measures on loopback how long a data connection takes
// to become usable (ConnectTo plus one 1-byte echo) with the messaging
// connection and QUIC connection already up, against the cold case, and
// checks that the warm set-up reuses the QUIC connection.
func TestNodeWarmSetup(t *testing.T) {
	checkLeaks(t)
	a, _ := dialNode(t, "a", quic.Config{}, nil)
	b, _, bAddr := quicNode(t, "b", quic.Config{}, nil)
	a.AddPeer("b", bAddr)
	b.HandleDataConn("test::echo", func(_ string, _ []any, c net.Conn) {
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(testTimeout))
		_, _ = io.Copy(c, c)
	})
	use := func() (time.Duration, net.Addr) {
		start := time.Now()
		c, err := a.ConnectTo(testCtx(t), "b", 10*time.Second, "test::echo")
		if err != nil {
			t.Fatalf("ConnectTo: %v", err)
		}
		defer c.Close()
		if err := echoed(c); err != nil {
			t.Fatal(err)
		}
		return time.Since(start), c.LocalAddr()
	}
	cold, coldLocal := use() // QUIC handshake, messaging handshake, data connection
	const n = 30
	warm := make([]time.Duration, n)
	for i := range warm {
		var local net.Addr
		warm[i], local = use()
		if local.String() != coldLocal.String() {
			t.Fatalf("warm data connection from %s, the cold one from %s: a new socket per connection", local, coldLocal)
		}
	}
	slices.Sort(warm)
	median := warm[n/2]
	t.Logf("loopback: cold (QUIC + messaging + data handshakes) %v; warm data connection median %v, min %v, max %v",
		cold.Round(time.Microsecond), median.Round(time.Microsecond), warm[0].Round(time.Microsecond), warm[n-1].Round(time.Microsecond))
	if median >= cold {
		t.Fatalf("warm set-up median %v is not faster than the cold set-up %v", median, cold)
	}
}

// ---- a man in the middle ----

// quicMITM terminates QUIC towards the dialer with its own throw-away
// certificate, opens a stream to target for every stream it accepts, and
// relays the bytes both ways, keeping a copy of what the dialer sent.
type quicMITM struct {
	addr    string
	streams atomic.Int32
	mu      sync.Mutex
	seen    bytes.Buffer
}

func (m *quicMITM) sawFromDialer() []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	return bytes.Clone(m.seen.Bytes())
}

func (m *quicMITM) Write(p []byte) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.seen.Len() < 8<<20 {
		m.seen.Write(p)
	}
	return len(p), nil
}

func newMITM(t *testing.T, target string) *quicMITM {
	t.Helper()
	front := newNet(t, quic.Config{})
	back := newNet(t, quic.Config{})
	l, err := front.Listen(testCtx(t), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := &quicMITM{addr: "quic://" + l.Addr().String()}
	ctx := testCtx(t)
	var wg sync.WaitGroup
	t.Cleanup(func() { _ = l.Close(); _ = front.Close(); _ = back.Close(); wg.Wait() })
	pipe := func(dst, src net.Conn, tap io.Writer) {
		defer wg.Done()
		_, _ = io.Copy(io.MultiWriter(dst, tap), src)
		_ = dst.(transport.CloseWriter).CloseWrite()
	}
	wg.Go(func() {
		for range 100 {
			s, err := l.Accept()
			if err != nil {
				return
			}
			m.streams.Add(1)
			d, err := back.Dial(ctx, target)
			if err != nil {
				_ = s.Close()
				continue
			}
			_ = s.SetDeadline(time.Now().Add(testTimeout))
			_ = d.SetDeadline(time.Now().Add(testTimeout))
			wg.Add(2)
			go pipe(d, s, m)
			go pipe(s, d, io.Discard)
		}
	})
	return m
}

// TestNodeQUICRelay: a man in the middle that terminates QUIC on both
// sides (possible when QUIC certificates are not verified) and relays the
// streams byte for byte. Between nodes of this project the channel-binding
// auth method covers each QUIC session's exporter, so the relayed
// handshake fails; a node that authenticates with plain hmac_sha3_512 (as
// with Perl nodes, or DisableChannelBinding) lets the relay through, and
// the relay then reads the data in clear. With QUIC certificates verified
// the relay cannot even complete QUIC.
func TestNodeQUICRelay(t *testing.T) {
	checkLeaks(t)
	ca, err := testca.New("relay test CA")
	if err != nil {
		t.Fatal(err)
	}
	aTLS, bTLS := issue(t, ca, "a"), issue(t, ca, "b")
	marker := []byte("the relay must not read this unless the peers let it")
	cases := []struct {
		name       string
		aQUIC      quic.Config
		bQUIC      quic.Config
		aMod, bMod func(*transport.Config)
		relayed    bool     // the data connection works through the relay
		text       []string // of the failure, any of
	}{
		{
			name: "throw-away certificates, hmac_sha3_512_cb",
			text: []string{"authentication failure"},
		},
		{
			name:    "throw-away certificates, initiator without channel binding",
			aMod:    func(c *transport.Config) { c.DisableChannelBinding = true },
			relayed: true,
		},
		{
			name:  "verified certificates",
			aQUIC: quic.Config{TLS: aTLS}, bQUIC: quic.Config{TLS: bTLS},
			aMod: func(c *transport.Config) { c.Secret = nil; c.TLS = aTLS },
			bMod: func(c *transport.Config) { c.Secret = nil; c.TLS = bTLS },
			text: []string{"certificate"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a, _ := dialNode(t, "a", tc.aQUIC, tc.aMod)
			b, _, bAddr := quicNode(t, "b", tc.bQUIC, tc.bMod)
			m := newMITM(t, hostPort(bAddr))
			a.AddPeer("b", m.addr)
			s := newSink()
			b.HandleDataConn("test::sink", s.init)
			c, err := a.ConnectTo(testCtx(t), "b", 3*time.Second, "test::sink", sumHex(marker))
			if tc.relayed {
				if err != nil {
					t.Fatalf("ConnectTo through the relay: %v", err)
				}
				sendAndCheck(t, c, marker)
				if err := s.wait(t); err != nil {
					t.Fatal(err)
				}
				if !bytes.Contains(m.sawFromDialer(), marker) {
					t.Fatal("the relay did not see the data in clear")
				}
				return
			}
			if err == nil {
				c.Close()
				t.Fatal("ConnectTo succeeded through a relay")
			}
			var de *transport.DataConnError
			if !errors.As(err, &de) || !errors.Is(err, transport.ErrDataConnFailed) {
				t.Fatalf("error %T %v, want a *transport.DataConnError (failed)", err, err)
			}
			if !slices.ContainsFunc(tc.text, func(s string) bool { return strings.Contains(err.Error(), s) }) {
				t.Fatalf("error %q names none of %q", err, tc.text)
			}
			t.Logf("relay refused: %v (streams the relay accepted: %d)", err, m.streams.Load())
			if n := s.calls.Load(); n != 0 {
				t.Fatalf("init function ran %d times", n)
			}
			if bytes.Contains(m.sawFromDialer(), marker) {
				t.Fatal("the relay saw the payload")
			}
		})
	}
}
