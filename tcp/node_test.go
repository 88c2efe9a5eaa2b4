package tcp_test

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aemp-go/dataconn/core/handshake"
	"github.com/aemp-go/dataconn/core/wire"
	"github.com/aemp-go/dataconn/tcp"
	"github.com/aemp-go/dataconn/transport"
	"github.com/aemp-go/dataconn/transport/testca"
)

// Data connections between transport.Nodes over real loopback sockets.

// testSecret is the shared secret of the nodes in these tests.
var testSecret = []byte("tcp node test secret")

// loopbacks are the listen addresses every success test runs on.
var loopbacks = []string{"127.0.0.1:0", "[::1]:0"}

// quiet is a logger that drops everything (the failure tests provoke
// warnings on purpose).
var quiet = slog.New(slog.DiscardHandler)

// dcTimeout bounds one data connection set-up in these tests.
const dcTimeout = 10 * time.Second

// startNode makes a node with the shared secret (mod may change its
// configuration), listening on addr over TCP; it is closed by t.Cleanup.
func startNode(t testing.TB, id, addr string, mod func(*transport.Config)) *transport.Node {
	t.Helper()
	cfg := transport.Config{NodeID: id, Secret: testSecret, Logger: quiet}
	if mod != nil {
		mod(&cfg)
	}
	n, err := transport.NewNode(cfg)
	if err != nil {
		t.Fatalf("NewNode(%s): %v", id, err)
	}
	t.Cleanup(func() { n.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), dcTimeout)
	defer cancel()
	if _, err := n.Listen(ctx, tcp.New(), addr); err != nil {
		t.Fatalf("Listen(%s): %v", addr, err)
	}
	return n
}

// linkNodes tells each node the listener addresses of the others.
func linkNodes(nodes ...*transport.Node) {
	for _, a := range nodes {
		for _, b := range nodes {
			if a != b {
				a.AddPeer(b.ID(), b.Addrs()...)
			}
		}
	}
}

// payload returns size deterministic pseudo-random bytes for seed.
func payload(seed uint64, size int) []byte {
	b := make([]byte, size)
	var key [32]byte
	key[0] = byte(seed)
	key[1] = byte(seed >> 8)
	key[2] = byte(seed >> 16)
	key[3] = byte(seed >> 24)
	rand.NewChaCha8(key).Read(b)
	return b
}

// initCall is what the init function saw of one data connection.
type initCall struct {
	from     string
	data     []any
	connType string
	n        int64
	sum      [32]byte
	err      error
}

// hashEcho is an init function that reads its stream to EOF, answers with
// the SHA-256 of what it read and records the call.
type hashEcho struct {
	calls   atomic.Int32
	started chan string   // the stream's dynamic type, as soon as called
	done    chan initCall // one per call, after the answer was written
}

func newHashEcho(capacity int) *hashEcho {
	return &hashEcho{started: make(chan string, capacity), done: make(chan initCall, capacity)}
}

func (h *hashEcho) init(from string, data []any, c net.Conn) {
	h.calls.Add(1)
	call := initCall{from: from, data: data, connType: fmt.Sprintf("%T", c)}
	h.started <- call.connType
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * dcTimeout))
	hs := sha256.New()
	call.n, call.err = io.Copy(hs, c)
	copy(call.sum[:], hs.Sum(nil))
	if call.err == nil {
		_, call.err = c.Write(call.sum[:])
	}
	h.done <- call
}

// exchange writes data to c, half-closes it and returns the SHA-256 the far
// end answered with.
func exchange(c net.Conn, data []byte) ([32]byte, error) {
	var sum [32]byte
	c.SetDeadline(time.Now().Add(2 * dcTimeout))
	if _, err := c.Write(data); err != nil {
		return sum, fmt.Errorf("write: %w", err)
	}
	cw, ok := c.(transport.CloseWriter)
	if !ok {
		return sum, fmt.Errorf("stream %T cannot half-close", c)
	}
	if err := cw.CloseWrite(); err != nil {
		return sum, fmt.Errorf("CloseWrite: %w", err)
	}
	if _, err := io.ReadFull(c, sum[:]); err != nil {
		return sum, fmt.Errorf("reading the answer: %w", err)
	}
	if n, err := c.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		return sum, fmt.Errorf("after the answer: %d bytes, %v; want EOF", n, err)
	}
	return sum, nil
}

