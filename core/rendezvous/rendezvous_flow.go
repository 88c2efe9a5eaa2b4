package rendezvous

import (
	"errors"
	"maps"
	"strconv"
	"strings"

	"github.com/aemp-go/dataconn/core/wire"
)

// Flow control of data-connection set-ups.
//
// Initiator: each target has a window of set-ups in flight (sent their
// expectation and not settled yet), the target's MaxExpectPerPeer as it
// announced it (ConnectRequest.Window). Set-ups past the window wait in
// a FIFO without sending anything; their own deadline keeps running, so a
// set-up that waits too long fails with the usual timeout text and nothing
// ran remotely. Past MaxQueuedPerTarget queued set-ups, Connect fails at
// once with ErrQueueFull.
//
// Target: expectations past MaxExpectPerPeer wait in a FIFO per peer, up
// to MaxExpectQueuePerPeer, instead of being refused; each waits within
// its own timeout. A stream that arrives for a waiting expectation (a Perl
// initiator dials right after its round trip) is held, from any peer and
// beyond MaxEarlyPerPeer (the queue bounds it), until the expectation is
// recorded and the stream claims it, or the expectation expires.

// KeyDataConnWindow is sent by nodes of this project in their messaging
// greeting: how many pending data-connection set-ups (expectations) the
// node holds per peer (its MaxExpectPerPeer). A peer paces its set-ups to
// it (ConnectRequest.Window).
const KeyDataConnWindow = "aempgo_dcw"

// AnnouncedWindow returns the window a peer announced in its messaging
// greeting (KeyDataConnWindow), for ConnectRequest.Window: only a node of
// this project (KeyGo) announces one, and only a positive integer
// counts; 0 (the default window) otherwise.
func AnnouncedWindow(peer wire.Greeting) int {
	if _, isGo := peer.Get(wire.KeyGo); !isGo {
		return 0
	}
	v, ok := peer.Get(KeyDataConnWindow)
	if !ok {
		return 0
	}
	if n, err := strconv.Atoi(v); err == nil && n > 0 {
		return n
	}
	return 0
}

// rvTargetQ is the initiator's window and queue for one target.
type rvTargetQ struct {
	window   int
	inflight int
	q        []*rvOut // FIFO; settled entries are skipped (phase rvPhaseDone)
	head     int
	live     int // queued entries still waiting
}

func (t *rvTargetQ) hasRoom() bool { return t.live == 0 && t.inflight < t.window }

func (t *rvTargetQ) push(o *rvOut) {
	t.q = append(t.q, o)
	t.live++
}

// pop returns the oldest waiting entry, or nil.
func (t *rvTargetQ) pop() *rvOut {
	for t.head < len(t.q) {
		o := t.q[t.head]
		t.q[t.head] = nil
		t.head++
		if o.phase == rvPhaseQueued {
			t.live--
			o.phase = rvPhaseRoundTrip // leaving the queue; startOut sets it
			t.compact()
			return o
		}
	}
	t.compact()
	return nil
}

func (t *rvTargetQ) compact() {
	if t.head == len(t.q) {
		t.q, t.head = t.q[:0], 0
	} else if t.head > 64 && t.head > len(t.q)/2 {
		n := copy(t.q, t.q[t.head:])
		clear(t.q[n:])
		t.q, t.head = t.q[:n], 0
	}
}

// targetQ returns target's queue; window > 0 updates the window (the
// latest request carries the target's latest announcement).
func (r *Machine) targetQ(target string, window int) *rvTargetQ {
	t := r.targets[target]
	if t == nil {
		t = &rvTargetQ{window: DefaultMaxExpectPerPeer}
		r.targets[target] = t
	}
	if window > 0 {
		t.window = window
	}
	return t
}

func (r *Machine) dropTargetQ(target string) {
	if t := r.targets[target]; t != nil && t.inflight == 0 && t.live == 0 {
		delete(r.targets, target)
	}
}

// releaseOut frees o's slot (or its queue entry) and starts queued
// set-ups that now fit.
func (r *Machine) releaseOut(o *rvOut) {
	t := r.targets[o.req.Target]
	switch {
	case t == nil:
	case o.inflight:
		o.inflight = false
		t.inflight--
	case o.phase == rvPhaseQueued:
		t.live--
	}
	o.phase = rvPhaseDone
	if t == nil {
		return
	}
	for t.inflight < t.window {
		n := t.pop()
		if n == nil {
			break
		}
		if at, _ := r.timers.At(idTimer(TimerConnect, n.req.ID)); !at.After(r.now) {
			// Its deadline is now (timers due at the same instant fire
			// one by one): it fails without starting.
			r.timers.Stop(idTimer(TimerConnect, n.req.ID))
			delete(r.out, n.req.ID)
			n.phase = rvPhaseDone
			text := rvTimeoutText(n.req.Target, n.req.Timeout)
			r.emit(Fail{ID: n.req.ID, Reason: wire.DataConnReason("%s", text), Err: rvErr(ErrTimeout, n.req.Target, text)})
			continue
		}
		r.startOut(r.now, n)
	}
	r.dropTargetQ(o.req.Target)
}

