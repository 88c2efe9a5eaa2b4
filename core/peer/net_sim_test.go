package peer_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/aemp-go/dataconn/core/handshake"
	"github.com/aemp-go/dataconn/core/peer"
	"github.com/aemp-go/dataconn/core/wire"
)

// netSim is a lossless in-memory network of Go machines and scripted
// Perl slaves. Every address is "mem://ID". Events (a frame arriving, a
// connection ending) run in order; when none is left, virtual time jumps
// to the earliest machine deadline. Dials complete at once: the target
// greets, then both ends report ConnUp.
type netSim struct {
	t      *testing.T
	now    time.Time
	start  time.Time
	rng    *rand.Rand
	nodes  map[string]*simNode
	conns  map[peer.ConnID]*netConn
	nextID peer.ConnID
	queue  []func()

	fired map[peer.MonitorID][][]any // per watcher node's monitor: reasons seen (keyed by node+id below)
}

type simNode struct {
	id   string
	m    *peer.Machine // nil for a scripted Perl slave
	perl *perlSlave
	up   bool // listening and running
	// fired collects MonitorFired reasons per monitor.
	fired map[peer.MonitorID][][]any
	ups   []string
	// seedDials are the times of its DialSeed actions, draws the seed
	// draws it was given.
	seedDials []time.Duration
	draws     []float64
}

// perlSlave answers as the Perl slaves of the transcripts do
// (seed_db.txt, seed_down.txt): at node-up with its seed it sends
// g_slave, its db and g_find of the seed; it records what it receives.
type perlSlave struct {
	seed  string
	conn  peer.ConnID
	found map[string]any // g_found answers
	got   []wire.Message
}

type netConn struct {
	id   peer.ConnID
	ends [2]string
}

func (c *netConn) other(n string) string {
	if c.ends[0] == n {
		return c.ends[1]
	}
	return c.ends[0]
}

func newNetSim(t *testing.T, seed uint64) *netSim {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	return &netSim{t: t, now: start, start: start, rng: rand.New(rand.NewPCG(seed, seed)), nodes: map[string]*simNode{}, conns: map[peer.ConnID]*netConn{}}
}

func addr(id string) string { return "mem://" + id }

// goNode starts a Go node with the given seeds (listening unless
// noListen).
func (s *netSim) goNode(id string, noListen bool, seeds ...string) *simNode {
	m, err := peer.New(peer.Config{NodeID: id, Seeds: seeds, HandshakeTimeout: time.Second})
	if err != nil {
		s.t.Fatal(err)
	}
	n := &simNode{id: id, m: m, up: true, fired: map[peer.MonitorID][][]any{}}
	s.nodes[id] = n
	if noListen {
		m.SetListeners(s.now, nil)
	} else {
		m.SetListeners(s.now, []string{addr(id)})
	}
	if err := m.Start(s.now); err != nil {
		s.t.Fatal(err)
	}
	s.drain(n)
	return n
}

// perlNode starts a scripted Perl slave that dials its seed at once.
func (s *netSim) perlNode(id, seed string) *simNode {
	n := &simNode{id: id, perl: &perlSlave{seed: seed, found: map[string]any{}}, up: true}
	s.nodes[id] = n
	s.connect(n, s.nodes[seed], func(c peer.ConnID) { n.perl.conn = c }, nil)
	return n
}

// connect makes a connection from dialer to target; ok runs with its
// ID, or fail with the reason.
func (s *netSim) connect(dialer, target *simNode, ok func(peer.ConnID), fail func(error)) {
	if target == nil || !target.up {
		if fail != nil {
			fail(errors.New("connection refused"))
		}
		return
	}
	s.nextID++
	id := s.nextID
	if target.m != nil {
		if err := target.m.Greeted(s.now, id, dialer.id); err != nil {
			if fail != nil {
				fail(fmt.Errorf("handshake: %w", handshake.ErrPeerClosed))
			}
			return
		}
	}
	s.conns[id] = &netConn{id: id, ends: [2]string{dialer.id, target.id}}
	if target.m != nil {
		s.must(target.m.ConnUp(s.now, peer.ConnInfo{Conn: id, Peer: dialer.id, SendFraming: "json"}))
		s.drain(target)
	}
	ok(id)
	if dialer.perl != nil {
		// The join burst of a Perl slave (seed_db.txt, t=0.0008).
		for _, msg := range []wire.Message{{"", "g_slave"}, {"", "g_slave", map[string]any{"'l": map[string]any{dialer.id: []any{addr(dialer.id)}}}}, {"", "g_find", dialer.perl.seed}, {"", "g_slave"}} {
			s.deliver(id, dialer.id, msg)
		}
	}
}