// recvCall waits for the init function's record of one call.
func recvCall(t *testing.T, h *hashEcho) initCall {
	t.Helper()
	select {
	case c := <-h.done:
		return c
	case <-time.After(2 * dcTimeout):
		t.Fatal("init function did not finish")
		return initCall{}
	}
}

// checkDataConn opens a data connection from a to b's init function
// "test::hash", checks the dynamic types of both ends, moves 64 KiB and
// compares the SHA-256 on both ends.
func checkDataConn(t *testing.T, a, b *transport.Node, h *hashEcho, wantType string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), dcTimeout)
	defer cancel()
	c, err := a.ConnectTo(ctx, b.ID(), dcTimeout, "test::hash", "hello", int64(42))
	if err != nil {
		t.Fatalf("ConnectTo: %v", err)
	}
	defer c.Close()
	if got := fmt.Sprintf("%T", c); got != wantType {
		t.Errorf("ConnectTo returned %s, want %s (the bare stream keeps the kernel fast paths)", got, wantType)
	}
	// Write only once the init function runs, so that no byte of ours can
	// arrive with the handshake and be pending on the far side.
	select {
	case got := <-h.started:
		if got != wantType {
			t.Errorf("init function got %s, want %s", got, wantType)
		}
	case <-time.After(dcTimeout):
		t.Fatal("init function not called")
	}
	data := payload(1, 64<<10)
	sum, err := exchange(c, data)
	if err != nil {
		t.Fatal(err)
	}
	want := sha256.Sum256(data)
	if sum != want {
		t.Fatalf("far end hashed %x, want %x", sum, want)
	}
	call := recvCall(t, h)
	if call.err != nil || call.n != int64(len(data)) || call.sum != want {
		t.Fatalf("init function read %d bytes (%v), hash %x; want %d bytes, %x", call.n, call.err, call.sum, len(data), want)
	}
	if call.from != a.ID() || len(call.data) != 2 || call.data[0] != "hello" || call.data[1] != int64(42) {
		t.Fatalf("init function called from %q with %#v", call.from, call.data)
	}
}

// checkIdle fails unless n's rendezvous machine holds nothing.
func checkIdle(t *testing.T, n *transport.Node) {
	t.Helper()
	if o, e, h := n.DataConns().Pending(); o+e+h != 0 {
		t.Errorf("%s still holds %d outgoing, %d expectations, %d early streams", n.ID(), o, e, h)
	}
}

func TestDataConnHMAC(t *testing.T) {
	for _, addr := range loopbacks {
		t.Run(addr, func(t *testing.T) {
			needLoopback(t, addr)
			checkLeaks(t)
			a := startNode(t, "a", addr, nil)
			b := startNode(t, "b", addr, nil)
			linkNodes(a, b)
			h := newHashEcho(4)
			b.HandleDataConn("test::hash", h.init)
			// Cold (the messaging connection is opened on the way) and warm.
			for range 2 {
				checkDataConn(t, a, b, h, "*net.TCPConn")
			}
			checkIdle(t, a)
			checkIdle(t, b)
			if got := h.calls.Load(); got != 2 {
				t.Fatalf("init function called %d times, want 2", got)
			}
		})
	}
}

