package rendezvous

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/aemp-go/dataconn/core/handshake"
	"github.com/aemp-go/dataconn/core/wire"
)

var rvT0 = time.Unix(1_700_000_000, 0)

func rvAt(d time.Duration) time.Time { return rvT0.Add(d) }

func rvDrain(r *Machine) []Action {
	var out []Action
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
func rvGreet(node, id string, goNode bool, extra ...wire.KV) wire.Greeting {
	g := wire.Greeting{Protocol: wire.ProtocolDataConn, Version: "1", NodeID: node}
	if id != "-" {
		g.KV = append(g.KV, wire.KV{Key: wire.KeyDataConnID, Value: id})
	}
	if goNode {
		g.KV = append(g.KV, wire.KV{Key: wire.KeyGo, Value: "1"})
	}
	g.KV = append(g.KV, extra...)
	return g
}

var rvConfirmed = wire.KV{Key: ConfirmKey, Value: "1"}

func rvExpectTo(t *testing.T, r *Machine, want ...Action) {
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
func rvSameAction(got, want Action) bool {
	switch w := want.(type) {
	case Fail:
		g, ok := got.(Fail)
		return ok && g.ID == w.ID && g.Reason != nil && w.Reason != nil &&
			g.Reason.Family == w.Reason.Family && g.Reason.Message == w.Reason.Message &&
			errors.Is(g.Err, w.Err)
	case Refuse:
		g, ok := got.(Refuse)
		return ok && g.Ref == w.Ref && errors.Is(g.Err, w.Err)
	case Close:
		g, ok := got.(Close)
		return ok && g.Ref == w.Ref && errors.Is(g.Err, w.Err)
	}
	return reflect.DeepEqual(got, want)
}

func rvAssertIdle(t *testing.T, r *Machine) {
	t.Helper()
	if o, e, h := r.Counts(); o != 0 || e != 0 || h != 0 {
		t.Fatalf("Counts = %d, %d, %d; want all zero", o, e, h)
	}
	if d := r.Deadline(); !d.IsZero() {
		t.Fatalf("Deadline = %v; want zero", d)
	}
}

func rvFail(id, text string, rule error) Fail {
	return Fail{ID: id, Reason: wire.DataConnReason("%s", text), Err: rule}
}

func rvKill(to, port, text string) Send {
	return Send{To: to, Msg: wire.KillMsg(port, wire.KillReasonDataConn, text)}
}

func newTestRv() *Machine { return New(Config{Self: "A"}) }

func TestRvConnectRejectsAtOnce(t *testing.T) {
	base := ConnectRequest{ID: "c1", Target: "B", Port: "A#p", Timeout: 5 * time.Second, TargetAddrs: []string{"b:1"}}
	cases := []struct {
		name string
		mod  func(*ConnectRequest)
		text string
		rule error
	}{
		{"no listeners", func(q *ConnectRequest) { q.TargetAddrs = nil; q.SelfAddrs = []string{""} }, "B: no listeners found", ErrNoListeners},
		{"empty id", func(q *ConnectRequest) { q.ID = "" }, "B: empty data connection id", ErrBadRequest},
		{"self", func(q *ConnectRequest) { q.Target = "A" }, "A: not a remote node", ErrBadRequest},
		{"zero timeout", func(q *ConnectRequest) { q.Timeout = 0 }, "B: unable to establish connection within 0 seconds", ErrTimeout},
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
		rvExpectTo(t, r, rvFail("c1", "B: data connection id already in use", ErrBadRequest))
		if o, _, _ := r.Counts(); o != 1 {
			t.Fatalf("outgoing = %d, want the first request kept", o)
		}
	})
}

func TestRvPerlFlowDial(t *testing.T) {
	r := newTestRv()
	r.Connect(rvT0, ConnectRequest{ID: "c1", Target: "B", Port: "A#p", Timeout: 5 * time.Second,
		InitFunc: "f", InitData: []any{"x", 1}, TargetAddrs: []string{"b:1", "b:1", "b:2"}})
	rvExpectTo(t, r,
		Watch{ID: "c1", Port: "A#p"},
		Send{To: "B", Msg: wire.ExpectMsg("c1", "A#p", 5, "f", "x", 1)},
		RoundTrip{ID: "c1", To: "B"})
	if d := r.Deadline(); !d.Equal(rvAt(5 * time.Second)) {
		t.Fatalf("Deadline = %v, want the request timeout", d)
	}
	r.RoundTripDone(rvAt(10*time.Millisecond), "c1")
	rvExpectTo(t, r, Dial{ID: "c1", Addr: "b:1", Node: "B"})
	r.RoundTripDone(rvAt(10*time.Millisecond), "c1") // repeated: ignored
	rvExpectTo(t, r)
	// A Perl peer never confirms: its plain greeting is enough.
	r.DialDone(rvAt(20*time.Millisecond), "c1", "b:1", 7, rvGreet("B", "c1", false))
	rvExpectTo(t, r, Deliver{ID: "c1", Ref: 7})
	rvAssertIdle(t, r)
}

func TestRvPerlFlowDialBack(t *testing.T) {
	for _, goPeer := range []bool{false, true} {
		r := newTestRv()
		r.Connect(rvT0, ConnectRequest{ID: "c1", Target: "B", Port: "A#p", Timeout: 5 * time.Second,
			SelfAddrs: []string{"a:1"}, TargetIsGo: goPeer})
		rvExpectTo(t, r,
			Watch{ID: "c1", Port: "A#p"},
			Send{To: "B", Msg: wire.ExpectMsg("c1", "A#p", 5, "")},
			RoundTrip{ID: "c1", To: "B"})
		// A stream with the id before _connect was sent is refused.
		r.IncomingGreeting(rvT0, 1, rvGreet("B", "c1", goPeer))
		rvExpectTo(t, r, Refuse{Ref: 1, Err: ErrUnknownID})
		r.RoundTripDone(rvT0, "c1")
		rvExpectTo(t, r, Send{To: "B", Msg: wire.ConnectMsg("c1", "A")})
		// Another node presenting the id is refused; the request stays.
		r.IncomingGreeting(rvT0, 2, rvGreet("C", "c1", goPeer))
		rvExpectTo(t, r, Refuse{Ref: 2, Err: ErrIDHijack})
		r.IncomingGreeting(rvT0, 3, rvGreet("B", "c1", goPeer))
		var extra []wire.KV
		if goPeer {
			extra = []wire.KV{rvConfirmed}
		}
		rvExpectTo(t, r, Admit{Ref: 3, Extra: extra})
		r.IncomingDone(rvT0, 3)
		rvExpectTo(t, r, Deliver{ID: "c1", Ref: 3})
		rvAssertIdle(t, r)
	}
}

func TestRvDialBackFailedHandshakeLetsDuplicateIn(t *testing.T) {
	r := newTestRv()
	r.Connect(rvT0, ConnectRequest{ID: "c1", Target: "B", Port: "A#p", Timeout: 5 * time.Second, SelfAddrs: []string{"a:1"}})
	r.RoundTripDone(rvT0, "c1")
	rvDrain(r)
	r.IncomingGreeting(rvT0, 1, rvGreet("B", "c1", true))
	rvExpectTo(t, r, Admit{Ref: 1, Extra: []wire.KV{rvConfirmed}})
	r.IncomingGreeting(rvT0, 2, rvGreet("B", "c1", true)) // duplicate from a Go peer: held
	r.IncomingGreeting(rvT0, 3, rvGreet("B", "c1", false))
	rvExpectTo(t, r, Refuse{Ref: 3, Err: ErrIDBusy})
	r.IncomingFailed(rvT0, 1, errors.New("reset"))
	rvExpectTo(t, r, Admit{Ref: 2, Extra: []wire.KV{rvConfirmed}})
	r.IncomingDone(rvT0, 1) // the failed one cannot come back
	rvExpectTo(t, r, Close{Ref: 1, Err: ErrUnknownID})
	r.IncomingDone(rvT0, 2)
	rvExpectTo(t, r, Deliver{ID: "c1", Ref: 2})
	rvAssertIdle(t, r)
}

func TestRvFastFlowStaggeredDials(t *testing.T) {
	r := newTestRv()
	r.Connect(rvT0, ConnectRequest{ID: "c1", Target: "B", Port: "A#p", Timeout: 5 * time.Second,
		TargetAddrs: []string{"b:1", "b:2", "b:3"}, TargetIsGo: true})
	rvExpectTo(t, r,
		Watch{ID: "c1", Port: "A#p"},
		Send{To: "B", Msg: wire.ExpectMsg("c1", "A#p", 5, "")},
		Dial{ID: "c1", Addr: "b:1", Node: "B"})
	if d := r.Deadline(); !d.Equal(rvAt(250 * time.Millisecond)) {
		t.Fatalf("Deadline = %v, want the stagger delay", d)
	}
	r.Tick(rvAt(100 * time.Millisecond))
	rvExpectTo(t, r)
	// A failure starts the next address at once and restarts the stagger.
	r.DialFailed(rvAt(100*time.Millisecond), "c1", "b:1", errors.New("refused"))
	rvExpectTo(t, r, Dial{ID: "c1", Addr: "b:2", Node: "B"})
	if d := r.Deadline(); !d.Equal(rvAt(350 * time.Millisecond)) {
		t.Fatalf("Deadline = %v, want 350ms", d)
	}
	r.Tick(rvAt(350 * time.Millisecond))
	rvExpectTo(t, r, Dial{ID: "c1", Addr: "b:3", Node: "B"})
	r.DialDone(rvAt(400*time.Millisecond), "c1", "b:3", 9, rvGreet("B", "c1", true, rvConfirmed))
	rvExpectTo(t, r, Deliver{ID: "c1", Ref: 9})
	rvAssertIdle(t, r)
	// The losing dial completes late: closed.
	r.DialDone(rvAt(500*time.Millisecond), "c1", "b:2", 10, rvGreet("B", "c1", true, rvConfirmed))
	rvExpectTo(t, r, Close{Ref: 10, Err: ErrUnknownID})
	r.DialFailed(rvAt(500*time.Millisecond), "c1", "b:2", errors.New("late"))
	rvExpectTo(t, r)
}

func TestRvDialRejections(t *testing.T) {
	cases := []struct {
		name   string
		isGo   bool
		peer   wire.Greeting
		rule   error
		detail string
	}{
		{"go target without confirmation", true, rvGreet("B", "c1", true), ErrNotConfirmed, "B did not confirm the id"},
		{"go greeting without confirmation", false, rvGreet("B", "c1", true), ErrNotConfirmed, "B did not confirm the id"},
		{"go target, Perl greeting", true, rvGreet("B", "c1", false), ErrNotConfirmed, "B did not confirm the id"},
		{"confirmation with another value", true, rvGreet("B", "c1", true, wire.KV{Key: ConfirmKey, Value: "0"}), ErrNotConfirmed, "B did not confirm the id"},
		{"wrong node", false, rvGreet("C", "c1", false), ErrWrongPeer, "expected B, got C"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newTestRv()
			r.Connect(rvT0, ConnectRequest{ID: "c1", Target: "B", Port: "A#p", Timeout: 5 * time.Second,
				TargetAddrs: []string{"b:1", "b:2"}, TargetIsGo: c.isGo})
			rvDrain(r)
			r.RoundTripDone(rvT0, "c1") // ignored in the fast flow
			rvDrain(r)
			r.Tick(rvAt(250 * time.Millisecond))
			rvDrain(r)
			// The first rejection is a failed attempt; the other dial still runs.
			r.DialDone(rvAt(300*time.Millisecond), "c1", "b:1", 1, c.peer)
			rvExpectTo(t, r, Close{Ref: 1, Err: c.rule})
			r.DialDone(rvAt(300*time.Millisecond), "c1", "b:2", 2, c.peer)
			got := rvDrain(r)
			if len(got) != 2 || !rvSameAction(got[0], Close{Ref: 2, Err: c.rule}) {
				t.Fatalf("got %#v", got)
			}
			f, ok := got[1].(Fail)
			if !ok || !errors.Is(f.Err, ErrDialFailed) || f.Reason.Family != wire.KillReasonDataConn ||
				!strings.HasPrefix(f.Reason.Message, "B: unable to connect: ") || !strings.HasSuffix(f.Reason.Message, c.detail) {
				t.Fatalf("got %#v", got[1])
			}
			var re *Error
			if !errors.As(f.Err, &re) || re.Node != "B" {
				t.Fatalf("Err %v is not an *Error about B", f.Err)
			}
			rvAssertIdle(t, r)
		})
	}
}