func (s *netSim) must(err error) {
	s.t.Helper()
	if err != nil {
		s.t.Fatal(err)
	}
}

// deliver queues msg, sent by from on connection c, for the other end.
func (s *netSim) deliver(c peer.ConnID, from string, msg wire.Message) {
	s.queue = append(s.queue, func() {
		nc := s.conns[c]
		if nc == nil {
			return
		}
		to := s.nodes[nc.other(from)]
		if to == nil || !to.up {
			return
		}
		if to.perl != nil {
			to.perl.got = append(to.perl.got, msg)
			if len(msg) >= 4 && msg[0] == "" && msg[1] == "g_found" {
				to.perl.found[msg[2].(string)] = msg[3]
			}
			return
		}
		_ = to.m.Received(s.now, c, msg) // errors are outcomes (ignored requests)
		s.drain(to)
	})
}

// drain runs n's actions.
func (s *netSim) drain(n *simNode) {
	for a := n.m.Poll(); a != nil; a = n.m.Poll() {
		switch a := a.(type) {
		case peer.Write:
			dec := jsonCodec.NewDecoder(0)
			s.must(dec.Feed(a.Frame))
			msg, ok, err := dec.Next()
			if !ok || err != nil {
				s.t.Fatalf("%s wrote an undecodable frame: %v", n.id, err)
			}
			s.deliver(a.Conn, n.id, msg)
			seq := a.Seq
			conn := a.Conn
			s.queue = append(s.queue, func() {
				if n.up && s.conns[conn] != nil {
					_ = n.m.FrameWritten(s.now, conn, seq)
					s.drain(n)
				}
			})
		case peer.Dial:
			target := s.targetOf(a.Addrs)
			attempt, peerID := a.Attempt, a.Peer
			s.queue = append(s.queue, func() {
				if !n.up {
					return
				}
				s.connect(n, target, func(c peer.ConnID) {
					s.must(n.m.ConnUp(s.now, peer.ConnInfo{Conn: c, Peer: target.id, Outbound: true, Attempt: attempt, SendFraming: "json"}))
					s.drain(n)
				}, func(err error) {
					s.must(n.m.DialFailed(s.now, peerID, attempt, err))
					s.drain(n)
				})
			})
		case peer.DialSeed:
			n.seedDials = append(n.seedDials, s.now.Sub(s.start))
			target := s.targetOf([]string{a.Addr})
			attempt, sa := a.Attempt, a.Addr
			s.queue = append(s.queue, func() {
				if !n.up {
					return
				}
				s.connect(n, target, func(c peer.ConnID) {
					if err := n.m.ConnUp(s.now, peer.ConnInfo{Conn: c, Peer: target.id, Outbound: true, Attempt: attempt, Seed: sa, SendFraming: "json"}); err != nil {
						s.closeConn(c, n.id)
					}
					s.drain(n)
				}, func(err error) {
					s.must(n.m.SeedFailed(s.now, sa, attempt, err))
					s.drain(n)
				})
			})
		case peer.Close:
			s.closeConn(a.Conn, n.id)
		case peer.CloseWrite:
			s.closeConn(a.Conn, n.id)
		case peer.Draw:
			u := s.rng.Float64()
			if a.Kind == peer.DrawSeed {
				n.draws = append(n.draws, u)
			}
			s.must(n.m.Drawn(s.now, a.Kind, u))
		case peer.MonitorFired:
			for _, id := range a.Monitors {
				n.fired[id] = append(n.fired[id], a.Reason)
			}
		case peer.NodeUp:
			n.ups = append(n.ups, a.Peer)
		}
	}
}

func (s *netSim) targetOf(addrs []string) *simNode {
	for _, a := range addrs {
		if n := s.nodes[a[len("mem://"):]]; n != nil {
			return n
		}
	}
	return nil
}

// closeConn ends connection c, closed by node by; the other end hears
// of it after what is already queued.
func (s *netSim) closeConn(c peer.ConnID, by string) {
	nc := s.conns[c]
	if nc == nil {
		return
	}
	s.queue = append(s.queue, func() {
		if s.conns[c] == nil {
			return
		}
		delete(s.conns, c)
		for _, end := range nc.ends {
			n := s.nodes[end]
			if n == nil || !n.up || n.m == nil || end == by {
				continue
			}
			_ = n.m.ConnDown(s.now, c, errors.New("connection closed by peer"))
			s.drain(n)
		}
	})
}

