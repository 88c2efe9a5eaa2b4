package transport

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/aemp-go/dataconn/core/handshake"
	"github.com/aemp-go/dataconn/core/peer"
	"github.com/aemp-go/dataconn/core/rendezvous"
	"github.com/aemp-go/dataconn/core/wire"
)

// Admission of incoming handshakes (Config.MaxHandshakes). A handshake is
// unproven until its peer presents something an attacker cannot forge: a
// data connection whose dataconn_id matches an expectation (or dial-back)
// announced over an authenticated messaging connection. Only unproven
// handshakes count against the cap, and a proven one is never dropped to
// make room. When the cap is reached, the oldest handshake whose peer has
// not even greeted for silentGrace is dropped (an honest peer greets at
// once), or else the oldest that has been unproven for staleAfter (a
// quarter of the handshake timeout: a greeting proves nothing, and honest
// handshakes finish or prove themselves within a few round trips); when
// there is none, the listener stops accepting until a slot frees, and new
// connections wait in the kernel's backlog.

// silentGrace is the least time an accepted connection may stay silent,
// once the listener started serving it, before it can be dropped to make
// room for a new one. The listener uses four times the recent time honest
// peers took to greet when that is longer (a busy machine greets late),
// at most a quarter of the handshake timeout.
const silentGrace = 250 * time.Millisecond

// Backoff of the accept loop after a temporary error (descriptor
// exhaustion and the like): doubling from acceptBackoffMin up to
// acceptBackoffMax, reset by the next successful Accept.
const (
	acceptBackoffMin = 5 * time.Millisecond
	acceptBackoffMax = time.Second
)

type listener struct {
	n    *Node
	l    net.Listener
	nw   Network
	addr string

	mu       sync.Mutex
	pending  map[*pendingHS]struct{}
	unproven map[*pendingHS]struct{}
	closed   bool
	// freed is signalled when a handshake ends or proves itself.
	freed chan struct{}

	// seq numbers the accepted connections; idleServers counts the
	// goroutines that served one and wait, on promote, to accept again
	// (see acceptFrom).
	seq         uint64
	idleServers int
	promote     chan struct{}

	paused       atomic.Int64 // times the listener stopped accepting at the cap (episodes)
	evicted      atomic.Int64 // silent handshakes dropped at the cap
	acceptErrors atomic.Int64 // temporary Accept errors survived
	greetNanos   atomic.Int64 // moving average of the time peers took to greet
}

type pendingHS struct {
	c   net.Conn
	seq uint64
	// served is when the listener started serving it (unix nanoseconds of
	// the node's clock), 0 before: a connection is not silent while it
	// waits for a goroutine to read it.
	served atomic.Int64
	// greeted is set once the peer's greeting arrived; spoke once bytes
	// from the peer were seen waiting to be read.
	greeted, spoke atomic.Bool
}

// started records that the handshake's goroutine runs.
func (l *listener) started(p *pendingHS) {
	p.served.Store(time.Now().UnixNano())
}

// greeted records the peer's greeting and how long it took.
func (l *listener) greeted(p *pendingHS) {
	p.greeted.Store(true)
	if s := p.served.Load(); s != 0 {
		d := time.Now().UnixNano() - s
		old := l.greetNanos.Load()
		l.greetNanos.Store(old + (d-old)/8) // moving average
	}
}

// staleAfter is how long an unproven handshake that is not silent (its
// peer greeted or sent bytes, then stalled) is kept at the cap: honest
// ones prove themselves or finish within a few round trips.
func (l *listener) staleAfter() time.Duration {
	return max(4*l.grace(), l.n.cfg.HandshakeTimeout/4)
}

// grace is how long a silent handshake is kept at the cap.
func (l *listener) grace() time.Duration {
	g := max(silentGrace, 4*time.Duration(l.greetNanos.Load()))
	return min(g, max(silentGrace, l.n.cfg.HandshakeTimeout/4))
}

