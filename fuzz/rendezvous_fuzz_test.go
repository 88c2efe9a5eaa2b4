package fuzz

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/aemp-go/dataconn/core/rendezvous"
	"github.com/aemp-go/dataconn/core/wire"
	"pgregory.net/rapid"
)

// rvDriver plays the adapter and the peers of one rendezvous.Machine (node
// "A") with operations drawn by rapid, and checks every action.
type rvDriver struct {
	requireInit bool // only "f" is registered (Config.RequireInit)
	r           *rendezvous.Machine
	now         time.Time
	peers       []string

	connIDs  []string
	outcomes map[string]int    // Connect id -> rendezvous.Deliver/rendezvous.Fail count
	rtPend   []string          // ids with an unanswered rendezvous.RoundTrip
	dials    []rendezvous.Dial // unanswered Dial actions
	nextRef  rendezvous.ConnRef
	greeted  map[rendezvous.ConnRef]bool // IncomingGreeting reported
	answered map[rendezvous.ConnRef]bool // got rendezvous.Admit or rendezvous.Refuse
	admitted []rendezvous.ConnRef        // rendezvous.Admit without IncomingDone/Failed yet
	// untrusted: streams reported by DialUntrusted or IncomingUntrusted,
	// which are never handed over.
	untrusted map[rendezvous.ConnRef]bool
	steps     int
}

func (d *rvDriver) fatalf(t *rapid.T, format string, args ...any) {
	t.Fatalf("step %d: "+format, append([]any{d.steps}, args...)...)
}

func checkRvErr(t *rapid.T, err error) {
	var re *rendezvous.Error
	if !errors.As(err, &re) || re.Rule == nil || !errors.Is(err, re.Rule) {
		t.Fatalf("rendezvous error %T %v is not a *rendezvous.Error with a rule", err, err)
	}
}

// drain polls every action and checks it.
func (d *rvDriver) drain(t *rapid.T) {
	for guard := 0; ; guard++ {
		if guard > 10000 {
			d.fatalf(t, "more than 10000 actions for one input")
		}
		a := d.r.Poll()
		if a == nil {
			return
		}
		switch a := a.(type) {
		case rendezvous.Deliver:
			d.outcome(t, a.ID)
			if d.untrusted[a.Ref] {
				d.fatalf(t, "untrusted stream %d delivered", a.Ref)
			}
		case rendezvous.Fail:
			d.outcome(t, a.ID)
			if a.Reason == nil || a.Reason.Message == "" || a.Reason.Family != wire.KillReasonDataConn {
				d.fatalf(t, "rendezvous.Fail %s with reason %#v", a.ID, a.Reason)
			}
			checkRvErr(t, a.Err)
		case rendezvous.Watch:
			if n, ok := d.outcomes[a.ID]; !ok || n != 0 || a.Port != "A#"+a.ID {
				d.fatalf(t, "watch %+v of no pending set-up", a)
			}
		case rendezvous.RoundTrip:
			d.rtPend = append(d.rtPend, a.ID)
		case rendezvous.Dial:
			if a.Addr == "" || a.Node == "" {
				d.fatalf(t, "dial %+v", a)
			}
			d.dials = append(d.dials, a)
		case rendezvous.Admit:
			d.answer(t, a.Ref)
			d.admitted = append(d.admitted, a.Ref)
		case rendezvous.Refuse:
			d.answer(t, a.Ref)
			checkRvErr(t, a.Err)
		case rendezvous.Close:
			checkRvErr(t, a.Err)
		case rendezvous.Send:
			if len(a.Msg) < 2 || a.Msg[0] != "" || a.To == "" {
				d.fatalf(t, "send %+v is not a node-port message", a)
			}
			if _, err := wire.ParseNodeMsg(a.Msg[1:]); err != nil {
				d.fatalf(t, "sent message %#v does not parse: %v", a.Msg, err)
			}
		case rendezvous.CallInit:
			if a.From == "" {
				d.fatalf(t, "init call without a peer")
			}
			if d.untrusted[a.Ref] {
				d.fatalf(t, "init call on untrusted stream %d", a.Ref)
			}
			if d.requireInit && a.Func != "f" {
				d.fatalf(t, "init call of %q, which is not registered", a.Func)
			}
		default:
			d.fatalf(t, "unknown action %T", a)
		}
	}
}

