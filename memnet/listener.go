package memnet

import (
	"net"
	"sync"
	"time"
)

// Listener is a memnet listener; it implements net.Listener.
type Listener struct {
	h    *Host
	addr Addr
	q    chan *Conn
	done chan struct{}

	mu     sync.Mutex
	closed bool
}

// Accept waits for and returns the next stream dialed to the listener. After
// Close it fails with an error wrapping net.ErrClosed.
func (l *Listener) Accept() (net.Conn, error) {
	select {
	case <-l.done:
	default:
		select {
		case c := <-l.q:
			return c, nil
		case <-l.done:
		}
	}
	return nil, &net.OpError{Op: "accept", Net: Scheme, Addr: l.addr, Err: net.ErrClosed}
}

// Close closes the listener: pending and future Accepts fail, streams that
// were queued but not accepted are reset, and dials to its address are
// refused. Closing twice returns an error wrapping net.ErrClosed.
func (l *Listener) Close() error {
	w := l.h.w
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	if cur, ok := l.h.listeners[l.addr.Port]; ok && cur == l {
		delete(l.h.listeners, l.addr.Port)
	}
	if !l.shutLocked(now) {
		return &net.OpError{Op: "close", Net: Scheme, Addr: l.addr, Err: net.ErrClosed}
	}
	return nil
}

// Addr returns the listener's address (a memnet Addr).
func (l *Listener) Addr() net.Addr { return l.addr }

// shutLocked closes the listener and resets the queued streams; w.mu is
// held. It reports whether the listener was open.
func (l *Listener) shutLocked(now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	l.closed = true
	close(l.done)
	for {
		select {
		case c := <-l.q:
			l.h.w.resetLocked(c.s, now)
		default:
			return true
		}
	}
}

// enqueue queues an accepted stream; it reports false when the listener is
// closed or its backlog is full.
func (l *Listener) enqueue(c *Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	select {
	case l.q <- c:
		return true
	default:
		return false
	}
}
