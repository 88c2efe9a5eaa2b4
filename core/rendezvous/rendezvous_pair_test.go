package rendezvous

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/aemp-go/dataconn/core/wire"
)

// rvWire connects the machines of two or more nodes: messaging messages
// are delivered in order per node, round trips come back at once, dialed
// streams reach the acceptor's machine and, once admitted, complete on
// both sides. It records the outcomes.
type rvWire struct {
	t        testing.TB
	nodes    map[string]*Machine
	isGo     map[string]bool
	listen   map[string]string // address -> node
	streams  bool              // deliver streams before messages
	msgs     []rvWireMsg
	pending  []rvWireStream // dialed, not yet seen by the acceptor
	accepted map[ConnRef]rvWireStream
	nextRef  ConnRef
	now      time.Time

	delivered map[string]ConnRef
	failed    map[string]*wire.KillReason
	inits     []CallInit
	kills     []wire.Message
}

type rvWireMsg struct {
	from, to string
	msg      wire.Message
	rtID     string // a round trip instead of a message
}

type rvWireStream struct {
	dialer, acceptor, id, addr string
	ref                        ConnRef
}

func newRvWire(t testing.TB, streamsFirst bool) *rvWire {
	return &rvWire{
		t: t, nodes: map[string]*Machine{}, isGo: map[string]bool{}, listen: map[string]string{},
		streams: streamsFirst, accepted: map[ConnRef]rvWireStream{}, now: rvT0,
		delivered: map[string]ConnRef{}, failed: map[string]*wire.KillReason{},
	}
}

func (w *rvWire) add(node string, goNode bool, addrs ...string) *Machine {
	r := New(Config{Self: node})
	w.nodes[node] = r
	w.isGo[node] = goNode
	for _, a := range addrs {
		w.listen[a] = node
	}
	return r
}

func (w *rvWire) greeting(node, id string, extra []wire.KV) wire.Greeting {
	return rvGreet(node, id, w.isGo[node], extra...)
}

// collect moves every node's actions into the wire.
func (w *rvWire) collect() bool {
	any := false
	for _, name := range []string{"A", "B", "C"} {
		r := w.nodes[name]
		if r == nil {
			continue
		}
		for a := r.Poll(); a != nil; a = r.Poll() {
			any = true
			w.handle(name, a)
		}
	}
	return any
}

func (w *rvWire) handle(node string, a Action) {
	switch a := a.(type) {
	case Send:
		w.msgs = append(w.msgs, rvWireMsg{from: node, to: a.To, msg: a.Msg})
	case Watch:
	case RoundTrip:
		w.msgs = append(w.msgs, rvWireMsg{from: node, to: a.To, rtID: a.ID})
	case Dial:
		target, ok := w.listen[a.Addr]
		if !ok {
			w.nodes[node].DialFailed(w.now, a.ID, a.Addr, errors.New("connection refused"))
			return
		}
		w.nextRef++
		w.pending = append(w.pending, rvWireStream{dialer: node, acceptor: target, id: a.ID, addr: a.Addr, ref: w.nextRef})
	case Admit:
		s := w.accepted[a.Ref]
		delete(w.accepted, a.Ref)
		w.nodes[s.acceptor].IncomingDone(w.now, s.ref)
		w.nodes[s.dialer].DialDone(w.now, s.id, s.addr, s.ref, w.greeting(s.acceptor, s.id, a.Extra))
	case Refuse:
		s := w.accepted[a.Ref]
		delete(w.accepted, a.Ref)
		w.nodes[s.dialer].DialFailed(w.now, s.id, s.addr, a.Err)
	case Deliver:
		w.delivered[a.ID] = a.Ref
	case Fail:
		w.failed[a.ID] = a.Reason
	case CallInit:
		w.inits = append(w.inits, a)
	case Close:
		w.t.Errorf("%s closes stream %d: %v", node, a.Ref, a.Err)
	}
}

// step delivers one stream or one message; false when nothing is queued.
func (w *rvWire) step() bool {
	if len(w.pending) > 0 && (w.streams || len(w.msgs) == 0) {
		s := w.pending[0]
		w.pending = w.pending[1:]
		w.accepted[s.ref] = s
		w.nodes[s.acceptor].IncomingGreeting(w.now, s.ref, w.greeting(s.dialer, s.id, nil))
		return true
	}
	if len(w.msgs) == 0 {
		return false
	}
	m := w.msgs[0]
	w.msgs = w.msgs[1:]
	dst := w.nodes[m.to]
	if m.rtID != "" {
		w.nodes[m.from].RoundTripDone(w.now, m.rtID)
		return true
	}
	nm, err := wire.ParseNodeMsg(m.msg[1:])
	if err != nil {
		w.t.Fatalf("unparsable %#v: %v", m.msg, err)
	}
	switch nm := nm.(type) {
	case wire.NodeMsgExpect:
		dst.Expect(w.now, m.from, nm)
	case wire.NodeMsgConnect:
		var addrs []string
		for a, n := range w.listen {
			if n == nm.Node {
				addrs = append(addrs, a)
			}
		}
		dst.ConnectBack(w.now, m.from, nm, addrs)
	case wire.NodeMsgKill:
		w.kills = append(w.kills, m.msg)
	default:
		w.t.Fatalf("unexpected %#v", m.msg)
	}
	return true
}

func (w *rvWire) run() {
	for i := 0; i < 1000; i++ {
		moved := w.collect()
		if !w.step() && !moved {
			return
		}
	}
	w.t.Fatal("wire does not settle")
}

