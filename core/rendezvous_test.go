package core

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

var rvT0 = time.Unix(1_700_000_000, 0)

func rvAt(d time.Duration) time.Time { return rvT0.Add(d) }

func rvDrain(r *Rendezvous) []RvAction {
	var out []RvAction
	for i := 0; i < 10_000; i++ {
		a := r.Poll()
		if a == nil {
			return out
		}
		out = append(out, a)
	}
	panic("action queue does not drain")
}

// rvGreet builds a data-connection greeting from node with dataconn_id id
// (omitted when id is "-") and, when goNode, the KeyGo field.
func rvGreet(node, id string, goNode bool, extra ...KV) Greeting {
	g := Greeting{Protocol: ProtocolDataConn, Version: "1", NodeID: node}
	if id != "-" {
		g.KV = append(g.KV, KV{Key: KeyDataConnID, Value: id})
	}
	if goNode {
		g.KV = append(g.KV, KV{Key: KeyGo, Value: "1"})
	}
	g.KV = append(g.KV, extra...)
	return g
}

var rvConfirmed = KV{Key: RvConfirmKey, Value: "1"}

func rvExpectTo(t *testing.T, r *Rendezvous, want ...RvAction) {
	t.Helper()
	got := rvDrain(r)
	if len(got) != len(want) {
		t.Fatalf("got %d actions %#v, want %d %#v", len(got), got, len(want), want)
	}
	for i := range want {
		if !rvSameAction(got[i], want[i]) {
			t.Fatalf("action %d: got %#v, want %#v", i, got[i], want[i])
		}
	}
}

// rvSameAction compares actions; errors and reasons compare by rule and
// text (want's Err is a sentinel matched with errors.Is).
func rvSameAction(got, want RvAction) bool {
	switch w := want.(type) {
	case RvFail:
		g, ok := got.(RvFail)
		return ok && g.ID == w.ID && g.Reason != nil && w.Reason != nil &&
			g.Reason.Family == w.Reason.Family && g.Reason.Message == w.Reason.Message &&
			errors.Is(g.Err, w.Err)
	case RvRefuse:
		g, ok := got.(RvRefuse)
		return ok && g.Ref == w.Ref && errors.Is(g.Err, w.Err)
	case RvClose:
		g, ok := got.(RvClose)
		return ok && g.Ref == w.Ref && errors.Is(g.Err, w.Err)
	}
	return reflect.DeepEqual(got, want)
}

func rvAssertIdle(t *testing.T, r *Rendezvous) {
	t.Helper()
	if o, e, h := r.Counts(); o != 0 || e != 0 || h != 0 {
		t.Fatalf("Counts = %d, %d, %d; want all zero", o, e, h)
	}
	if d := r.Deadline(); !d.IsZero() {
		t.Fatalf("Deadline = %v; want zero", d)
	}
}

func rvFail(id, text string, rule error) RvFail {
	return RvFail{ID: id, Reason: DataConnReason("%s", text), Err: rule}
}

func rvKill(to, port, text string) RvSend {
	return RvSend{To: to, Msg: KillMsg(port, KillReasonDataConn, text)}
}

func newTestRv() *Rendezvous { return NewRendezvous(RendezvousConfig{Self: "A"}) }

func TestRvConnectRejectsAtOnce(t *testing.T) {
	base := RvConnectRequest{ID: "c1", Target: "B", Port: "A#p", Timeout: 5 * time.Second, TargetAddrs: []string{"b:1"}}
	cases := []struct {
		name string
		mod  func(*RvConnectRequest)
		text string
		rule error
	}{
		{"no listeners", func(q *RvConnectRequest) { q.TargetAddrs = nil; q.SelfAddrs = []string{""} }, "B: no listeners found", ErrRvNoListeners},
		{"empty id", func(q *RvConnectRequest) { q.ID = "" }, "B: empty data connection id", ErrRvBadRequest},
		{"self", func(q *RvConnectRequest) { q.Target = "A" }, "A: not a remote node", ErrRvBadRequest},
		{"zero timeout", func(q *RvConnectRequest) { q.Timeout = 0 }, "B: unable to establish connection within 0 seconds", ErrRvTimeout},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newTestRv()
			q := base
			c.mod(&q)
			r.Connect(rvT0, q)
			rvExpectTo(t, r, rvFail(q.ID, c.text, c.rule))
			rvAssertIdle(t, r)
		})
	}
	t.Run("duplicate id", func(t *testing.T) {
		r := newTestRv()
		r.Connect(rvT0, base)
		rvDrain(r)
		r.Connect(rvT0, base)
		rvExpectTo(t, r, rvFail("c1", "B: data connection id already in use", ErrRvBadRequest))
		if o, _, _ := r.Counts(); o != 1 {
			t.Fatalf("outgoing = %d, want the first request kept", o)
		}
	})
}

