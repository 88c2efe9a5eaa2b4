package wire

import (
	"slices"
	"time"
)

// DefaultDialStagger is the happy-eyeballs delay between dials to
// successive addresses of a node: of its messaging connections, and the
// default of its data connections (rendezvous.Config.DialStagger).
const DefaultDialStagger = 250 * time.Millisecond

// DialPlan is the happy-eyeballs schedule of dials to a list of
// addresses: each address is dialed once, in order; the next one starts
// a stagger after the previous one, or at once when a dial fails; the
// caller takes the first success and closes later ones. It is pure: the
// caller dials, calls Start when Due has come, and reports each outcome.
// The rendezvous machine dials data connections with it, and the
// transport its messaging connections.
type DialPlan struct {
	addrs    []string
	next     int
	inflight []string
	stagger  time.Duration
	due      time.Time
	// LastErr is the error of the last failed dial (nil before one).
	LastErr error
}

// NewDialPlan returns a plan for addrs with the given stagger (> 0).
func NewDialPlan(addrs []string, stagger time.Duration) *DialPlan {
	return &DialPlan{addrs: addrs, stagger: stagger}
}

// Start returns the next address to dial now and moves Due to now +
// stagger while addresses remain; ok is false when none is left.
func (p *DialPlan) Start(now time.Time) (addr string, ok bool) {
	if p.next >= len(p.addrs) {
		p.due = time.Time{}
		return "", false
	}
	addr = p.addrs[p.next]
	p.next++
	p.inflight = append(p.inflight, addr)
	if p.next < len(p.addrs) {
		p.due = now.Add(p.stagger)
	} else {
		p.due = time.Time{}
	}
	return addr, true
}

// Due returns when the next dial starts if nothing fails first (Start);
// zero when no address remains.
func (p *DialPlan) Due() time.Time { return p.due }

// Ended records that the dial of addr completed (either way); it reports
// whether addr was in flight.
func (p *DialPlan) Ended(addr string) bool {
	i := slices.Index(p.inflight, addr)
	if i < 0 {
		return false
	}
	p.inflight = slices.Delete(p.inflight, i, i+1)
	return true
}

// Failed records that the dial of addr failed with err (LastErr); it
// reports whether addr was in flight. The caller then starts the next
// address at once (Start), if Remaining.
func (p *DialPlan) Failed(addr string, err error) bool {
	if !p.Ended(addr) {
		return false
	}
	p.LastErr = err
	return true
}

// Remaining reports whether addresses are left to dial.
func (p *DialPlan) Remaining() bool { return p.next < len(p.addrs) }

// InFlight returns the number of dials started and not ended.
func (p *DialPlan) InFlight() int { return len(p.inflight) }

// Dialing reports whether addr is in flight.
func (p *DialPlan) Dialing(addr string) bool { return slices.Contains(p.inflight, addr) }

// Exhausted reports whether every address was dialed and none is in
// flight: the plan failed.
func (p *DialPlan) Exhausted() bool { return !p.Remaining() && len(p.inflight) == 0 }