// crash ends node id's process: its connections reset.
func (s *netSim) crash(id string) {
	n := s.nodes[id]
	n.up = false
	for cid, nc := range s.conns {
		if nc.ends[0] != id && nc.ends[1] != id {
			continue
		}
		delete(s.conns, cid)
		o := s.nodes[nc.other(id)]
		if o.up && o.m != nil {
			_ = o.m.ConnDown(s.now, cid, errors.New("connection reset by peer"))
			s.drain(o)
		}
	}
}

// run processes events and timers until virtual time reaches d after
// the start (or nothing is left to do).
func (s *netSim) run(d time.Duration) {
	until := s.start.Add(d)
	for steps := 0; steps < 200000; steps++ {
		if len(s.queue) > 0 {
			f := s.queue[0]
			s.queue = s.queue[1:]
			f()
			continue
		}
		next, ok := time.Time{}, false
		for _, id := range s.ids() {
			n := s.nodes[id]
			if !n.up || n.m == nil {
				continue
			}
			if at, has := n.m.Deadline(); has && (!ok || at.Before(next)) {
				next, ok = at, true
			}
		}
		if !ok || next.After(until) {
			s.now = until
			return
		}
		if next.After(s.now) {
			s.now = next
		}
		for _, id := range s.ids() {
			if n := s.nodes[id]; n.up && n.m != nil {
				n.m.Tick(s.now)
				s.drain(n)
			}
		}
	}
	s.t.Fatal("simulation did not settle within its step bound")
}

