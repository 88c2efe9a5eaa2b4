package transport

import (
	"io"
	"net"
	"sync"
)

// WithPending returns c itself when pending is empty (so *net.TCPConn and
// *tls.Conn keep io.Copy's sendfile/splice fast paths), otherwise a
// net.Conn that serves pending first and then reads from c.
//
// The wrapper keeps c's capabilities: ReadFrom (delegating to c's
// io.ReaderFrom when present), WriteTo (pending first, then c's io.WriterTo
// when present), CloseWrite (only when c has it, so a type assertion to
// CloseWriter answers truthfully), deadlines, and Unwrap() net.Conn, which
// returns c. Deadlines apply to reads from c only: pending bytes are already
// here and are served whatever the read deadline.
//
// pending is copied; the caller may reuse its buffer.
func WithPending(c net.Conn, pending []byte) net.Conn {
	if len(pending) == 0 {
		return c
	}
	p := &pendingConn{Conn: c, pending: append([]byte(nil), pending...)}
	if cw, ok := c.(CloseWriter); ok {
		return &pendingCloseWriteConn{pendingConn: p, cw: cw}
	}
	return p
}

// pendingConn serves bytes that arrived with the handshake before the
// stream itself.
type pendingConn struct {
	net.Conn

	mu      sync.Mutex
	pending []byte // nil once drained
}

// Read serves pending bytes first, then reads from the stream.
func (p *pendingConn) Read(b []byte) (int, error) {
	if n, ok := p.takePending(b); ok {
		return n, nil
	}
	return p.Conn.Read(b)
}

// takePending copies pending bytes into b; ok is false when none are left
// (or b is empty and none are left).
func (p *pendingConn) takePending(b []byte) (int, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.pending) == 0 {
		return 0, false
	}
	n := copy(b, p.pending)
	p.pending = p.pending[n:]
	if len(p.pending) == 0 {
		p.pending = nil
	}
	return n, true
}

// drainPending removes and returns all pending bytes.
func (p *pendingConn) drainPending() []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	b := p.pending
	p.pending = nil
	return b
}

// WriteTo writes the pending bytes to w, then copies the stream to w until
// EOF, using the stream's own io.WriterTo when it has one.
func (p *pendingConn) WriteTo(w io.Writer) (int64, error) {
	var total int64
	if b := p.drainPending(); len(b) > 0 {
		n, err := w.Write(b)
		total += int64(n)
		if err != nil {
			// Keep what w did not take, so a later read still sees it.
			p.restorePending(b[n:])
			return total, err
		}
		if n < len(b) {
			p.restorePending(b[n:])
			return total, io.ErrShortWrite
		}
	}
	var n int64
	var err error
	if wt, ok := p.Conn.(io.WriterTo); ok {
		n, err = wt.WriteTo(w)
	} else {
		// io.Copy may use w's io.ReaderFrom; the reader it sees is the
		// stream, not this wrapper, so it cannot come back here.
		n, err = io.Copy(w, p.Conn)
	}
	return total + n, err
}

// restorePending puts back bytes that could not be written.
func (p *pendingConn) restorePending(b []byte) {
	if len(b) == 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pending = append(append([]byte(nil), b...), p.pending...)
}

// ReadFrom copies r to the stream, using the stream's io.ReaderFrom (the
// sendfile/splice path of *net.TCPConn) when it has one.
func (p *pendingConn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := p.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	// p.Conn has no ReadFrom, so io.Copy cannot come back here.
	return io.Copy(p.Conn, r)
}

// Unwrap returns the wrapped stream.
func (p *pendingConn) Unwrap() net.Conn { return p.Conn }

// pendingCloseWriteConn is a pendingConn over a stream that can half-close.
type pendingCloseWriteConn struct {
	*pendingConn
	cw CloseWriter
}

// CloseWrite half-closes the wrapped stream.
func (p *pendingCloseWriteConn) CloseWrite() error { return p.cw.CloseWrite() }
