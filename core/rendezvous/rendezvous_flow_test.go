package rendezvous

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/aemp-go/dataconn/core/wire"
)

func rvReq(id string, timeout time.Duration, window int) ConnectRequest {
	return ConnectRequest{ID: id, Target: "B", Port: "A#" + id, Timeout: timeout,
		InitFunc: "f", TargetAddrs: []string{"b:1"}, Window: window}
}

// The initiator keeps at most Window set-ups in flight per target; the
// rest wait without sending anything and start in order as slots free.
func TestRvWindowQueuesAndPaces(t *testing.T) {
	r := newTestRv()
	for i := 1; i <= 5; i++ {
		r.Connect(rvT0, rvReq(fmt.Sprintf("c%d", i), 10*time.Second, 2))
	}
	acts := rvDrain(r)
	if got := len(acts); got != 6 { // 2 × (watch, expect, round trip)
		t.Fatalf("actions = %#v", acts)
	}
	if s := r.Stats(); s.Queued != 3 || s.InFlight != 2 {
		t.Fatalf("stats %+v", s)
	}
	// c1 settles (its round trip done, dial done): c3 starts.
	r.RoundTripDone(rvT0, "c1")
	rvExpectTo(t, r, Dial{ID: "c1", Addr: "b:1", Node: "B"})
	r.DialDone(rvT0, "c1", "b:1", 7, wire.Greeting{NodeID: "B"})
	acts = rvDrain(r)
	if len(acts) != 4 || !rvSameAction(acts[3], Deliver{ID: "c1", Ref: 7}) {
		t.Fatalf("after c1: %#v", acts)
	}
	if w, ok := acts[0].(Watch); !ok || w.ID != "c3" {
		t.Fatalf("c3's port is not watched before its expectation: %#v", acts)
	}
	if rt, ok := acts[2].(RoundTrip); !ok || rt.ID != "c3" {
		t.Fatalf("c3 did not start: %#v", acts)
	}
	// Cancelling a queued set-up fails it at once, nothing sent.
	r.Cancel(rvT0, "c5", nil)
	rvExpectTo(t, r, rvFail("c5", "B: data connection cancelled", ErrCancelled))
	// c4 waits until its own deadline: the usual timeout text.
	r.Tick(rvAt(10 * time.Second))
	acts = rvDrain(r)
	var c4 *Fail
	for _, a := range acts {
		if f, ok := a.(Fail); ok && f.ID == "c4" {
			c4 = &f
		}
		if rt, ok := a.(RoundTrip); ok && rt.ID == "c4" {
			t.Fatalf("c4 started at its deadline: %#v", acts)
		}
	}
	if c4 == nil || c4.Reason.Message != "B: unable to establish connection within 10 seconds" || !errors.Is(c4.Err, ErrTimeout) {
		t.Fatalf("c4: %#v", acts)
	}
	rvAssertIdle(t, r)
	if s := r.Stats(); s.Queued != 0 || s.InFlight != 0 || s.Failed["not established within the timeout"] == 0 {
		t.Fatalf("stats %+v", s)
	}
}

// Past MaxQueuedPerTarget, Connect fails at once with a rule naming the
// limit.
func TestRvQueueCap(t *testing.T) {
	r := New(Config{Self: "A", MaxQueuedPerTarget: 2})
	for i := 1; i <= 3; i++ {
		r.Connect(rvT0, rvReq(fmt.Sprintf("c%d", i), 10*time.Second, 1))
	}
	rvDrain(r)
	r.Connect(rvT0, rvReq("c4", 10*time.Second, 1))
	acts := rvDrain(r)
	if len(acts) != 1 {
		t.Fatalf("%#v", acts)
	}
	f, ok := acts[0].(Fail)
	if !ok || !errors.Is(f.Err, ErrQueueFull) || f.Reason.Message != "B: too many data connections queued for this node (2; raise DataConnConfig.MaxQueuedPerTarget)" {
		t.Fatalf("%#v", acts)
	}
}

