package tcp_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/aemp-go/dataconn/tcp"
	"github.com/aemp-go/dataconn/transport"
)

// The package must satisfy the transport contract.
var _ transport.Network = (*tcp.Network)(nil)

// pair listens on addr, dials the listener and returns both ends.
func pair(t testing.TB, n *tcp.Network, addr string) (dialed, accepted *net.TCPConn, l net.Listener) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	l, err := n.Listen(ctx, addr)
	if err != nil {
		t.Fatalf("Listen(%q): %v", addr, err)
	}
	t.Cleanup(func() { l.Close() })
	type res struct {
		c   net.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		c, err := l.Accept()
		ch <- res{c, err}
	}()
	c, err := n.Dial(ctx, l.Addr().String())
	if err != nil {
		t.Fatalf("Dial(%q): %v", l.Addr(), err)
	}
	t.Cleanup(func() { c.Close() })
	r := <-ch
	if r.err != nil {
		t.Fatalf("Accept: %v", r.err)
	}
	t.Cleanup(func() { r.c.Close() })
	dc, ok := c.(*net.TCPConn)
	if !ok {
		t.Fatalf("Dial returned %T, want *net.TCPConn", c)
	}
	ac, ok := r.c.(*net.TCPConn)
	if !ok {
		t.Fatalf("Accept returned %T, want *net.TCPConn", r.c)
	}
	return dc, ac, l
}

func TestScheme(t *testing.T) {
	if got := tcp.New().Scheme(); got != "tcp" {
		t.Fatalf("Scheme() = %q, want tcp", got)
	}
}

func TestListenDialExchange(t *testing.T) {
	for _, addr := range []string{"127.0.0.1:0", "[::1]:0", ":0"} {
		t.Run(addr, func(t *testing.T) {
			needLoopback(t, addr)
			n := tcp.New()
			d, a, l := pair(t, n, addr)
			_, port, err := net.SplitHostPort(l.Addr().String())
			if err != nil {
				t.Fatalf("listener address %q: %v", l.Addr(), err)
			}
			if p, err := strconv.Atoi(port); err != nil || p == 0 {
				t.Fatalf("listener address %q does not report the chosen port", l.Addr())
			}
			if got, want := d.RemoteAddr().String(), a.LocalAddr().String(); got != want {
				t.Errorf("dialed remote %s != accepted local %s", got, want)
			}
			// Both directions, then half-close.
			msg := []byte("aemp;1;node;hmac_sha3_512;json\n")
			go func() {
				a.Write(msg)
				a.CloseWrite()
			}()
			got, err := io.ReadAll(d)
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			if string(got) != string(msg) {
				t.Fatalf("read %q, want %q", got, msg)
			}
			if _, err := d.Write([]byte("x")); err != nil {
				t.Fatalf("write after peer half-close: %v", err)
			}
			buf := make([]byte, 1)
			if _, err := io.ReadFull(a, buf); err != nil || buf[0] != 'x' {
				t.Fatalf("accepted side read %q, %v", buf, err)
			}
		})
	}
}

func TestListenIPv6ReportsIPv6(t *testing.T) {
	needLoopback(t, "[::1]:0")
	ctx := context.Background()
	l, err := tcp.New().Listen(ctx, "[::1]:0")
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	defer l.Close()
	ta, ok := l.Addr().(*net.TCPAddr)
	if !ok || ta.IP.To4() != nil || !ta.IP.Equal(net.IPv6loopback) {
		t.Fatalf("Addr() = %v, want [::1]:port", l.Addr())
	}
}

func TestListenErrors(t *testing.T) {
	ctx := context.Background()
	n := tcp.New()
	l, err := n.Listen(ctx, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if l2, err := n.Listen(ctx, l.Addr().String()); err == nil {
		l2.Close()
		t.Fatalf("second Listen on %s succeeded", l.Addr())
	}
	if _, err := n.Listen(ctx, "not an address"); err == nil {
		t.Fatal("Listen on a malformed address succeeded")
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if l3, err := n.Listen(cctx, "127.0.0.1:0"); err == nil {
		l3.Close()
		t.Fatal("Listen with a cancelled context succeeded")
	}
}

func TestAcceptAfterCloseFails(t *testing.T) {
	l, err := tcp.New().Listen(context.Background(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := l.Accept()
		done <- err
	}()
	l.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Accept after Close: %v, want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Accept did not return after Close")
	}
}

func TestDialHonoursContext(t *testing.T) {
	n := tcp.New()
	// A listener that is closed gives a refused port.
	l, err := n.Listen(context.Background(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	if c, err := n.Dial(context.Background(), addr); err == nil {
		c.Close()
		t.Fatalf("Dial to closed port %s succeeded", addr)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if c, err := n.Dial(ctx, addr); err == nil {
		c.Close()
		t.Fatal("Dial with cancelled context succeeded")
	} else if !errors.Is(err, context.Canceled) {
		t.Fatalf("Dial with cancelled context: %v, want context.Canceled", err)
	}

	// An expired deadline must be reported as such, promptly.
	ctx, cancel = context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	start := time.Now()
	if c, err := n.Dial(ctx, addr); err == nil {
		c.Close()
		t.Fatal("Dial with expired deadline succeeded")
	} else if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Dial with expired deadline: %v, want context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Dial with expired deadline took %v", d)
	}
}

func ExampleNetwork() {
	n := tcp.New()
	ctx := context.Background()
	l, err := n.Listen(ctx, "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		io.WriteString(c, "hello from the listener")
	}()
	c, err := n.Dial(ctx, l.Addr().String())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	msg, _ := io.ReadAll(c)
	_, isTCP := c.(*net.TCPConn)
	fmt.Println(string(msg), isTCP)
	// Output: hello from the listener true
}
