package memnet

import (
	"context"
	"net"
	"testing"
	"time"
)

// network mirrors transport.Network, so that the tests check conformance
// without depending on the transport package.
type network interface {
	Scheme() string
	Listen(ctx context.Context, addr string) (net.Listener, error)
	Dial(ctx context.Context, addr string) (net.Conn, error)
}

var (
	_ network                         = (*Host)(nil)
	_ net.Conn                        = (*Conn)(nil)
	_ interface{ CloseWrite() error } = (*Conn)(nil)
	_ net.Listener                    = (*Listener)(nil)
)

const ms = time.Millisecond

// listen opens a listener or fails the test.
func listen(t testing.TB, h *Host, addr string) net.Listener {
	t.Helper()
	l, err := h.Listen(context.Background(), addr)
	if err != nil {
		t.Fatalf("listen %s on %s: %v", addr, h.Name(), err)
	}
	return l
}

// dial dials or fails the test.
func dial(t testing.TB, h *Host, addr string) net.Conn {
	t.Helper()
	c, err := h.Dial(context.Background(), addr)
	if err != nil {
		t.Fatalf("dial %s from %s: %v", addr, h.Name(), err)
	}
	return c
}

// pair dials b:port from a and returns both ends.
func pair(t testing.TB, a, b *Host, port string) (client, server net.Conn, l net.Listener) {
	t.Helper()
	l = listen(t, b, ":"+port)
	type res struct {
		c   net.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		c, err := l.Accept()
		ch <- res{c, err}
	}()
	client = dial(t, a, b.Name()+":"+port)
	r := <-ch
	if r.err != nil {
		t.Fatalf("accept: %v", r.err)
	}
	return client, r.c, l
}

// readAsync starts a Read and delivers its result on the returned channel.
type readResult struct {
	n   int
	err error
	at  time.Time
	buf []byte
}

func readAsync(c net.Conn, size int) <-chan readResult {
	ch := make(chan readResult, 1)
	go func() {
		buf := make([]byte, size)
		n, err := c.Read(buf)
		ch <- readResult{n, err, time.Now(), buf[:n]}
	}()
	return ch
}
