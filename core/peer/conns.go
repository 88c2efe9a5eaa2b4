package peer

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/aemp-go/dataconn/core/wire"
)

// ConnInfo describes a messaging connection whose handshake succeeded.
type ConnInfo struct {
	Conn ConnID
	// Peer is the node ID the peer authenticated as.
	Peer string
	// Outbound is set when we dialed it; Attempt is then the Dial's
	// attempt (0 for a dial the machine did not ask for), or the
	// DialSeed's when Seed is set.
	Outbound bool
	Attempt  uint64
	// Seed is the seed address of the DialSeed this connection answers
	// ("" otherwise).
	Seed string
	// Untrusted is set when the peer authenticated with tls_anon (no
	// shared secret): it may read the database, not write it.
	Untrusted bool
	// IsGo is set when the peer greeted as a node of this project.
	IsGo bool
	// SendFraming is the framing we send in ("msgpack", "json").
	SendFraming string
}

// Greeted reports the greeting of an incoming messaging handshake c from
// node peer. A nil result admits it (ConnUp or ConnDown for c follows); an
// error (ErrConnReplaced) refuses it, and the caller aborts the handshake.
//
// The rule: when both nodes dial each other at once, only the connection
// dialed by the lower node ID is kept, so no message can overtake another
// on a second connection. We refuse the peer's connection when our ID is
// the lower and we are dialing it, or already hold a connection we dialed.
func (m *Machine) Greeted(now time.Time, c ConnID, peer string) error {
	if m.closed {
		return ErrClosed
	}
	if c == 0 || m.conns[c] != nil || m.inbound[c] != "" {
		return fmt.Errorf("%w: %d", ErrConnKnown, c)
	}
	if peer == "" {
		return ErrBadNodeID
	}
	if peer == m.self {
		return ErrSelf
	}
	p := m.peer(peer)
	if m.self < peer && (p.dialing || (p.conn != 0 && m.conns[p.conn].dialer == m.self)) {
		return wrapf(ErrConnReplaced, "%s and %s dialed each other; the lower ID's connection is kept", m.self, peer)
	}
	m.inbound[c] = peer
	p.inbound++
	return nil
}

// ConnUp reports an authenticated messaging connection. The machine takes
// it as the peer's connection, or, when one exists already, keeps the
// connection dialed by the lower node ID (from the same dialer, the newer
// one) and retires the other: what the retired one had not handed to its
// writer moves, in order, ahead of everything sent from now on on the
// winner; the retired connection writes what it holds, half-closes
// (CloseWrite) and is read until the peer closes.
//
// An error means the machine refuses the connection (closed machine,
// reused ID, unknown framing, our own ID); the caller closes it.
func (m *Machine) ConnUp(now time.Time, info ConnInfo) error {
	if m.closed {
		return ErrClosed
	}
	id := info.Conn
	if id == 0 || m.conns[id] != nil {
		return fmt.Errorf("%w: %d", ErrConnKnown, id)
	}
	if info.Peer == "" {
		m.endInbound(now, id)
		return ErrBadNodeID
	}
	if info.Peer == m.self {
		m.endInbound(now, id)
		if info.Seed != "" {
			m.seedUp(info.Seed, info.Attempt, m.self, true)
		}
		return ErrSelf
	}
	codec, ok := wire.CodecByName(info.SendFraming)
	if !ok {
		m.endInbound(now, id)
		return fmt.Errorf("%w: %q", ErrFraming, info.SendFraming)
	}
	if greeted, ok := m.inbound[id]; ok {
		delete(m.inbound, id)
		if gp := m.peers[greeted]; gp != nil && gp.inbound > 0 {
			gp.inbound--
		}
	}
	p := m.peer(info.Peer)
	p.isGo = info.IsGo
	p.untrusted = info.Untrusted
	dialer := p.id
	if info.Outbound {
		dialer = m.self
		if info.Seed == "" && p.dialing && info.Attempt != 0 && info.Attempt == p.attempt {
			p.dialing = false
		}
	}
	c := &conn{id: id, peer: p.id, dialer: dialer, codec: codec, state: connUp, goPeer: info.IsGo}
	m.conns[id] = c
	m.heard(now, c)
	// Every connection takes its place in the order of the peer's
	// connections now, winner or not: after a fault the peer may write on
	// one we retire here (it gave up the one we keep), and what it writes
	// there is older than anything on a connection that comes up later.
	p.carrier++
	c.carried = p.carrier

	var loser *conn
	first := p.conn == 0
	if !first {
		old := m.conns[p.conn]
		low := min(m.self, p.id)
		if old.dialer == dialer || dialer == low {
			loser = old
			p.conn = id
		} else {
			loser = c
		}
		p.retired = append(p.retired, loser.id)
	} else {
		p.conn = id
	}
	if p.conn == id {
		p.awaiting = false
		m.stopTimer(TimerDialBack, 0, p.id)
		m.stopTimer(TimerConnect, 0, p.id)
		if loser != nil {
			// What the replaced connection had not handed out goes first
			// on the winner, before anything sent from now on.
			c.queue, c.queued = recode(loser.queue, loser.codec, codec)
			loser.queue, loser.queued = nil, 0
		}
		for _, msg := range p.pending {
			b, err := codec.AppendMessage(nil, msg)
			if err != nil {
				continue // not encodable in this framing: dropped
			}
			c.queue = append(c.queue, frame{b: b})
			c.queued += len(b)
		}
		p.pending = nil
		m.setTimer(TimerKeepalive, id, p.id, now.Add(m.cfg.KeepAlive))
	}
	if info.Seed != "" {
		m.seedUp(info.Seed, info.Attempt, p.id, false)
	}
	if first {
		m.emit(NodeUp{Peer: p.id, Monitors: m.nodeMonitors(p)})
		m.announce(now, p, info.Seed != "" || m.isSeed(p.id))
	}
	if loser != nil {
		m.retire(now, loser)
	}
	m.pump(now, c)
	m.checkWritable(p)
	return nil
}

