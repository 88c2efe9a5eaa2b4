package transport

import (
	"io"
	"net"
	"os"
	"sync"
	"time"
)

// pipeLimit bounds the bytes buffered in one direction of an in-process
// pair; a writer waits while the buffer is full.
const pipeLimit = 256 << 10

// halfPipe is one direction of an in-process pair.
type halfPipe struct {
	mu      sync.Mutex
	buf     []byte
	eof     bool // writer closed its side
	closed  bool // reader closed its side
	changed chan struct{}
}

func newHalfPipe() *halfPipe { return &halfPipe{changed: make(chan struct{})} }

// signalLocked wakes every waiter.
func (h *halfPipe) signalLocked() {
	close(h.changed)
	h.changed = make(chan struct{})
}

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "local" }

// pipeConn is one end of an in-process pair: buffered, with half close and
// deadlines.
type pipeConn struct {
	in, out *halfPipe

	dmu           sync.Mutex
	rdl, wdl      time.Time
	dlChanged     chan struct{}
	closeOnce     sync.Once
	closedLocally chan struct{}
}

// newPipe returns an in-process connected pair for same-node data
// connections.
func newPipe() (net.Conn, net.Conn) {
	ab, ba := newHalfPipe(), newHalfPipe()
	a := &pipeConn{in: ba, out: ab, dlChanged: make(chan struct{}), closedLocally: make(chan struct{})}
	b := &pipeConn{in: ab, out: ba, dlChanged: make(chan struct{}), closedLocally: make(chan struct{})}
	return a, b
}

func (c *pipeConn) deadline(read bool) (time.Time, <-chan struct{}) {
	c.dmu.Lock()
	defer c.dmu.Unlock()
	if read {
		return c.rdl, c.dlChanged
	}
	return c.wdl, c.dlChanged
}

// wait blocks until h changes, the deadline passes or c is closed.
func (c *pipeConn) wait(changed <-chan struct{}, read bool) error {
	dl, dlc := c.deadline(read)
	var timeout <-chan time.Time
	if !dl.IsZero() {
		d := time.Until(dl)
		if d <= 0 {
			return os.ErrDeadlineExceeded
		}
		t := time.NewTimer(d)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-changed:
	case <-dlc:
	case <-c.closedLocally:
		return net.ErrClosed
	case <-timeout:
		return os.ErrDeadlineExceeded
	}
	return nil
}

func (c *pipeConn) Read(b []byte) (int, error) {
	for {
		select {
		case <-c.closedLocally:
			return 0, net.ErrClosed
		default:
		}
		h := c.in
		h.mu.Lock()
		if len(h.buf) > 0 {
			n := copy(b, h.buf)
			h.buf = h.buf[n:]
			if len(h.buf) == 0 {
				h.buf = nil
			}
			h.signalLocked()
			h.mu.Unlock()
			return n, nil
		}
		if h.eof {
			h.mu.Unlock()
			return 0, io.EOF
		}
		ch := h.changed
		h.mu.Unlock()
		if err := c.wait(ch, true); err != nil {
			return 0, err
		}
	}
}

func (c *pipeConn) Write(b []byte) (int, error) {
	written := 0
	for written < len(b) {
		select {
		case <-c.closedLocally:
			return written, net.ErrClosed
		default:
		}
		h := c.out
		h.mu.Lock()
		if h.eof {
			h.mu.Unlock()
			return written, net.ErrClosed
		}
		if h.closed {
			h.mu.Unlock()
			return written, io.ErrClosedPipe
		}
		if room := pipeLimit - len(h.buf); room > 0 {
			n := min(room, len(b)-written)
			h.buf = append(h.buf, b[written:written+n]...)
			written += n
			h.signalLocked()
			h.mu.Unlock()
			continue
		}
		ch := h.changed
		h.mu.Unlock()
		if err := c.wait(ch, false); err != nil {
			return written, err
		}
	}
	return written, nil
}

// CloseWrite ends the outgoing direction: the peer reads io.EOF after the
// buffered bytes.
func (c *pipeConn) CloseWrite() error {
	h := c.out
	h.mu.Lock()
	h.eof = true
	h.signalLocked()
	h.mu.Unlock()
	return nil
}

// Close ends both directions.
func (c *pipeConn) Close() error {
	c.closeOnce.Do(func() {
		close(c.closedLocally)
		c.CloseWrite()
		h := c.in
		h.mu.Lock()
		h.closed = true
		h.buf = nil
		h.signalLocked()
		h.mu.Unlock()
	})
	return nil
}

func (c *pipeConn) LocalAddr() net.Addr  { return pipeAddr{} }
func (c *pipeConn) RemoteAddr() net.Addr { return pipeAddr{} }

func (c *pipeConn) setDL(r, w bool, t time.Time) error {
	c.dmu.Lock()
	if r {
		c.rdl = t
	}
	if w {
		c.wdl = t
	}
	close(c.dlChanged)
	c.dlChanged = make(chan struct{})
	c.dmu.Unlock()
	return nil
}

func (c *pipeConn) SetDeadline(t time.Time) error      { return c.setDL(true, true, t) }
func (c *pipeConn) SetReadDeadline(t time.Time) error  { return c.setDL(true, false, t) }
func (c *pipeConn) SetWriteDeadline(t time.Time) error { return c.setDL(false, true, t) }
