package peer

import (
	"container/heap"
	"fmt"
	"slices"
	"time"
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

// timerTable is the table of pending deadlines: one entry per key, kept
// in an indexed min-heap (by time, then kind, connection, peer) so that
// Deadline is O(1) and arming, stopping and firing are O(log n).
type timerTable struct {
	byKey map[timerKey]*timerEntry
	heap  []*timerEntry
}

type timerEntry struct {
	key timerKey
	at  time.Time
	idx int
}

func (e *timerEntry) timer() Timer {
	return Timer{Kind: e.key.kind, Conn: e.key.conn, Peer: e.key.peer, At: e.at}
}

func (h *timerTable) Len() int { return len(h.heap) }
func (h *timerTable) Less(i, j int) bool {
	return compareTimers(h.heap[i].timer(), h.heap[j].timer()) < 0
}
func (h *timerTable) Swap(i, j int) {
	h.heap[i], h.heap[j] = h.heap[j], h.heap[i]
	h.heap[i].idx, h.heap[j].idx = i, j
}
func (h *timerTable) Push(x any) {
	e := x.(*timerEntry)
	e.idx = len(h.heap)
	h.heap = append(h.heap, e)
}
func (h *timerTable) Pop() any {
	n := len(h.heap) - 1
	e := h.heap[n]
	h.heap[n] = nil
	h.heap = h.heap[:n]
	e.idx = -1
	return e
}

func (h *timerTable) set(k timerKey, at time.Time) {
	if e := h.byKey[k]; e != nil {
		e.at = at
		heap.Fix(h, e.idx)
		return
	}
	e := &timerEntry{key: k, at: at}
	h.byKey[k] = e
	heap.Push(h, e)
}

func (h *timerTable) stop(k timerKey) {
	if e := h.byKey[k]; e != nil {
		delete(h.byKey, k)
		heap.Remove(h, e.idx)
	}
}

func (h *timerTable) has(k timerKey) bool { return h.byKey[k] != nil }

func (h *timerTable) reset() {
	clear(h.byKey)
	clear(h.heap)
	h.heap = h.heap[:0]
}

func (m *Machine) setTimer(kind TimerKind, c ConnID, peer string, at time.Time) {
	m.timers.set(timerKey{kind, c, peer}, at)
}

func (m *Machine) stopTimer(kind TimerKind, c ConnID, peer string) {
	m.timers.stop(timerKey{kind, c, peer})
}

func (m *Machine) stopConnTimers(c *conn) {
	for _, k := range []TimerKind{TimerKeepalive, TimerPeerTimeout, TimerWriteStall} {
		m.stopTimer(k, c.id, c.peer)
	}
}

// Timers lists the pending deadlines, earliest first (ties by kind, then
// connection, then peer).
func (m *Machine) Timers() []Timer {
	out := make([]Timer, 0, len(m.timers.heap))
	for _, e := range m.timers.heap {
		out = append(out, e.timer())
	}
	slices.SortFunc(out, compareTimers)
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
	if len(m.timers.heap) == 0 {
		return time.Time{}, false
	}
	return m.timers.heap[0].at, true
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
	for len(m.timers.heap) > 0 && !m.timers.heap[0].at.After(now) {
		t := m.timers.heap[0].timer()
		m.stopTimer(t.Kind, t.Conn, t.Peer)
		m.fire(now, t)
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
			m.unreachable(p, wrapf(ErrConnectTimeout, "%s: no connection within %v", p.id, 2*m.cfg.HandshakeTimeout))
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