func TestRvPerlFlowDial(t *testing.T) {
	r := newTestRv()
	r.Connect(rvT0, RvConnectRequest{ID: "c1", Target: "B", Port: "A#p", Timeout: 5 * time.Second,
		InitFunc: "f", InitData: []any{"x", 1}, TargetAddrs: []string{"b:1", "b:1", "b:2"}})
	rvExpectTo(t, r,
		RvSend{To: "B", Msg: ExpectMsg("c1", "A#p", 5, "f", "x", 1)},
		RvRoundTrip{ID: "c1", To: "B"})
	if d := r.Deadline(); !d.Equal(rvAt(5 * time.Second)) {
		t.Fatalf("Deadline = %v, want the request timeout", d)
	}
	r.RoundTripDone(rvAt(10*time.Millisecond), "c1")
	rvExpectTo(t, r, RvDial{ID: "c1", Addr: "b:1", Node: "B"})
	r.RoundTripDone(rvAt(10*time.Millisecond), "c1") // repeated: ignored
	rvExpectTo(t, r)
	// A Perl peer never confirms: its plain greeting is enough.
	r.DialDone(rvAt(20*time.Millisecond), "c1", "b:1", 7, rvGreet("B", "c1", false))
	rvExpectTo(t, r, RvDeliver{ID: "c1", Ref: 7})
	rvAssertIdle(t, r)
}

func TestRvPerlFlowDialBack(t *testing.T) {
	for _, goPeer := range []bool{false, true} {
		r := newTestRv()
		r.Connect(rvT0, RvConnectRequest{ID: "c1", Target: "B", Port: "A#p", Timeout: 5 * time.Second,
			SelfAddrs: []string{"a:1"}, TargetIsGo: goPeer})
		rvExpectTo(t, r,
			RvSend{To: "B", Msg: ExpectMsg("c1", "A#p", 5, "")},
			RvRoundTrip{ID: "c1", To: "B"})
		// A stream with the id before _connect was sent is refused.
		r.IncomingGreeting(rvT0, 1, rvGreet("B", "c1", goPeer))
		rvExpectTo(t, r, RvRefuse{Ref: 1, Err: ErrRvUnknownID})
		r.RoundTripDone(rvT0, "c1")
		rvExpectTo(t, r, RvSend{To: "B", Msg: ConnectMsg("c1", "A")})
		// Another node presenting the id is refused; the request stays.
		r.IncomingGreeting(rvT0, 2, rvGreet("C", "c1", goPeer))
		rvExpectTo(t, r, RvRefuse{Ref: 2, Err: ErrRvIDHijack})
		r.IncomingGreeting(rvT0, 3, rvGreet("B", "c1", goPeer))
		var extra []KV
		if goPeer {
			extra = []KV{rvConfirmed}
		}
		rvExpectTo(t, r, RvAdmit{Ref: 3, Extra: extra})
		r.IncomingDone(rvT0, 3)
		rvExpectTo(t, r, RvDeliver{ID: "c1", Ref: 3})
		rvAssertIdle(t, r)
	}
}

func TestRvDialBackFailedHandshakeLetsDuplicateIn(t *testing.T) {
	r := newTestRv()
	r.Connect(rvT0, RvConnectRequest{ID: "c1", Target: "B", Port: "A#p", Timeout: 5 * time.Second, SelfAddrs: []string{"a:1"}})
	r.RoundTripDone(rvT0, "c1")
	rvDrain(r)
	r.IncomingGreeting(rvT0, 1, rvGreet("B", "c1", true))
	rvExpectTo(t, r, RvAdmit{Ref: 1, Extra: []KV{rvConfirmed}})
	r.IncomingGreeting(rvT0, 2, rvGreet("B", "c1", true)) // duplicate from a Go peer: held
	r.IncomingGreeting(rvT0, 3, rvGreet("B", "c1", false))
	rvExpectTo(t, r, RvRefuse{Ref: 3, Err: ErrRvIDBusy})
	r.IncomingFailed(rvT0, 1, errors.New("reset"))
	rvExpectTo(t, r, RvAdmit{Ref: 2, Extra: []KV{rvConfirmed}})
	r.IncomingDone(rvT0, 1) // the failed one cannot come back
	rvExpectTo(t, r, RvClose{Ref: 1, Err: ErrRvUnknownID})
	r.IncomingDone(rvT0, 2)
	rvExpectTo(t, r, RvDeliver{ID: "c1", Ref: 2})
	rvAssertIdle(t, r)
}

