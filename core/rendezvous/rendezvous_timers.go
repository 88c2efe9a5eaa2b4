package rendezvous

import (
	"cmp"
	"container/heap"
	"slices"
	"time"
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
)

var rvTimerNames = [...]string{
	TimerConnect:     "connect",
	TimerExpect:      "expect",
	TimerEarlyHold:   "early-hold",
	TimerDialStagger: "dial-stagger",
}

// String returns the kind's name, e.g. "early-hold".
func (k TimerKind) String() string {
	if int(k) < len(rvTimerNames) && rvTimerNames[k] != "" {
		return rvTimerNames[k]
	}
	return "timer?"
}

// Timer is one pending deadline of the rendezvous machine: its kind,
// what it belongs to (ID for connect, expect and dial-stagger timers, Ref
// for early-hold timers) and when it falls due.
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

// rvTimerTable holds the pending deadlines, one entry per key, in an
// indexed min-heap ordered by (at, seq): timers due at the same instant
// fire in the order they were (re)armed, so Tick is deterministic, and a
// stopped timer is removed at once.
type rvTimerTable struct {
	// byID holds the timers keyed by id, one map per kind (a string key
	// is smaller than the whole rvTimerKey: a burst queues many
	// set-ups, each with its connect timer); byRef the early-hold timers.
	byID  [len(rvTimerNames)]map[string]*rvTimerEntry
	byRef map[ConnRef]*rvTimerEntry
	heap  []*rvTimerEntry
	seq   uint64
}

// lookup returns the entry of k, or nil.
func (h *rvTimerTable) lookup(k rvTimerKey) *rvTimerEntry {
	if k.kind == TimerEarlyHold {
		return h.byRef[k.ref]
	}
	return h.byID[k.kind][k.id]
}

func (h *rvTimerTable) store(k rvTimerKey, e *rvTimerEntry) {
	if k.kind == TimerEarlyHold {
		if h.byRef == nil {
			h.byRef = make(map[ConnRef]*rvTimerEntry)
		}
		h.byRef[k.ref] = e
		return
	}
	if h.byID[k.kind] == nil {
		h.byID[k.kind] = make(map[string]*rvTimerEntry)
	}
	h.byID[k.kind][k.id] = e
}

func (h *rvTimerTable) forget(k rvTimerKey) {
	if k.kind == TimerEarlyHold {
		delete(h.byRef, k.ref)
		return
	}
	delete(h.byID[k.kind], k.id)
}

type rvTimerEntry struct {
	key rvTimerKey
	at  time.Time
	seq uint64
	idx int
}

func (h *rvTimerTable) Len() int { return len(h.heap) }

func (h *rvTimerTable) Less(i, j int) bool {
	a, b := h.heap[i], h.heap[j]
	if !a.at.Equal(b.at) {
		return a.at.Before(b.at)
	}
	return a.seq < b.seq
}

func (h *rvTimerTable) Swap(i, j int) {
	h.heap[i], h.heap[j] = h.heap[j], h.heap[i]
	h.heap[i].idx, h.heap[j].idx = i, j
}

func (h *rvTimerTable) Push(x any) {
	e := x.(*rvTimerEntry)
	e.idx = len(h.heap)
	h.heap = append(h.heap, e)
}

func (h *rvTimerTable) Pop() any {
	n := len(h.heap) - 1
	e := h.heap[n]
	h.heap[n] = nil
	h.heap = h.heap[:n]
	e.idx = -1
	return e
}

// set (re)arms the timer k to fall due at at.
func (h *rvTimerTable) set(k rvTimerKey, at time.Time) {
	h.seq++
	if e := h.lookup(k); e != nil {
		e.at, e.seq = at, h.seq
		heap.Fix(h, e.idx)
		return
	}
	e := &rvTimerEntry{key: k, at: at, seq: h.seq}
	h.store(k, e)
	heap.Push(h, e)
}

// stop disarms k; an idle timer is fine.
func (h *rvTimerTable) stop(k rvTimerKey) {
	if e := h.lookup(k); e != nil {
		h.forget(k)
		heap.Remove(h, e.idx)
	}
}

// at returns when k falls due; ok is false when it is not armed.
func (h *rvTimerTable) at(k rvTimerKey) (time.Time, bool) {
	if e := h.lookup(k); e != nil {
		return e.at, true
	}
	return time.Time{}, false
}

func idTimer(kind TimerKind, id string) rvTimerKey { return rvTimerKey{kind: kind, id: id} }

func holdTimer(ref ConnRef) rvTimerKey { return rvTimerKey{kind: TimerEarlyHold, ref: ref} }

// Timers lists the pending deadlines in the order Tick would fire them.
func (r *Machine) Timers() []Timer {
	es := slices.Clone(r.timers.heap)
	slices.SortFunc(es, func(a, b *rvTimerEntry) int {
		if c := a.at.Compare(b.at); c != 0 {
			return c
		}
		return cmp.Compare(a.seq, b.seq)
	})
	out := make([]Timer, len(es))
	for i, e := range es {
		out[i] = Timer{Kind: e.key.kind, ID: e.key.id, Ref: e.key.ref, At: e.at}
	}
	return out
}

// Tick fires every timer due at or before now, in deadline order.
func (r *Machine) Tick(now time.Time) {
	r.now = now
	// Every timer fired either disappears or is re-armed strictly after
	// now (DialStagger, ClaimGrace > 0), so this loop ends; the bound is
	// a second guard.
	for budget := 4*len(r.timers.heap) + 16; budget > 0 && len(r.timers.heap) > 0; budget-- {
		e := r.timers.heap[0]
		if e.at.After(now) {
			return
		}
		r.timers.stop(e.key)
		r.fire(now, e.key)
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
	if len(r.timers.heap) == 0 {
		return time.Time{}
	}
	return r.timers.heap[0].at
}
