package rendezvous

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/aemp-go/dataconn/core/wire"
)

// rvModel drives one Rendezvous (node "A") with random operations from
// 1-3 peers and checks every action it emits against what the operations
// so far allow.
type rvModel struct {
	t     *rapid.T
	r     *Machine
	now   time.Time
	peers []string
	log   []Action // every action, for the determinism check

	nextConn int
	nextOp   int
	nextRef  ConnRef

	connects map[string]*rvModelConn // every Connect ever made
	connIDs  []string
	rtPend   []string // ids with an outstanding RoundTrip
	dials    []Dial   // outstanding Dial actions

	// live expectations as the model knows them: id -> owner and op number
	live     map[string]rvModelExp
	ports    map[string]int // port name -> Expect op number
	initDone map[int]bool   // Expect op numbers that got CallInit

	greets   map[ConnRef]wire.Greeting
	refState map[ConnRef]string // "", "admitted", "refused"
	refIDs   []ConnRef
	dialRefs map[ConnRef]string // refs of DialDone -> id
	answered map[ConnRef]bool   // DialDone refs already answered
}

type rvModelConn struct {
	target   string
	outcomes int
	watched  bool // got its Watch
}

type rvModelExp struct {
	from string
	op   int
}

func newRvModel(t *rapid.T) *rvModel {
	// Biased towards 3: most interesting cases need a second node.
	n := 3 - rapid.IntRange(0, 2).Draw(t, "fewerPeers")
	m := &rvModel{
		t:        t,
		now:      rvT0,
		peers:    []string{"P1", "P2", "P3"}[:n],
		connects: map[string]*rvModelConn{},
		live:     map[string]rvModelExp{},
		ports:    map[string]int{},
		initDone: map[int]bool{},
		greets:   map[ConnRef]wire.Greeting{},
		refState: map[ConnRef]string{},
		dialRefs: map[ConnRef]string{},
		answered: map[ConnRef]bool{},
	}
	m.r = New(Config{
		Self:             "A",
		EarlyHold:        time.Duration(rapid.IntRange(0, 3000).Draw(t, "earlyHoldMs")) * time.Millisecond,
		MaxEarlyPerPeer:  rapid.IntRange(1, 3).Draw(t, "maxEarly"),
		MaxExpectPerPeer: rapid.IntRange(1, 3).Draw(t, "maxExpect"),
		DialStagger:      time.Duration(rapid.IntRange(0, 500).Draw(t, "staggerMs")) * time.Millisecond,
	})
	return m
}

func (m *rvModel) peer(label string) string { return rapid.SampledFrom(m.peers).Draw(m.t, label) }

// anyID draws an id that may hit an expectation, a connect or nothing.
func (m *rvModel) anyID(label string) string {
	pool := []string{"x0", "x1", "x2", "zz", ""}
	if len(m.connIDs) > 0 {
		pool = append(pool, m.connIDs[len(m.connIDs)-1], rapid.SampledFrom(m.connIDs).Draw(m.t, label+"c"))
	}
	for id, c := range m.connects {
		if c.outcomes == 0 {
			pool = append(pool, id)
		}
	}
	slices.Sort(pool[5:]) // map order must not leak into the draw
	return rapid.SampledFrom(pool).Draw(m.t, label)
}

func (m *rvModel) addrs(label string, max int) []string {
	n := rapid.IntRange(0, max).Draw(m.t, label)
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s:%d", label, i)
	}
	return out
}

func (m *rvModel) fatalf(format string, args ...any) {
	m.t.Helper()
	m.t.Fatalf(format, args...)
}

// drain checks every pending action.
func (m *rvModel) drain() {
	for i := 0; i < 10_000; i++ {
		a := m.r.Poll()
		if a == nil {
			return
		}
		m.log = append(m.log, a)
		m.check(a)
	}
	m.fatalf("action queue does not drain")
}

