package peer

import (
	"errors"
	"fmt"
	"time"

	"github.com/aemp-go/dataconn/core/handshake"
	"github.com/aemp-go/dataconn/core/wire"
)

// Send sends [data...] to port portID ("NODE#NAME"). A local port gets a
// Deliver action at once (ErrUnknownPort when there is none). A message
// for another node is queued for its connection, which is dialed when
// needed; messages to one node keep their order.
//
// A full queue refuses the message with a *QueueFullError (ErrQueueFull):
// nothing is queued, and a Writable action for the node says when to try
// again. The connection is not touched: an honest sender waits.
func (m *Machine) Send(now time.Time, portID string, data ...any) error {
	if m.closed {
		return ErrClosed
	}
	node, name, err := SplitPortID(portID)
	if err != nil {
		return err
	}
	if node == m.self {
		return m.deliver(name, m.self, data)
	}
	return m.SendTo(now, node, append(wire.Message{name}, data...))
}

// SendTo queues one message (port name first: [NAME, data...] or
// ["", TAG, args...] for the node port) for node, as Send does.
func (m *Machine) SendTo(now time.Time, node string, msg wire.Message) error {
	if m.closed {
		return ErrClosed
	}
	if node == "" {
		return ErrBadNodeID
	}
	if node == m.self {
		return ErrSelf
	}
	p := m.peer(node)
	if p.conn != 0 {
		c := m.conns[p.conn]
		b, err := c.codec.AppendMessage(nil, msg)
		if err != nil {
			return err
		}
		used := c.queued + c.inflightBytes
		if used > 0 && used+len(b) > m.cfg.MaxSendQueue {
			p.blocked = true
			return &QueueFullError{Peer: node, Limit: "MaxSendQueue", Max: m.cfg.MaxSendQueue, Queued: used}
		}
		c.queue = append(c.queue, frame{b: b})
		c.queued += len(b)
		m.pump(now, c)
		return nil
	}
	if len(p.pending) >= m.cfg.MaxPending {
		p.blocked = true
		return &QueueFullError{Peer: node, Limit: "MaxPending", Max: m.cfg.MaxPending, Queued: len(p.pending)}
	}
	p.pending = append(p.pending, msg)
	if !p.connecting() {
		m.startDial(now, p)
	}
	return nil
}

// Connect makes sure a connection to node comes up: it dials unless one
// is up or being made. The outcome is NodeUp or Unreachable.
func (m *Machine) Connect(now time.Time, node string) error {
	if m.closed {
		return ErrClosed
	}
	if node == "" {
		return ErrBadNodeID
	}
	if node == m.self {
		return ErrSelf
	}
	p := m.peer(node)
	if p.conn != 0 || p.connecting() {
		return nil
	}
	m.startDial(now, p)
	return nil
}

// startDial asks for a dial of p's known addresses; with none, p is
// unreachable at once (ErrNoRoute).
func (m *Machine) startDial(now time.Time, p *peerState) {
	addrs := m.knownAddrs(p)
	if len(addrs) == 0 {
		m.unreachable(p, wrapf(ErrNoRoute, "%s", p.id))
		return
	}
	p.dialing = true
	p.attempt++
	p.dialErr = nil
	if !m.timers.Has(timerKey{TimerConnect, 0, p.id}) {
		m.setTimer(TimerConnect, 0, p.id, now.Add(ConnectWindow(m.cfg.HandshakeTimeout)))
	}
	m.emit(Dial{Peer: p.id, Addrs: m.ordered(addrs), Attempt: p.attempt})
}

// DialFailed reports that Dial attempt of peer failed with err. A stale
// attempt is ignored.
//
// The guess: when the peer closed our handshake (handshake.ErrPeerClosed) and
// its ID is the lower, it is most likely dialing us at the same moment and
// refused ours by the tie-break rule; its connection arrives within a
// handshake, so the machine waits HandshakeTimeout for it (TimerDialBack)
// before giving up. Otherwise the messages that waited are dropped
// (Unreachable).
func (m *Machine) DialFailed(now time.Time, peer string, attempt uint64, err error) error {
	if m.closed {
		return ErrClosed
	}
	p := m.peers[peer]
	if p == nil || !p.dialing || attempt != p.attempt {
		return nil
	}
	p.dialing = false
	if err == nil {
		err = errors.New("dial failed")
	}
	p.dialErr = err
	if p.conn != 0 {
		return nil // a connection came up meanwhile (the peer's)
	}
	if m.self > peer && errors.Is(err, handshake.ErrPeerClosed) {
		p.awaiting = true
		m.setTimer(TimerDialBack, 0, p.id, now.Add(m.cfg.HandshakeTimeout))
		return nil
	}
	if p.inbound > 0 {
		return nil // the peer's handshake is under way; wait for it
	}
	m.stopTimer(TimerConnect, 0, p.id)
	m.unreachable(p, fmt.Errorf("%s: %w", p.id, err))
	return nil
}

// unreachable drops what waited for a connection to p.
func (m *Machine) unreachable(p *peerState, err error) {
	n := len(p.pending)
	p.pending = nil
	m.emit(Unreachable{Peer: p.id, Err: err, Dropped: n})
	m.fireAllRemote(p, err)
	m.checkWritable(p)
}

// checkWritable emits the Writable owed to p once its queue has room.
func (m *Machine) checkWritable(p *peerState) {
	if p == nil || !p.blocked || m.closing {
		return
	}
	if p.conn != 0 {
		c := m.conns[p.conn]
		if c.queued+c.inflightBytes >= m.cfg.MaxSendQueue {
			return
		}
	} else if len(p.pending) >= m.cfg.MaxPending {
		return
	}
	p.blocked = false
	m.emit(Writable{Peer: p.id})
}

// Kill kills port portID with reason: a local port at once (PortKilled),
// a remote one by sending ["", "kil1", NAME, reason...] to its node.
func (m *Machine) Kill(now time.Time, portID string, reason ...any) error {
	if m.closed {
		return ErrClosed
	}
	node, name, err := SplitPortID(portID)
	if err != nil {
		return err
	}
	if node == m.self {
		m.killPort(now, name, reason)
		return nil
	}
	return m.SendTo(now, node, wire.KillMsg(name, reason...))
}