func newListener(n *Node, l net.Listener, nw Network, addr string) *listener {
	return &listener{n: n, l: l, nw: nw, addr: addr,
		pending:  map[*pendingHS]struct{}{},
		unproven: map[*pendingHS]struct{}{},
		freed:    make(chan struct{}, 1),
		promote:  make(chan struct{}, maxIdleServers),
	}
}

func (l *listener) signal() {
	select {
	case l.freed <- struct{}{}:
	default:
	}
}

func (l *listener) close() {
	l.mu.Lock()
	l.closed = true
	for p := range l.pending {
		p.c.Close()
	}
	l.mu.Unlock()
	l.l.Close()
	l.signal()
}

// finished forgets a handshake that ended.
func (l *listener) finished(p *pendingHS) {
	l.mu.Lock()
	delete(l.pending, p)
	delete(l.unproven, p)
	l.mu.Unlock()
	l.signal()
}

// proven marks a handshake as proven: it no longer counts against the
// cap and is never dropped to make room.
func (l *listener) proven(p *pendingHS) {
	l.mu.Lock()
	_, was := l.unproven[p]
	delete(l.unproven, p)
	l.mu.Unlock()
	if was {
		l.signal()
	}
}

// waitRoom returns once an unproven handshake may be accepted, dropping a
// silent one or pausing as needed; false when the listener is closing.
func (l *listener) waitRoom() bool {
	capN := l.n.cfg.MaxHandshakes
	paused := false
	for {
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			return false
		}
		if len(l.unproven) < capN {
			l.mu.Unlock()
			return true
		}
		// The oldest silent handshake, and the oldest of all (a peer
		// that greeted but stalls proves nothing either).
		var oldest, stalest *pendingHS
		for q := range l.unproven {
			at := q.served.Load()
			if at == 0 {
				continue
			}
			if stalest == nil || at < stalest.served.Load() {
				stalest = q
			}
			if !q.greeted.Load() && !q.spoke.Load() && (oldest == nil || at < oldest.served.Load()) {
				oldest = q
			}
		}
		if oldest != nil && spoke(oldest.c) {
			// Its peer spoke; the machine is just busy.
			oldest.spoke.Store(true)
			l.mu.Unlock()
			continue
		}
		now := time.Now().UnixNano()
		wait := silentGrace // handshakes not served yet start soon
		var drop *pendingHS
		why := ""
		if oldest != nil {
			grace := l.grace()
			age := time.Duration(now - oldest.served.Load())
			if age >= grace {
				drop, why = oldest, "silent"
			} else {
				wait = grace - age
			}
		}
		if drop == nil && stalest != nil {
			stale := l.staleAfter()
			age := time.Duration(now - stalest.served.Load())
			if age >= stale {
				drop, why = stalest, "stalled"
			} else {
				wait = min(wait, stale-age)
			}
		}
		if drop != nil {
			delete(l.pending, drop)
			delete(l.unproven, drop)
			l.mu.Unlock()
			drop.c.Close()
			l.evicted.Add(1)
			l.n.log.Debug("handshake cap reached; dropped the oldest "+why+" unproven handshake", "addr", l.addr, "cap", capN)
			continue
		}
		l.mu.Unlock()
		// Stop accepting for a while: the kernel's backlog holds new
		// connections until a slot frees or a silent one is old enough.
		if !paused {
			paused = true
			l.paused.Add(1)
		}
		t := time.AfterFunc(wait, l.signal)
		select {
		case <-l.freed:
			t.Stop()
		case <-l.n.ctx.Done():
			t.Stop()
			return false
		}
	}
}

// maxIdleServers bounds the goroutines of a listener that wait to
// accept again once they served a connection (see acceptFrom); past it
// they end. One that waits idleServerLinger without being called ends
// too, so a quiet listener keeps only its accepting goroutine.
const (
	maxIdleServers   = 4
	idleServerLinger = time.Second
)

func (l *listener) acceptLoop() { l.acceptFrom() }

