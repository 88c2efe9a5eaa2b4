package quic

import (
	"context"
	"net"
	"sync"

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
	ql      *quicgo.Listener
	addr    net.Addr
	streams chan *Stream

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	once   sync.Once
}

var _ net.Listener = (*Listener)(nil)

func newListener(n *Network, ql *quicgo.Listener, addr net.Addr) *Listener {
	ctx, cancel := context.WithCancel(context.Background())
	return &Listener{n: n, ql: ql, addr: addr, streams: make(chan *Stream, acceptQueue), ctx: ctx, cancel: cancel}
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
// runs acceptStreams for each.
func (l *Listener) acceptConns() {
	defer l.n.wg.Done()
	for {
		c, err := l.ql.Accept(l.ctx)
		if err != nil {
			return
		}
		if !l.n.trackAccepted(c) {
			_ = c.CloseWithError(quicgo.ApplicationErrorCode(CodeNoError), "aemp: network closed")
			return
		}
		l.n.log.Debug("quic: accepted connection", "remote", c.RemoteAddr().String(), "local", c.LocalAddr().String())
		l.n.wg.Add(1)
		l.n.setServing(c, l)
		go l.acceptStreams(c)
	}
}

// acceptStreams hands the streams the peer opens on c to Accept until c
// ends. Once the listener is closed it refuses them instead, so the peer
// learns at once that nobody listens.
func (l *Listener) acceptStreams(c *quicgo.Conn) {
	defer l.n.wg.Done()
	defer l.n.untrackAccepted(c)
	defer l.n.setServing(c, nil)
	for {
		s, err := c.AcceptStream(context.Background())
		if err != nil {
			return // the connection ended
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