func TestRvFastFlowStaggeredDials(t *testing.T) {
	r := newTestRv()
	r.Connect(rvT0, RvConnectRequest{ID: "c1", Target: "B", Port: "A#p", Timeout: 5 * time.Second,
		TargetAddrs: []string{"b:1", "b:2", "b:3"}, TargetIsGo: true})
	rvExpectTo(t, r,
		RvSend{To: "B", Msg: ExpectMsg("c1", "A#p", 5, "")},
		RvDial{ID: "c1", Addr: "b:1", Node: "B"})
	if d := r.Deadline(); !d.Equal(rvAt(250 * time.Millisecond)) {
		t.Fatalf("Deadline = %v, want the stagger delay", d)
	}
	r.Tick(rvAt(100 * time.Millisecond))
	rvExpectTo(t, r)
	// A failure starts the next address at once and restarts the stagger.
	r.DialFailed(rvAt(100*time.Millisecond), "c1", "b:1", errors.New("refused"))
	rvExpectTo(t, r, RvDial{ID: "c1", Addr: "b:2", Node: "B"})
	if d := r.Deadline(); !d.Equal(rvAt(350 * time.Millisecond)) {
		t.Fatalf("Deadline = %v, want 350ms", d)
	}
	r.Tick(rvAt(350 * time.Millisecond))
	rvExpectTo(t, r, RvDial{ID: "c1", Addr: "b:3", Node: "B"})
	r.DialDone(rvAt(400*time.Millisecond), "c1", "b:3", 9, rvGreet("B", "c1", true, rvConfirmed))
	rvExpectTo(t, r, RvDeliver{ID: "c1", Ref: 9})
	rvAssertIdle(t, r)
	// The losing dial completes late: closed.
	r.DialDone(rvAt(500*time.Millisecond), "c1", "b:2", 10, rvGreet("B", "c1", true, rvConfirmed))
	rvExpectTo(t, r, RvClose{Ref: 10, Err: ErrRvUnknownID})
	r.DialFailed(rvAt(500*time.Millisecond), "c1", "b:2", errors.New("late"))
	rvExpectTo(t, r)
}

func TestRvDialRejections(t *testing.T) {
	cases := []struct {
		name   string
		isGo   bool
		peer   Greeting
		rule   error
		detail string
	}{
		{"go target without confirmation", true, rvGreet("B", "c1", true), ErrRvNotConfirmed, "B did not confirm the id"},
		{"go greeting without confirmation", false, rvGreet("B", "c1", true), ErrRvNotConfirmed, "B did not confirm the id"},
		{"go target, Perl greeting", true, rvGreet("B", "c1", false), ErrRvNotConfirmed, "B did not confirm the id"},
		{"confirmation with another value", true, rvGreet("B", "c1", true, KV{Key: RvConfirmKey, Value: "0"}), ErrRvNotConfirmed, "B did not confirm the id"},
		{"wrong node", false, rvGreet("C", "c1", false), ErrRvWrongPeer, "expected B, got C"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newTestRv()
			r.Connect(rvT0, RvConnectRequest{ID: "c1", Target: "B", Port: "A#p", Timeout: 5 * time.Second,
				TargetAddrs: []string{"b:1", "b:2"}, TargetIsGo: c.isGo})
			rvDrain(r)
			r.RoundTripDone(rvT0, "c1") // ignored in the fast flow
			rvDrain(r)
			r.Tick(rvAt(250 * time.Millisecond))
			rvDrain(r)
			// The first rejection is a failed attempt; the other dial still runs.
			r.DialDone(rvAt(300*time.Millisecond), "c1", "b:1", 1, c.peer)
			rvExpectTo(t, r, RvClose{Ref: 1, Err: c.rule})
			r.DialDone(rvAt(300*time.Millisecond), "c1", "b:2", 2, c.peer)
			got := rvDrain(r)
			if len(got) != 2 || !rvSameAction(got[0], RvClose{Ref: 2, Err: c.rule}) {
				t.Fatalf("got %#v", got)
			}
			f, ok := got[1].(RvFail)
			if !ok || !errors.Is(f.Err, ErrRvDialFailed) || f.Reason.Family != KillReasonDataConn ||
				!strings.HasPrefix(f.Reason.Message, "B: unable to connect: ") || !strings.HasSuffix(f.Reason.Message, c.detail) {
				t.Fatalf("got %#v", got[1])
			}
			var re *RvError
			if !errors.As(f.Err, &re) || re.Node != "B" {
				t.Fatalf("Err %v is not an *RvError about B", f.Err)
			}
			rvAssertIdle(t, r)
		})
	}
}

