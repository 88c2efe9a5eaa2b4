package tcp_test

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/aemp-go/dataconn/tcp"
	"github.com/aemp-go/dataconn/transport"
)

// Benchmarks comparing the cost of moving bytes and of setting up streams.
// Run them in one invocation so that the ratios between rows hold:
//
//	go test -run '^$' -bench . -benchtime 2s ./tcp
//
// Each benchmark is a table: add a row (for example a data connection made
// by a transport.Node) by appending to throughputCases or setupCases.

// benchChunk is the size of each write in BenchmarkThroughput; one
// iteration moves one chunk.
const benchChunk = 128 << 10

// benchTimeout bounds each stream set-up in the benchmarks.
const benchTimeout = 10 * time.Second

// throughputCase opens one stream: BenchmarkThroughput writes to send and
// copies recv to io.Discard. Closing is left to b.Cleanup.
type throughputCase struct {
	name string
	open func(b *testing.B) (send, recv net.Conn)
}

func throughputCases() []throughputCase {
	return []throughputCase{
		{"raw", openRawTCP},
		{"tls-raw", openTLSTCP},
		{"dataconn", openDataConnHMAC},
		{"tls-dataconn", openDataConnTLS},
	}
}

// setupCase makes and tears down one stream per iteration, on a listener
// prepared once by prepare.
type setupCase struct {
	name    string
	prepare func(b *testing.B) (once func() error)
}

func setupCases() []setupCase {
	return []setupCase{
		{"tcp-connect", prepareTCPConnect},
		{"dataconn-hmac", prepareDataConnHMAC},
		{"dataconn-tls", prepareDataConnTLS},
	}
}

func BenchmarkThroughput(b *testing.B) {
	for _, tc := range throughputCases() {
		b.Run(tc.name, func(b *testing.B) {
			send, recv := tc.open(b)
			buf := make([]byte, benchChunk)
			for i := range buf {
				buf[i] = byte(i * 7)
			}
			type result struct {
				n   int64
				err error
			}
			done := make(chan result, 1)
			go func() {
				n, err := io.Copy(io.Discard, recv)
				done <- result{n, err}
			}()
			b.SetBytes(benchChunk)
			b.ReportAllocs()
			var iters int64
			for b.Loop() {
				if _, err := send.Write(buf); err != nil {
					b.Fatalf("write: %v", err)
				}
				iters++
			}
			if err := send.(transport.CloseWriter).CloseWrite(); err != nil {
				b.Fatalf("CloseWrite: %v", err)
			}
			select {
			case r := <-done:
				if r.err != nil || r.n != iters*benchChunk {
					b.Fatalf("receiver got %d bytes (%v), want %d", r.n, r.err, iters*benchChunk)
				}
			case <-time.After(benchTimeout):
				b.Fatal("receiver did not finish")
			}
		})
	}
}