// acceptFrom accepts connections until the listener closes. It serves
// the first one it accepts itself, once another goroutine accepts the
// next: one that already runs, served a connection before and waits to
// accept again (promote), or else a new one. A connection is thus served
// by a goroutine that already runs, so its handshake does not wait for a
// new goroutine to be scheduled, and usually by one whose stack has
// already grown to what a handshake needs. Having served, the goroutine
// waits to accept again, unless maxIdleServers already wait.
func (l *listener) acceptFrom() {
	defer l.n.wg.Done()
	backoff := time.Duration(0)
	var linger *time.Timer // made by the first rest, then moved
	defer func() {
		if linger != nil {
			linger.Stop()
		}
	}()
	for {
		if !l.waitRoom() {
			return
		}
		c, err := l.l.Accept()
		if err != nil {
			if l.n.ctx.Err() != nil || errors.Is(err, net.ErrClosed) || !temporaryAccept(err) {
				if l.n.ctx.Err() == nil {
					l.n.log.Debug("accept ended", "addr", l.addr, "err", err)
				}
				return
			}
			// Out of descriptors or another passing condition: back off
			// and keep serving once it clears.
			backoff = min(max(2*backoff, acceptBackoffMin), acceptBackoffMax)
			l.acceptErrors.Add(1)
			l.n.log.Warn("accept failed; retrying", "addr", l.addr, "err", err, "backoff", backoff)
			done := make(chan struct{})
			t := time.AfterFunc(backoff, func() { close(done) })
			select {
			case <-done:
			case <-l.n.ctx.Done():
				t.Stop()
				return
			}
			continue
		}
		backoff = 0
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			c.Close()
			return
		}
		l.seq++
		p := &pendingHS{c: c, seq: l.seq}
		l.pending[p] = struct{}{}
		l.unproven[p] = struct{}{}
		idle := l.idleServers > 0
		if idle {
			l.idleServers--
		}
		l.mu.Unlock()
		if idle {
			l.promote <- struct{}{} // room: one per idle server counted
		} else {
			l.n.wg.Add(1)
			go l.acceptFrom()
		}
		l.n.wg.Add(1) // serve
		l.serve(p)
		if !l.rest(&linger) {
			return
		}
	}
}

// rest waits, after a served connection, until this goroutine is to
// accept again; false when it is to end instead (the listener closes,
// maxIdleServers wait already, or none called it for idleServerLinger).
// *linger is the goroutine's timer for the last.
//
// Every waiting goroutine is counted in idleServers or has a promotion
// sent for it in promote: one that leaves at the linger takes itself off
// the count, or, when the count is zero (every waiting one has a
// promotion on its way), takes one and accepts.
func (l *listener) rest(linger **time.Timer) bool {
	l.mu.Lock()
	if l.closed || l.idleServers >= maxIdleServers {
		l.mu.Unlock()
		return false
	}
	l.idleServers++
	l.mu.Unlock()
	if *linger == nil {
		*linger = time.NewTimer(idleServerLinger)
	} else {
		(*linger).Reset(idleServerLinger)
	}
	select {
	case <-l.promote:
		(*linger).Stop()
		return true
	case <-l.n.ctx.Done():
		return false
	case <-(*linger).C:
	}
	l.mu.Lock()
	if l.idleServers > 0 {
		l.idleServers--
		l.mu.Unlock()
		return false
	}
	l.mu.Unlock()
	select {
	case <-l.promote:
		return true
	case <-l.n.ctx.Done():
		return false
	}
}

// temporaryAccept reports whether an Accept error may pass: descriptor
// or memory exhaustion, an aborted connection, or an error that says it
// is temporary.
func temporaryAccept(err error) bool {
	for _, e := range []error{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM, syscall.ECONNABORTED, syscall.EINTR, syscall.EAGAIN} {
		if errors.Is(err, e) {
			return true
		}
	}
	var te interface{ Temporary() bool }
	return errors.As(err, &te) && te.Temporary()
}

// isDescriptorLimit reports whether err is EMFILE or ENFILE.
func isDescriptorLimit(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE)
}

// Spoker is implemented by streams that know whether their peer sent
// anything yet (a QUIC stream does). A Node's listener never drops, to
// make room at MaxHandshakes, a handshake whose peer spoke.
type Spoker interface {
	PeerSpoke() bool
}