func (s *netSim) ids() []string {
	out := make([]string, 0, len(s.nodes))
	for id := range s.nodes {
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}

// checkListeners asserts every Go node knows every other node's
// listeners ([] for one without), and every Perl slave got its seed's.
func (s *netSim) checkListeners(t *testing.T) {
	t.Helper()
	for _, id := range s.ids() {
		n := s.nodes[id]
		if !n.up {
			continue
		}
		if n.perl != nil {
			if got := n.perl.found[n.perl.seed]; !slices.Equal(got.([]any), []any{addr(n.perl.seed)}) {
				t.Errorf("Perl slave %s: g_found of its seed is %v", id, got)
			}
			continue
		}
		for _, oid := range s.ids() {
			o := s.nodes[oid]
			if oid == id || !o.up {
				continue
			}
			want := []string{addr(oid)}
			if o.m != nil {
				if l, _ := o.m.Listeners(oid); len(l) == 0 {
					want = []string{}
				}
			}
			got, known := n.m.Listeners(oid)
			if !known || !slices.Equal(got, want) {
				t.Errorf("%s knows %s's listeners as %v (known=%v), want %v", id, oid, got, known, want)
			}
		}
	}
}

// The retry bound: a seed that is reachable is connected by the next
// attempt, at most 30r (r < 1.2 s) into a schedule and at most every
// 30 s after it.
const retryBound = 36 * time.Second

// TestSimSeedWithSlaves: one Go seed, ten Go slaves and ten scripted
// Perl slaves joining at staggered times. Every Go node learns every
// listener (the Perl slaves' from their shards at the seed, the Go
// nodes' from g_set and the forwarded g_upd), the Go nodes mesh through
// 'g, and each Perl slave's g_find of its seed is answered.
func TestSimSeedWithSlaves(t *testing.T) {
	s := newNetSim(t, 1)
	s.goNode("S", false)
	for i := range 10 {
		s.run(time.Duration(i) * 100 * time.Millisecond)
		s.goNode(fmt.Sprintf("G%02d", i), i == 3, addr("S"))
		s.perlNode(fmt.Sprintf("P%02d", i), "S")
	}
	s.run(retryBound)
	s.checkListeners(t)
	for i := range 10 {
		n := s.nodes[fmt.Sprintf("G%02d", i)]
		if got := n.m.Peers(); len(got) < 10 {
			t.Errorf("%s is connected to %v; want the seed and the nine other Go globals", n.id, got)
		}
	}
	if got := s.nodes["S"].m.Slaves(); len(got) != 10 {
		t.Errorf("the seed's slaves are %v, want the ten Perl slaves", got)
	}
	// A Perl slave's g_find of another slave is answered from the
	// merged 'l: how Perl slaves reach every other node.
	p := s.nodes["P00"]
	for _, id := range []string{"P09", "G05", "G03"} {
		s.deliver(p.perl.conn, "P00", wire.Message{"", "g_find", id})
	}
	s.run(retryBound + time.Second)
	if got := p.perl.found["P09"]; !slices.Equal(got.([]any), []any{addr("P09")}) {
		t.Errorf("g_find P09: %v", got)
	}
	if got := p.perl.found["G05"]; !slices.Equal(got.([]any), []any{addr("G05")}) {
		t.Errorf("g_find G05: %v", got)
	}
	if got, ok := p.perl.found["G03"].([]any); !ok || len(got) != 0 {
		t.Errorf("g_find G03 (no listeners): %#v, want []", p.perl.found["G03"])
	}
}

// TestSimGlobalsMesh: three Go globals, two of which know only the
// seed, end up pairwise connected and know each other's listeners.
func TestSimGlobalsMesh(t *testing.T) {
	s := newNetSim(t, 2)
	s.goNode("S", false)
	s.goNode("A", false, addr("S"))
	s.goNode("B", false, addr("S"))
	s.run(retryBound)
	s.checkListeners(t)
	for _, id := range []string{"S", "A", "B"} {
		if got := s.nodes[id].m.Peers(); len(got) != 2 {
			t.Errorf("%s is connected to %v, want the two others", id, got)
		}
		if got := s.nodes[id].m.Globals(); len(got) != 2 {
			t.Errorf("%s knows the globals %v, want the two others", id, got)
		}
	}
}

// TestSimSeedStartsLate: A starts 5 s before its seed listens; it
// retries on Perl's schedule and connects within the retry bound.
func TestSimSeedStartsLate(t *testing.T) {
	s := newNetSim(t, 3)
	a := s.goNode("A", false, addr("S"))
	s.run(5 * time.Second)
	if len(a.m.Peers()) != 0 {
		t.Fatal("A connected to a seed that does not exist yet")
	}
	s.goNode("S", false)
	s.run(5*time.Second + retryBound)
	if got := a.m.Peers(); !slices.Equal(got, []string{"S"}) {
		t.Fatalf("A's peers: %v, want [S]", got)
	}
	s.checkListeners(t)
	// Perl's schedule: 0, 2r, 6r, 14r, ... for r = 0.6·(1+u) s; the
	// attempt after S appeared at 5 s connected.
	r := time.Duration(float64(600*time.Millisecond) * (1 + a.draws[0]))
	var want []time.Duration
	for _, k := range []time.Duration{0, 2, 6, 14, 30} {
		want = append(want, k*r)
		if k*r >= 5*time.Second {
			break
		}
	}
	if !slices.Equal(a.seedDials, want) {
		t.Errorf("seed attempts at %v, want %v (r = %v)", a.seedDials, want, r)
	}
}

// TestSimSeedCrash: the seed S crashes and comes back; A and B, meshed
// through 'g, stay connected to each other, reconnect to S within the
// retry bound, and their port monitors fire exactly once with the right
// reasons: transport_error for S's port, the kill reason for B's.
func TestSimSeedCrash(t *testing.T) {
	s := newNetSim(t, 4)
	sn := s.goNode("S", false)
	a := s.goNode("A", false, addr("S"))
	b := s.goNode("B", false, addr("S"))
	s.run(5 * time.Second)
	s.must(sn.m.OpenPort("sp"))
	s.must(b.m.OpenPort("bp"))
	monS, err := a.m.MonitorPortID(s.now, "S#sp")
	s.must(err)
	monB, err := a.m.MonitorPortID(s.now, "B#bp")
	s.must(err)
	monB2, err := a.m.MonitorPortID(s.now, "B#bp")
	s.must(err)
	monNone, err := a.m.MonitorPortID(s.now, "B#nosuch")
	s.must(err)
	s.drain(a)
	s.run(6 * time.Second)

	s.crash("S")
	s.run(8 * time.Second)
	if got := a.m.Peers(); !slices.Equal(got, []string{"B"}) {
		t.Errorf("after the crash A's peers are %v, want [B]", got)
	}
	s.must(b.m.Kill(s.now, "B#bp", "bye"))
	s.drain(b)
	s.run(10 * time.Second)

	s.goNode("S", false)
	s.run(10*time.Second + retryBound)
	for _, n := range []*simNode{a, b} {
		if got := n.m.Peers(); len(got) != 2 {
			t.Errorf("after the recovery %s's peers are %v, want both others", n.id, got)
		}
	}
	s.checkListeners(t)

	want := map[peer.MonitorID][][]any{
		monS:    {{"transport_error", "S", "connection reset by peer"}},
		monB:    {{"bye"}},
		monB2:   {{"bye"}},
		monNone: {{"no_such_port", "cannot monitor nonexistent port", "B#nosuch"}},
	}
	for id, w := range want {
		if got := a.fired[id]; fmt.Sprint(got) != fmt.Sprint(w) {
			t.Errorf("monitor %d fired %v, want exactly %v", id, got, w)
		}
	}
}