func (d *rvDriver) outcome(t *rapid.T, id string) {
	n, ok := d.outcomes[id]
	if !ok {
		d.fatalf(t, "outcome for %q, which no Connect asked for", id)
	}
	if n != 0 {
		d.fatalf(t, "second outcome for Connect %q", id)
	}
	d.outcomes[id] = n + 1
}

func (d *rvDriver) answer(t *rapid.T, ref rendezvous.ConnRef) {
	if !d.greeted[ref] {
		d.fatalf(t, "admit/refuse for ref %d, never greeted", ref)
	}
	if d.answered[ref] {
		d.fatalf(t, "ref %d answered twice", ref)
	}
	d.answered[ref] = true
}

func pick[V any](t *rapid.T, l *[]V, label string) (V, bool) {
	var zero V
	if len(*l) == 0 {
		return zero, false
	}
	i := rapid.IntRange(0, len(*l)-1).Draw(t, label)
	v := (*l)[i]
	*l = append((*l)[:i], (*l)[i+1:]...)
	return v, true
}

func (d *rvDriver) idPool(t *rapid.T) string {
	pool := append([]string{"e1", "e2", "e3", ""}, d.connIDs...)
	return rapid.SampledFrom(pool).Draw(t, "id")
}

func (d *rvDriver) greeting(t *rapid.T, node string) wire.Greeting {
	g := wire.Greeting{Protocol: wire.ProtocolDataConn, Version: "1", NodeID: node}
	if rapid.Bool().Draw(t, "go") {
		g.KV = append(g.KV, wire.KV{Key: wire.KeyGo, Value: "1"})
	}
	if rapid.Bool().Draw(t, "confirm") {
		g.KV = append(g.KV, wire.KV{Key: rendezvous.ConfirmKey, Value: "1"})
	}
	return g
}

func (d *rvDriver) addrs(t *rapid.T, label string, from []string) []string {
	return rapid.SliceOfN(rapid.SampledFrom(from), 0, 3).Draw(t, label)
}

func (d *rvDriver) secs(t *rapid.T, label string) time.Duration {
	return time.Duration(rapid.IntRange(0, 5000).Draw(t, label)) * time.Millisecond
}

