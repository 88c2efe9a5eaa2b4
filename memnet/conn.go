package memnet

import (
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// stream is one connection: the dialer's end a and the accepted end b.
type stream struct {
	w        *World
	dialer   string
	listener string
	num      uint64
	a, b     *Conn
	ends     atomic.Int32 // ends closed so far
}

// newStream builds both ends of a stream; w.mu is held.
func (w *World) newStream(lk *link, local, remote Addr, num uint64, held bool, now time.Time) *stream {
	s := &stream{w: w, dialer: local.Host, listener: remote.Host, num: num}
	ab := newPipe(s, lk, 0, held, now)
	ba := newPipe(s, lk, 1, held, now)
	s.a = newConn(s, local, remote, ba, ab)
	s.b = newConn(s, remote, local, ab, ba)
	return s
}

// Conn is one end of a memnet stream; it implements net.Conn and
// CloseWrite.
type Conn struct {
	s             *stream
	local, remote Addr
	in, out       *pipe

	closeOnce sync.Once
	closed    chan struct{}
	rd, wd    deadline
}

func newConn(s *stream, local, remote Addr, in, out *pipe) *Conn {
	c := &Conn{s: s, local: local, remote: remote, in: in, out: out, closed: make(chan struct{})}
	c.rd.init()
	c.wd.init()
	return c
}

// LocalAddr returns the address of this end (a memnet Addr).
func (c *Conn) LocalAddr() net.Addr { return c.local }

// RemoteAddr returns the address of the other end (a memnet Addr).
func (c *Conn) RemoteAddr() net.Addr { return c.remote }

func (c *Conn) opErr(op string, err error) error {
	return &net.OpError{Op: op, Net: Scheme, Source: c.local, Addr: c.remote, Err: err}
}

func (c *Conn) isClosed() bool {
	select {
	case <-c.closed:
		return true
	default:
		return false
	}
}

// PeerSpoke reports whether delivered bytes wait to be read, like a
// kernel's FIONREAD (transport.Spoker): a listener then knows the peer is
// not silent even before it reads.
func (c *Conn) PeerSpoke() bool {
	p := c.in
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.readable > 0
}

// Read reads delivered bytes, waiting for some. It returns io.EOF after the
// peer's Close or CloseWrite once every byte before it was read.
func (c *Conn) Read(b []byte) (int, error) {
	p := c.in
	for {
		if c.isClosed() {
			return 0, c.opErr("read", net.ErrClosed)
		}
		dl := c.rd.wait()
		if isDone(dl) {
			return 0, c.opErr("read", os.ErrDeadlineExceeded)
		}
		p.mu.Lock()
		switch {
		case p.reset:
			p.mu.Unlock()
			return 0, c.opErr("read", syscall.ECONNRESET)
		case p.readable > 0:
			n := min(len(b), p.readable)
			p.ring.read(b[:n])
			p.readable -= n
			if n > 0 {
				p.wakeWriters()
			}
			p.mu.Unlock()
			return n, nil
		case p.eof:
			p.mu.Unlock()
			return 0, io.EOF
		case len(b) == 0:
			p.mu.Unlock()
			return 0, nil
		}
		ch := p.rwake
		p.rwaiters++
		p.mu.Unlock()
		select {
		case <-ch:
		case <-dl:
		case <-c.closed:
		}
	}
}

// Write writes b, waiting while the stream's window is full. It fails with
// EPIPE after CloseWrite or once the peer closed, with ECONNRESET after a
// reset, and with a timeout after the write deadline (returning the bytes
// already accepted).
func (c *Conn) Write(b []byte) (int, error) {
	p := c.out
	total := 0
	for {
		if c.isClosed() {
			return total, c.opErr("write", net.ErrClosed)
		}
		dl := c.wd.wait()
		if isDone(dl) {
			return total, c.opErr("write", os.ErrDeadlineExceeded)
		}
		p.mu.Lock()
		switch {
		case p.reset:
			p.mu.Unlock()
			return total, c.opErr("write", syscall.ECONNRESET)
		case p.fin || p.rclosed:
			p.mu.Unlock()
			return total, c.opErr("write", syscall.EPIPE)
		case len(b) == 0:
			p.mu.Unlock()
			return total, nil
		}
		if space := p.s.w.cfg.buffer - p.ring.n; space > 0 {
			n := min(space, len(b))
			p.push(b[:n], false)
			p.mu.Unlock()
			b = b[n:]
			total += n
			if len(b) == 0 {
				return total, nil
			}
			continue
		}
		ch := p.wwake
		p.wwaiters++
		p.mu.Unlock()
		select {
		case <-ch:
		case <-dl:
		case <-c.closed:
		}
	}
}

// CloseWrite half-closes the stream: the peer reads io.EOF after the bytes
// already written, and this end can still read.
func (c *Conn) CloseWrite() error {
	if c.isClosed() {
		return c.opErr("closewrite", net.ErrClosed)
	}
	now := time.Now()
	if c.out.shutdown(now) {
		c.s.w.record(now, Event{Kind: EvCloseWrite, From: c.local.Host, To: c.remote.Host, Dialer: c.s.dialer, Stream: c.s.num})
	}
	return nil
}

// Close closes this end: pending Reads and Writes fail with net.ErrClosed,
// the peer reads the bytes in flight and then io.EOF, and the peer's Writes
// fail with EPIPE. Closing twice returns an error wrapping net.ErrClosed.
func (c *Conn) Close() error {
	first := false
	c.closeOnce.Do(func() {
		first = true
		close(c.closed)
	})
	if !first {
		return c.opErr("close", net.ErrClosed)
	}
	now := time.Now()
	c.rd.stop()
	c.wd.stop()
	c.in.closeReader()
	c.out.shutdown(now)
	w := c.s.w
	w.record(now, Event{Kind: EvClose, From: c.local.Host, To: c.remote.Host, Dialer: c.s.dialer, Stream: c.s.num})
	if c.s.ends.Add(1) == 2 {
		w.removeStream(c.s)
	}
	return nil
}

// SetDeadline sets both the read and the write deadline.
func (c *Conn) SetDeadline(t time.Time) error {
	if c.isClosed() {
		return c.opErr("set", net.ErrClosed)
	}
	c.rd.set(t)
	c.wd.set(t)
	return nil
}

// SetReadDeadline sets the time after which Reads fail with a timeout
// (the zero time means never). It also applies to a pending Read.
func (c *Conn) SetReadDeadline(t time.Time) error {
	if c.isClosed() {
		return c.opErr("set", net.ErrClosed)
	}
	c.rd.set(t)
	return nil
}

// SetWriteDeadline sets the time after which Writes fail with a timeout
// (the zero time means never). It also applies to a pending Write.
func (c *Conn) SetWriteDeadline(t time.Time) error {
	if c.isClosed() {
		return c.opErr("set", net.ErrClosed)
	}
	c.wd.set(t)
	return nil
}

// isDone reports whether ch is closed.
func isDone(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// chunk is a piece of a direction in flight: n bytes (or the end of stream)
// due at at.
type chunk struct {
	at   time.Time
	n    int
	seq  uint64
	hash uint64
	fin  bool
}

// pipe is one direction of a stream. Its bytes live in ring: the first
// readable of them are delivered, the rest are in flight as pending chunks.
type pipe struct {
	s        *stream
	lk       *link
	dir      uint64 // 0: dialer to listener, 1: back
	from, to string

	mu        sync.Mutex
	ring      ring
	readable  int
	pending   []chunk
	ph        int // index of the first pending chunk
	lastAt    time.Time
	seq       uint64
	fin       bool // the writer shut down (end of stream queued)
	eof       bool // the end of stream was delivered
	rclosed   bool // the reading end is closed
	reset     bool
	held      bool      // a partition holds delivery
	releaseAt time.Time // when the last partition on this pipe healed
	timer     *time.Timer
	armed     bool
	rwake     chan struct{} // closed to wake readers
	rwaiters  int
	wwake     chan struct{} // closed to wake writers
	wwaiters  int
}

func newPipe(s *stream, lk *link, dir uint64, held bool, now time.Time) *pipe {
	p := &pipe{s: s, lk: lk, dir: dir, from: s.dialer, to: s.listener, held: held, lastAt: now,
		rwake: make(chan struct{}), wwake: make(chan struct{})}
	if dir == 1 {
		p.from, p.to = p.to, p.from
	}
	return p
}

func (p *pipe) wakeReaders() {
	if p.rwaiters > 0 {
		close(p.rwake)
		p.rwake = make(chan struct{})
		p.rwaiters = 0
	}
}

func (p *pipe) wakeWriters() {
	if p.wwaiters > 0 {
		close(p.wwake)
		p.wwake = make(chan struct{})
		p.wwaiters = 0
	}
}

// push queues data (or the end of stream) for delivery; p.mu is held.
func (p *pipe) push(data []byte, fin bool) {
	now := time.Now()
	cfg := p.lk.load()
	seq := p.seq
	p.seq++
	at := now.Add(cfg.Latency + p.s.w.drawDuration(cfg.Jitter, drawJitter, p.s.dialer, p.s.listener, p.s.num, seq<<1|p.dir))
	if at.Before(p.lastAt) {
		at = p.lastAt
	}
	p.lastAt = at
	ch := chunk{at: at, n: len(data), seq: seq, fin: fin}
	if p.s.w.tr.on() && !fin {
		ch.hash = hashBytes(data)
	}
	p.ring.write(data, p.s.w.cfg.buffer)
	if !p.held && p.ph == len(p.pending) && !at.After(now) {
		p.deliver(ch)
		return
	}
	p.pending = append(p.pending, ch)
	p.arm(now)
}

// deliver makes a chunk readable; p.mu is held.
func (p *pipe) deliver(ch chunk) {
	at := ch.at
	if p.releaseAt.After(at) {
		at = p.releaseAt
	}
	e := Event{Kind: EvData, From: p.from, To: p.to, Dialer: p.s.dialer, Stream: p.s.num, Seq: ch.seq, Bytes: ch.n, Hash: ch.hash}
	if ch.fin {
		p.eof = true
		e.Kind = EvEOF
	} else {
		p.readable += ch.n
	}
	p.s.w.record(at, e)
	p.wakeReaders()
}

// deliverDue delivers the pending chunks due at now; p.mu is held.
func (p *pipe) deliverDue(now time.Time) {
	if p.held {
		return
	}
	for p.ph < len(p.pending) && !p.pending[p.ph].at.After(now) {
		p.deliver(p.pending[p.ph])
		p.ph++
	}
	if p.ph == len(p.pending) {
		p.pending = p.pending[:0]
		p.ph = 0
	}
}

// arm starts the timer for the first pending chunk; p.mu is held.
func (p *pipe) arm(now time.Time) {
	if p.armed || p.held || p.ph == len(p.pending) {
		return
	}
	d := p.pending[p.ph].at.Sub(now)
	if p.timer == nil {
		p.timer = time.AfterFunc(d, p.fire)
	} else {
		p.timer.Reset(d)
	}
	p.armed = true
}

// fire is the timer's function.
func (p *pipe) fire() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.armed = false
	if p.reset || p.rclosed {
		return
	}
	now := time.Now()
	p.deliverDue(now)
	p.arm(now)
}

// stopTimer stops delivery; p.mu is held.
func (p *pipe) stopTimer() {
	if p.timer != nil {
		p.timer.Stop()
	}
	p.armed = false
}

// discard drops everything buffered; p.mu is held.
func (p *pipe) discard() {
	p.stopTimer()
	p.ring = ring{}
	p.readable = 0
	p.pending = nil
	p.ph = 0
}

// setHeld starts or ends a partition hold on the pipe.
func (p *pipe) setHeld(held bool, now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.held == held {
		return
	}
	p.held = held
	if held || p.reset || p.rclosed {
		return
	}
	p.releaseAt = now
	p.deliverDue(now)
	p.arm(now)
}

// shutdown queues the end of stream; it reports whether it did.
func (p *pipe) shutdown(now time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fin || p.reset {
		return false
	}
	if p.rclosed {
		p.fin = true
	} else {
		p.push(nil, true)
		p.fin = true
	}
	p.wakeWriters()
	return true
}

// closeReader marks the reading end closed and drops its data.
func (p *pipe) closeReader() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rclosed = true
	p.discard()
	p.wakeReaders()
	p.wakeWriters()
}

