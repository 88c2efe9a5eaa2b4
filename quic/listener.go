package quic

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"

	quicgo "github.com/quic-go/quic-go"
)

// acceptQueue is how many accepted streams wait for Accept before the
// per-connection accept loops stop taking more (the peers then wait for
// stream credit).
const acceptQueue = 64

// Listener yields the streams peers open on the QUIC connections that
// arrive on one UDP socket. It implements net.Listener.
type Listener struct {
	n       *Network
	ql      quicListener
	addr    net.Addr
	streams chan *Stream

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	once   sync.Once

	// greetFirst: the server selects ALPNGreetFirst and opens greeting
	// streams (EnableGreetFirst); shared with the TLS configuration.
	greetFirst *atomic.Bool
}

var _ net.Listener = (*Listener)(nil)

// quicListener is a *quicgo.EarlyListener (the server can greet first)
// or a *quicgo.Listener (it never does: Config.TLS set).
type quicListener interface {
	Accept(context.Context) (*quicgo.Conn, error)
	Close() error
}

func newListener(n *Network, ql quicListener, addr net.Addr, greetFirst *atomic.Bool) *Listener {
	ctx, cancel := context.WithCancel(context.Background())
	return &Listener{n: n, ql: ql, addr: addr, streams: make(chan *Stream, acceptQueue), ctx: ctx, cancel: cancel, greetFirst: greetFirst}
}

// EnableGreetFirst makes the listener select ALPNGreetFirst for the QUIC
// connections that offer it from now on, so that it hands out, for each,
// a stream it opened itself (a *Stream whose GreetsFirst is true) before
// the client's, for the AEMP acceptor to greet on (package doc). A
// transport.Node calls it on the listeners it serves; without it, every
// stream Accept returns was opened by a peer. It has no effect with
// Config.TLS set. It implements transport.GreetFirstListener.
func (l *Listener) EnableGreetFirst() { l.greetFirst.Store(true) }

// serverTLS returns the TLS configuration of a listener of n: base
// (n.serverTLS) when it does not offer ALPNGreetFirst; else a copy that
// selects it only while greetFirst is set.
func serverTLS(base *tls.Config, greetFirst *atomic.Bool) *tls.Config {
	if !slices.Contains(base.NextProtos, ALPNGreetFirst) {
		return base
	}
	plain := base.Clone()
	plain.NextProtos = []string{ALPN}
	plain.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		if greetFirst.Load() {
			return base, nil
		}
		return nil, nil // plain
	}
	return plain
}

// Accept returns the next stream a peer opened, as a *Stream. After Close
// it returns an error matching ErrClosed and net.ErrClosed.
func (l *Listener) Accept() (net.Conn, error) {
	// Prefer reporting Close over a queued stream.
	select {
	case <-l.ctx.Done():
		return nil, &Error{Op: "accept", Addr: l.addr.String(), Err: ErrClosed}
	default:
	}
	select {
	case s := <-l.streams:
		return s, nil
	case <-l.ctx.Done():
		return nil, &Error{Op: "accept", Addr: l.addr.String(), Err: ErrClosed}
	}
}

// Addr returns the UDP address the listener is bound to.
func (l *Listener) Addr() net.Addr { return l.addr }

// Close stops accepting: queued streams are reset, and streams that peers
// open later on existing connections are refused with CodeRefused. QUIC
// connections already accepted, and the streams already returned by
// Accept, stay up; the UDP socket stays open for the Network's dialed
// connections until Network.Close.
func (l *Listener) Close() error {
	l.once.Do(func() {
		l.cancel()
		_ = l.ql.Close()
		l.n.removeListener(l)
		l.drain()
	})
	return nil
}

// refuse resets both directions of a stream nobody will read.
func refuse(s *quicgo.Stream) {
	s.CancelRead(quicgo.StreamErrorCode(CodeRefused))
	s.CancelWrite(quicgo.StreamErrorCode(CodeRefused))
}

// acceptConns accepts QUIC connections until the listener closes, and
// runs acceptConn for each.
func (l *Listener) acceptConns() {
	defer l.n.wg.Done()
	for {
		c, err := l.ql.Accept(l.ctx)
		if err != nil {
			return
		}
		l.n.wg.Add(1)
		go l.acceptConn(c)
	}
}

// acceptConn serves a connection the listener returned: an early
// listener's, before the client's Finished. When the server greets first (ALPNGreetFirst) it
// opens the greeting stream at once and hands it to Accept, so the Node
// greets in 0.5-RTT data. Everything else waits for the handshake to be
// complete: the connection joins the Network (Dial may reuse it), and the
// client's streams reach Accept; the greeting stream's Reads fail until
// then (Stream.Read). A client that never completes the handshake gets
// the greeting and nothing else, until quic-go drops the connection.
func (l *Listener) acceptConn(c *quicgo.Conn) {
	alpn := c.ConnectionState().TLS.NegotiatedProtocol
	if alpn == ALPNGreetFirst {
		// Before the greeting is made: the Node asks AcceptsStreams.
		l.n.setServing(c, l)
		if qs, err := c.OpenStream(); err == nil {
			s := newStream(l.n, c, qs)
			s.greetFirst = true
			select {
			case l.streams <- s:
				if l.ctx.Err() != nil {
					l.drain()
				}
			case <-l.ctx.Done():
				refuse(qs)
			}
		}
	}
	select {
	case <-c.HandshakeComplete():
	case <-c.Context().Done():
		l.n.setServing(c, nil)
		l.n.wg.Done()
		return
	}
	if !l.n.trackAccepted(c) {
		_ = c.CloseWithError(quicgo.ApplicationErrorCode(CodeNoError), "aemp: network closed")
		l.n.setServing(c, nil)
		l.n.wg.Done()
		return
	}
	if l.n.log.Enabled(context.Background(), slog.LevelDebug) {
		l.n.log.Debug("quic: accepted connection", "remote", c.RemoteAddr().String(), "local", c.LocalAddr().String(), "alpn", alpn)
	}
	l.n.setServing(c, l)
	l.acceptStreams(c, false)
}

// acceptStreams hands the streams the peer opens on c to Accept until c
// ends. Once the listener is closed it refuses them instead, so the peer
// learns at once that nobody listens. unclaimed: c is a connection we
// dialed whose server greets first, and no messaging Dial took the
// server's greeting stream; it is refused.
func (l *Listener) acceptStreams(c *quicgo.Conn, unclaimed bool) {
	defer l.n.wg.Done()
	defer l.n.untrackAccepted(c)
	defer l.n.setServing(c, nil)
	for {
		s, err := c.AcceptStream(context.Background())
		if err != nil {
			return // the connection ended
		}
		if unclaimed && s.StreamID() == firstServerStream {
			refuse(s)
			continue
		}
		select {
		case l.streams <- newStream(l.n, c, s):
			if l.ctx.Err() != nil {
				// Close may have drained the queue before this send.
				l.drain()
			}
		case <-l.ctx.Done():
			refuse(s)
		}
	}
}

// drain refuses every queued stream.
func (l *Listener) drain() {
	for {
		select {
		case s := <-l.streams:
			refuse(s.s)
		default:
			return
		}
	}
}