// spoke reports whether c's peer sent something the handshake has not
// read yet, or ever: the stream says so, or the kernel holds unread bytes.
func spoke(c net.Conn) bool {
	if s, ok := c.(Spoker); ok {
		return s.PeerSpoke()
	}
	unread, _ := hasUnread(c)
	return unread
}

func (l *listener) serve(p *pendingHS) {
	defer l.n.wg.Done()
	l.n.growForTLS(l.nw)
	// The init function of an accepted data connection runs here, on the
	// handshake's goroutine, once its slot is free.
	if run := l.serveHandshake(p); run != nil {
		run()
	}
}

// serveHandshake runs the acceptor's handshake on p; for a data
// connection handed to an init function it returns the function's run.
func (l *listener) serveHandshake(p *pendingHS) func() {
	defer l.finished(p) // frees its slot under MaxHandshakes
	l.started(p)
	n := l.n
	c := p.c
	done := func() {
		l.mu.Lock()
		delete(l.pending, p)
		l.mu.Unlock()
	}
	eg, _ := c.(EarlyGreeter)
	early := eg != nil && eg.GreetsFirst()
	if mux, ok := l.nw.(MuxNetwork); ok && !n.cfg.PerlCompat && !early {
		if n.peekDataStream(mux, c, done) {
			return nil
		}
	}
	nonce, err := n.nonce()
	if err != nil {
		done()
		c.Close()
		return nil
	}
	hc := n.handshakeConfig(wire.ProtocolMessaging, nil, true, l.nw, c)
	hc.EarlyGreeting = early
	m, err := handshake.New(hc, nonce, time.Now())
	if err != nil {
		done()
		c.Close()
		return nil
	}
	opts := n.driveOptions(l.nw)
	var ref rendezvous.ConnRef
	var admitted peer.ConnID
	opts.OnPeerGreeting = func(ctx context.Context, g wire.Greeting, protocol string) ([]wire.KV, error) {
		l.greeted(p)
		if early && protocol != wire.ProtocolMessaging {
			// Our greeting went out before theirs: nothing can be added
			// to it, and a peer dials only messaging connections so.
			return nil, fmt.Errorf("aemp: %q on a stream we greeted first", protocol)
		}
		if protocol == wire.ProtocolMessaging {
			// The machine admits it or refuses it (the tie-break).
			n.mu.Lock()
			id := n.newConnIDLocked()
			n.mu.Unlock()
			err := n.input(g.NodeID, func(now time.Time) error { return n.m.Greeted(now, id, g.NodeID) })
			if err == nil {
				admitted = id
			}
			if early {
				return nil, n.publicErr(err)
			}
			return n.ticketFor(g, nil), n.publicErr(err)
		}
		if protocol != wire.ProtocolDataConn {
			return nil, fmt.Errorf("aemp: unsupported protocol %q", protocol)
		}
		var extra []wire.KV
		ref, extra, err = n.dc.incomingGreetingProven(ctx, g, func() { l.proven(p) })
		return n.ticketFor(g, extra), err
	}
	conn, res, err := Drive(n.ctx, c, m, opts)
	done()
	if admitted != 0 {
		if err == nil && res.Protocol == wire.ProtocolMessaging {
			if aerr := n.addConn(admitted, conn, res, peer.ConnInfo{}); aerr != nil {
				n.log.Debug("incoming messaging connection refused", "addr", l.addr, "peer", res.PeerNodeID, "err", aerr)
			}
			return nil
		}
		herr := err
		if herr == nil {
			herr = fmt.Errorf("aemp: unexpected protocol %q", res.Protocol)
		}
		n.input(originLocal, func(now time.Time) error { return n.m.ConnDown(now, admitted, herr) })
	}
	if err != nil {
		if ref != 0 {
			n.dc.incomingFailed(ref, err)
		}
		n.log.Debug("incoming handshake failed", "addr", l.addr, "remote", c.RemoteAddr(), "err", err)
		return nil
	}
	switch res.Protocol {
	case wire.ProtocolDataConn:
		return n.dc.incomingDoneInline(ref, conn, res)
	default:
		conn.Close()
	}
	return nil
}