// rvWaitQ is the target's queue of waiting expectations of one peer;
// expired entries are skipped.
type rvWaitQ struct {
	items []*rvExp
	head  int
	live  int
}

// canWait reports whether from's queue has room for one more item.
func (r *Machine) canWait(from string) bool {
	q := r.waits[from]
	return q == nil || q.live < r.cfg.MaxExpectQueuePerPeer
}

func (r *Machine) waitQ(from string) *rvWaitQ {
	q := r.waits[from]
	if q == nil {
		q = &rvWaitQ{}
		r.waits[from] = q
	}
	return q
}

func (r *Machine) waitExp(e *rvExp) {
	e.waiting = true
	r.waitIDs[e.id] = e
	q := r.waitQ(e.from)
	q.items = append(q.items, e)
	q.live++
}

// expireWaiting ends a waiting expectation at its deadline.
func (r *Machine) expireWaiting(e *rvExp) {
	e.waiting = false
	delete(r.waitIDs, e.id)
	if q := r.waits[e.from]; q != nil {
		q.live--
	}
	r.refuseHeld(e.id, e.from, ErrUnknownID, "its expectation expired while waiting")
	r.sendKill(e.from, e.portName, r.cfg.Self+": data connection from "+e.from+
		" not established within "+Seconds(e.timeout)+" seconds")
	r.stats.count(ErrTimeout)
	r.pumpWaits(e.from)
}

// pumpWaits records from's waiting expectations while there is room.
func (r *Machine) pumpWaits(from string) {
	q := r.waits[from]
	if q == nil {
		return
	}
	for q.head < len(q.items) {
		e := q.items[q.head]
		if e.waiting { // else it expired meanwhile
			if r.expPerPeer[from] >= r.cfg.MaxExpectPerPeer {
				break
			}
			e.waiting = false
			delete(r.waitIDs, e.id)
			q.live--
			r.recordExp(e)
		}
		q.items[q.head] = nil
		q.head++
	}
	if q.head == len(q.items) {
		delete(r.waits, from)
		return
	}
	if q.head > 64 && q.head > len(q.items)/2 {
		n := copy(q.items, q.items[q.head:])
		clear(q.items[n:])
		q.items, q.head = q.items[:n], 0
	}
}

// Proven reports whether the accepted stream ref presented an id that an
// authenticated messaging connection announced for its peer: a pending or
// waiting expectation, or a dial-back we asked for. An attacker cannot
// forge that (the ids are unguessable), so a listener may give such
// handshakes precedence over anonymous ones.
func (r *Machine) Proven(ref ConnRef) bool {
	if _, ok := r.admitted[ref]; ok {
		return true
	}
	h := r.held[ref]
	if h == nil {
		return false
	}
	if e := r.exps[h.id]; e != nil && e.from == h.peer {
		return true
	}
	if e := r.waitIDs[h.id]; e != nil && e.from == h.peer {
		return true
	}
	if o := r.out[h.id]; o != nil && o.req.Target == h.peer {
		return true
	}
	return false
}

// Stats is a snapshot of the machine's load and of its refusals and
// failures by rule (the rule's text), for an operator.
type Stats struct {
	// Queued set-ups wait for a slot in their target's window; InFlight
	// ones have sent their expectation.
	Queued, InFlight int
	// Expectations are pending (matchable); ExpectWaiting wait in their
	// peer's queue; Held are accepted streams held for a late match.
	Expectations, ExpectWaiting, Held int
	// Refused counts, by rule, what this node refused as a target
	// (streams, expectations) and expectations that expired.
	Refused map[string]uint64
	// Failed counts, by rule, set-ups of ours that failed.
	Failed map[string]uint64

	refused map[string]uint64
	failed  map[string]uint64
}

func (s *Stats) count(rule error) {
	if s.refused == nil {
		s.refused = map[string]uint64{}
	}
	s.refused[ruleKey(rule)]++
}

func (s *Stats) fail(rule error) {
	if s.failed == nil {
		s.failed = map[string]uint64{}
	}
	s.failed[ruleKey(rule)]++
}

// ruleKey names a rule by its sentinel's text without the package prefix.
func ruleKey(err error) string {
	var re *Error
	if errors.As(err, &re) && re.Rule != nil {
		err = re.Rule
	}
	if err == nil {
		return "unknown"
	}
	return strings.TrimPrefix(err.Error(), "dataconn rendezvous: ")
}

// count updates the statistics for an action about to be emitted.
func (r *Machine) count(a Action) {
	switch a := a.(type) {
	case Fail:
		r.stats.fail(a.Err)
	case Refuse:
		r.stats.count(a.Err)
	}
}

// Stats returns a snapshot of the machine's load and counters.
func (r *Machine) Stats() Stats {
	s := Stats{
		Expectations:  len(r.exps),
		ExpectWaiting: len(r.waitIDs),
		Held:          len(r.held),
		Refused:       maps.Clone(r.stats.refused),
		Failed:        maps.Clone(r.stats.failed),
	}
	for _, t := range r.targets {
		s.Queued += t.live
		s.InFlight += t.inflight
	}
	if s.Refused == nil {
		s.Refused = map[string]uint64{}
	}
	if s.Failed == nil {
		s.Failed = map[string]uint64{}
	}
	return s
}