func TestRvAllDialsFail(t *testing.T) {
	r := newTestRv()
	r.Connect(rvT0, RvConnectRequest{ID: "c1", Target: "B", Port: "A#p", Timeout: 5 * time.Second, TargetAddrs: []string{"b:1", "b:2"}})
	r.RoundTripDone(rvT0, "c1")
	rvDrain(r)
	r.DialFailed(rvT0, "c1", "b:9", errors.New("not ours")) // unknown address: ignored
	rvExpectTo(t, r)
	r.DialFailed(rvT0, "c1", "b:1", errors.New("refused"))
	rvExpectTo(t, r, RvDial{ID: "c1", Addr: "b:2", Node: "B"})
	r.DialFailed(rvT0, "c1", "b:2", errors.New("no route"))
	rvExpectTo(t, r, rvFail("c1", "B: unable to connect: no route", ErrRvDialFailed))
	rvAssertIdle(t, r)
}

func TestRvConnectTimeout(t *testing.T) {
	for _, c := range []struct {
		d    time.Duration
		text string
	}{{5 * time.Second, "5"}, {500 * time.Millisecond, "0.5"}, {1500 * time.Millisecond, "1.5"}} {
		r := newTestRv()
		r.Connect(rvT0, RvConnectRequest{ID: "c1", Target: "B", Port: "A#p", Timeout: c.d, TargetAddrs: []string{"b:1"}})
		rvDrain(r)
		r.Tick(rvT0.Add(c.d - time.Nanosecond))
		rvExpectTo(t, r)
		r.Tick(rvT0.Add(c.d))
		rvExpectTo(t, r, rvFail("c1", "B: unable to establish connection within "+c.text+" seconds", ErrRvTimeout))
		rvAssertIdle(t, r)
		r.RoundTripDone(rvT0.Add(c.d), "c1")
		rvExpectTo(t, r)
	}
}

func TestRvCancel(t *testing.T) {
	r := newTestRv()
	req := RvConnectRequest{ID: "c1", Target: "B", Port: "A#p", Timeout: 5 * time.Second, TargetAddrs: []string{"b:1"}, TargetIsGo: true}
	r.Connect(rvT0, req)
	rvDrain(r)
	reason := &KillReason{Family: "custom", Message: "context canceled"}
	r.Cancel(rvT0, "c1", reason)
	got := rvDrain(r)
	if len(got) != 1 || got[0].(RvFail).Reason != reason || !errors.Is(got[0].(RvFail).Err, ErrRvCancelled) {
		t.Fatalf("got %#v", got)
	}
	r.Cancel(rvT0, "c1", reason) // already finished
	rvExpectTo(t, r)
	r.DialDone(rvT0, "c1", "b:1", 4, rvGreet("B", "c1", true, rvConfirmed))
	rvExpectTo(t, r, RvClose{Ref: 4, Err: ErrRvUnknownID})
	rvAssertIdle(t, r)

	for _, given := range []*KillReason{nil, {Family: "x"}} {
		r.Connect(rvT0, req)
		rvDrain(r)
		r.Cancel(rvT0, "c1", given)
		got := rvDrain(r)
		f := got[0].(RvFail)
		if len(got) != 1 || f.Reason == nil || f.Reason.Message != "B: data connection cancelled" {
			t.Fatalf("got %#v", got)
		}
		if given != nil && (f.Reason.Family != "x" || given.Message != "") {
			t.Fatalf("family not kept or caller's reason modified: %#v", f.Reason)
		}
	}
}

