package rendezvous

import (
	"time"

	"github.com/aemp-go/dataconn/core/internal/timers"
)

// TimerKind names one kind of deadline the rendezvous machine keeps.
// Every pending deadline is one entry of a small table keyed by (kind,
// data connection id or stream); Deadline is the minimum over the table
// and Timers lists it.
type TimerKind uint8

// Kinds of rendezvous timers.
const (
	// TimerConnect (per Connect, keyed by its id): the set-up's whole
	// timeout; Fail with ErrTimeout when it fires.
	TimerConnect TimerKind = iota + 1
	// TimerExpect (per expectation, keyed by its id): the timeout the
	// initiator announced in _expect; the initiator's port is killed
	// when it fires. While an admitted stream holds the claim it is
	// re-armed once for ClaimGrace instead.
	TimerExpect
	// TimerEarlyHold (per held stream, keyed by its ref): an early
	// stream of a node of this project is refused when its id has not
	// become claimable within EarlyHold.
	TimerEarlyHold
	// TimerDialStagger (per dial plan, keyed by its id): the
	// happy-eyeballs delay before the next address of the plan is dialed.
	TimerDialStagger
	// TimerRedial (per address being redialed, keyed by "ID ADDR"): the
	// backoff before a refused or unanswered dial is made again
	// (DialFaulted).
	TimerRedial
)

var rvTimerNames = [...]string{
	TimerConnect:     "connect",
	TimerExpect:      "expect",
	TimerEarlyHold:   "early-hold",
	TimerDialStagger: "dial-stagger",
	TimerRedial:      "redial",
}

// String returns the kind's name, e.g. "early-hold".
func (k TimerKind) String() string {
	if int(k) < len(rvTimerNames) && rvTimerNames[k] != "" {
		return rvTimerNames[k]
	}
	return "timer?"
}

// Timer is one pending deadline of the rendezvous machine: its kind,
// what it belongs to (ID for connect, expect and dial-stagger timers,
// "ID ADDR" for redial timers, Ref for early-hold timers) and when it falls due.
type Timer struct {
	Kind TimerKind
	ID   string
	Ref  ConnRef
	At   time.Time
}

type rvTimerKey struct {
	kind TimerKind
	id   string
	ref  ConnRef
}

// rvTimerTable holds the pending deadlines, one entry per key; timers
// due at the same instant fire in the order they were (re)armed, so Tick
// is deterministic, and a stopped timer is removed at once.
type rvTimerTable = timers.Table[rvTimerKey]

func newTimerTable() rvTimerTable { return timers.New[rvTimerKey](&rvTimerIndex{}, nil) }

type rvTimerEntry = timers.Entry[rvTimerKey]

// rvTimerIndex finds the entry of a key: byID holds the timers keyed by
// id, one map per kind (a string key is smaller than the whole
// rvTimerKey: a burst queues many set-ups, each with its connect timer);
// byRef the early-hold timers.
type rvTimerIndex struct {
	byID  [len(rvTimerNames)]map[string]*rvTimerEntry
	byRef map[ConnRef]*rvTimerEntry
}

// Get returns the entry of k, or nil.
func (x *rvTimerIndex) Get(k rvTimerKey) *rvTimerEntry {
	if k.kind == TimerEarlyHold {
		return x.byRef[k.ref]
	}
	return x.byID[k.kind][k.id]
}

// Put records e as the entry of k.
func (x *rvTimerIndex) Put(k rvTimerKey, e *rvTimerEntry) {
	if k.kind == TimerEarlyHold {
		if x.byRef == nil {
			x.byRef = make(map[ConnRef]*rvTimerEntry)
		}
		x.byRef[k.ref] = e
		return
	}
	if x.byID[k.kind] == nil {
		x.byID[k.kind] = make(map[string]*rvTimerEntry)
	}
	x.byID[k.kind][k.id] = e
}

// Delete forgets k.
func (x *rvTimerIndex) Delete(k rvTimerKey) {
	if k.kind == TimerEarlyHold {
		delete(x.byRef, k.ref)
		return
	}
	delete(x.byID[k.kind], k.id)
}

// Clear forgets every key.
func (x *rvTimerIndex) Clear() { *x = rvTimerIndex{} }

func idTimer(kind TimerKind, id string) rvTimerKey { return rvTimerKey{kind: kind, id: id} }

func holdTimer(ref ConnRef) rvTimerKey { return rvTimerKey{kind: TimerEarlyHold, ref: ref} }

// Timers lists the pending deadlines in the order Tick would fire them.
func (r *Machine) Timers() []Timer {
	es := r.timers.Pending()
	out := make([]Timer, len(es))
	for i, e := range es {
		out[i] = Timer{Kind: e.Key.kind, ID: e.Key.id, Ref: e.Key.ref, At: e.At}
	}
	return out
}

// Tick fires every timer due at or before now, in deadline order.
func (r *Machine) Tick(now time.Time) {
	r.now = now
	// Every timer fired either disappears or is re-armed strictly after
	// now (DialStagger, ClaimGrace, a redial's backoff > 0), so this loop
	// ends; the bound is a second guard.
	for budget := 4*r.timers.Len() + 16; budget > 0; budget-- {
		e, ok := r.timers.Due(now)
		if !ok {
			return
		}
		r.fire(now, e.Key)
	}
}

// fire runs the rule of the timer k that fell due.
func (r *Machine) fire(now time.Time, k rvTimerKey) {
	switch k.kind {
	case TimerConnect:
		if o := r.out[k.id]; o != nil {
			r.connectExpired(o)
		}
	case TimerExpect:
		if e := r.exps[k.id]; e != nil {
			r.expectExpired(now, e)
		} else if e := r.waitIDs[k.id]; e != nil {
			r.expireWaiting(e)
		}
	case TimerEarlyHold:
		if h := r.held[k.ref]; h != nil {
			r.unhold(h)
			r.emit(Refuse{Ref: h.ref, Err: rvErr(h.rule, h.peer, "not matched within the early hold")})
		}
	case TimerDialStagger:
		if p := r.planOf(k.id); p != nil {
			r.planStart(now, p)
		}
	case TimerRedial:
		r.redialDue(k.id)
	}
}

// planOf returns the dial plan of id (an outgoing request's or a
// dial-back's), or nil.
func (r *Machine) planOf(id string) *rvDialPlan {
	if o := r.out[id]; o != nil {
		return o.plan
	}
	if e := r.exps[id]; e != nil {
		return e.plan
	}
	return nil
}

// Deadline returns the next time Tick is needed: the minimum over the
// timer table, the zero time when no timer is pending.
func (r *Machine) Deadline() time.Time {
	at, _ := r.timers.Deadline()
	return at
}
