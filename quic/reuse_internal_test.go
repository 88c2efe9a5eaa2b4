package quic

import (
	"context"
	"io"
	"net"
	"testing"
	"time"
)

// A Network that the peer dialed first opens its own streams to that peer
// over the peer's connection instead of a second QUIC connection, and the
// peer's listener receives them.
func TestDialReusesAcceptedConnection(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a, b := New(Config{}), New(Config{})
	defer a.Close()
	defer b.Close()
	la, err := a.Listen(ctx, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lb, err := b.Listen(ctx, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	echo := func(l net.Listener) {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}
	go echo(la)
	go echo(lb)
	exchange := func(n *Network, addr string) {
		t.Helper()
		c, err := n.Dial(ctx, addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Write([]byte("ping")); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 4)
		if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
			t.Fatalf("echo %q, %v", buf, err)
		}
	}
	// b dials a: one connection, dialed by b.
	exchange(b, la.Addr().String())
	// a dials b: it must ride b's connection.
	exchange(a, lb.Addr().String())
	a.mu.Lock()
	pooled, inbound := len(a.pool), len(a.inbound)
	a.mu.Unlock()
	if pooled != 0 || inbound != 1 {
		t.Fatalf("a has %d dialed and %d inbound connections; want 0 and 1 (reuse)", pooled, inbound)
	}
}
