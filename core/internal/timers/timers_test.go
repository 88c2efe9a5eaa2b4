package timers

import (
	"cmp"
	"slices"
	"testing"
	"time"

	"pgregory.net/rapid"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func at(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }

func keys[K comparable](es []Entry[K]) []K {
	var out []K
	for _, e := range es {
		out = append(out, e.Key)
	}
	return out
}

// Timers due at one instant fire in arm order without a tie order (a
// re-arm counts as a new arm), by the tie order with one; Due hands out
// only what is due, earliest first.
func TestTableOrder(t *testing.T) {
	for _, index := range []Index[string]{nil, MapIndex[string]{}} {
		tb := New(index, nil)
		tb.Set("c", at(2))
		tb.Set("a", at(1))
		tb.Set("b", at(1))
		tb.Set("a", at(1)) // re-armed: after b now
		if got := keys(tb.Pending()); !slices.Equal(got, []string{"b", "a", "c"}) {
			t.Fatalf("index %T: pending %v, want [b a c]", index, got)
		}
		if d, ok := tb.Deadline(); !ok || !d.Equal(at(1)) {
			t.Fatalf("deadline %v %v", d, ok)
		}
		var fired []string
		for e, ok := tb.Due(at(1)); ok; e, ok = tb.Due(at(1)) {
			fired = append(fired, e.Key)
		}
		if !slices.Equal(fired, []string{"b", "a"}) || tb.Len() != 1 || !tb.Has("c") || tb.Has("a") {
			t.Fatalf("index %T: fired %v, left %v", index, fired, keys(tb.Pending()))
		}
		tb.Stop("c")
		tb.Stop("c") // idle: fine
		if _, ok := tb.Deadline(); ok || tb.Len() != 0 {
			t.Fatal("a stopped timer is still pending")
		}
	}
	tb := New[string](MapIndex[string]{}, cmp.Compare[string])
	tb.Set("b", at(1))
	tb.Set("a", at(1))
	if got := keys(tb.Pending()); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("with a tie order: pending %v, want [a b]", got)
	}
	tb.Clear()
	if tb.Len() != 0 || tb.Has("a") {
		t.Fatal("Clear left timers")
	}
	tb.Set("x", at(3))
	if a, ok := tb.At("x"); !ok || !a.Equal(at(3)) {
		t.Fatalf("after Clear: At = %v %v", a, ok)
	}
}

// The table agrees with a plain map of deadlines under any sequence of
// arms, stops and firings, with and without an index.
func TestTableProperty(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		var index Index[int]
		if rapid.Bool().Draw(rt, "indexed") {
			index = MapIndex[int]{}
		}
		tb := New(index, nil)
		model := map[int]time.Time{}
		now := 0
		for range rapid.IntRange(0, 60).Draw(rt, "steps") {
			k := rapid.IntRange(0, 6).Draw(rt, "key")
			switch rapid.IntRange(0, 2).Draw(rt, "op") {
			case 0:
				a := at(now + rapid.IntRange(0, 5).Draw(rt, "in"))
				tb.Set(k, a)
				model[k] = a
			case 1:
				tb.Stop(k)
				delete(model, k)
			case 2:
				now += rapid.IntRange(0, 3).Draw(rt, "tick")
				last := time.Time{}
				for e, ok := tb.Due(at(now)); ok; e, ok = tb.Due(at(now)) {
					want, armed := model[e.Key]
					if !armed || !want.Equal(e.At) || e.At.After(at(now)) || e.At.Before(last) {
						rt.Fatalf("fired %v at %v: model %v %v, last %v", e.Key, e.At, want, armed, last)
					}
					last = e.At
					delete(model, e.Key)
				}
			}
			if tb.Len() != len(model) {
				rt.Fatalf("len %d, model %d", tb.Len(), len(model))
			}
			var min time.Time
			for k, a := range model {
				if got, ok := tb.At(k); !ok || !got.Equal(a) {
					rt.Fatalf("At(%d) = %v %v, want %v", k, got, ok, a)
				}
				if min.IsZero() || a.Before(min) {
					min = a
				}
			}
			if d, ok := tb.Deadline(); ok != (len(model) > 0) || (ok && !d.Equal(min)) {
				rt.Fatalf("deadline %v %v, want %v", d, ok, min)
			}
			p := tb.Pending()
			if !slices.IsSortedFunc(p, func(a, b Entry[int]) int { return a.At.Compare(b.At) }) {
				rt.Fatalf("pending not in order: %v", p)
			}
		}
	})
}
