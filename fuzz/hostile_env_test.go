package fuzz

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"log/slog"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aemp-go/dataconn/core/handshake"
	"github.com/aemp-go/dataconn/tcp"
	"github.com/aemp-go/dataconn/transport"
)

var hostileSecret = []byte("hostile-s3cr3t")

// logCapture is a slog.Handler that keeps the "err" attribute of every
// record, so a test can assert which typed error a node reported for a
// connection it dropped.
type logCapture struct {
	mu   sync.Mutex
	errs []error
}

func (c *logCapture) Enabled(context.Context, slog.Level) bool { return true }

func (c *logCapture) Handle(_ context.Context, r slog.Record) error {
	r.Attrs(func(a slog.Attr) bool {
		if err, ok := a.Value.Any().(error); ok && a.Key == "err" {
			c.mu.Lock()
			if len(c.errs) < 100000 {
				c.errs = append(c.errs, err)
			}
			c.mu.Unlock()
		}
		return true
	})
	return nil
}

func (c *logCapture) WithAttrs([]slog.Attr) slog.Handler { return c }
func (c *logCapture) WithGroup(string) slog.Handler      { return c }

// find returns the first captured error matching rule.
func (c *logCapture) find(rule error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range c.errs {
		if errors.Is(e, rule) {
			return e
		}
	}
	return nil
}

// matching returns the logged errors whose text contains s.
func (c *logCapture) matching(s string) []error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []error
	for _, e := range c.errs {
		if strings.Contains(e.Error(), s) {
			out = append(out, e)
		}
	}
	return out
}

// count returns how many captured errors match rule.
func (c *logCapture) count(rule error) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, e := range c.errs {
		if errors.Is(e, rule) {
			n++
		}
	}
	return n
}

// wait polls until an error matching rule was logged, at most d.
func (c *logCapture) wait(t *testing.T, rule error, d time.Duration) error {
	t.Helper()
	c.waitN(t, rule, 1, d)
	return c.find(rule)
}