// retire stops using c for new messages; it drains what it holds.
func (m *Machine) retire(now time.Time, c *conn) {
	c.state = connRetired
	m.stopTimer(TimerKeepalive, c.id, c.peer)
	m.pump(now, c)
}

// endInbound forgets a greeted incoming handshake that did not become a
// connection. Messages that waited for it get a dial of our own.
func (m *Machine) endInbound(now time.Time, id ConnID) bool {
	peer, ok := m.inbound[id]
	if !ok {
		return false
	}
	delete(m.inbound, id)
	p := m.peers[peer]
	if p == nil {
		return true
	}
	if p.inbound > 0 {
		p.inbound--
	}
	if p.conn == 0 && !p.connecting() && len(p.pending) > 0 {
		m.startDial(now, p)
	}
	return true
}

// ConnDown reports that connection c (or the greeted incoming handshake
// c) ended with err. When it was the peer's connection, the node goes
// down: NodeDown with the messages that were still queued for it.
func (m *Machine) ConnDown(now time.Time, c ConnID, err error) error {
	if m.closed {
		return ErrClosed
	}
	if m.endInbound(now, c) {
		return nil
	}
	cn := m.conns[c]
	if cn == nil {
		return fmt.Errorf("%w: %d", ErrUnknownConn, c)
	}
	m.dropConn(now, cn, err)
	return nil
}

// closeConn closes c on the machine's own decision.
func (m *Machine) closeConn(now time.Time, c *conn, err error) {
	m.emit(Close{Conn: c.id, Err: err})
	m.dropConn(now, c, err)
}

func (m *Machine) dropConn(now time.Time, c *conn, err error) {
	delete(m.conns, c.id)
	m.stopConnTimers(c)
	p := m.peers[c.peer]
	if i := slices.Index(p.retired, c.id); i >= 0 {
		p.retired = slices.Delete(p.retired, i, i+1)
	}
	defer m.releaseHeld(now, p, false)
	if p.conn != c.id {
		return
	}
	p.conn = 0
	if err == nil {
		err = errors.New("connection closed")
	}
	m.emit(NodeDown{Peer: p.id, Err: err, Dropped: len(c.queue), Monitors: m.nodeMonitors(p)})
	if !m.closing {
		m.fireAllRemote(p, err)
		m.forgetRemoteMonitors(p.id)
		m.globalDown(now, p.id)
		if m.isSeed(p.id) {
			m.seedLost(now)
		}
	}
	m.checkWritable(p)
}