func (d *rvDriver) actions() map[string]func(*rapid.T) {
	return map[string]func(*rapid.T){
		"connect": func(t *rapid.T) {
			id := fmt.Sprintf("c%d", len(d.connIDs)+1)
			d.connIDs = append(d.connIDs, id)
			d.outcomes[id] = 0
			target := rapid.SampledFrom(append([]string{"A", ""}, d.peers...)).Draw(t, "target")
			d.r.Connect(d.now, rendezvous.ConnectRequest{
				ID: id, Target: target, Port: "A#" + id, Timeout: d.secs(t, "timeout"),
				InitFunc: "f", InitData: []any{"x", int64(1)},
				TargetAddrs: d.addrs(t, "taddrs", []string{"t1", "t2", "t3", ""}),
				SelfAddrs:   d.addrs(t, "saddrs", []string{"s1", "s2"}),
				TargetIsGo:  rapid.Bool().Draw(t, "targetGo"),
				Window:      rapid.IntRange(0, 3).Draw(t, "window"),
			})
			if s := d.r.Stats(); s.InFlight > 3*len(d.peers)+rendezvous.DefaultMaxExpectPerPeer {
				t.Fatalf("%d set-ups in flight", s.InFlight)
			}
		},
		"roundTripDone": func(t *rapid.T) {
			if id, ok := pick(t, &d.rtPend, "rt"); ok {
				d.r.RoundTripDone(d.now, id)
			}
		},
		"dialDone": func(t *rapid.T) {
			if a, ok := pick(t, &d.dials, "dial"); ok {
				node := a.Node
				if rapid.IntRange(0, 3).Draw(t, "wrongPeer") == 0 {
					node = rapid.SampledFrom(d.peers).Draw(t, "peer")
				}
				d.nextRef++
				d.r.DialDone(d.now, a.ID, a.Addr, d.nextRef, d.greeting(t, node))
			}
		},
		"dialUntrusted": func(t *rapid.T) {
			if a, ok := pick(t, &d.dials, "dial"); ok {
				d.nextRef++
				d.untrusted[d.nextRef] = true
				d.r.DialUntrusted(d.now, a.ID, a.Addr, d.nextRef, d.greeting(t, a.Node))
			}
		},
		"dialFaulted": func(t *rapid.T) {
			if a, ok := pick(t, &d.dials, "dial"); ok {
				fault := rapid.SampledFrom([]rendezvous.DialFault{rendezvous.DialRefused, rendezvous.DialUnanswered, rendezvous.DialOther}).Draw(t, "fault")
				d.r.DialFaulted(d.now, a.ID, a.Addr, fault, errors.New("refused"))
			}
		},
		"dialFailed": func(t *rapid.T) {
			if a, ok := pick(t, &d.dials, "dial"); ok {
				d.r.DialFailed(d.now, a.ID, a.Addr, errors.New("refused"))
			}
		},
		"cancel": func(t *rapid.T) {
			if len(d.connIDs) > 0 {
				id := rapid.SampledFrom(d.connIDs).Draw(t, "cancel")
				var reason *wire.KillReason
				if rapid.Bool().Draw(t, "withReason") {
					reason = &wire.KillReason{}
				}
				d.r.Cancel(d.now, id, reason)
			}
		},
		"killed": func(t *rapid.T) {
			if len(d.connIDs) > 0 {
				id := rapid.SampledFrom(d.connIDs).Draw(t, "killed")
				var reason *wire.KillReason
				if rapid.Bool().Draw(t, "withKillReason") {
					reason = wire.DataConnReason("%s", rapid.SampledFrom([]string{"", "B: no init function \"f\"", "x"}).Draw(t, "killText"))
				}
				d.r.Killed(d.now, id, reason)
			}
		},
		"expire": func(t *rapid.T) {
			if len(d.connIDs) > 0 {
				d.r.Expire(d.now, rapid.SampledFrom(d.connIDs).Draw(t, "expire"))
			}
		},
		"expect": func(t *rapid.T) {
			from := rapid.SampledFrom(d.peers).Draw(t, "from")
			d.r.Expect(d.now, from, wire.NodeMsgExpect{
				ID: d.idPool(t), Port: rapid.SampledFrom([]string{from + "#p", "", "x#"}).Draw(t, "port"),
				Timeout:  float64(rapid.IntRange(0, 5000).Draw(t, "expTimeout")) / 1000,
				InitFunc: rapid.SampledFrom([]string{"f", "g"}).Draw(t, "initFunc"),
			})
		},
		"connectBack": func(t *rapid.T) {
			from := rapid.SampledFrom(d.peers).Draw(t, "from")
			node := from
			if rapid.Bool().Draw(t, "otherNode") {
				node = rapid.SampledFrom(d.peers).Draw(t, "node")
			}
			d.r.ConnectBack(d.now, from, wire.NodeMsgConnect{ID: d.idPool(t), Node: node}, d.addrs(t, "backAddrs", []string{"b1", "b2"}))
		},
		"incomingGreeting": func(t *rapid.T) {
			d.nextRef++
			ref := d.nextRef
			g := d.greeting(t, rapid.SampledFrom(d.peers).Draw(t, "peer"))
			if id := d.idPool(t); id != "" {
				g.KV = append(g.KV, wire.KV{Key: wire.KeyDataConnID, Value: id})
			}
			d.greeted[ref] = true
			d.r.IncomingGreeting(d.now, ref, g)
		},
		"incomingDone": func(t *rapid.T) {
			if ref, ok := pick(t, &d.admitted, "ref"); ok {
				d.r.IncomingDone(d.now, ref)
			}
		},
		"incomingUntrusted": func(t *rapid.T) {
			if ref, ok := pick(t, &d.admitted, "ref"); ok {
				d.untrusted[ref] = true
				d.r.IncomingUntrusted(d.now, ref, d.greeting(t, "P1"))
			}
		},
		"incomingFailed": func(t *rapid.T) {
			if ref, ok := pick(t, &d.admitted, "ref"); ok {
				d.r.IncomingFailed(d.now, ref, errors.New("handshake failed"))
			}
		},
		"peerDown": func(t *rapid.T) {
			d.r.PeerDown(d.now, rapid.SampledFrom(d.peers).Draw(t, "down"), nil)
		},
		"tick": func(t *rapid.T) {
			d.now = d.now.Add(d.secs(t, "advance"))
			d.r.Tick(d.now)
			d.drain(t)
			if dl := d.r.Deadline(); !dl.IsZero() && !dl.After(d.now) {
				d.fatalf(t, "deadline %v not after now %v after Tick", dl, d.now)
			}
		},
		"": func(t *rapid.T) {
			d.steps++
			d.drain(t)
		},
	}
}