// waitN polls until n errors matching rule were logged, at most d.
func (c *logCapture) waitN(t *testing.T, rule error, n int, d time.Duration) {
	t.Helper()
	end := time.Now().Add(d)
	for c.count(rule) < n {
		if time.Now().After(end) {
			c.mu.Lock()
			got := append([]error(nil), c.errs...)
			c.mu.Unlock()
			t.Fatalf("%d logged errors match %v within %v, want %d; logged: %v", c.count(rule), rule, d, n, got)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// env is one hostile scenario: nodes on 127.0.0.1 and raw attacker
// connections, with the goroutine, descriptor and heap counts taken before
// it starts and checked after everything is closed.
type env struct {
	t     *testing.T
	nodes []*transport.Node
	conns []net.Conn
	mu    sync.Mutex

	goroutines int
	fds        int
	heap       uint64
	heapSlack  uint64
}

func openFDs(t *testing.T) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatalf("counting descriptors: %v", err)
	}
	return len(ents)
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// newEnv records the baseline. Call finish with defer right after.
func newEnv(t *testing.T) *env {
	e := &env{t: t, heapSlack: 8 << 20}
	warmUpNet(t)
	e.goroutines = runtime.NumGoroutine()
	e.fds = openFDs(t)
	e.heap = heapInUse()
	return e
}

// node starts a node listening on 127.0.0.1:0 over real TCP.
func (e *env) node(id string, mod func(*transport.Config)) (*transport.Node, string, *logCapture) {
	e.t.Helper()
	lc := &logCapture{}
	cfg := transport.Config{NodeID: id, Secret: hostileSecret, Logger: slog.New(lc)}
	if mod != nil {
		mod(&cfg)
	}
	n, err := transport.NewNode(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	e.nodes = append(e.nodes, n)
	addr, err := n.Listen(context.Background(), tcp.New(), "127.0.0.1:0")
	if err != nil {
		e.t.Fatal(err)
	}
	return n, addr, lc
}

// dial opens a raw TCP connection, closed by finish.
func (e *env) dial(addr string) net.Conn {
	e.t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		e.t.Fatal(err)
	}
	e.track(c)
	return c
}

func (e *env) track(c net.Conn) {
	e.mu.Lock()
	e.conns = append(e.conns, c)
	e.mu.Unlock()
}

// finish closes everything, then checks that goroutines and descriptors
// are back to the baseline (polling at most 10 s) and that the heap did
// not grow by more than heapSlack.
func (e *env) finish() {
	t := e.t
	e.mu.Lock()
	for _, c := range e.conns {
		c.Close()
	}
	e.conns = nil
	e.mu.Unlock()
	for _, n := range e.nodes {
		n.Close()
	}
	e.nodes = nil
	end := time.Now().Add(10 * time.Second)
	var g, f int
	for {
		// Splice pipes live in a sync.Pool and are closed by a finalizer
		// once collected: two GCs empty the pool.
		runtime.GC()
		runtime.GC()
		g, f = runtime.NumGoroutine(), openFDs(t)
		if g <= e.goroutines && f <= e.fds {
			break
		}
		if time.Now().After(end) {
			buf := make([]byte, 1<<16)
			buf = buf[:runtime.Stack(buf, true)]
			t.Errorf("leak: %d goroutines (before %d), %d descriptors (before %d): %v\n%s", g, e.goroutines, f, e.fds, fdTargets(), buf)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	if h := heapInUse(); h > e.heap+e.heapSlack {
		t.Errorf("heap grew from %d to %d bytes (allowed +%d)", e.heap, h, e.heapSlack)
	}
}

func nonceLine() string {
	b := make([]byte, 66)
	rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

// attackerHandshake runs an AEMP handshake as node id over conn, driven by
// the core machine, the way a hand-written peer would.
func attackerHandshake(conn net.Conn, cfg handshake.Config) (net.Conn, *handshake.Result, error) {
	if cfg.Timeout == 0 {
		cfg.Timeout = 5 * time.Second
	}
	m, err := handshake.New(cfg, nonceLine(), time.Now())
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return transport.Drive(ctx, conn, m, transport.DriveOptions{})
}

// expectEOF reads from c until EOF or a reset (the node dropped it),
// within d; data the node sent first is discarded and returned.
func expectEOF(t *testing.T, c net.Conn, d time.Duration) []byte {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(d))
	var got []byte
	buf := make([]byte, 4096)
	for len(got) < 1<<20 {
		n, err := c.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("connection not dropped within %v (read %q)", d, got)
			}
			return got
		}
	}
	t.Fatalf("node sent more than 1 MiB instead of dropping the connection")
	return nil
}

// nodeOn is node with a network of the caller's choice.
func (e *env) nodeOn(id string, nw transport.Network, mod func(*transport.Config)) (*transport.Node, string, *logCapture) {
	e.t.Helper()
	lc := &logCapture{}
	cfg := transport.Config{NodeID: id, Secret: hostileSecret, Logger: slog.New(lc)}
	if mod != nil {
		mod(&cfg)
	}
	n, err := transport.NewNode(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	e.nodes = append(e.nodes, n)
	addr, err := n.Listen(context.Background(), nw, "127.0.0.1:0")
	if err != nil {
		e.t.Fatal(err)
	}
	return n, addr, lc
}

// fdTargets describes the open descriptors, for leak reports.
func fdTargets() []string {
	ents, _ := os.ReadDir("/proc/self/fd")
	var out []string
	for _, ent := range ents {
		l, err := os.Readlink("/proc/self/fd/" + ent.Name())
		if err == nil {
			out = append(out, ent.Name()+"->"+l)
		}
	}
	return out
}

// warmUpNet makes the runtime create its network poller descriptors
// before the baseline is taken, so they do not count as a leak.
func warmUpNet(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", l.Addr().String())
	if err == nil {
		c.Close()
	}
	l.Close()
}