// Received reports a message read from connection c. It refreshes the
// peer timeout and dispatches the message; an error says why the message
// was dropped or ignored (the connection stays up).
func (m *Machine) Received(now time.Time, c ConnID, msg wire.Message) error {
	if m.closed {
		return ErrClosed
	}
	cn := m.conns[c]
	if cn == nil {
		return fmt.Errorf("%w: %d", ErrUnknownConn, c)
	}
	m.heard(now, cn)
	p := m.peers[cn.peer]
	if cn.carried > m.oldestReading(p) {
		// Each connection of p brings at most one message after its
		// PauseRead; a peer beyond that ignores flow control.
		if len(p.held) < m.cfg.MaxHeld+1+len(p.retired) {
			p.held = append(p.held, heldMsg{carried: cn.carried, msg: msg})
			if len(p.held) >= m.cfg.MaxHeld && !cn.paused {
				cn.paused = true
				m.emit(PauseRead{Conn: cn.id})
			}
			return nil
		}
		m.releaseHeld(now, p, true)
	}
	return m.dispatch(now, cn.peer, msg)
}

// oldestReading returns the place (carried) of the oldest connection of
// p that is still being read (MaxUint64: none).
func (m *Machine) oldestReading(p *peerState) uint64 {
	oldest := uint64(math.MaxUint64)
	for _, id := range append([]ConnID{p.conn}, p.retired...) {
		if r := m.conns[id]; r != nil && !r.readDone && r.carried < oldest {
			oldest = r.carried
		}
	}
	return oldest
}

// releaseHeld dispatches, in order, the held messages of p that nothing
// older can precede any more (all of them with force, when the bound is
// reached). Their dispatch errors only say why a message was dropped and
// have no one to go to.
func (m *Machine) releaseHeld(now time.Time, p *peerState, force bool) {
	if m.closing {
		p.held = nil
		return
	}
	limit := m.oldestReading(p)
	if force {
		limit = math.MaxUint64
	}
	slices.SortStableFunc(p.held, func(a, b heldMsg) int { return cmp.Compare(a.carried, b.carried) })
	n := 0
	for n < len(p.held) && p.held[n].carried <= limit {
		n++
	}
	ready := slices.Clone(p.held[:n])
	p.held = slices.Delete(p.held, 0, n)
	if len(p.held) == 0 {
		p.held = nil
	}
	for _, h := range ready {
		_ = m.dispatch(now, p.id, h.msg)
	}
	// A paused connection reads again once it is the oldest one being
	// read (nothing it brings is held) or the held messages are few again.
	oldest := m.oldestReading(p)
	for _, id := range append([]ConnID{p.conn}, p.retired...) {
		if c := m.conns[id]; c != nil && c.paused && (c.carried <= oldest || len(p.held) < m.cfg.MaxHeld) {
			c.paused = false
			m.emit(ResumeRead{Conn: id})
		}
	}
}

// ReadClosed reports that the peer ended its side of c cleanly (EOF).
// On the peer's current connection that ends it, as ConnDown would. On
// a retired connection it means the peer sent everything: messages held
// back on the winner are dispatched, and c is closed (Close) as soon as
// what it still had to write is written.
func (m *Machine) ReadClosed(now time.Time, c ConnID) error {
	if m.closed {
		return ErrClosed
	}
	cn := m.conns[c]
	if cn == nil {
		return fmt.Errorf("%w: %d", ErrUnknownConn, c)
	}
	p := m.peers[cn.peer]
	if p.conn == c {
		m.closeConn(now, cn, wrapf(ErrClosedByPeer, "%s", cn.peer))
		return nil
	}
	cn.readDone = true
	m.releaseHeld(now, p, false)
	if cn.halfClosed {
		m.closeConn(now, cn, wrapf(ErrConnReplaced, "%s: drained and closed by the peer", cn.peer))
		return nil
	}
	m.pump(now, cn)
	return nil
}

// Heard reports bytes read from c that did not complete a message yet:
// the peer is alive.
func (m *Machine) Heard(now time.Time, c ConnID) error {
	if m.closed {
		return ErrClosed
	}
	cn := m.conns[c]
	if cn == nil {
		return fmt.Errorf("%w: %d", ErrUnknownConn, c)
	}
	m.heard(now, cn)
	return nil
}