func (m *rvModel) check(a Action) {
	switch a := a.(type) {
	case Send:
		if len(a.Msg) < 3 || a.Msg[0] != "" {
			m.fatalf("malformed message %#v", a.Msg)
		}
		switch a.Msg[1] {
		case wire.NodeMsgTagKill:
			name, _ := a.Msg[2].(string)
			if name == "" || len(a.Msg) != 5 || a.Msg[3] != wire.KillReasonDataConn {
				m.fatalf("bad kill %#v", a.Msg)
			}
			if text, _ := a.Msg[4].(string); text == "" {
				m.fatalf("kill without reason text %#v", a.Msg)
			}
			// An expiry kill ends that expectation.
			if op, ok := m.ports[name]; ok {
				for id, e := range m.live {
					if e.op == op {
						if e.from != a.To {
							m.fatalf("kill for %s's expectation sent to %s", e.from, a.To)
						}
						delete(m.live, id)
					}
				}
			}
		case wire.NodeMsgTagExpect, wire.NodeMsgTagConnect:
			id, _ := a.Msg[2].(string)
			c := m.connects[id]
			if c == nil || c.target != a.To || c.outcomes != 0 {
				m.fatalf("%v for %q sent to %s", a.Msg[1], id, a.To)
			}
			if a.Msg[1] == wire.NodeMsgTagExpect && !c.watched {
				m.fatalf("expectation of %q sent before its port was watched", id)
			}
		default:
			m.fatalf("unexpected message %#v", a.Msg)
		}
	case Watch:
		c := m.connects[a.ID]
		if c == nil || c.outcomes != 0 || c.watched || a.Port != "A#q" {
			m.fatalf("watch %#v of no pending connect, or twice", a)
		}
		c.watched = true
	case RoundTrip:
		if c := m.connects[a.ID]; c == nil || c.target != a.To {
			m.fatalf("round trip for unknown %q", a.ID)
		}
		m.rtPend = append(m.rtPend, a.ID)
	case Dial:
		if c := m.connects[a.ID]; c != nil && c.outcomes == 0 {
			if a.Node != c.target {
				m.fatalf("dial for %q to %s, target %s", a.ID, a.Node, c.target)
			}
		} else if e, ok := m.live[a.ID]; !ok || e.from != a.Node {
			m.fatalf("dial %#v matches nothing", a)
		}
		m.dials = append(m.dials, a)
	case Deliver:
		c := m.connects[a.ID]
		if c == nil {
			m.fatalf("deliver of unknown %q", a.ID)
		}
		c.outcomes++
		if c.outcomes != 1 {
			m.fatalf("second outcome for %q", a.ID)
		}
		if id, ok := m.dialRefs[a.Ref]; ok {
			if id != a.ID || m.answered[a.Ref] {
				m.fatalf("deliver of dial ref %d for %q", a.Ref, a.ID)
			}
			m.answered[a.Ref] = true
		} else if g, ok := m.greets[a.Ref]; !ok || m.refState[a.Ref] != "admitted" || g.NodeID != c.target {
			m.fatalf("deliver of ref %d that was not admitted from %s", a.Ref, c.target)
		}
	case Fail:
		c := m.connects[a.ID]
		if c == nil {
			m.fatalf("fail of unknown %q", a.ID)
		}
		c.outcomes++
		if c.outcomes != 1 {
			m.fatalf("second outcome for %q", a.ID)
		}
		if a.Reason == nil || a.Reason.Message == "" || a.Err == nil {
			m.fatalf("fail without reason: %#v", a)
		}
	case Admit:
		g, ok := m.greets[a.Ref]
		if !ok || m.refState[a.Ref] != "" {
			m.fatalf("admit of ref %d in state %q", a.Ref, m.refState[a.Ref])
		}
		id, _ := g.Get(wire.KeyDataConnID)
		e, isExp := m.live[id]
		c := m.connects[id]
		if !(isExp && e.from == g.NodeID) && !(c != nil && c.outcomes == 0 && c.target == g.NodeID) {
			m.fatalf("admitted %s's stream for %q, which it does not own", g.NodeID, id)
		}
		wantExtra := rvHasKey(g, wire.KeyGo)
		if hasExtra := len(a.Extra) == 1 && a.Extra[0] == rvConfirmed; hasExtra != wantExtra || (!wantExtra && len(a.Extra) != 0) {
			m.fatalf("admit extra %v for greeting %v", a.Extra, g)
		}
		m.refState[a.Ref] = "admitted"
	case Refuse:
		if _, ok := m.greets[a.Ref]; !ok || m.refState[a.Ref] != "" {
			m.fatalf("refuse of ref %d in state %q", a.Ref, m.refState[a.Ref])
		}
		if a.Err == nil {
			m.fatalf("refuse without error")
		}
		m.refState[a.Ref] = "refused"
	case CallInit:
		op, _ := a.Data[0].(int)
		if m.initDone[op] {
			m.fatalf("second init for expectation op %d", op)
		}
		m.initDone[op] = true
		var id string
		for eid, e := range m.live {
			if e.op == op {
				id = eid
			}
		}
		e, ok := m.live[id]
		if !ok || e.from != a.From || a.Func != fmt.Sprint("f", op) {
			m.fatalf("init %#v for no live expectation", a)
		}
		if did, ok := m.dialRefs[a.Ref]; ok {
			if did != id || m.answered[a.Ref] {
				m.fatalf("init of dial ref %d", a.Ref)
			}
			m.answered[a.Ref] = true
		} else if m.refState[a.Ref] != "admitted" || m.greets[a.Ref].NodeID != e.from {
			m.fatalf("init of ref %d in state %q", a.Ref, m.refState[a.Ref])
		}
		delete(m.live, id)
	case Close:
		if a.Err == nil {
			m.fatalf("close without error")
		}
		if _, ok := m.dialRefs[a.Ref]; ok {
			if m.answered[a.Ref] {
				m.fatalf("dial ref %d answered twice", a.Ref)
			}
			m.answered[a.Ref] = true
		}
	default:
		m.fatalf("unknown action %#v", a)
	}
}