// rendezvousProperty drives the machine with arbitrary operation sequences
// and checks its invariants: exactly one rendezvous.Deliver or rendezvous.Fail per Connect
// (never two, never for an unknown id), every stream answered at most once,
// typed errors and non-empty kill reasons, and once every stream and dial
// is settled and every timer has fired, Counts() back to zero.
func rendezvousProperty(t *rapid.T) {
	d := &rvDriver{
		now:       time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		peers:     []string{"P1", "P2"}[:rapid.IntRange(1, 2).Draw(t, "peers")],
		outcomes:  map[string]int{},
		greeted:   map[rendezvous.ConnRef]bool{},
		answered:  map[rendezvous.ConnRef]bool{},
		untrusted: map[rendezvous.ConnRef]bool{},

		requireInit: rapid.Bool().Draw(t, "requireInit"),
	}
	d.r = rendezvous.New(rendezvous.Config{
		Self:             "A",
		RequireInit:      d.requireInit,
		EarlyHold:        time.Duration(rapid.IntRange(0, 3000).Draw(t, "hold")) * time.Millisecond,
		MaxEarlyPerPeer:  rapid.IntRange(0, 3).Draw(t, "maxEarly"),
		MaxExpectPerPeer: rapid.IntRange(0, 3).Draw(t, "maxExpect"),
		DialStagger:      time.Duration(rapid.IntRange(0, 500).Draw(t, "stagger")) * time.Millisecond,
		// Flow control: tiny queues, so that both fill.
		MaxQueuedPerTarget:    rapid.IntRange(0, 3).Draw(t, "maxQueued"),
		MaxExpectQueuePerPeer: rapid.IntRange(0, 3).Draw(t, "maxExpectQueue"),
	})
	d.r.RegisterInit("f")
	t.Repeat(d.actions())
	// Settle: every dial fails, every admitted stream fails, time runs out.
	for round := 0; round < 10000; round++ {
		for _, a := range d.dials {
			d.r.DialFailed(d.now, a.ID, a.Addr, errors.New("late"))
		}
		d.dials = nil
		for _, ref := range d.admitted {
			d.r.IncomingFailed(d.now, ref, errors.New("late"))
		}
		d.admitted = nil
		d.drain(t)
		dl := d.r.Deadline()
		if dl.IsZero() && len(d.dials) == 0 && len(d.admitted) == 0 {
			break
		}
		if !dl.IsZero() {
			d.now = dl
			d.r.Tick(d.now)
			d.drain(t)
		}
	}
	if o, e, h := d.r.Counts(); o+e+h != 0 || !d.r.Deadline().IsZero() {
		t.Fatalf("after every timer: Counts() = %d, %d, %d; deadline %v", o, e, h, d.r.Deadline())
	}
	for _, id := range d.connIDs {
		if d.outcomes[id] != 1 {
			t.Fatalf("Connect %s got %d outcomes, want exactly 1", id, d.outcomes[id])
		}
	}
}

// FuzzRendezvous is the rendezvous property as a go test -fuzz target.
func FuzzRendezvous(f *testing.F) {
	f.Fuzz(rapid.MakeFuzz(rendezvousProperty))
}

// TestRendezvousProperty runs the same property with rapid's own random
// inputs, so plain go test covers more than the seed corpus.
func TestRendezvousProperty(t *testing.T) {
	rapid.Check(t, rendezvousProperty)
}