// testTLS returns configurations issued by one new CA for the given nodes.
func testTLS(t testing.TB, ids ...string) []*transport.TLSConfig {
	t.Helper()
	ca, err := testca.New("tcp test CA " + strings.Join(ids, ","))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	var out []*transport.TLSConfig
	for _, id := range ids {
		c, err := ca.Issue(id, now.Add(-time.Hour), now.Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
	return out
}

// tlsOnly returns a configuration change: TLS with cfg, no shared secret.
func tlsOnly(cfg *transport.TLSConfig, required bool) func(*transport.Config) {
	return func(c *transport.Config) {
		c.Secret = nil
		c.TLS = cfg
		c.TLSRequired = required
	}
}

func TestDataConnTLS(t *testing.T) {
	for _, addr := range loopbacks {
		t.Run(addr, func(t *testing.T) {
			needLoopback(t, addr)
			checkLeaks(t)
			certs := testTLS(t, "a", "b")
			a := startNode(t, "a", addr, tlsOnly(certs[0], true))
			b := startNode(t, "b", addr, tlsOnly(certs[1], false))
			linkNodes(a, b)
			h := newHashEcho(4)
			b.HandleDataConn("test::hash", h.init)
			for range 2 {
				checkDataConn(t, a, b, h, "*tls.Conn")
			}
			checkIdle(t, a)
			checkIdle(t, b)
		})
	}
}

// TestDataConnTLSState checks that a TLS data connection is mutually
// authenticated with the certificates the nodes were given.
func TestDataConnTLSState(t *testing.T) {
	checkLeaks(t)
	certs := testTLS(t, "a", "b")
	a := startNode(t, "a", "127.0.0.1:0", tlsOnly(certs[0], false))
	b := startNode(t, "b", "127.0.0.1:0", tlsOnly(certs[1], false))
	linkNodes(a, b)
	peerCN := make(chan string, 1)
	b.HandleDataConn("test::state", func(_ string, _ []any, c net.Conn) {
		defer c.Close()
		cn := fmt.Sprintf("stream %T", c)
		if tc, ok := c.(*tls.Conn); ok {
			if st := tc.ConnectionState(); len(st.PeerCertificates) > 0 {
				cn = st.PeerCertificates[0].Subject.CommonName
			}
		}
		peerCN <- cn
	})
	ctx, cancel := context.WithTimeout(context.Background(), dcTimeout)
	defer cancel()
	c, err := a.ConnectTo(ctx, "b", dcTimeout, "test::state")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tc, ok := c.(*tls.Conn)
	if !ok {
		t.Fatalf("ConnectTo returned %T, want *tls.Conn", c)
	}
	st := tc.ConnectionState()
	if !st.HandshakeComplete || len(st.PeerCertificates) == 0 || st.PeerCertificates[0].Subject.CommonName != "b" {
		t.Fatalf("initiator's TLS state: complete %v, peer certificates %d", st.HandshakeComplete, len(st.PeerCertificates))
	}
	select {
	case cn := <-peerCN:
		if cn != "a" {
			t.Fatalf("target saw peer certificate %q, want a", cn)
		}
	case <-time.After(dcTimeout):
		t.Fatal("init function not called")
	}
}

// fakeListener accepts connections, reads the peer's greeting (two lines)
// and closes them: a peer that goes away in the middle of the handshake.
// It reports the number of greetings it read.
func fakeListener(t *testing.T) (addr string, greetings func() int) {
	t.Helper()
	l, err := tcp.New().Listen(context.Background(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var n atomic.Int32
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range 100 { // bounded: a test dials it a few times at most
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.SetDeadline(time.Now().Add(dcTimeout))
			var got []byte
			buf := make([]byte, 512)
			for strings.Count(string(got), "\n") < 2 && len(got) < 2*wire.MaxLineLen {
				k, err := c.Read(buf)
				got = append(got, buf[:k]...)
				if err != nil {
					break
				}
			}
			if strings.Count(string(got), "\n") >= 2 && strings.HasPrefix(string(got), "aemp") {
				n.Add(1)
			}
			c.Close()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		wg.Wait()
	})
	return l.Addr().String(), func() int { return int(n.Load()) }
}

// closedAddr returns a loopback address on which nothing listens.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := tcp.New().Listen(context.Background(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// wantDataConnError checks the shape every failed ConnectTo must have.
func wantDataConnError(t *testing.T, c net.Conn, err error, target string, rules ...error) *transport.DataConnError {
	t.Helper()
	if err == nil {
		c.Close()
		t.Fatal("ConnectTo succeeded")
	}
	if c != nil {
		t.Errorf("ConnectTo returned a stream (%T) with its error", c)
	}
	var de *transport.DataConnError
	if !errors.As(err, &de) {
		t.Fatalf("error %T (%v) is not a *transport.DataConnError", err, err)
	}
	if de.Node != target || de.Reason == nil || de.Reason.Family != wire.KillReasonDataConn {
		t.Fatalf("error for node %q with reason %#v", de.Node, de.Reason)
	}
	if !strings.HasPrefix(err.Error(), target+": ") {
		t.Errorf("error text %q does not start with the target's ID", err)
	}
	for _, r := range rules {
		if !errors.Is(err, r) {
			t.Errorf("error %q: errors.Is(err, %q) is false", err, r)
		}
	}
	return de
}

func TestDataConnFailures(t *testing.T) {
	certs := testTLS(t, "a", "b")
	otherCA := testTLS(t, "b")
	cases := []struct {
		name string
		a, b func(*transport.Config) // nil b: no node b at all
		// peerAddr, if set, replaces b's address as a knows it.
		peerAddr func(t *testing.T) string
		rules    []error
		text     string // the error text must contain it
		fake     bool   // b's address is a listener that hangs up after the greeting
	}{
		{
			name:  "wrong secret",
			b:     func(c *transport.Config) { c.Secret = []byte("another secret") },
			rules: []error{transport.ErrDataConnFailed, handshake.ErrAuthFailed},
			text:  "authentication",
		},
		{
			name:  "wrong CA",
			a:     tlsOnly(certs[0], false),
			b:     tlsOnly(otherCA[0], false),
			rules: []error{transport.ErrDataConnFailed, transport.ErrTLSCertificate},
			text:  "TLS",
		},
		{
			name:  "TLS required, peer without TLS",
			a:     func(c *transport.Config) { c.TLS, c.TLSRequired = certs[0], true },
			b:     func(c *transport.Config) {},
			rules: []error{transport.ErrDataConnFailed, handshake.ErrTLSRequired},
			text:  "TLS",
		},
		{
			name:     "peer refused",
			peerAddr: closedAddr,
			rules:    []error{transport.ErrDataConnFailed},
			text:     "refused",
		},
		{
			name:  "peer gone mid-handshake",
			fake:  true,
			rules: []error{transport.ErrDataConnFailed, handshake.ErrPeerClosed},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			checkLeaks(t)
			a := startNode(t, "a", "127.0.0.1:0", tc.a)
			h := newHashEcho(1)
			var b *transport.Node
			if tc.b != nil {
				b = startNode(t, "b", "127.0.0.1:0", tc.b)
				b.HandleDataConn("test::hash", h.init)
				linkNodes(a, b)
			}
			if tc.peerAddr != nil {
				a.AddPeer("b", tc.peerAddr(t))
			}
			greetings := func() int { return -1 }
			if tc.fake {
				var addr string
				addr, greetings = fakeListener(t)
				a.AddPeer("b", addr)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*dcTimeout)
			defer cancel()
			start := time.Now()
			c, err := a.ConnectTo(ctx, "b", dcTimeout, "test::hash")
			if time.Since(start) >= dcTimeout {
				t.Errorf("failure took %v: reported by the timeout, not by the cause", time.Since(start))
			}
			wantDataConnError(t, c, err, "b", tc.rules...)
			if !strings.Contains(err.Error(), tc.text) {
				t.Errorf("error %q does not mention %q", err, tc.text)
			}
			t.Logf("error: %v", err)
			if tc.fake && greetings() == 0 {
				t.Error("the fake listener never read a greeting")
			}
			a.Close()
			if b != nil {
				b.Close() // waits for init functions
				if n := h.calls.Load(); n != 0 {
					t.Fatalf("init function ran %d times", n)
				}
			}
		})
	}
}

// TestDataConnTLSRequiredByTarget is the reverse of the TLS-required case:
// the initiator has no TLS and the target refuses it.
func TestDataConnTLSRequiredByTarget(t *testing.T) {
	checkLeaks(t)
	certs := testTLS(t, "b")
	a := startNode(t, "a", "127.0.0.1:0", nil)
	logs := &errLog{}
	b := startNode(t, "b", "127.0.0.1:0", func(c *transport.Config) {
		c.TLS, c.TLSRequired = certs[0], true
		c.Logger = slog.New(logs)
	})
	linkNodes(a, b)
	h := newHashEcho(1)
	b.HandleDataConn("test::hash", h.init)
	ctx, cancel := context.WithTimeout(context.Background(), 2*dcTimeout)
	defer cancel()
	start := time.Now()
	c, err := a.ConnectTo(ctx, "b", dcTimeout, "test::hash")
	// b refuses by closing (the protocol has no refusal line): a sees the
	// peer close mid-handshake, at once rather than at the timeout, and b
	// logs the rule it applied.
	if d := time.Since(start); d >= dcTimeout {
		t.Errorf("failure took %v: reported by the timeout, not by the refusal", d)
	}
	wantDataConnError(t, c, err, "b", transport.ErrDataConnFailed, handshake.ErrPeerClosed)
	a.Close()
	b.Close()
	if !logs.has(handshake.ErrTLSRequired) {
		t.Errorf("b logged %v, want a refusal for handshake.ErrTLSRequired", logs.all())
	}
	if n := h.calls.Load(); n != 0 {
		t.Fatalf("init function ran %d times", n)
	}
}

// errLog is a slog.Handler that keeps the "err" attributes logged.
type errLog struct {
	mu   sync.Mutex
	errs []error
}

func (l *errLog) Enabled(context.Context, slog.Level) bool { return true }
func (l *errLog) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *errLog) WithGroup(string) slog.Handler            { return l }
func (l *errLog) Handle(_ context.Context, r slog.Record) error {
	r.Attrs(func(a slog.Attr) bool {
		if err, ok := a.Value.Any().(error); ok && a.Key == "err" {
			l.mu.Lock()
			l.errs = append(l.errs, err)
			l.mu.Unlock()
		}
		return true
	})
	return nil
}

func (l *errLog) all() []error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]error(nil), l.errs...)
}

