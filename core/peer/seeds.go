package peer

import (
	"errors"
	"maps"
	"slices"
	"time"
)

// Seed retry timings, as Perl's Kernel: a base r = 0.6·(1+u) s for a
// draw u in [0,1); attempts at 0, 2r, 6r, 14r, 30r (the interval doubles
// from 2r), then at most every SeedRetryMax. Globals of 'g that are not
// connected are redialed the same way with k = 0.3·(1+u) s.
const (
	SeedRetryMax = 30 * time.Second
	seedBase     = 600 * time.Millisecond
	globalBase   = 300 * time.Millisecond
)

type seedState struct {
	addr    string
	attempt uint64
	dialing bool
	node    string // the node ID it greeted with (once known)
	self    bool   // it is our own node: dropped
}

// backoff is one retry schedule: the interval to the next attempt, the
// base of the current draw, and whether a draw is owed.
type backoff struct {
	base     time.Duration
	next     time.Duration
	drawOwed bool
}

// Start begins seeding (Config.Seeds): every seed is dialed at once
// (DialSeed), and a Draw for DrawSeed asks for the random base of the
// retries. The caller calls it once, after SetListeners.
func (m *Machine) Start(now time.Time) error {
	if m.closed {
		return ErrClosed
	}
	if m.started {
		return nil
	}
	m.started = true
	if len(m.seeds) == 0 {
		return nil
	}
	m.dialSeeds(now)
	m.owe(&m.seedRetry, DrawSeed)
	return nil
}

func (m *Machine) owe(b *backoff, kind DrawKind) {
	if !b.drawOwed {
		b.drawOwed = true
		m.emit(Draw{Kind: kind})
	}
}

// Drawn answers a Draw: u is a uniform random number in [0,1). A draw
// nobody asked for is ignored.
func (m *Machine) Drawn(now time.Time, kind DrawKind, u float64) error {
	if m.closed {
		return ErrClosed
	}
	if u < 0 || u >= 1 || u != u {
		u = 0.5
	}
	switch kind {
	case DrawSeed:
		if !m.seedRetry.drawOwed {
			return nil
		}
		m.seedRetry.drawOwed = false
		m.seedRetry.base = time.Duration(float64(seedBase) * (1 + u))
		m.seedRetry.next = 2 * m.seedRetry.base
		if m.seedsMissing() && !m.timers.Has(timerKey{TimerSeedRetry, 0, ""}) {
			m.setTimer(TimerSeedRetry, 0, "", now.Add(m.seedRetry.next))
		}
	case DrawGlobal:
		if !m.globalRetry.drawOwed {
			return nil
		}
		m.globalRetry.drawOwed = false
		m.globalRetry.base = time.Duration(float64(globalBase) * (1 + u))
		m.globalRetry.next = 2 * m.globalRetry.base
		if len(m.globalsMissing(true)) > 0 && !m.timers.Has(timerKey{TimerGlobalRedial, 0, ""}) {
			m.setTimer(TimerGlobalRedial, 0, "", now.Add(m.globalRetry.next))
		}
	}
	return nil
}

// seedsMissing reports whether a seed is not connected.
func (m *Machine) seedsMissing() bool {
	for _, s := range m.seeds {
		if s.self {
			continue
		}
		if s.node == "" || m.peers[s.node] == nil || m.peers[s.node].conn == 0 {
			return true
		}
	}
	return false
}

// dialSeeds dials every seed that is neither connected nor being dialed.
func (m *Machine) dialSeeds(now time.Time) {
	for _, s := range m.seeds {
		if s.self || s.dialing {
			continue
		}
		if s.node != "" {
			if p := m.peers[s.node]; p != nil && (p.conn != 0 || p.connecting()) {
				continue
			}
		}
		s.attempt++
		s.dialing = true
		m.emit(DialSeed{Addr: s.addr, Attempt: s.attempt})
	}
}

// SeedFailed reports that DialSeed attempt of addr failed with err. The
// seed is tried again when the retry timer fires, unless err wraps
// ErrSelf (the address is our own node's): that seed is dropped.
func (m *Machine) SeedFailed(now time.Time, addr string, attempt uint64, err error) error {
	if m.closed {
		return ErrClosed
	}
	for _, s := range m.seeds {
		if s.addr == addr && s.attempt == attempt {
			s.dialing = false
			if errors.Is(err, ErrSelf) {
				s.self = true
			}
		}
	}
	if !m.seedsMissing() {
		m.stopTimer(TimerSeedRetry, 0, "")
	}
	return nil
}

// seedUp records that the DialSeed of addr reached node peer (or our own
// node, self).
func (m *Machine) seedUp(addr string, attempt uint64, peer string, self bool) {
	for _, s := range m.seeds {
		if s.addr == addr {
			// A late answer to an older attempt still says who the seed is.
			if s.attempt == attempt {
				s.dialing = false
			}
			s.node = peer
			s.self = self
		}
	}
	if !m.seedsMissing() {
		m.stopTimer(TimerSeedRetry, 0, "")
	}
}

// isSeed reports whether node id is a seed.
func (m *Machine) isSeed(id string) bool {
	for _, s := range m.seeds {
		if s.node == id && !s.self {
			return true
		}
	}
	return false
}

// seedLost restarts seeding when a seed's connection ended: a new draw,
// and an attempt at once unless the retry timer is pending.
func (m *Machine) seedLost(now time.Time) {
	if !m.started {
		return
	}
	if !m.timers.Has(timerKey{TimerSeedRetry, 0, ""}) {
		m.dialSeeds(now)
	}
	m.owe(&m.seedRetry, DrawSeed)
}

func (m *Machine) fireSeedRetry(now time.Time) {
	m.dialSeeds(now)
	m.seedRetry.next = min(2*m.seedRetry.next, SeedRetryMax)
	if m.seedsMissing() {
		m.setTimer(TimerSeedRetry, 0, "", now.Add(m.seedRetry.next))
	}
}

// globalsMissing lists the members of 'g (not us) that have a known
// address and are not connected (nor, unless inFlight, being connected).
func (m *Machine) globalsMissing(inFlight bool) []string {
	var out []string
	for _, id := range slices.Sorted(maps.Keys(m.mergedFamily(FamilyGlobals))) {
		if id == m.self {
			continue
		}
		p := m.peers[id]
		if p != nil && (p.conn != 0 || (!inFlight && p.connecting())) {
			continue
		}
		if p == nil {
			p = &peerState{id: id}
		}
		if len(m.knownAddrs(p)) == 0 {
			continue
		}
		out = append(out, id)
	}
	return out
}

// armGlobalRedial dials the missing globals at once and restarts their
// backoff (a new draw), as Perl's keepalive of 'g does whenever a member
// goes down or appears.
func (m *Machine) armGlobalRedial(now time.Time) {
	if m.cfg.Minimal || m.closing || m.closed {
		return
	}
	if len(m.globalsMissing(true)) == 0 {
		return
	}
	missing := m.globalsMissing(false)
	for _, id := range missing {
		m.startDial(now, m.peer(id))
	}
	m.stopTimer(TimerGlobalRedial, 0, "")
	m.owe(&m.globalRetry, DrawGlobal)
}

func (m *Machine) fireGlobalRedial(now time.Time) {
	for _, id := range m.globalsMissing(false) {
		m.startDial(now, m.peer(id))
	}
	m.globalRetry.next = min(2*m.globalRetry.next, SeedRetryMax)
	if len(m.globalsMissing(true)) > 0 {
		m.setTimer(TimerGlobalRedial, 0, "", now.Add(m.globalRetry.next))
	}
}
