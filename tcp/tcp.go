// Package tcp is the AEMP network over real TCP sockets.
//
// A Network listens and dials plain TCP (IPv4 and IPv6); TLS, when a node
// uses it, is started on top of the returned streams by the handshake
// driver (see transport.TLSConfig.Upgrade). Every stream this package
// returns is the real *net.TCPConn, so data connections handed to the user
// keep the kernel fast paths (sendfile, splice) of io.Copy.
//
// Each accepted or dialed connection has TCP_NODELAY set as configured (on
// by default: the AEMP handshake is a few small lines, and Nagle's
// algorithm would delay them) and TCP keepalive enabled.
package tcp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"
)

// DefaultKeepAlive is the TCP keepalive period used when Network.KeepAlive
// is zero.
const DefaultKeepAlive = 15 * time.Second

// Network implements transport.Network over TCP. The zero value is ready to
// use (TCP_NODELAY on, 15 s keepalive, no logging). A Network is safe for
// concurrent use and must not be modified while in use.
type Network struct {
	// NoDelay sets TCP_NODELAY on every connection; nil means true.
	NoDelay *bool
	// KeepAlive is the TCP keepalive period: 0 means DefaultKeepAlive, a
	// negative value disables keepalive.
	KeepAlive time.Duration
	// Logger, if set, receives debug records for listens, dials and
	// failures to configure accepted connections.
	Logger *slog.Logger
}

// New returns a Network with the default settings.
func New() *Network { return &Network{} }

// Scheme returns "tcp". TCP addresses are announced without a scheme.
func (n *Network) Scheme() string { return "tcp" }

// Listen opens a TCP listener on addr ("host:port"; "[::1]:0" and ":0"
// pick a free port, which Addr reports). ctx bounds the listen call only
// (an already cancelled ctx fails it), not the listener's life. Accept returns *net.TCPConn values configured as
// the Network says.
func (n *Network) Listen(ctx context.Context, addr string) (net.Listener, error) {
	if err := ctx.Err(); err != nil {
		return nil, &net.OpError{Op: "listen", Net: "tcp", Err: err}
	}
	lc := net.ListenConfig{KeepAlive: n.KeepAlive}
	l, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		n.debug("tcp listen failed", "addr", addr, "err", err)
		return nil, err
	}
	tl, ok := l.(*net.TCPListener)
	if !ok {
		_ = l.Close()
		return nil, fmt.Errorf("tcp listen %s: unexpected listener type %T", addr, l)
	}
	n.debug("tcp listening", "addr", tl.Addr().String())
	return &listener{TCPListener: tl, net: n}, nil
}

// Dial opens a TCP connection to addr, honouring ctx's deadline and
// cancellation. The result is a *net.TCPConn.
func (n *Network) Dial(ctx context.Context, addr string) (net.Conn, error) {
	d := net.Dialer{KeepAlive: n.KeepAlive}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		n.debug("tcp dial failed", "addr", addr, "err", err)
		return nil, err
	}
	tc, ok := c.(*net.TCPConn)
	if !ok {
		_ = c.Close()
		return nil, fmt.Errorf("tcp dial %s: unexpected connection type %T", addr, c)
	}
	if err := n.configure(tc); err != nil {
		_ = tc.Close()
		return nil, &net.OpError{Op: "dial", Net: "tcp", Addr: tc.RemoteAddr(), Err: err}
	}
	return tc, nil
}

// noDelay reports the configured TCP_NODELAY setting.
func (n *Network) noDelay() bool { return n.NoDelay == nil || *n.NoDelay }

// configure applies the per-connection options the net package does not
// already set: Go sets TCP_NODELAY and keepalive (from the ListenConfig or
// Dialer) on every new connection, so only a disabled NoDelay needs a call.
func (n *Network) configure(c *net.TCPConn) error {
	if !n.noDelay() {
		if err := c.SetNoDelay(false); err != nil {
			return fmt.Errorf("set TCP_NODELAY: %w", err)
		}
	}
	return nil
}

func (n *Network) debug(msg string, args ...any) {
	if n.Logger != nil {
		n.Logger.Debug(msg, args...)
	}
}

// listener wraps a *net.TCPListener so that accepted connections get the
// Network's options.
type listener struct {
	*net.TCPListener
	net *Network
}

// Accept waits for the next connection and returns it as a configured
// *net.TCPConn. A connection that cannot be configured is closed and
// skipped (the error is logged), so one bad connection does not stop the
// caller's accept loop.
func (l *listener) Accept() (net.Conn, error) {
	for {
		c, err := l.TCPListener.AcceptTCP()
		if err != nil {
			return nil, err
		}
		if err := l.net.configure(c); err != nil {
			l.net.debug("tcp accept: dropping connection", "remote", c.RemoteAddr().String(), "err", err)
			_ = c.Close()
			if errors.Is(err, net.ErrClosed) {
				return nil, err
			}
			continue
		}
		return c, nil
	}
}