func TestRvPeerDown(t *testing.T) {
	r := newTestRv()
	r.Connect(rvT0, RvConnectRequest{ID: "c1", Target: "B", Port: "A#p", Timeout: 5 * time.Second, TargetAddrs: []string{"b:1"}})
	r.Connect(rvT0, RvConnectRequest{ID: "c2", Target: "B", Port: "A#p", Timeout: 5 * time.Second, TargetAddrs: []string{"b:1"}, TargetIsGo: true})
	r.Connect(rvT0, RvConnectRequest{ID: "c3", Target: "C", Port: "A#p", Timeout: 5 * time.Second, TargetAddrs: []string{"c:1"}})
	r.Connect(rvT0, RvConnectRequest{ID: "c4", Target: "B", Port: "A#p", Timeout: 5 * time.Second, TargetAddrs: []string{"b:1"}})
	rvDrain(r)
	r.IncomingGreeting(rvT0, 1, rvGreet("B", "x1", true))
	r.IncomingGreeting(rvT0, 2, rvGreet("C", "x2", true))
	rvExpectTo(t, r)
	r.PeerDown(rvT0, "B", errors.New("eof"))
	rvExpectTo(t, r,
		rvFail("c1", "B: node down: eof", ErrRvPeerDown),
		rvFail("c4", "B: node down: eof", ErrRvPeerDown),
		RvRefuse{Ref: 1, Err: ErrRvPeerDown})
	if o, e, h := r.Counts(); o != 2 || e != 0 || h != 1 {
		t.Fatalf("Counts = %d %d %d, want the fast-flow request and C's state kept", o, e, h)
	}
	r.PeerDown(rvT0, "C", nil)
	rvExpectTo(t, r,
		rvFail("c3", "C: node down: connection lost", ErrRvPeerDown),
		RvRefuse{Ref: 2, Err: ErrRvPeerDown})
}

func TestRvExpectMatched(t *testing.T) {
	for _, goPeer := range []bool{false, true} {
		r := newTestRv()
		r.Expect(rvT0, "B", NodeMsgExpect{ID: "x1", Port: "B#p", Timeout: 5, InitFunc: "f", InitData: []any{"d"}})
		rvExpectTo(t, r)
		if _, e, _ := r.Counts(); e != 1 {
			t.Fatalf("expectations = %d", e)
		}
		// Another authenticated node guessing the id is refused...
		r.IncomingGreeting(rvT0, 1, rvGreet("C", "x1", goPeer))
		rvExpectTo(t, r, RvRefuse{Ref: 1, Err: ErrRvIDHijack})
		// ...and the rightful owner still gets it.
		r.IncomingGreeting(rvT0, 2, rvGreet("B", "x1", goPeer))
		var extra []KV
		if goPeer {
			extra = []KV{rvConfirmed}
		}
		rvExpectTo(t, r, RvAdmit{Ref: 2, Extra: extra})
		r.IncomingDone(rvT0, 1) // refused stream: never initialised
		rvExpectTo(t, r, RvClose{Ref: 1, Err: ErrRvUnknownID})
		r.IncomingDone(rvT0, 2)
		rvExpectTo(t, r, RvCallInit{Ref: 2, From: "B", Func: "f", Data: []any{"d"}})
		rvAssertIdle(t, r)
		// Single use.
		r.IncomingGreeting(rvT0, 3, rvGreet("B", "x1", false))
		rvExpectTo(t, r, RvRefuse{Ref: 3, Err: ErrRvUnknownID})
	}
}