func BenchmarkSetup(b *testing.B) {
	for _, sc := range setupCases() {
		b.Run(sc.name, func(b *testing.B) {
			once := sc.prepare(b)
			b.ReportAllocs()
			for b.Loop() {
				if err := once(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// benchListen starts a listener whose accepted connections arrive on the
// returned channel; everything is closed by b.Cleanup.
func benchListen(b *testing.B, n *tcp.Network) (net.Listener, <-chan net.Conn) {
	b.Helper()
	l, err := n.Listen(context.Background(), "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ch := make(chan net.Conn, 1)
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			ch <- c
		}
	}()
	b.Cleanup(func() {
		l.Close()
		// Unblock the accept goroutine if it is waiting to hand over.
		for {
			select {
			case c := <-ch:
				c.Close()
			case <-stopped:
				return
			}
		}
	})
	return l, ch
}

// benchPair dials the listener and returns both ends.
func benchPair(b *testing.B) (dialed, accepted net.Conn) {
	b.Helper()
	n := tcp.New()
	l, ch := benchListen(b, n)
	ctx, cancel := context.WithTimeout(context.Background(), benchTimeout)
	defer cancel()
	d, err := n.Dial(ctx, l.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	select {
	case a := <-ch:
		b.Cleanup(func() { d.Close(); a.Close() })
		return d, a
	case <-ctx.Done():
		d.Close()
		b.Fatal("accept timed out")
		return nil, nil
	}
}

func openRawTCP(b *testing.B) (net.Conn, net.Conn) { return benchPair(b) }

func openTLSTCP(b *testing.B) (net.Conn, net.Conn) {
	d, a := benchPair(b)
	ca, err := transport.NewTestCA("bench CA")
	if err != nil {
		b.Fatal(err)
	}
	valid := [2]time.Time{time.Now().Add(-time.Hour), time.Now().Add(time.Hour)}
	cc, err := ca.Issue("client", valid[0], valid[1])
	if err != nil {
		b.Fatal(err)
	}
	sc, err := ca.Issue("server", valid[0], valid[1])
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), benchTimeout)
	defer cancel()
	type res struct {
		c   net.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		c, err := sc.Upgrade(ctx, a, false)
		ch <- res{c, err}
	}()
	client, err := cc.Upgrade(ctx, d, true)
	r := <-ch
	if err != nil || r.err != nil {
		b.Fatalf("TLS upgrade: %v, %v", err, r.err)
	}
	b.Cleanup(func() { client.Close(); r.c.Close() })
	return client, r.c
}

func prepareTCPConnect(b *testing.B) func() error {
	n := tcp.New()
	l, ch := benchListen(b, n)
	addr := l.Addr().String()
	return func() error {
		ctx, cancel := context.WithTimeout(context.Background(), benchTimeout)
		defer cancel()
		d, err := n.Dial(ctx, addr)
		if err != nil {
			return err
		}
		select {
		case a := <-ch:
			a.Close()
		case <-ctx.Done():
			d.Close()
			return ctx.Err()
		}
		return d.Close()
	}
}

// benchNodes starts two nodes on loopback, a and b, that know each other's
// address; mod configures node i (0 for a, 1 for b). b's init function
// "bench::take" hands its stream to the returned channel. The messaging
// connection is opened, so set-ups measured on the pair are warm.
func benchNodes(b *testing.B, mod func(i int, c *transport.Config)) (na, nb *transport.Node, taken <-chan net.Conn) {
	b.Helper()
	nodes := make([]*transport.Node, 2)
	for i, id := range []string{"a", "b"} {
		nodes[i] = startNode(b, id, "127.0.0.1:0", func(c *transport.Config) {
			if mod != nil {
				mod(i, c)
			}
		})
	}
	linkNodes(nodes...)
	ch := make(chan net.Conn, 1)
	nodes[1].HandleDataConn("bench::take", func(_ string, _ []any, c net.Conn) { ch <- c })
	ctx, cancel := context.WithTimeout(context.Background(), benchTimeout)
	defer cancel()
	if err := nodes[0].Connect(ctx, "b"); err != nil {
		b.Fatal(err)
	}
	return nodes[0], nodes[1], ch
}

// benchTLS makes both nodes use TLS certificates of one CA and no secret.
func benchTLS(b *testing.B) func(i int, c *transport.Config) {
	certs := testTLS(b, "a", "b")
	return func(i int, c *transport.Config) {
		c.Secret = nil
		c.TLS = certs[i]
	}
}

// dataConnOnce opens one data connection from a to b's "bench::take" and
// returns both ends.
func dataConnOnce(a *transport.Node, taken <-chan net.Conn) (send, recv net.Conn, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), benchTimeout)
	defer cancel()
	c, err := a.ConnectTo(ctx, "b", benchTimeout, "bench::take")
	if err != nil {
		return nil, nil, err
	}
	select {
	case r := <-taken:
		return c, r, nil
	case <-ctx.Done():
		c.Close()
		return nil, nil, errors.New("init function not called")
	}
}

func openDataConn(b *testing.B, mod func(i int, c *transport.Config)) (net.Conn, net.Conn) {
	a, _, taken := benchNodes(b, mod)
	send, recv, err := dataConnOnce(a, taken)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { send.Close(); recv.Close() })
	return send, recv
}

func openDataConnHMAC(b *testing.B) (net.Conn, net.Conn) { return openDataConn(b, nil) }

func openDataConnTLS(b *testing.B) (net.Conn, net.Conn) { return openDataConn(b, benchTLS(b)) }

// prepareDataConn returns one full data-connection set-up on a warm node
// pair: ConnectTo, the init function called, both ends closed.
func prepareDataConn(b *testing.B, mod func(i int, c *transport.Config)) func() error {
	a, _, taken := benchNodes(b, mod)
	once := func() error {
		send, recv, err := dataConnOnce(a, taken)
		if err != nil {
			return err
		}
		recv.Close()
		return send.Close()
	}
	// One data connection outside the measurement warms what the first
	// one sets up (TLS session state, buffers).
	if err := once(); err != nil {
		b.Fatal(err)
	}
	return once
}

func prepareDataConnHMAC(b *testing.B) func() error { return prepareDataConn(b, nil) }

func prepareDataConnTLS(b *testing.B) func() error { return prepareDataConn(b, benchTLS(b)) }