func TestRvAllDialsFail(t *testing.T) {
	r := newTestRv()
	r.Connect(rvT0, ConnectRequest{ID: "c1", Target: "B", Port: "A#p", Timeout: 5 * time.Second, TargetAddrs: []string{"b:1", "b:2"}})
	r.RoundTripDone(rvT0, "c1")
	rvDrain(r)
	r.DialFailed(rvT0, "c1", "b:9", errors.New("not ours")) // unknown address: ignored
	rvExpectTo(t, r)
	r.DialFailed(rvT0, "c1", "b:1", errors.New("refused"))
	rvExpectTo(t, r, Dial{ID: "c1", Addr: "b:2", Node: "B"})
	r.DialFailed(rvT0, "c1", "b:2", errors.New("no route"))
	rvExpectTo(t, r, rvFail("c1", "B: unable to connect: no route", ErrDialFailed))
	rvAssertIdle(t, r)
}

func TestRvConnectTimeout(t *testing.T) {
	for _, c := range []struct {
		d    time.Duration
		text string
	}{{5 * time.Second, "5"}, {500 * time.Millisecond, "0.5"}, {1500 * time.Millisecond, "1.5"}} {
		r := newTestRv()
		r.Connect(rvT0, ConnectRequest{ID: "c1", Target: "B", Port: "A#p", Timeout: c.d, TargetAddrs: []string{"b:1"}})
		rvDrain(r)
		r.Tick(rvT0.Add(c.d - time.Nanosecond))
		rvExpectTo(t, r)
		r.Tick(rvT0.Add(c.d))
		rvExpectTo(t, r, rvFail("c1", "B: unable to establish connection within "+c.text+" seconds", ErrTimeout))
		rvAssertIdle(t, r)
		r.RoundTripDone(rvT0.Add(c.d), "c1")
		rvExpectTo(t, r)
	}
}

