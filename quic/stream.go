package quic

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	quicgo "github.com/quic-go/quic-go"
)

// Stream is one bidirectional QUIC stream as a net.Conn: one AEMP
// connection (messaging or data). Dial and Listener.Accept return it.
//
// Read and Write are those of the stream, and are safe to call from
// different goroutines; concurrent Writes are serialised. Deadlines map to
// the stream's; an expired deadline is an error matching
// os.ErrDeadlineExceeded whose Timeout method is true. When the QUIC
// connection ends (the peer closed it or vanished and the idle timeout
// expired), pending and later Reads and Writes fail with an *Error matching
// ErrConnectionLost: a dead peer is never a hang.
type Stream struct {
	s    *quicgo.Stream
	conn *quicgo.Conn
	net  *Network

	// wmu serialises Write, CloseWrite and the send side of Close:
	// quic-go forbids closing a send stream concurrently with a Write.
	wmu       sync.Mutex
	closed    atomic.Bool
	closeOnce sync.Once
	// head holds what PeekByte read, served first by Read (only the
	// reading goroutine touches it).
	head []byte

	// greetFirst: the server's greeting stream, opened before the QUIC
	// handshake was complete (ALPNGreetFirst; server side only). Its
	// Reads fail unless the handshake is complete (checked once, by the
	// reading goroutine: checked), and spoke says whether the client sent.
	greetFirst bool
	checked    bool
	spoke      atomic.Bool
	// peerFirst: the client's end of the server's greeting stream.
	peerFirst bool
}

var _ net.Conn = (*Stream)(nil)

func newStream(n *Network, c *quicgo.Conn, s *quicgo.Stream) *Stream {
	return &Stream{s: s, conn: c, net: n}
}

// Read reads from the stream. It returns io.EOF after the peer's FIN (its
// CloseWrite or Close) once all data has been read.
func (s *Stream) Read(p []byte) (int, error) {
	if s.closed.Load() {
		return 0, &Error{Op: "read", Err: ErrClosed}
	}
	if len(s.head) > 0 {
		n := copy(p, s.head)
		s.head = s.head[n:]
		return n, nil
	}
	n, err := s.s.Read(p)
	if n > 0 && s.greetFirst && !s.checked {
		if !handshakeComplete(s.conn) {
			// quic-go cannot decrypt the client's 1-RTT data before its
			// Finished; should it ever hand any over, none is used.
			refuse(s.s)
			return 0, &Error{Op: "read", Err: ErrHandshake, Cause: errors.New("stream data before the QUIC handshake was complete")}
		}
		s.checked = true
		s.spoke.Store(true)
	}
	if err != nil {
		err = s.mapError("read", err)
	}
	return n, err
}

// handshakeComplete reports whether c's handshake is complete: the client's
// Finished was verified.
func handshakeComplete(c *quicgo.Conn) bool {
	select {
	case <-c.HandshakeComplete():
		return true
	default:
	}
	// quic-go closes the channel a moment after crypto/tls verified the
	// Finished (and installed the keys that decrypt the client's data).
	return c.ConnectionState().TLS.HandshakeComplete
}

// PeerGreetsFirst reports whether this is the client's end of the
// server's greeting stream (ALPNGreetFirst), whose greeting came with the
// QUIC handshake. It implements transport.PeerGreeter.
func (s *Stream) PeerGreetsFirst() bool { return s.peerFirst }

// GreetsFirst reports whether this is the server's greeting stream
// (ALPNGreetFirst), on which this side greets first. It implements
// transport.EarlyGreeter.
func (s *Stream) GreetsFirst() bool { return s.greetFirst }

// Write writes to the stream. It blocks while the peer's flow-control
// window is full.
func (s *Stream) Write(p []byte) (int, error) {
	if s.closed.Load() {
		return 0, &Error{Op: "write", Err: ErrClosed}
	}
	s.wmu.Lock()
	n, err := s.s.Write(p)
	s.wmu.Unlock()
	if err != nil {
		err = s.mapError("write", err)
	}
	return n, err
}

// CloseWrite half-closes the stream: it sends a FIN after the data already
// written (waiting for a Write in progress to finish). Reading continues.
// It implements transport.CloseWriter.
func (s *Stream) CloseWrite() error {
	if s.closed.Load() {
		return &Error{Op: "close", Err: ErrClosed}
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if err := s.s.Close(); err != nil {
		return s.mapError("close", err)
	}
	return nil
}

// Close closes both directions. The receive side is cancelled with a
// STOP_SENDING frame carrying CodeStreamClosed, so the peer's further
// Writes fail with ErrStreamReset; the send side is finished with a FIN,
// so data already written is still delivered and the peer reads io.EOF
// after it. A Write blocked in flow control is interrupted. Closing the
// stream does not close the QUIC connection, which other streams share.
// A second Close returns an error matching ErrClosed.
func (s *Stream) Close() error {
	first := false
	s.closeOnce.Do(func() {
		first = true
		s.closed.Store(true)
		s.s.CancelRead(quicgo.StreamErrorCode(CodeStreamClosed))
		if !s.wmu.TryLock() {
			// A Write is blocked (flow control): interrupt it.
			_ = s.s.SetWriteDeadline(time.Now())
			s.wmu.Lock()
		}
		_ = s.s.Close()
		s.wmu.Unlock()
	})
	if !first {
		return &Error{Op: "close", Err: ErrClosed}
	}
	return nil
}

// LocalAddr returns the local UDP address of the QUIC connection.
func (s *Stream) LocalAddr() net.Addr { return s.conn.LocalAddr() }

// RemoteAddr returns the peer's UDP address of the QUIC connection.
func (s *Stream) RemoteAddr() net.Addr { return s.conn.RemoteAddr() }

// SetDeadline sets the read and write deadlines of the stream.
func (s *Stream) SetDeadline(t time.Time) error { return s.s.SetDeadline(t) }

// SetReadDeadline sets the stream's read deadline.
func (s *Stream) SetReadDeadline(t time.Time) error { return s.s.SetReadDeadline(t) }

// SetWriteDeadline sets the stream's write deadline.
func (s *Stream) SetWriteDeadline(t time.Time) error { return s.s.SetWriteDeadline(t) }

// mapError turns a quic-go error into this package's errors. io.EOF and
// deadline errors pass through unchanged.
func (s *Stream) mapError(op string, err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, os.ErrDeadlineExceeded) {
		if s.closed.Load() && errors.Is(err, os.ErrDeadlineExceeded) {
			return &Error{Op: op, Err: ErrClosed}
		}
		return err
	}
	if s.closed.Load() {
		return &Error{Op: op, Err: ErrClosed, Cause: err}
	}
	var se *quicgo.StreamError
	if errors.As(err, &se) {
		if se.Remote {
			return &Error{Op: op, Err: ErrStreamReset, Code: ErrorCode(se.ErrorCode), Remote: true, Cause: err}
		}
		return &Error{Op: op, Err: ErrClosed, Cause: err}
	}
	return s.net.connError(op, "", err)
}

// connError classifies the error of a QUIC connection that ended.
func (n *Network) connError(op, addr string, err error) error {
	if n.isClosed() {
		// Network.Close (or a simulated crash) ended it.
		return &Error{Op: op, Addr: addr, Err: ErrClosed, Cause: err}
	}
	var ae *quicgo.ApplicationError
	if errors.As(err, &ae) && ae.Remote {
		return &Error{Op: op, Addr: addr, Err: ErrConnectionLost, Code: ErrorCode(ae.ErrorCode), Remote: true, Cause: err}
	}
	return &Error{Op: op, Addr: addr, Err: ErrConnectionLost, Cause: err}
}