// heard re-arms the peer timeout of a connection to a Go peer. A Perl
// peer sends nothing on an idle connection (it never sends a keepalive,
// and ignores ours), so its connections have no peer timeout: a dead
// one shows as a write error or a write stall.
func (m *Machine) heard(now time.Time, c *conn) {
	if c.goPeer {
		m.setTimer(TimerPeerTimeout, c.id, c.peer, now.Add(m.cfg.PeerTimeout))
	}
}

// FrameWritten reports that the frames on c up to and including Seq seq
// were written. It frees their room in the queue, hands out more frames
// and, on a retired connection with nothing left, asks for CloseWrite.
func (m *Machine) FrameWritten(now time.Time, c ConnID, seq uint64) error {
	if m.closed {
		return ErrClosed
	}
	cn := m.conns[c]
	if cn == nil {
		return fmt.Errorf("%w: %d", ErrUnknownConn, c)
	}
	n := 0
	for n < len(cn.inflight) && cn.inflight[n].seq <= seq {
		cn.inflightBytes -= len(cn.inflight[n].b)
		n++
	}
	if n == 0 {
		return nil
	}
	cn.inflight = slices.Delete(cn.inflight, 0, n)
	if len(cn.inflight) == 0 {
		cn.inflight = nil
		m.stopTimer(TimerWriteStall, cn.id, cn.peer)
	} else {
		m.setTimer(TimerWriteStall, cn.id, cn.peer, now.Add(m.cfg.PeerTimeout))
	}
	m.pump(now, cn)
	m.checkWritable(m.peers[cn.peer])
	return nil
}

// pump hands queued frames of c to the writer while the write window has
// room (always at least one), and half-closes a drained retired one.
func (m *Machine) pump(now time.Time, c *conn) {
	handed := false
	for len(c.queue) > 0 && (len(c.inflight) == 0 || c.inflightBytes < m.cfg.WriteWindow) {
		f := c.queue[0]
		c.queue[0] = frame{}
		c.queue = c.queue[1:]
		c.queued -= len(f.b)
		m.hand(now, c, f)
		handed = true
	}
	if len(c.queue) == 0 {
		c.queue = nil
	}
	if handed && c.state == connUp {
		m.setTimer(TimerKeepalive, c.id, c.peer, now.Add(m.cfg.KeepAlive))
	}
	if c.state == connRetired && !c.halfClosed && len(c.queue) == 0 && len(c.inflight) == 0 {
		if c.readDone {
			m.closeConn(now, c, wrapf(ErrConnReplaced, "%s: drained and closed by the peer", c.peer))
			return
		}
		c.halfClosed = true
		m.emit(CloseWrite{Conn: c.id})
	}
}

func (m *Machine) hand(now time.Time, c *conn, f frame) {
	if len(c.inflight) == 0 {
		m.setTimer(TimerWriteStall, c.id, c.peer, now.Add(m.cfg.PeerTimeout))
	}
	c.seq++
	f.seq = c.seq
	c.inflight = append(c.inflight, f)
	c.inflightBytes += len(f.b)
	m.emit(Write{Conn: c.id, Seq: f.seq, Frame: f.b, Keepalive: f.keep})
}

// keepalive sends ["", "devnull"] on an idle connection that is up.
func (m *Machine) keepalive(now time.Time, c *conn) {
	if c.state != connUp {
		return
	}
	if len(c.queue) == 0 && len(c.inflight) == 0 {
		b, err := c.codec.AppendMessage(nil, wire.Message{"", wire.NodeMsgTagDevNull})
		if err == nil {
			m.hand(now, c, frame{b: b, keep: true})
		}
	}
	m.setTimer(TimerKeepalive, c.id, c.peer, now.Add(m.cfg.KeepAlive))
}

// recode returns frames encoded in from as frames in to (the two
// connections of a tie-break may have chosen different framings), and
// their size. A frame that does not survive the change is dropped.
func recode(q []frame, from, to wire.Codec) ([]frame, int) {
	size := 0
	if from.Name() == to.Name() {
		for _, f := range q {
			size += len(f.b)
		}
		return q, size
	}
	out := q[:0]
	for _, f := range q {
		dec := from.NewDecoder(len(f.b) + 1)
		if dec.Feed(f.b) != nil {
			continue
		}
		msg, ok, err := dec.Next()
		if !ok || err != nil {
			continue
		}
		b, err := to.AppendMessage(nil, msg)
		if err != nil {
			continue
		}
		out = append(out, frame{b: b})
		size += len(b)
	}
	return out, size
}