func TestRvCancel(t *testing.T) {
	r := newTestRv()
	req := ConnectRequest{ID: "c1", Target: "B", Port: "A#p", Timeout: 5 * time.Second, TargetAddrs: []string{"b:1"}, TargetIsGo: true}
	r.Connect(rvT0, req)
	rvDrain(r)
	reason := &wire.KillReason{Family: "custom", Message: "context canceled"}
	r.Cancel(rvT0, "c1", reason)
	got := rvDrain(r)
	if len(got) != 1 || got[0].(Fail).Reason != reason || !errors.Is(got[0].(Fail).Err, ErrCancelled) {
		t.Fatalf("got %#v", got)
	}
	r.Cancel(rvT0, "c1", reason) // already finished
	rvExpectTo(t, r)
	r.DialDone(rvT0, "c1", "b:1", 4, rvGreet("B", "c1", true, rvConfirmed))
	rvExpectTo(t, r, Close{Ref: 4, Err: ErrUnknownID})
	rvAssertIdle(t, r)

	for _, given := range []*wire.KillReason{nil, {Family: "x"}} {
		r.Connect(rvT0, req)
		rvDrain(r)
		r.Cancel(rvT0, "c1", given)
		got := rvDrain(r)
		f := got[0].(Fail)
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
	r.Connect(rvT0, ConnectRequest{ID: "c1", Target: "B", Port: "A#p", Timeout: 5 * time.Second, TargetAddrs: []string{"b:1"}})
	r.Connect(rvT0, ConnectRequest{ID: "c2", Target: "B", Port: "A#p", Timeout: 5 * time.Second, TargetAddrs: []string{"b:1"}, TargetIsGo: true})
	r.Connect(rvT0, ConnectRequest{ID: "c3", Target: "C", Port: "A#p", Timeout: 5 * time.Second, TargetAddrs: []string{"c:1"}})
	r.Connect(rvT0, ConnectRequest{ID: "c4", Target: "B", Port: "A#p", Timeout: 5 * time.Second, TargetAddrs: []string{"b:1"}})
	rvDrain(r)
	r.IncomingGreeting(rvT0, 1, rvGreet("B", "x1", true))
	r.IncomingGreeting(rvT0, 2, rvGreet("C", "x2", true))
	rvExpectTo(t, r)
	r.PeerDown(rvT0, "B", errors.New("eof"))
	rvExpectTo(t, r,
		rvFail("c1", "B: node down: eof", ErrPeerDown),
		rvFail("c4", "B: node down: eof", ErrPeerDown),
		Refuse{Ref: 1, Err: ErrPeerDown})
	if o, e, h := r.Counts(); o != 2 || e != 0 || h != 1 {
		t.Fatalf("Counts = %d %d %d, want the fast-flow request and C's state kept", o, e, h)
	}
	r.PeerDown(rvT0, "C", nil)
	rvExpectTo(t, r,
		rvFail("c3", "C: node down: connection lost", ErrPeerDown),
		Refuse{Ref: 2, Err: ErrPeerDown})
}

func TestRvExpectMatched(t *testing.T) {
	for _, goPeer := range []bool{false, true} {
		r := newTestRv()
		r.Expect(rvT0, "B", wire.NodeMsgExpect{ID: "x1", Port: "B#p", Timeout: 5, InitFunc: "f", InitData: []any{"d"}})
		rvExpectTo(t, r)
		if _, e, _ := r.Counts(); e != 1 {
			t.Fatalf("expectations = %d", e)
		}
		// Another authenticated node guessing the id is refused...
		r.IncomingGreeting(rvT0, 1, rvGreet("C", "x1", goPeer))
		rvExpectTo(t, r, Refuse{Ref: 1, Err: ErrIDHijack})
		// ...and the rightful owner still gets it.
		r.IncomingGreeting(rvT0, 2, rvGreet("B", "x1", goPeer))
		var extra []wire.KV
		if goPeer {
			extra = []wire.KV{rvConfirmed}
		}
		rvExpectTo(t, r, Admit{Ref: 2, Extra: extra})
		r.IncomingDone(rvT0, 1) // refused stream: never initialised
		rvExpectTo(t, r, Close{Ref: 1, Err: ErrUnknownID})
		r.IncomingDone(rvT0, 2)
		rvExpectTo(t, r, CallInit{Ref: 2, From: "B", Func: "f", Data: []any{"d"}})
		rvAssertIdle(t, r)
		// Single use.
		r.IncomingGreeting(rvT0, 3, rvGreet("B", "x1", false))
		rvExpectTo(t, r, Refuse{Ref: 3, Err: ErrUnknownID})
	}
}

func TestRvExpectRefusals(t *testing.T) {
	r := New(Config{Self: "A", MaxExpectPerPeer: 2, MaxExpectQueuePerPeer: 1})
	r.Expect(rvT0, "B", wire.NodeMsgExpect{ID: "x1", Port: "B#p1", Timeout: 5})
	r.Expect(rvT0, "B", wire.NodeMsgExpect{ID: "x2", Port: "B#p2", Timeout: 5})
	rvExpectTo(t, r)
	// Past MaxExpectPerPeer an expectation waits, up to MaxExpectQueuePerPeer.
	r.Expect(rvT0, "B", wire.NodeMsgExpect{ID: "x2w", Port: "B#pw", Timeout: 5})
	rvExpectTo(t, r)
	r.Expect(rvT0, "B", wire.NodeMsgExpect{ID: "x3", Port: "B#p3", Timeout: 5})
	rvExpectTo(t, r, rvKill("B", "p3", "A: too many pending data connections from B"))
	r.Expect(rvT0, "C", wire.NodeMsgExpect{ID: "x3", Port: "C#p3", Timeout: 5})
	rvExpectTo(t, r)
	r.Expect(rvT0, "C", wire.NodeMsgExpect{ID: "x1", Port: "C#q", Timeout: 5})
	rvExpectTo(t, r, rvKill("C", "q", "A: data connection id from C already in use"))
	r.Expect(rvT0, "C", wire.NodeMsgExpect{ID: "", Port: "C#q", Timeout: 5})
	rvExpectTo(t, r, rvKill("C", "q", "A: empty data connection id from C"))
	// A port id without a name is never killed (that would be the node port).
	r.Expect(rvT0, "B", wire.NodeMsgExpect{ID: "x9", Port: "B", Timeout: 5})
	r.Expect(rvT0, "B", wire.NodeMsgExpect{ID: "x9", Port: "B#", Timeout: 5})
	rvExpectTo(t, r)
	if _, e, _ := r.Counts(); e != 4 {
		t.Fatalf("expectations = %d, want 4", e)
	}
	// Our own pending outgoing ids cannot be expected by a peer.
	r.Connect(rvT0, ConnectRequest{ID: "c1", Target: "B", Port: "A#p", Timeout: 9 * time.Second, TargetAddrs: []string{"b:1"}})
	rvDrain(r)
	r.Expect(rvT0, "D", wire.NodeMsgExpect{ID: "c1", Port: "D#p", Timeout: 5})
	rvExpectTo(t, r, rvKill("D", "p", "A: data connection id from D already in use"))
}

func TestRvExpectExpiry(t *testing.T) {
	r := newTestRv()
	r.Expect(rvT0, "B", wire.NodeMsgExpect{ID: "x1", Port: "B#p", Timeout: 2.5})
	r.Expect(rvT0, "B", wire.NodeMsgExpect{ID: "x2", Port: "B#q", Timeout: 2})
	r.Expect(rvT0, "C", wire.NodeMsgExpect{ID: "x3", Port: "C", Timeout: 1})
	r.IncomingGreeting(rvT0, 1, rvGreet("B", "x1", true))
	rvExpectTo(t, r, Admit{Ref: 1, Extra: []wire.KV{rvConfirmed}})
	r.Tick(rvAt(3 * time.Second))
	// x1 is claimed by a stream whose match was confirmed to B: it lives
	// on until that stream's handshake ends.
	rvExpectTo(t, r,
		rvKill("B", "q", "A: data connection from B not established within 2 seconds"))
	r.IncomingDone(rvAt(3*time.Second), 1)
	rvExpectTo(t, r, CallInit{Ref: 1, From: "B"})
	rvAssertIdle(t, r)

	// A claimed expectation whose stream never finishes expires after the
	// grace period; the stream is then closed when it completes.
	r.Expect(rvT0, "B", wire.NodeMsgExpect{ID: "y1", Port: "B#p", Timeout: 2.5})
	r.IncomingGreeting(rvT0, 2, rvGreet("B", "y1", true))
	rvExpectTo(t, r, Admit{Ref: 2, Extra: []wire.KV{rvConfirmed}})
	r.Tick(rvAt(3 * time.Second))
	rvExpectTo(t, r)
	r.Tick(rvAt(3*time.Second + DefaultClaimGrace))
	rvExpectTo(t, r,
		rvKill("B", "p", "A: data connection from B not established within 2.5 seconds"))
	rvAssertIdle(t, r)
	r.IncomingDone(rvAt(40*time.Second), 2)
	rvExpectTo(t, r, Close{Ref: 2, Err: ErrUnknownID})

	// A claimed expectation whose stream fails after the expiry: killed
	// at once.
	r.Expect(rvAt(40*time.Second), "B", wire.NodeMsgExpect{ID: "z1", Port: "B#p", Timeout: 1})
	r.IncomingGreeting(rvAt(40*time.Second), 3, rvGreet("B", "z1", true))
	rvExpectTo(t, r, Admit{Ref: 3, Extra: []wire.KV{rvConfirmed}})
	r.Tick(rvAt(42 * time.Second))
	rvExpectTo(t, r)
	r.IncomingFailed(rvAt(42*time.Second), 3, handshake.ErrPeerClosed)
	rvExpectTo(t, r,
		rvKill("B", "p", "A: data connection from B not established within 1 seconds"))
	rvAssertIdle(t, r)
}

func TestRvEarlyHold(t *testing.T) {
	r := New(Config{Self: "A", MaxEarlyPerPeer: 2})
	r.IncomingGreeting(rvT0, 1, rvGreet("B", "x1", true))
	r.IncomingGreeting(rvT0, 2, rvGreet("C", "x1", true)) // C tries B's id early
	r.IncomingGreeting(rvT0, 3, rvGreet("B", "x2", true))
	rvExpectTo(t, r)
	r.IncomingGreeting(rvT0, 4, rvGreet("B", "x3", true))
	rvExpectTo(t, r, Refuse{Ref: 4, Err: ErrEarlyLimit})
	r.IncomingGreeting(rvT0, 5, rvGreet("B", "x3", false)) // Perl peers are not held
	rvExpectTo(t, r, Refuse{Ref: 5, Err: ErrUnknownID})
	r.IncomingGreeting(rvT0, 6, rvGreet("B", "-", true))
	rvExpectTo(t, r, Refuse{Ref: 6, Err: ErrUnknownID})
	if _, _, h := r.Counts(); h != 3 {
		t.Fatalf("held = %d", h)
	}
	r.IncomingGreeting(rvT0, 1, rvGreet("B", "x1", true)) // reported twice: ignored
	rvExpectTo(t, r)

	r.Expect(rvAt(time.Second), "B", wire.NodeMsgExpect{ID: "x1", Port: "B#p", Timeout: 5, InitFunc: "f"})
	rvExpectTo(t, r, Admit{Ref: 1, Extra: []wire.KV{rvConfirmed}})
	r.IncomingDone(rvAt(time.Second), 1)
	rvExpectTo(t, r, CallInit{Ref: 1, From: "B", Func: "f"})
	// The hold ends 3s after arrival: C's and B's leftover streams are refused.
	r.IncomingFailed(rvAt(2*time.Second), 3, errors.New("closed"))
	rvExpectTo(t, r)
	if d := r.Deadline(); !d.Equal(rvAt(3 * time.Second)) {
		t.Fatalf("Deadline = %v", d)
	}
	r.Tick(rvAt(3 * time.Second))
	rvExpectTo(t, r, Refuse{Ref: 2, Err: ErrUnknownID})
	rvAssertIdle(t, r)
}

func TestRvExpectLimitRefusesHeld(t *testing.T) {
	r := New(Config{Self: "A", MaxExpectPerPeer: 1, MaxExpectQueuePerPeer: 1})
	r.Expect(rvT0, "B", wire.NodeMsgExpect{ID: "x1", Port: "B#p", Timeout: 5})
	r.IncomingGreeting(rvT0, 1, rvGreet("B", "x2", true))
	r.Expect(rvT0, "B", wire.NodeMsgExpect{ID: "x1w", Port: "B#w", Timeout: 5})
	rvExpectTo(t, r)
	r.Expect(rvT0, "B", wire.NodeMsgExpect{ID: "x2", Port: "B#q", Timeout: 5})
	rvExpectTo(t, r,
		rvKill("B", "q", "A: too many pending data connections from B"),
		Refuse{Ref: 1, Err: ErrExpectLimit})
}

func TestRvClaimReleasedOnFailure(t *testing.T) {
	r := newTestRv()
	r.Expect(rvT0, "B", wire.NodeMsgExpect{ID: "x1", Port: "B#p", Timeout: 5, InitFunc: "f"})
	r.IncomingGreeting(rvT0, 1, rvGreet("B", "x1", false))
	rvExpectTo(t, r, Admit{Ref: 1})
	r.IncomingGreeting(rvT0, 2, rvGreet("B", "x1", false))
	rvExpectTo(t, r, Refuse{Ref: 2, Err: ErrIDBusy})
	r.IncomingGreeting(rvT0, 3, rvGreet("B", "x1", true))
	rvExpectTo(t, r)
	r.IncomingFailed(rvT0, 1, errors.New("auth"))
	rvExpectTo(t, r, Admit{Ref: 3, Extra: []wire.KV{rvConfirmed}})
	r.IncomingGreeting(rvT0, 4, rvGreet("B", "x1", true))
	rvExpectTo(t, r)
	r.IncomingDone(rvT0, 3)
	rvExpectTo(t, r,
		Refuse{Ref: 4, Err: ErrIDBusy},
		CallInit{Ref: 3, From: "B", Func: "f"})
	rvAssertIdle(t, r)
}

func TestRvConnectBack(t *testing.T) {
	r := newTestRv()
	r.Expect(rvT0, "B", wire.NodeMsgExpect{ID: "x1", Port: "B#p", Timeout: 5, InitFunc: "f", InitData: []any{1}})
	r.ConnectBack(rvT0, "C", wire.NodeMsgConnect{ID: "x1", Node: "C"}, []string{"c:1"}) // not C's expectation
	r.ConnectBack(rvT0, "B", wire.NodeMsgConnect{ID: "x1", Node: "C"}, []string{"c:1"}) // must dial the sender
	r.ConnectBack(rvT0, "B", wire.NodeMsgConnect{ID: "x0", Node: "B"}, []string{"b:1"}) // unknown id
	r.ConnectBack(rvT0, "B", wire.NodeMsgConnect{ID: "x1", Node: "B"}, nil)             // no addresses
	rvExpectTo(t, r)
	r.ConnectBack(rvT0, "B", wire.NodeMsgConnect{ID: "x1", Node: "B"}, []string{"b:1", "b:2"})
	rvExpectTo(t, r, Dial{ID: "x1", Addr: "b:1", Node: "B"})
	r.DialFailed(rvT0, "x1", "b:1", nil)
	rvExpectTo(t, r, Dial{ID: "x1", Addr: "b:2", Node: "B"})
	r.DialDone(rvT0, "x1", "b:2", 5, rvGreet("B", "x1", true)) // a Go peer must confirm
	rvExpectTo(t, r, Close{Ref: 5, Err: ErrNotConfirmed})
	if _, e, _ := r.Counts(); e != 1 {
		t.Fatal("a failed dial-back must leave the expectation to its timer")
	}
	r = newTestRv()
	r.Expect(rvT0, "B", wire.NodeMsgExpect{ID: "x1", Port: "B#p", Timeout: 5, InitFunc: "f", InitData: []any{1}})
	r.ConnectBack(rvT0, "B", wire.NodeMsgConnect{ID: "x1", Node: "B"}, []string{"b:1", "b:2"})
	r.Tick(rvAt(250 * time.Millisecond))
	rvExpectTo(t, r, Dial{ID: "x1", Addr: "b:1", Node: "B"}, Dial{ID: "x1", Addr: "b:2", Node: "B"})
	r.DialDone(rvT0, "x1", "b:2", 6, rvGreet("B", "x1", false))
	rvExpectTo(t, r, CallInit{Ref: 6, From: "B", Func: "f", Data: []any{1}})
	rvAssertIdle(t, r)
	r.DialDone(rvT0, "x1", "b:1", 7, rvGreet("B", "x1", false))
	rvExpectTo(t, r, Close{Ref: 7, Err: ErrUnknownID})
}

func TestRvErrorsNameTheRule(t *testing.T) {
	e := rvErr(ErrIDHijack, "C", "C presented an id announced by B")
	if !errors.Is(e, ErrIDHijack) || !strings.Contains(e.Error(), "belongs to another node") ||
		!strings.Contains(e.Error(), "announced by B") {
		t.Fatalf("%v", e)
	}
	if got := Seconds(5); got != "5" {
		t.Fatalf("Seconds(5) = %q", got)
	}
	if got := Seconds(0.1); got != "0.1" {
		t.Fatalf("Seconds(0.1) = %q", got)
	}
}

// TestRvPerlCompat: when our greetings omit KeyGo no peer confirms or holds
// our streams, so the Perl flow is used and no confirmation is required.
func TestRvPerlCompat(t *testing.T) {
	r := New(Config{Self: "A", PerlCompat: true})
	r.Connect(rvT0, ConnectRequest{ID: "c1", Target: "B", Port: "A#p", Timeout: 5 * time.Second,
		TargetAddrs: []string{"b:1"}, TargetIsGo: true})
	rvExpectTo(t, r,
		Watch{ID: "c1", Port: "A#p"},
		Send{To: "B", Msg: wire.ExpectMsg("c1", "A#p", 5, "")},
		RoundTrip{ID: "c1", To: "B"})
	r.RoundTripDone(rvT0, "c1")
	rvExpectTo(t, r, Dial{ID: "c1", Addr: "b:1", Node: "B"})
	r.DialDone(rvT0, "c1", "b:1", 3, rvGreet("B", "c1", true))
	rvExpectTo(t, r, Deliver{ID: "c1", Ref: 3})
	rvAssertIdle(t, r)
}

// With RequireInit, an expectation for an init function that is not
// registered is refused at once: the sender's port is killed with the
// reason ClassifyKillReason reads as ErrNoInitFunc, nothing is recorded,
// and a port of another node is not killed. A registered one is recorded.
func TestRvExpectUnknownInitFunc(t *testing.T) {
	r := New(Config{Self: "A", RequireInit: true})
	r.RegisterInit("main::known")
	r.Expect(rvT0, "B", wire.NodeMsgExpect{ID: "x1", Port: "B#p1", Timeout: 5, InitFunc: "main::nope"})
	rvExpectTo(t, r, rvKill("B", "p1", `A: no init function "main::nope"`))
	if got := ClassifyKillReason(wire.DataConnReason("%s", `A: no init function "main::nope"`)); got != ErrNoInitFunc {
		t.Fatalf("the refusal reads as %v, want ErrNoInitFunc", got)
	}
	rvAssertIdle(t, r)
	r.Expect(rvT0, "B", wire.NodeMsgExpect{ID: "x2", Port: "C#p2", Timeout: 5, InitFunc: "main::nope"})
	rvExpectTo(t, r) // C's port: not B's to have killed
	rvAssertIdle(t, r)
	r.Expect(rvT0, "B", wire.NodeMsgExpect{ID: "x3", Port: "B#p3", Timeout: 5, InitFunc: "main::known"})
	rvExpectTo(t, r)
	if _, e, _ := r.Counts(); e != 1 {
		t.Fatalf("expectations = %d, want the registered one", e)
	}
	// Without RequireInit (the default) any init function is expected.
	r = newTestRv()
	r.Expect(rvT0, "B", wire.NodeMsgExpect{ID: "x1", Port: "B#p1", Timeout: 5, InitFunc: "main::nope"})
	rvExpectTo(t, r)
	if _, e, _ := r.Counts(); e != 1 {
		t.Fatalf("expectations = %d without RequireInit", e)
	}
}