func (m *rvModel) actions() map[string]func(*rapid.T) {
	return map[string]func(*rapid.T){
		"connect": func(t *rapid.T) {
			m.nextConn++
			id := fmt.Sprintf("c%d", m.nextConn)
			req := ConnectRequest{
				ID:          id,
				Target:      m.peer("target"),
				Port:        "A#q",
				Timeout:     time.Duration(rapid.IntRange(0, 6000).Draw(t, "timeoutMs")) * time.Millisecond,
				InitFunc:    "g",
				TargetAddrs: m.addrs("t", 3),
				SelfAddrs:   m.addrs("s", 1),
				TargetIsGo:  rapid.Bool().Draw(t, "isGo"),
			}
			m.connects[id] = &rvModelConn{target: req.Target}
			m.connIDs = append(m.connIDs, id)
			m.r.Connect(m.now, req)
		},
		"roundTripDone": func(t *rapid.T) {
			if len(m.rtPend) == 0 {
				return
			}
			i := rapid.IntRange(0, len(m.rtPend)-1).Draw(t, "rt")
			id := m.rtPend[i]
			m.rtPend = append(m.rtPend[:i], m.rtPend[i+1:]...)
			m.r.RoundTripDone(m.now, id)
		},
		"dialFailed": func(t *rapid.T) {
			if len(m.dials) == 0 {
				return
			}
			i := rapid.IntRange(0, len(m.dials)-1).Draw(t, "dial")
			d := m.dials[i]
			m.dials = append(m.dials[:i], m.dials[i+1:]...)
			m.r.DialFailed(m.now, d.ID, d.Addr, errors.New("refused"))
		},
		"dialDone": func(t *rapid.T) {
			if len(m.dials) == 0 {
				return
			}
			i := rapid.IntRange(0, len(m.dials)-1).Draw(t, "dial")
			d := m.dials[i]
			m.dials = append(m.dials[:i], m.dials[i+1:]...)
			peer := d.Node
			if rapid.IntRange(0, 3).Draw(t, "wrongPeer") == 0 {
				peer = m.peer("peer")
			}
			var extra []wire.KV
			if rapid.Bool().Draw(t, "confirm") {
				extra = append(extra, rvConfirmed)
			}
			m.nextRef++
			ref := m.nextRef
			m.dialRefs[ref] = d.ID
			m.r.DialDone(m.now, d.ID, d.Addr, ref, rvGreet(peer, d.ID, rapid.Bool().Draw(t, "go"), extra...))
			m.drain()
			if !m.answered[ref] {
				m.fatalf("DialDone ref %d got no answer", ref)
			}
		},
		"cancel": func(t *rapid.T) {
			if len(m.connIDs) == 0 {
				return
			}
			var reason *wire.KillReason
			if rapid.Bool().Draw(t, "withReason") {
				reason = wire.DataConnReason("stop")
			}
			m.r.Cancel(m.now, rapid.SampledFrom(m.connIDs).Draw(t, "id"), reason)
		},
		"killed": func(t *rapid.T) {
			if len(m.connIDs) == 0 {
				return
			}
			reason := wire.DataConnReason("%s", rapid.SampledFrom([]string{"", "B: no init function \"g\"", "die"}).Draw(t, "text"))
			m.r.Killed(m.now, rapid.SampledFrom(m.connIDs).Draw(t, "id"), reason)
		},
		"expire": func(t *rapid.T) {
			if len(m.connIDs) > 0 {
				m.r.Expire(m.now, rapid.SampledFrom(m.connIDs).Draw(t, "id"))
			}
		},
		"expect": func(t *rapid.T) {
			m.nextOp++
			op := m.nextOp
			from := m.peer("from")
			id := m.anyID("id")
			name := fmt.Sprint("p", op)
			m.ports[name] = op
			_, before, _ := m.r.Counts()
			m.r.Expect(m.now, from, wire.NodeMsgExpect{
				ID: id, Port: from + "#" + name,
				Timeout:  float64(rapid.IntRange(0, 5000).Draw(t, "timeoutMs")) / 1000,
				InitFunc: fmt.Sprint("f", op), InitData: []any{op},
			})
			if _, after, _ := m.r.Counts(); after == before+1 {
				if _, dup := m.live[id]; dup {
					m.fatalf("expectation %q accepted twice", id)
				}
				m.live[id] = rvModelExp{from: from, op: op}
			} else if after != before {
				m.fatalf("expectations %d -> %d", before, after)
			}
		},
		"connectBack": func(t *rapid.T) {
			from := m.peer("from")
			node := from
			if rapid.IntRange(0, 3).Draw(t, "otherNode") == 0 {
				node = m.peer("node")
			}
			m.r.ConnectBack(m.now, from, wire.NodeMsgConnect{ID: m.anyID("id"), Node: node}, m.addrs("b", 2))
		},
		"incoming": func(t *rapid.T) {
			m.nextRef++
			ref := m.nextRef
			id := m.anyID("id")
			if id == "" {
				id = "-"
			}
			g := rvGreet(m.peer("peer"), id, rapid.Bool().Draw(t, "go"))
			m.greets[ref] = g
			m.refIDs = append(m.refIDs, ref)
			m.r.IncomingGreeting(m.now, ref, g)
		},
		"incomingDone": func(t *rapid.T) {
			if len(m.refIDs) == 0 {
				return
			}
			ref := rapid.SampledFrom(m.refIDs).Draw(t, "ref")
			if m.refState[ref] != "admitted" {
				return
			}
			m.r.IncomingDone(m.now, ref)
			m.drain()
			m.refState[ref] = "done"
		},
		"incomingFailed": func(t *rapid.T) {
			if len(m.refIDs) == 0 {
				return
			}
			ref := rapid.SampledFrom(m.refIDs).Draw(t, "ref")
			if s := m.refState[ref]; s == "refused" || s == "done" || s == "failed" {
				return
			}
			m.refState[ref] = "failed"
			m.r.IncomingFailed(m.now, ref, errors.New("reset"))
		},
		"peerDown": func(t *rapid.T) {
			m.r.PeerDown(m.now, m.peer("peer"), errors.New("eof"))
		},
		"advance": func(t *rapid.T) {
			m.now = m.now.Add(time.Duration(rapid.IntRange(0, 2000).Draw(t, "dtMs")) * time.Millisecond)
			m.r.Tick(m.now)
		},
		"tickDeadline": func(t *rapid.T) {
			d := m.r.Deadline()
			if d.IsZero() {
				return
			}
			if d.After(m.now) {
				m.now = d
			}
			m.r.Tick(m.now)
		},
		"": func(t *rapid.T) {
			m.drain()
			o, e, h := m.r.Counts()
			if (o+e+h > 0) == m.r.Deadline().IsZero() {
				m.fatalf("Counts %d %d %d but Deadline %v", o, e, h, m.r.Deadline())
			}
			if e != len(m.live) {
				m.fatalf("machine holds %d expectations, model %d", e, len(m.live))
			}
			// The timer table: Deadline is its minimum, Timers lists it in
			// firing order, and every held stream has its early-hold timer
			// or waits for a queued expectation.
			ts := m.r.Timers()
			if len(ts) == 0 != m.r.Deadline().IsZero() || len(ts) > 0 && !ts[0].At.Equal(m.r.Deadline()) {
				m.fatalf("Timers %v but Deadline %v", ts, m.r.Deadline())
			}
			for i := 1; i < len(ts); i++ {
				if ts[i].At.Before(ts[i-1].At) {
					m.fatalf("Timers out of order: %v", ts)
				}
			}
			if o > 0 {
				connects := 0
				for _, tm := range ts {
					if tm.Kind == TimerConnect {
						connects++
					}
				}
				if connects != o {
					m.fatalf("%d outgoing requests but %d connect timers: %v", o, connects, ts)
				}
			}
		},
	}
}

