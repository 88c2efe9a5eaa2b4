// Package timers is the table of pending deadlines that each machine
// under core keeps (handshake, rendezvous, peer): one entry per key, the
// key naming the timer's kind and what it belongs to, in an indexed
// min-heap, so that Deadline is O(1) and arming, stopping and firing are
// O(log n). Each machine defines its kinds and keys and fires its own
// rules; the table only orders them. Like the machines it reads no clock:
// times come in as values.
package timers

import (
	"cmp"
	"container/heap"
	"slices"
	"time"
)

// Entry is one pending deadline: its key and when it falls due.
type Entry[K comparable] struct {
	Key K
	At  time.Time
	seq uint64 // when it was (re)armed, for ties without a Tie order
	idx int    // position in the heap
}

// Index finds the entry of a key. MapIndex is the plain one; a machine
// that holds many timers of one kind may keep a more compact index of its
// own. A table without an Index searches its entries, which suits a table
// of a handful of timers.
type Index[K comparable] interface {
	Get(k K) *Entry[K]
	Put(k K, e *Entry[K])
	Delete(k K)
	Clear()
}

// MapIndex is an Index in one map.
type MapIndex[K comparable] map[K]*Entry[K]

// Get returns the entry of k, or nil.
func (m MapIndex[K]) Get(k K) *Entry[K] { return m[k] }

// Put records e as the entry of k.
func (m MapIndex[K]) Put(k K, e *Entry[K]) { m[k] = e }

// Delete forgets k.
func (m MapIndex[K]) Delete(k K) { delete(m, k) }

// Clear forgets every key.
func (m MapIndex[K]) Clear() { clear(m) }

// Table is a table of pending deadlines keyed by K. The zero Table has no
// index and orders timers due at the same instant by when they were
// (re)armed; New sets an Index and a tie order.
type Table[K comparable] struct {
	index Index[K]
	h     entries[K]
	seq   uint64
	// first and firstList hold the first timer inside the table, so that a
	// machine with one timer (a handshake) allocates nothing for it. A
	// Table must not be copied once used.
	first     Entry[K]
	firstUsed bool
	firstList [1]*Entry[K]
}

// New returns a table that finds entries with index (nil: by searching)
// and orders timers due at the same instant by tie (nil: in the order
// they were armed or re-armed).
func New[K comparable](index Index[K], tie func(a, b K) int) Table[K] {
	return Table[K]{index: index, h: entries[K]{tie: tie}}
}

func (t *Table[K]) get(k K) *Entry[K] {
	if t.index != nil {
		return t.index.Get(k)
	}
	for _, e := range t.h.list {
		if e.Key == k {
			return e
		}
	}
	return nil
}

// Set arms the timer k to fall due at at, or re-arms it.
func (t *Table[K]) Set(k K, at time.Time) {
	t.seq++
	if e := t.get(k); e != nil {
		e.At, e.seq = at, t.seq
		heap.Fix(&t.h, e.idx)
		return
	}
	var e *Entry[K]
	if !t.firstUsed {
		t.firstUsed = true
		e = &t.first
		*e = Entry[K]{Key: k, At: at, seq: t.seq}
	} else {
		e = &Entry[K]{Key: k, At: at, seq: t.seq}
	}
	if t.h.list == nil {
		t.h.list = t.firstList[:0]
	}
	if t.index != nil {
		t.index.Put(k, e)
	}
	heap.Push(&t.h, e)
}

// Stop disarms k; stopping a timer that is not armed is fine.
func (t *Table[K]) Stop(k K) {
	if e := t.get(k); e != nil {
		if t.index != nil {
			t.index.Delete(k)
		}
		heap.Remove(&t.h, e.idx)
		if e == &t.first {
			t.firstUsed = false
		}
	}
}

// At returns when k falls due; ok is false when it is not armed.
func (t *Table[K]) At(k K) (at time.Time, ok bool) {
	if e := t.get(k); e != nil {
		return e.At, true
	}
	return time.Time{}, false
}

// Has reports whether k is armed.
func (t *Table[K]) Has(k K) bool { return t.get(k) != nil }

// Len returns the number of pending timers.
func (t *Table[K]) Len() int { return len(t.h.list) }

// Deadline returns the earliest pending deadline; ok is false when no
// timer is pending.
func (t *Table[K]) Deadline() (at time.Time, ok bool) {
	if len(t.h.list) == 0 {
		return time.Time{}, false
	}
	return t.h.list[0].At, true
}

// Due removes and returns the earliest timer due at or before now; ok is
// false when none is. A machine's Tick calls it until ok is false, firing
// each timer it returns.
func (t *Table[K]) Due(now time.Time) (e Entry[K], ok bool) {
	if len(t.h.list) == 0 || t.h.list[0].At.After(now) {
		return e, false
	}
	e = *t.h.list[0]
	t.Stop(e.Key)
	return e, true
}

// Pending returns the pending timers in the order they would fire.
func (t *Table[K]) Pending() []Entry[K] {
	es := slices.Clone(t.h.list)
	slices.SortFunc(es, t.h.compare)
	out := make([]Entry[K], len(es))
	for i, e := range es {
		out[i] = *e
	}
	return out
}

// Clear disarms every timer.
func (t *Table[K]) Clear() {
	if t.index != nil {
		t.index.Clear()
	}
	clear(t.h.list)
	t.h.list = t.h.list[:0]
	t.firstUsed = false
}

// entries is the heap of a Table.
type entries[K comparable] struct {
	list []*Entry[K]
	tie  func(a, b K) int
}

func (h *entries[K]) compare(a, b *Entry[K]) int {
	if c := a.At.Compare(b.At); c != 0 {
		return c
	}
	if h.tie != nil {
		return h.tie(a.Key, b.Key)
	}
	return cmp.Compare(a.seq, b.seq)
}

func (h *entries[K]) Len() int           { return len(h.list) }
func (h *entries[K]) Less(i, j int) bool { return h.compare(h.list[i], h.list[j]) < 0 }

func (h *entries[K]) Swap(i, j int) {
	h.list[i], h.list[j] = h.list[j], h.list[i]
	h.list[i].idx, h.list[j].idx = i, j
}

func (h *entries[K]) Push(x any) {
	e := x.(*Entry[K])
	e.idx = len(h.list)
	h.list = append(h.list, e)
}

func (h *entries[K]) Pop() any {
	n := len(h.list) - 1
	e := h.list[n]
	h.list[n] = nil
	h.list = h.list[:n]
	e.idx = -1
	return e
}