func TestRvPairFlows(t *testing.T) {
	cases := []struct {
		name           string
		aGo, bGo       bool
		aAddrs, bAddrs []string
		targetIsGo     bool
		streamsFirst   bool
		wantRoundTrip  bool
	}{
		{"go fast flow, stream before _expect", true, true, nil, []string{"b:1"}, true, true, false},
		{"go fast flow, _expect first", true, true, nil, []string{"b:1"}, true, false, false},
		{"go fast flow, dead first address", true, true, nil, []string{"b:0", "b:1"}, true, true, false},
		{"perl target, dial", true, false, nil, []string{"b:1"}, false, true, true},
		{"go target, dial-back", true, true, []string{"a:1"}, nil, true, true, true},
	}
	// A node without KeyGo stands for a Perl node only as the acceptor
	// (a Perl dialer would not require the confirmation this machine does).
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := newRvWire(t, c.streamsFirst)
			a := w.add("A", c.aGo, c.aAddrs...)
			b := w.add("B", c.bGo, c.bAddrs...)
			if len(c.bAddrs) > 1 {
				delete(w.listen, c.bAddrs[0]) // announced but not listening
			}
			a.Connect(w.now, ConnectRequest{ID: "id1", Target: "B", Port: "A#p", Timeout: 5 * time.Second,
				InitFunc: "init", InitData: []any{"d"}, TargetAddrs: c.bAddrs, SelfAddrs: c.aAddrs, TargetIsGo: c.targetIsGo})
			watch := a.Poll()
			first := a.Poll()
			second := a.Poll()
			if _, ok := watch.(Watch); !ok {
				t.Fatalf("first action %#v; want the watch of the request's port", watch)
			}
			w.handle("A", first)
			w.handle("A", second)
			if _, rt := second.(RoundTrip); rt != c.wantRoundTrip {
				t.Fatalf("second action %#v; want a round trip: %v", second, c.wantRoundTrip)
			}
			w.run()
			if _, ok := w.delivered["id1"]; !ok || len(w.failed) != 0 {
				t.Fatalf("delivered %v, failed %v", w.delivered, w.failed)
			}
			if len(w.inits) != 1 || w.inits[0].Ref != w.delivered["id1"] || w.inits[0].From != "A" || w.inits[0].Func != "init" {
				t.Fatalf("inits %#v, delivered %v", w.inits, w.delivered)
			}
			rvAssertIdle(t, a)
			rvAssertIdle(t, b)
		})
	}
}

// TestRvPairUnknownIDIsAFailure: a node of this project refuses a stream
// for an id it never expected, and the dialer reports failure instead of
// a connected stream (PROTOCOL.md 5, "Silent failure").
func TestRvPairUnknownIDIsAFailure(t *testing.T) {
	w := newRvWire(t, true)
	a := w.add("A", true)
	b := w.add("B", true, "b:1")
	// Its timeout is past the two early holds below: before it, the
	// failure is the dialer's own (at it, the timeout would win).
	a.Connect(w.now, ConnectRequest{ID: "id1", Target: "B", Port: "A#p", Timeout: 10 * time.Second,
		TargetAddrs: []string{"b:1"}, TargetIsGo: true})
	w.collect()
	w.msgs = nil // the _expect is lost
	w.run()
	// The refused fast-flow stream makes A fall back once to the round
	// trip and dial again; that stream is refused the same way.
	for i := 0; i < 2; i++ {
		w.now = w.now.Add(DefaultEarlyHold)
		b.Tick(w.now)
		w.run()
	}
	r := w.failed["id1"]
	if r == nil || r.Message != "B: unable to connect: dataconn rendezvous: unknown or expired data connection id: not matched within the early hold" {
		t.Fatalf("failed %v, delivered %v", r, w.delivered)
	}
	rvAssertIdle(t, a)
	rvAssertIdle(t, b)
}

func BenchmarkRendezvous(b *testing.B) {
	a := New(Config{Self: "A"})
	t := New(Config{Self: "B"})
	addrs := []string{"b:1"}
	dialer := rvGreet("A", "", true)
	acceptor := rvGreet("B", "", true, rvConfirmed)
	now := rvT0
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		id := fmt.Sprint("id", i)
		dialer.KV[0].Value = id
		acceptor.KV[0].Value = id
		ref := ConnRef(i + 1)
		a.Connect(now, ConnectRequest{ID: id, Target: "B", Port: "A#p", Timeout: 5 * time.Second,
			InitFunc: "f", TargetAddrs: addrs, TargetIsGo: true})
		exp := a.Poll().(Send)
		if _, ok := a.Poll().(Dial); !ok {
			b.Fatal("no dial")
		}
		t.IncomingGreeting(now, ref, dialer) // early: held
		m, err := wire.ParseNodeMsg(exp.Msg[1:])
		if err != nil {
			b.Fatal(err)
		}
		t.Expect(now, "A", m.(wire.NodeMsgExpect))
		if _, ok := t.Poll().(Admit); !ok {
			b.Fatal("not admitted")
		}
		a.DialDone(now, id, "b:1", ref, acceptor)
		if _, ok := a.Poll().(Deliver); !ok {
			b.Fatal("not delivered")
		}
		t.IncomingDone(now, ref)
		if _, ok := t.Poll().(CallInit); !ok {
			b.Fatal("no init")
		}
		a.Poll()
		t.Poll()
	}
	if o, e, h := a.Counts(); o+e+h != 0 {
		b.Fatal("initiator state left")
	}
	if o, e, h := t.Counts(); o+e+h != 0 {
		b.Fatal("target state left")
	}
}