// finish fires every remaining timer and checks that nothing is left.
func (m *rvModel) finish() {
	for i := 0; i < 10_000 && !m.r.Deadline().IsZero(); i++ {
		if d := m.r.Deadline(); d.After(m.now) {
			m.now = d
		}
		m.r.Tick(m.now)
		m.drain()
	}
	if o, e, h := m.r.Counts(); o != 0 || e != 0 || h != 0 || !m.r.Deadline().IsZero() {
		m.fatalf("after every timer: Counts %d %d %d, Deadline %v", o, e, h, m.r.Deadline())
	}
	for id, c := range m.connects {
		if c.outcomes != 1 {
			m.fatalf("connect %q got %d outcomes", id, c.outcomes)
		}
	}
	if len(m.live) != 0 {
		m.fatalf("model still has expectations %v", m.live)
	}
}

// rvProperty is the property body: random operations, checked actions,
// then every timer fired. It returns the action log.
func rvProperty(t *rapid.T) []Action {
	m := newRvModel(t)
	actions := m.actions()
	check := actions[""]
	keys := make([]string, 0, len(actions))
	for k := range actions {
		if k != "" {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	n := rapid.IntRange(0, 200).Draw(t, "steps")
	for i := 0; i < n; i++ {
		actions[rapid.SampledFrom(keys).Draw(t, "op")](t)
		check(t)
	}
	m.finish()
	return m.log
}

func TestRvProperty(t *testing.T) {
	// Several rounds of the default number of checks: the interesting
	// interleavings (a held stream of one node, then another node's
	// expectation for its id) need more than 100 random runs to show up.
	for round := 0; round < 8; round++ {
		rapid.Check(t, func(t *rapid.T) { rvProperty(t) })
		if t.Failed() {
			return
		}
	}
}

// TestRvDeterministic replays the same random operations on two machines
// and requires byte-identical action logs (memnet relies on it).
func TestRvDeterministic(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		seed := rapid.Uint64().Draw(t, "seed")
		var logs [2][]Action
		for i := range logs {
			logs[i] = rvReplay(seed)
		}
		if len(logs[0]) == 0 || !reflect.DeepEqual(logs[0], logs[1]) {
			t.Fatalf("runs differ or are empty: %d vs %d actions", len(logs[0]), len(logs[1]))
		}
	})
}