// The target queues expectations past MaxExpectPerPeer instead of
// refusing them; a Perl stream for a waiting one is held until it can
// claim it, and a waiting one that expires is killed as usual.
func TestRvExpectWaitsAndHoldsPerlStream(t *testing.T) {
	r := New(Config{Self: "A", MaxExpectPerPeer: 1})
	r.Expect(rvT0, "B", wire.NodeMsgExpect{ID: "x1", Port: "B#p1", Timeout: 5, InitFunc: "f"})
	r.Expect(rvT0, "B", wire.NodeMsgExpect{ID: "x2", Port: "B#p2", Timeout: 5, InitFunc: "f"})
	r.Expect(rvT0, "B", wire.NodeMsgExpect{ID: "x3", Port: "B#p3", Timeout: 1, InitFunc: "f"})
	rvExpectTo(t, r)
	if s := r.Stats(); s.Expectations != 1 || s.ExpectWaiting != 2 {
		t.Fatalf("stats %+v", s)
	}
	// A Perl stream for waiting x2 is held (Perl streams are otherwise
	// never held); one from another peer is not.
	r.IncomingGreeting(rvT0, 9, rvGreet("B", "x2", false))
	r.IncomingGreeting(rvT0, 8, rvGreet("C", "x2", false))
	rvExpectTo(t, r, Refuse{Ref: 8, Err: ErrUnknownID})
	if !r.Proven(9) || r.Proven(8) {
		t.Fatal("proof of held streams")
	}
	// x3 expires while waiting: the usual kill, nothing matched.
	r.Tick(rvAt(time.Second))
	rvExpectTo(t, r, rvKill("B", "p3", "A: data connection from B not established within 1 seconds"))
	// x1 is used: x2 is recorded and the held stream claims it.
	r.IncomingGreeting(rvAt(time.Second), 1, rvGreet("B", "x1", false))
	rvExpectTo(t, r, Admit{Ref: 1})
	r.IncomingDone(rvAt(time.Second), 1)
	rvExpectTo(t, r, Admit{Ref: 9}, CallInit{Ref: 1, From: "B", Func: "f"})
	r.IncomingDone(rvAt(time.Second), 9)
	rvExpectTo(t, r, CallInit{Ref: 9, From: "B", Func: "f"})
	rvAssertIdle(t, r)
	if s := r.Stats(); s.Refused["not established within the timeout"] != 1 {
		t.Fatalf("stats %+v", s)
	}
}

// A held early stream whose id waits in the queue is proven, and is
// admitted when the expectation is recorded.
func TestRvHeldForWaitingExpectation(t *testing.T) {
	r := New(Config{Self: "A", MaxExpectPerPeer: 1})
	r.Expect(rvT0, "B", wire.NodeMsgExpect{ID: "x1", Port: "B#p1", Timeout: 5, InitFunc: "f"})
	r.Expect(rvT0, "B", wire.NodeMsgExpect{ID: "x2", Port: "B#p2", Timeout: 5, InitFunc: "f"})
	r.IncomingGreeting(rvT0, 5, rvGreet("B", "x2", true))
	r.IncomingGreeting(rvT0, 6, rvGreet("B", "zz", true))
	rvExpectTo(t, r)
	if !r.Proven(5) || r.Proven(6) {
		t.Fatalf("proven: %v %v", r.Proven(5), r.Proven(6))
	}
	r.IncomingGreeting(rvT0, 1, rvGreet("B", "x1", true))
	r.IncomingDone(rvT0, 1)
	rvExpectTo(t, r, Admit{Ref: 1, Extra: []wire.KV{rvConfirmed}},
		Admit{Ref: 5, Extra: []wire.KV{rvConfirmed}}, CallInit{Ref: 1, From: "B", Func: "f"})
}

// AnnouncedWindow reads the window only from a node of this project, and
// only a positive integer.
func TestAnnouncedWindow(t *testing.T) {
	goKV := wire.KV{Key: wire.KeyGo, Value: "1"}
	for _, c := range []struct {
		kv   []wire.KV
		want int
	}{
		{[]wire.KV{goKV, {Key: KeyDataConnWindow, Value: "7"}}, 7},
		{[]wire.KV{{Key: KeyDataConnWindow, Value: "7"}}, 0}, // not a node of this project
		{[]wire.KV{goKV}, 0},
		{[]wire.KV{goKV, {Key: KeyDataConnWindow, Value: "0"}}, 0},
		{[]wire.KV{goKV, {Key: KeyDataConnWindow, Value: "-3"}}, 0},
		{[]wire.KV{goKV, {Key: KeyDataConnWindow, Value: "x"}}, 0},
	} {
		if got := AnnouncedWindow(wire.Greeting{NodeID: "B", KV: c.kv}); got != c.want {
			t.Errorf("AnnouncedWindow(%v) = %d, want %d", c.kv, got, c.want)
		}
	}
}
