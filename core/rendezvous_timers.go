package core

import (
	"container/heap"
	"time"
)

// rvTimer is one pending deadline of the rendezvous machine. Timers live in
// an indexed min-heap ordered by (at, seq), so Tick fires them in a
// deterministic order and a cancelled timer is removed at once (no stale
// entries accumulate).
type rvTimer struct {
	at   time.Time
	seq  uint64
	idx  int // position in the heap; -1 when not scheduled
	fire func(now time.Time)
}

type rvTimerHeap []*rvTimer

func (h rvTimerHeap) Len() int { return len(h) }

func (h rvTimerHeap) Less(i, j int) bool {
	if !h[i].at.Equal(h[j].at) {
		return h[i].at.Before(h[j].at)
	}
	return h[i].seq < h[j].seq
}

func (h rvTimerHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].idx = i
	h[j].idx = j
}

func (h *rvTimerHeap) Push(x any) {
	t := x.(*rvTimer)
	t.idx = len(*h)
	*h = append(*h, t)
}

func (h *rvTimerHeap) Pop() any {
	old := *h
	n := len(old) - 1
	t := old[n]
	old[n] = nil
	t.idx = -1
	*h = old[:n]
	return t
}

func newRvTimer(fire func(now time.Time)) *rvTimer {
	return &rvTimer{idx: -1, fire: fire}
}

// schedule (re)arms t to fire at at.
func (r *Rendezvous) schedule(t *rvTimer, at time.Time) {
	t.at = at
	r.seq++
	t.seq = r.seq
	if t.idx >= 0 {
		heap.Fix(&r.timers, t.idx)
		return
	}
	heap.Push(&r.timers, t)
}

// unschedule disarms t; a nil or idle timer is fine.
func (r *Rendezvous) unschedule(t *rvTimer) {
	if t == nil || t.idx < 0 {
		return
	}
	heap.Remove(&r.timers, t.idx)
}

// Tick fires every timer due at or before now, in deadline order.
func (r *Rendezvous) Tick(now time.Time) {
	r.now = now
	// Every timer fired either disappears or is re-armed strictly after
	// now (DialStagger > 0), so this loop ends; the bound is a second guard.
	for budget := 4*len(r.timers) + 16; budget > 0 && len(r.timers) > 0; budget-- {
		t := r.timers[0]
		if t.at.After(now) {
			return
		}
		heap.Pop(&r.timers)
		t.fire(now)
	}
}

// Deadline returns the next time Tick is needed; the zero time when no
// timer is pending.
func (r *Rendezvous) Deadline() time.Time {
	if len(r.timers) == 0 {
		return time.Time{}
	}
	return r.timers[0].at
}