func TestRvExpectRefusals(t *testing.T) {
	r := NewRendezvous(RendezvousConfig{Self: "A", MaxExpectPerPeer: 2, MaxExpectQueuePerPeer: 1})
	r.Expect(rvT0, "B", NodeMsgExpect{ID: "x1", Port: "B#p1", Timeout: 5})
	r.Expect(rvT0, "B", NodeMsgExpect{ID: "x2", Port: "B#p2", Timeout: 5})
	rvExpectTo(t, r)
	// Past MaxExpectPerPeer an expectation waits, up to MaxExpectQueuePerPeer.
	r.Expect(rvT0, "B", NodeMsgExpect{ID: "x2w", Port: "B#pw", Timeout: 5})
	rvExpectTo(t, r)
	r.Expect(rvT0, "B", NodeMsgExpect{ID: "x3", Port: "B#p3", Timeout: 5})
	rvExpectTo(t, r, rvKill("B", "p3", "A: too many pending data connections from B"))
	r.Expect(rvT0, "C", NodeMsgExpect{ID: "x3", Port: "C#p3", Timeout: 5})
	rvExpectTo(t, r)
	r.Expect(rvT0, "C", NodeMsgExpect{ID: "x1", Port: "C#q", Timeout: 5})
	rvExpectTo(t, r, rvKill("C", "q", "A: data connection id from C already in use"))
	r.Expect(rvT0, "C", NodeMsgExpect{ID: "", Port: "C#q", Timeout: 5})
	rvExpectTo(t, r, rvKill("C", "q", "A: empty data connection id from C"))
	// A port id without a name is never killed (that would be the node port).
	r.Expect(rvT0, "B", NodeMsgExpect{ID: "x9", Port: "B", Timeout: 5})
	r.Expect(rvT0, "B", NodeMsgExpect{ID: "x9", Port: "B#", Timeout: 5})
	rvExpectTo(t, r)
	if _, e, _ := r.Counts(); e != 4 {
		t.Fatalf("expectations = %d, want 4", e)
	}
	// Our own pending outgoing ids cannot be expected by a peer.
	r.Connect(rvT0, RvConnectRequest{ID: "c1", Target: "B", Port: "A#p", Timeout: 9 * time.Second, TargetAddrs: []string{"b:1"}})
	rvDrain(r)
	r.Expect(rvT0, "D", NodeMsgExpect{ID: "c1", Port: "D#p", Timeout: 5})
	rvExpectTo(t, r, rvKill("D", "p", "A: data connection id from D already in use"))
}

func TestRvExpectExpiry(t *testing.T) {
	r := newTestRv()
	r.Expect(rvT0, "B", NodeMsgExpect{ID: "x1", Port: "B#p", Timeout: 2.5})
	r.Expect(rvT0, "B", NodeMsgExpect{ID: "x2", Port: "B#q", Timeout: 2})
	r.Expect(rvT0, "C", NodeMsgExpect{ID: "x3", Port: "C", Timeout: 1})
	r.IncomingGreeting(rvT0, 1, rvGreet("B", "x1", true))
	rvExpectTo(t, r, RvAdmit{Ref: 1, Extra: []KV{rvConfirmed}})
	r.Tick(rvAt(3 * time.Second))
	// x1 is claimed by a stream whose match was confirmed to B: it lives
	// on until that stream's handshake ends.
	rvExpectTo(t, r,
		rvKill("B", "q", "A: data connection from B not established within 2 seconds"))
	r.IncomingDone(rvAt(3*time.Second), 1)
	rvExpectTo(t, r, RvCallInit{Ref: 1, From: "B"})
	rvAssertIdle(t, r)

	// A claimed expectation whose stream never finishes expires after the
	// grace period; the stream is then closed when it completes.
	r.Expect(rvT0, "B", NodeMsgExpect{ID: "y1", Port: "B#p", Timeout: 2.5})
	r.IncomingGreeting(rvT0, 2, rvGreet("B", "y1", true))
	rvExpectTo(t, r, RvAdmit{Ref: 2, Extra: []KV{rvConfirmed}})
	r.Tick(rvAt(3 * time.Second))
	rvExpectTo(t, r)
	r.Tick(rvAt(3*time.Second + RvDefaultClaimGrace))
	rvExpectTo(t, r,
		rvKill("B", "p", "A: data connection from B not established within 2.5 seconds"))
	rvAssertIdle(t, r)
	r.IncomingDone(rvAt(40*time.Second), 2)
	rvExpectTo(t, r, RvClose{Ref: 2, Err: ErrRvUnknownID})

	// A claimed expectation whose stream fails after the expiry: killed
	// at once.
	r.Expect(rvAt(40*time.Second), "B", NodeMsgExpect{ID: "z1", Port: "B#p", Timeout: 1})
	r.IncomingGreeting(rvAt(40*time.Second), 3, rvGreet("B", "z1", true))
	rvExpectTo(t, r, RvAdmit{Ref: 3, Extra: []KV{rvConfirmed}})
	r.Tick(rvAt(42 * time.Second))
	rvExpectTo(t, r)
	r.IncomingFailed(rvAt(42*time.Second), 3, ErrPeerClosed)
	rvExpectTo(t, r,
		rvKill("B", "p", "A: data connection from B not established within 1 seconds"))
	rvAssertIdle(t, r)
}