// doReset resets the direction.
func (p *pipe) doReset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.reset {
		return
	}
	p.reset = true
	p.discard()
	p.wakeReaders()
	p.wakeWriters()
}

// ring is a byte ring buffer that grows up to a limit.
type ring struct {
	buf  []byte
	head int
	n    int
}

// write appends b; the caller guarantees r.n+len(b) <= limit.
func (r *ring) write(b []byte, limit int) {
	if len(b) == 0 {
		return
	}
	if need := r.n + len(b); need > len(r.buf) {
		size := min(max(2*len(r.buf), need, 4096), max(limit, need))
		nb := make([]byte, size)
		r.peek(nb[:r.n])
		r.buf, r.head = nb, 0
	}
	tail := (r.head + r.n) % len(r.buf)
	k := copy(r.buf[tail:], b)
	copy(r.buf, b[k:])
	r.n += len(b)
}

// peek copies the first len(b) <= r.n bytes into b.
func (r *ring) peek(b []byte) {
	if len(b) == 0 {
		return
	}
	k := copy(b, r.buf[r.head:])
	copy(b[k:], r.buf)
}

// read removes the first len(b) <= r.n bytes into b.
func (r *ring) read(b []byte) {
	r.peek(b)
	r.n -= len(b)
	if r.n == 0 {
		r.head = 0
	} else {
		r.head = (r.head + len(b)) % len(r.buf)
	}
}

// deadline is a resettable deadline whose channel closes when it passes.
type deadline struct {
	mu    sync.Mutex
	ch    chan struct{}
	timer *time.Timer
	gen   uint64
}

func (d *deadline) init() { d.ch = make(chan struct{}) }

// wait returns a channel closed once the deadline has passed.
func (d *deadline) wait() <-chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.ch
}

// set moves the deadline to t (zero: none).
func (d *deadline) set(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.gen++
	if d.timer != nil {
		d.timer.Stop()
		d.timer = nil
	}
	expired := isDone(d.ch)
	if t.IsZero() {
		if expired {
			d.ch = make(chan struct{})
		}
		return
	}
	dur := time.Until(t)
	if dur <= 0 {
		if !expired {
			close(d.ch)
		}
		return
	}
	if expired {
		d.ch = make(chan struct{})
	}
	gen := d.gen
	d.timer = time.AfterFunc(dur, func() {
		d.mu.Lock()
		defer d.mu.Unlock()
		if d.gen == gen && !isDone(d.ch) {
			close(d.ch)
		}
	})
}

// stop cancels the timer.
func (d *deadline) stop() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.gen++
	if d.timer != nil {
		d.timer.Stop()
		d.timer = nil
	}
}
