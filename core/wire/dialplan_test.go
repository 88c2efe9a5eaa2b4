package wire

import (
	"errors"
	"testing"
	"time"
)

func TestDialPlan(t *testing.T) {
	t0 := time.Unix(100, 0)
	p := NewDialPlan([]string{"a", "b", "c"}, 250*time.Millisecond)
	if a, ok := p.Start(t0); !ok || a != "a" || !p.Due().Equal(t0.Add(250*time.Millisecond)) {
		t.Fatalf("first Start = %q %v, Due %v", a, ok, p.Due())
	}
	// The stagger passes: b starts; a fails: c starts at once.
	t1 := t0.Add(250 * time.Millisecond)
	if b, _ := p.Start(t1); b != "b" {
		t.Fatalf("second Start = %q", b)
	}
	errA := errors.New("refused")
	if !p.Failed("a", errA) || p.Failed("a", errA) || p.LastErr != errA {
		t.Fatalf("Failed(a) twice or LastErr %v", p.LastErr)
	}
	if c, _ := p.Start(t1); c != "c" || !p.Due().IsZero() || p.Remaining() {
		t.Fatalf("third Start = %q, Due %v, Remaining %v", c, p.Due(), p.Remaining())
	}
	if _, ok := p.Start(t1); ok {
		t.Fatal("Start after the last address")
	}
	if n := p.InFlight(); n != 2 {
		t.Fatalf("InFlight = %d with b and c dialing", n)
	}
	p.Ended("b")
	if p.Exhausted() || p.InFlight() != 1 {
		t.Fatalf("exhausted with c in flight (InFlight %d)", p.InFlight())
	}
	p.Failed("c", errA)
	if !p.Exhausted() {
		t.Fatal("not exhausted after every dial ended")
	}
}