func TestRvEarlyHold(t *testing.T) {
	r := NewRendezvous(RendezvousConfig{Self: "A", MaxEarlyPerPeer: 2})
	r.IncomingGreeting(rvT0, 1, rvGreet("B", "x1", true))
	r.IncomingGreeting(rvT0, 2, rvGreet("C", "x1", true)) // C tries B's id early
	r.IncomingGreeting(rvT0, 3, rvGreet("B", "x2", true))
	rvExpectTo(t, r)
	r.IncomingGreeting(rvT0, 4, rvGreet("B", "x3", true))
	rvExpectTo(t, r, RvRefuse{Ref: 4, Err: ErrRvEarlyLimit})
	r.IncomingGreeting(rvT0, 5, rvGreet("B", "x3", false)) // Perl peers are not held
	rvExpectTo(t, r, RvRefuse{Ref: 5, Err: ErrRvUnknownID})
	r.IncomingGreeting(rvT0, 6, rvGreet("B", "-", true))
	rvExpectTo(t, r, RvRefuse{Ref: 6, Err: ErrRvUnknownID})
	if _, _, h := r.Counts(); h != 3 {
		t.Fatalf("held = %d", h)
	}
	r.IncomingGreeting(rvT0, 1, rvGreet("B", "x1", true)) // reported twice: ignored
	rvExpectTo(t, r)

	r.Expect(rvAt(time.Second), "B", NodeMsgExpect{ID: "x1", Port: "B#p", Timeout: 5, InitFunc: "f"})
	rvExpectTo(t, r, RvAdmit{Ref: 1, Extra: []KV{rvConfirmed}})
	r.IncomingDone(rvAt(time.Second), 1)
	rvExpectTo(t, r, RvCallInit{Ref: 1, From: "B", Func: "f"})
	// The hold ends 3s after arrival: C's and B's leftover streams are refused.
	r.IncomingFailed(rvAt(2*time.Second), 3, errors.New("closed"))
	rvExpectTo(t, r)
	if d := r.Deadline(); !d.Equal(rvAt(3 * time.Second)) {
		t.Fatalf("Deadline = %v", d)
	}
	r.Tick(rvAt(3 * time.Second))
	rvExpectTo(t, r, RvRefuse{Ref: 2, Err: ErrRvUnknownID})
	rvAssertIdle(t, r)
}

func TestRvExpectLimitRefusesHeld(t *testing.T) {
	r := NewRendezvous(RendezvousConfig{Self: "A", MaxExpectPerPeer: 1, MaxExpectQueuePerPeer: 1})
	r.Expect(rvT0, "B", NodeMsgExpect{ID: "x1", Port: "B#p", Timeout: 5})
	r.IncomingGreeting(rvT0, 1, rvGreet("B", "x2", true))
	r.Expect(rvT0, "B", NodeMsgExpect{ID: "x1w", Port: "B#w", Timeout: 5})
	rvExpectTo(t, r)
	r.Expect(rvT0, "B", NodeMsgExpect{ID: "x2", Port: "B#q", Timeout: 5})
	rvExpectTo(t, r,
		rvKill("B", "q", "A: too many pending data connections from B"),
		RvRefuse{Ref: 1, Err: ErrRvExpectLimit})
}

func TestRvClaimReleasedOnFailure(t *testing.T) {
	r := newTestRv()
	r.Expect(rvT0, "B", NodeMsgExpect{ID: "x1", Port: "B#p", Timeout: 5, InitFunc: "f"})
	r.IncomingGreeting(rvT0, 1, rvGreet("B", "x1", false))
	rvExpectTo(t, r, RvAdmit{Ref: 1})
	r.IncomingGreeting(rvT0, 2, rvGreet("B", "x1", false))
	rvExpectTo(t, r, RvRefuse{Ref: 2, Err: ErrRvIDBusy})
	r.IncomingGreeting(rvT0, 3, rvGreet("B", "x1", true))
	rvExpectTo(t, r)
	r.IncomingFailed(rvT0, 1, errors.New("auth"))
	rvExpectTo(t, r, RvAdmit{Ref: 3, Extra: []KV{rvConfirmed}})
	r.IncomingGreeting(rvT0, 4, rvGreet("B", "x1", true))
	rvExpectTo(t, r)
	r.IncomingDone(rvT0, 3)
	rvExpectTo(t, r,
		RvRefuse{Ref: 4, Err: ErrRvIDBusy},
		RvCallInit{Ref: 3, From: "B", Func: "f"})
	rvAssertIdle(t, r)
}