// rvReplay runs a fixed pseudo-random script derived from seed (no
// shrinking needed: the check is equality of two runs).
func rvReplay(seed uint64) []Action {
	next := func(n uint64) uint64 {
		seed ^= seed << 13
		seed ^= seed >> 7
		seed ^= seed << 17
		return seed % n
	}
	seed |= 1
	r := New(Config{Self: "A", MaxEarlyPerPeer: 2, MaxExpectPerPeer: 2})
	now := rvT0
	peers := []string{"P1", "P2", "P3"}
	var log []Action
	ids := []string{"x0", "x1", "c1", "c2", "c3"}
	var dials []Dial
	for step := 0; step < 200; step++ {
		p := peers[next(3)]
		id := ids[next(uint64(len(ids)))]
		switch next(8) {
		case 0:
			r.Connect(now, ConnectRequest{ID: fmt.Sprint("c", step), Target: p, Port: "A#p", Timeout: time.Second,
				TargetAddrs: []string{"a", "b", "c"}[:next(4)], SelfAddrs: []string{"s"}, TargetIsGo: next(2) == 0})
		case 1:
			r.Expect(now, p, wire.NodeMsgExpect{ID: id, Port: p + "#p", Timeout: 1})
		case 2:
			r.IncomingGreeting(now, ConnRef(step), rvGreet(p, id, next(2) == 0))
		case 3:
			r.PeerDown(now, p, nil)
		case 4:
			if len(dials) > 0 {
				d := dials[0]
				dials = dials[1:]
				r.DialFailed(now, d.ID, d.Addr, errors.New("x"))
			}
		case 5:
			r.ConnectBack(now, p, wire.NodeMsgConnect{ID: id, Node: p}, []string{"n1", "n2"})
		default:
			now = now.Add(time.Duration(next(400)) * time.Millisecond)
			r.Tick(now)
		}
		for a := r.Poll(); a != nil; a = r.Poll() {
			if d, ok := a.(Dial); ok {
				dials = append(dials, d)
			}
			log = append(log, a)
		}
	}
	return log
}

// FuzzRendezvous runs the property on fuzzer-chosen bytes
// (go test -fuzz FuzzRendezvous ./core/rendezvous).
func FuzzRendezvous(f *testing.F) {
	f.Add([]byte{0})
	f.Add([]byte("rendezvous seed with some bytes for several operations"))
	f.Fuzz(rapid.MakeFuzz(func(t *rapid.T) { rvProperty(t) }))
}