func (l *errLog) has(rule error) bool {
	for _, e := range l.all() {
		if errors.Is(e, rule) {
			return true
		}
	}
	return false
}

// TestDataConnGoneMidHandshake covers a data connection (not the messaging
// connection) whose peer goes away during the handshake: b's messaging
// connection to a works, but the address a knows for b is a listener that
// closes every connection after the greeting.
func TestDataConnGoneMidHandshake(t *testing.T) {
	checkLeaks(t)
	fake, greetings := fakeListener(t)
	a := startNode(t, "a", "127.0.0.1:0", nil)
	b := startNode(t, "b", "127.0.0.1:0", nil)
	h := newHashEcho(1)
	b.HandleDataConn("test::hash", h.init)
	b.AddPeer("a", a.Addrs()...)
	a.AddPeer("b", fake)
	ctx, cancel := context.WithTimeout(context.Background(), 2*dcTimeout)
	defer cancel()
	if err := b.Connect(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(dcTimeout)
	for len(a.Peers()) == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if p := a.Peers(); len(p) != 1 || p[0] != "b" {
		t.Fatalf("a's peers: %v", p)
	}
	start := time.Now()
	c, err := a.ConnectTo(ctx, "b", dcTimeout, "test::hash")
	if time.Since(start) >= dcTimeout {
		t.Errorf("failure took %v: reported by the timeout, not by the cause", time.Since(start))
	}
	wantDataConnError(t, c, err, "b", transport.ErrDataConnFailed, handshake.ErrPeerClosed)
	t.Logf("error: %v", err)
	if greetings() == 0 {
		t.Error("the fake listener never read a greeting")
	}
	a.Close()
	b.Close()
	if n := h.calls.Load(); n != 0 {
		t.Fatalf("init function ran %d times", n)
	}
}

// TestDataConnThousand opens 1,000 data connections between two nodes
// (concurrently, at most dcParallel at a time) and checks that each one
// delivers its own 64 KiB intact, by SHA-256 on both ends.
func TestDataConnThousand(t *testing.T) {
	const (
		conns      = 1000
		size       = 64 << 10
		dcParallel = 100
	)
	checkLeaks(t)
	a := startNode(t, "a", "127.0.0.1:0", nil)
	b := startNode(t, "b", "127.0.0.1:0", nil)
	linkNodes(a, b)
	h := newHashEcho(conns)
	b.HandleDataConn("test::hash", h.init)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	sums := make([][32]byte, conns)
	errs := make(chan error, conns)
	sem := make(chan struct{}, dcParallel)
	var wg sync.WaitGroup
	for i := range conns {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			data := payload(uint64(i), size)
			sums[i] = sha256.Sum256(data)
			c, err := a.ConnectTo(ctx, "b", 30*time.Second, "test::hash", int64(i))
			if err != nil {
				errs <- fmt.Errorf("connection %d: %w", i, err)
				return
			}
			defer c.Close()
			got, err := exchange(c, data)
			if err != nil {
				errs <- fmt.Errorf("connection %d: %w", i, err)
				return
			}
			if got != sums[i] {
				errs <- fmt.Errorf("connection %d: far end hashed %x, want %x", i, got, sums[i])
			}
		}()
	}
	wg.Wait()
	close(errs)
	failed := 0
	for err := range errs {
		if failed < 10 {
			t.Error(err)
		}
		failed++
	}
	if failed > 0 {
		t.Fatalf("%d of %d connections failed", failed, conns)
	}
	seen := make([]bool, conns)
	for range conns {
		call := recvCall(t, h)
		i, ok := call.data[0].(int64)
		if len(call.data) != 1 || !ok || i < 0 || i >= conns || seen[i] {
			t.Fatalf("init function called with %#v", call.data)
		}
		seen[i] = true
		if call.err != nil || call.n != size || call.sum != sums[i] {
			t.Fatalf("connection %d: init function read %d bytes (%v), hash %x; want %d, %x", i, call.n, call.err, call.sum, size, sums[i])
		}
	}
	if n := h.calls.Load(); n != conns {
		t.Fatalf("init function called %d times, want %d", n, conns)
	}
	checkIdle(t, a)
	checkIdle(t, b)
}