func TestRvConnectBack(t *testing.T) {
	r := newTestRv()
	r.Expect(rvT0, "B", NodeMsgExpect{ID: "x1", Port: "B#p", Timeout: 5, InitFunc: "f", InitData: []any{1}})
	r.ConnectBack(rvT0, "C", NodeMsgConnect{ID: "x1", Node: "C"}, []string{"c:1"}) // not C's expectation
	r.ConnectBack(rvT0, "B", NodeMsgConnect{ID: "x1", Node: "C"}, []string{"c:1"}) // must dial the sender
	r.ConnectBack(rvT0, "B", NodeMsgConnect{ID: "x0", Node: "B"}, []string{"b:1"}) // unknown id
	r.ConnectBack(rvT0, "B", NodeMsgConnect{ID: "x1", Node: "B"}, nil)             // no addresses
	rvExpectTo(t, r)
	r.ConnectBack(rvT0, "B", NodeMsgConnect{ID: "x1", Node: "B"}, []string{"b:1", "b:2"})
	rvExpectTo(t, r, RvDial{ID: "x1", Addr: "b:1", Node: "B"})
	r.DialFailed(rvT0, "x1", "b:1", nil)
	rvExpectTo(t, r, RvDial{ID: "x1", Addr: "b:2", Node: "B"})
	r.DialDone(rvT0, "x1", "b:2", 5, rvGreet("B", "x1", true)) // a Go peer must confirm
	rvExpectTo(t, r, RvClose{Ref: 5, Err: ErrRvNotConfirmed})
	if _, e, _ := r.Counts(); e != 1 {
		t.Fatal("a failed dial-back must leave the expectation to its timer")
	}
	r = newTestRv()
	r.Expect(rvT0, "B", NodeMsgExpect{ID: "x1", Port: "B#p", Timeout: 5, InitFunc: "f", InitData: []any{1}})
	r.ConnectBack(rvT0, "B", NodeMsgConnect{ID: "x1", Node: "B"}, []string{"b:1", "b:2"})
	r.Tick(rvAt(250 * time.Millisecond))
	rvExpectTo(t, r, RvDial{ID: "x1", Addr: "b:1", Node: "B"}, RvDial{ID: "x1", Addr: "b:2", Node: "B"})
	r.DialDone(rvT0, "x1", "b:2", 6, rvGreet("B", "x1", false))
	rvExpectTo(t, r, RvCallInit{Ref: 6, From: "B", Func: "f", Data: []any{1}})
	rvAssertIdle(t, r)
	r.DialDone(rvT0, "x1", "b:1", 7, rvGreet("B", "x1", false))
	rvExpectTo(t, r, RvClose{Ref: 7, Err: ErrRvUnknownID})
}

func TestRvErrorsNameTheRule(t *testing.T) {
	e := rvErr(ErrRvIDHijack, "C", "C presented an id announced by B")
	if !errors.Is(e, ErrRvIDHijack) || !strings.Contains(e.Error(), "belongs to another node") ||
		!strings.Contains(e.Error(), "announced by B") {
		t.Fatalf("%v", e)
	}
	if got := RvSeconds(5); got != "5" {
		t.Fatalf("RvSeconds(5) = %q", got)
	}
	if got := RvSeconds(0.1); got != "0.1" {
		t.Fatalf("RvSeconds(0.1) = %q", got)
	}
}

// TestRvPerlCompat: when our greetings omit KeyGo no peer confirms or holds
// our streams, so the Perl flow is used and no confirmation is required.
func TestRvPerlCompat(t *testing.T) {
	r := NewRendezvous(RendezvousConfig{Self: "A", PerlCompat: true})
	r.Connect(rvT0, RvConnectRequest{ID: "c1", Target: "B", Port: "A#p", Timeout: 5 * time.Second,
		TargetAddrs: []string{"b:1"}, TargetIsGo: true})
	rvExpectTo(t, r,
		RvSend{To: "B", Msg: ExpectMsg("c1", "A#p", 5, "")},
		RvRoundTrip{ID: "c1", To: "B"})
	r.RoundTripDone(rvT0, "c1")
	rvExpectTo(t, r, RvDial{ID: "c1", Addr: "b:1", Node: "B"})
	r.DialDone(rvT0, "c1", "b:1", 3, rvGreet("B", "c1", true))
	rvExpectTo(t, r, RvDeliver{ID: "c1", Ref: 3})
	rvAssertIdle(t, r)
}
