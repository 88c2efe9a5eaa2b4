package peer

import (
	"fmt"
	"time"

	"github.com/aemp-go/dataconn/core/internal/timers"
)

// TimerKind names one kind of deadline the machine keeps. Every pending
// deadline is one entry of a small table keyed by (kind, connection or
// peer); Deadline is the minimum over the table and Timers lists it.
type TimerKind uint8

// Timer kinds, in the order Tick fires timers that fall due at the same
// instant.
const (
	// TimerKeepalive (per connection that is up): nothing was handed to
	// the writer for KeepAlive; an idle keepalive ["", "devnull"] goes out.
	TimerKeepalive TimerKind = iota + 1
	// TimerPeerTimeout (per connection): nothing arrived for PeerTimeout;
	// the connection is closed with ErrPeerTimeout.
	TimerPeerTimeout
	// TimerWriteStall (per connection with frames in flight): no
	// FrameWritten for PeerTimeout; closed with ErrWriteStalled.
	TimerWriteStall
	// TimerConnect (per peer being connected): no connection within
	// 2 × HandshakeTimeout; queued messages are dropped (ErrConnectTimeout).
	TimerConnect
	// TimerDialBack (per peer): our dial was refused and we wait
	// HandshakeTimeout for the peer's own connection (ErrDialBackTimeout).
	TimerDialBack
	// TimerSeedRetry (one): seeds are not all connected; the ones that
	// are not are dialed again (DialSeed) and the interval doubles.
	TimerSeedRetry
	// TimerGlobalRedial (one): members of 'g are not connected; they are
	// dialed again and the interval doubles.
	TimerGlobalRedial
)

var timerNames = [...]string{
	TimerKeepalive:    "keepalive",
	TimerPeerTimeout:  "peer-timeout",
	TimerWriteStall:   "write-stall",
	TimerConnect:      "connect",
	TimerDialBack:     "dial-back",
	TimerSeedRetry:    "seed-retry",
	TimerGlobalRedial: "global-redial",
}

// String returns the kind's name, e.g. "peer-timeout".
func (k TimerKind) String() string {
	if int(k) < len(timerNames) && timerNames[k] != "" {
		return timerNames[k]
	}
	return "timer?"
}

// Timer is one pending deadline: its kind, what it belongs to (Conn for
// connection timers, Peer for peer timers; connection timers carry the
// connection's peer too) and when it falls due.
type Timer struct {
	Kind TimerKind
	Conn ConnID
	Peer string
	At   time.Time
}

type timerKey struct {
	kind TimerKind
	conn ConnID
	peer string
}

// timerTable is the table of pending deadlines: one entry per key, timers
// due at the same instant ordered by kind, connection, peer.
type timerTable = timers.Table[timerKey]

func newTimerTable() timerTable {
	return timers.New(timers.MapIndex[timerKey]{}, func(a, b timerKey) int {
		return compareTimers(Timer{Kind: a.kind, Conn: a.conn, Peer: a.peer}, Timer{Kind: b.kind, Conn: b.conn, Peer: b.peer})
	})
}

func timerOf(e timers.Entry[timerKey]) Timer {
	return Timer{Kind: e.Key.kind, Conn: e.Key.conn, Peer: e.Key.peer, At: e.At}
}

func (m *Machine) setTimer(kind TimerKind, c ConnID, peer string, at time.Time) {
	m.timers.Set(timerKey{kind, c, peer}, at)
}

func (m *Machine) stopTimer(kind TimerKind, c ConnID, peer string) {
	m.timers.Stop(timerKey{kind, c, peer})
}

func (m *Machine) stopConnTimers(c *conn) {
	for _, k := range []TimerKind{TimerKeepalive, TimerPeerTimeout, TimerWriteStall} {
		m.stopTimer(k, c.id, c.peer)
	}
}

// Timers lists the pending deadlines, earliest first (ties by kind, then
// connection, then peer).
func (m *Machine) Timers() []Timer {
	es := m.timers.Pending()
	out := make([]Timer, len(es))
	for i, e := range es {
		out[i] = timerOf(e)
	}
	return out
}

func compareTimers(a, b Timer) int {
	if c := a.At.Compare(b.At); c != 0 {
		return c
	}
	if a.Kind != b.Kind {
		return int(a.Kind) - int(b.Kind)
	}
	if a.Conn != b.Conn {
		if a.Conn < b.Conn {
			return -1
		}
		return 1
	}
	switch {
	case a.Peer < b.Peer:
		return -1
	case a.Peer > b.Peer:
		return 1
	}
	return 0
}

// Deadline returns the earliest pending deadline, when Tick is due next;
// ok is false when nothing is pending.
func (m *Machine) Deadline() (at time.Time, ok bool) {
	return m.timers.Deadline()
}

// Tick tells the machine that time is now: every deadline at or before
// now fires, earliest first, and its actions are queued for Poll.
func (m *Machine) Tick(now time.Time) {
	if m.closed {
		return
	}
	// Each firing may change the table (re-arm, stop, add); take the
	// earliest due entry until none is left. A firing re-arms only into
	// the future, so this ends.
	for e, ok := m.timers.Due(now); ok; e, ok = m.timers.Due(now) {
		m.fire(now, timerOf(e))
	}
}

func (m *Machine) fire(now time.Time, t Timer) {
	switch t.Kind {
	case TimerKeepalive:
		if c := m.conns[t.Conn]; c != nil {
			m.keepalive(now, c)
		}
	case TimerPeerTimeout:
		if c := m.conns[t.Conn]; c != nil {
			m.closeConn(now, c, wrapf(ErrPeerTimeout, "nothing from %s for %v", c.peer, m.cfg.PeerTimeout))
		}
	case TimerWriteStall:
		if c := m.conns[t.Conn]; c != nil {
			m.closeConn(now, c, wrapf(ErrWriteStalled, "%s took no frame for %v", c.peer, m.cfg.PeerTimeout))
		}
	case TimerConnect:
		if p := m.peers[t.Peer]; p != nil && p.conn == 0 {
			p.dialing, p.awaiting = false, false
			m.stopTimer(TimerDialBack, 0, p.id)
			m.unreachable(p, wrapf(ErrConnectTimeout, "%s: no connection within %v", p.id, ConnectWindow(m.cfg.HandshakeTimeout)))
		}
	case TimerSeedRetry:
		m.fireSeedRetry(now)
	case TimerGlobalRedial:
		m.fireGlobalRedial(now)
	case TimerDialBack:
		if p := m.peers[t.Peer]; p != nil && p.awaiting && p.conn == 0 {
			p.awaiting = false
			err := wrapf(ErrDialBackTimeout, "%s refused our dial and did not dial us within %v", p.id, m.cfg.HandshakeTimeout)
			if p.dialErr != nil {
				err = fmt.Errorf("%w (dial: %w)", err, p.dialErr)
			}
			m.stopTimer(TimerConnect, 0, p.id)
			m.unreachable(p, err)
		}
	}
}
