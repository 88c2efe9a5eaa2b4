package peer_test

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/aemp-go/dataconn/core/handshake"
	"github.com/aemp-go/dataconn/core/peer"
	"github.com/aemp-go/dataconn/core/wire"
)

// pipeItem is one frame (or the end of the stream) on one direction of
// a simulated connection.
type pipeItem struct {
	frame []byte
	seq   uint64
	eof   bool
}

// simConn is a connection between the two simulated nodes: per sender,
// what its writer holds (handed out, not written) and what is on the
// wire (written, not read).
type simConn struct {
	id      peer.ConnID
	framing string
	writer  map[string][]pipeItem
	wire    map[string][]pipeItem
	eofSent map[string]bool
}

type simDial struct {
	from, to string
	attempt  uint64
}

// pairSim runs two machines, "a" and "b", connected by lossless simulated
// connections, under rapid's choice of what happens next.
type pairSim struct {
	t      *rapid.T
	m      map[string]*peer.Machine
	now    time.Time
	start  time.Time
	conns  []*simConn
	dials  []simDial
	nextID peer.ConnID

	next   map[string]int64   // next number each node sends
	sent   map[string][]int64 // accepted sends, per sender
	got    map[string][]int64 // delivered to each node's port, from the other
	faults []string
	faulty bool
	paused map[string]map[peer.ConnID]bool // by reading node
}

var debugSim = os.Getenv("DEBUGSIM") != ""

func other(n string) string {
	if n == "a" {
		return "b"
	}
	return "a"
}

func newPairSim(t *rapid.T) *pairSim {
	s := &pairSim{t: t, m: map[string]*peer.Machine{}, next: map[string]int64{}, sent: map[string][]int64{}, got: map[string][]int64{}, paused: map[string]map[peer.ConnID]bool{"a": {}, "b": {}}}
	s.start = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s.now = s.start
	window := rapid.SampledFrom([]int{1, 16, 1 << 10}).Draw(t, "window")
	for _, id := range []string{"a", "b"} {
		m, err := peer.New(peer.Config{NodeID: id, KeepAlive: 2 * time.Second, WriteWindow: window, MaxSendQueue: 64, MaxPending: 8, MaxHeld: 2})
		if err != nil {
			t.Fatal(err)
		}
		m.AddPeer(other(id), "mem://"+other(id))
		if err := m.OpenPort("p"); err != nil {
			t.Fatal(err)
		}
		s.m[id] = m
	}
	return s
}

func (s *pairSim) conn(id peer.ConnID) *simConn {
	for _, c := range s.conns {
		if c.id == id {
			return c
		}
	}
	return nil
}

// input runs one input on node n and carries out the actions, checking
// that each names a connection n knew before or got in this input.
func (s *pairSim) input(n string, up peer.ConnID, f func(m *peer.Machine) error) error {
	m := s.m[n]
	known := m.Conns()
	if up != 0 {
		known = append(known, up)
	}
	err := f(m)
	for a := m.Poll(); a != nil; a = m.Poll() {
		s.act(n, known, a)
	}
	checkDeadline(s.t, m)
	return err
}

// seen counts the kinds of actions over a whole property run, so that
// the test can check the interesting rules were exercised at all.
var seen = map[string]int{}

func (s *pairSim) act(n string, known []peer.ConnID, a peer.Action) {
	seen[fmt.Sprintf("%T", a)]++
	if debugSim {
		s.t.Logf("%s: %T %+v", n, a, a)
	}
	ref := func(c peer.ConnID) *simConn {
		if !slices.Contains(known, c) {
			s.t.Fatalf("%s: %T names connection %d, unknown to the machine", n, a, c)
		}
		sc := s.conn(c)
		if sc == nil {
			s.t.Fatalf("%s: %T names connection %d, never made", n, a, c)
		}
		return sc
	}
	switch a := a.(type) {
	case peer.Dial:
		s.dials = append(s.dials, simDial{from: n, to: a.Peer, attempt: a.Attempt})
	case peer.Write:
		c := ref(a.Conn)
		c.writer[n] = append(c.writer[n], pipeItem{frame: a.Frame, seq: a.Seq})
	case peer.CloseWrite:
		c := ref(a.Conn)
		c.eofSent[n] = true
		c.writer[n] = append(c.writer[n], pipeItem{eof: true})
	case peer.Close:
		// Closing the socket ends our side of the stream too: the peer
		// reads the end after what was written.
		c := ref(a.Conn)
		if !c.eofSent[n] {
			c.eofSent[n] = true
			c.writer[n] = append(c.writer[n], pipeItem{eof: true})
		}
		if !errors.Is(a.Err, peer.ErrConnReplaced) {
			s.faults = append(s.faults, fmt.Sprintf("%s: close c%d: %v", n, a.Conn, a.Err))
		}
	case peer.PauseRead:
		ref(a.Conn)
		s.paused[n][a.Conn] = true
	case peer.ResumeRead:
		ref(a.Conn)
		delete(s.paused[n], a.Conn)
	case peer.NodeDown:
		s.faults = append(s.faults, fmt.Sprintf("%s: node down %s: %v", n, a.Peer, a.Err))
	case peer.Unreachable:
		s.faults = append(s.faults, fmt.Sprintf("%s: unreachable %s: %v", n, a.Peer, a.Err))
	case peer.Deliver:
		if a.From != other(n) || len(a.Data) != 1 {
			s.t.Fatalf("%s: unexpected delivery %+v", n, a)
		}
		v, ok := wire.AsInt(a.Data[0])
		if !ok {
			s.t.Fatalf("%s: delivery of %v", n, a.Data)
		}
		s.got[n] = append(s.got[n], v)
	}
}

func checkDeadline(t interface{ Fatalf(string, ...any) }, m *peer.Machine) {
	timers := m.Timers()
	at, ok := m.Deadline()
	if ok != (len(timers) > 0) {
		t.Fatalf("Deadline ok=%v with %d timers pending", ok, len(timers))
	}
	for i, tm := range timers {
		if tm.At.Before(at) {
			t.Fatalf("timer %v at %v is before Deadline %v", tm.Kind, tm.At, at)
		}
		if i > 0 && tm.At.Before(timers[i-1].At) {
			t.Fatalf("Timers not sorted: %v", timers)
		}
	}
	if ok && !timers[0].At.Equal(at) {
		t.Fatalf("Deadline %v is not the earliest timer %v", at, timers[0].At)
	}
}

// connect runs a handshake from one node to the other: the target's
// greeting decision, then ConnUp on both sides (or DialFailed). attempt 0
// is a dial the machine did not ask for.
func (s *pairSim) connect(from string, attempt uint64) {
	to := other(from)
	s.nextID++
	id := s.nextID
	framing := rapid.SampledFrom([]string{"json", "msgpack"}).Draw(s.t, "framing")
	if err := s.input(to, 0, func(m *peer.Machine) error { return m.Greeted(s.now, id, from) }); err != nil {
		if !errors.Is(err, peer.ErrConnReplaced) {
			s.t.Fatalf("%s: Greeted: %v", to, err)
		}
		seen["refused at the greeting"]++
		if attempt != 0 {
			s.input(from, 0, func(m *peer.Machine) error {
				return m.DialFailed(s.now, to, attempt, fmt.Errorf("handshake: %w", handshake.ErrPeerClosed))
			})
		}
		return
	}
	s.conns = append(s.conns, &simConn{id: id, framing: framing, writer: map[string][]pipeItem{}, wire: map[string][]pipeItem{}, eofSent: map[string]bool{}})
	ends := []string{to, from}
	if rapid.Bool().Draw(s.t, "dialer first") {
		ends = []string{from, to}
	}
	for _, n := range ends {
		info := peer.ConnInfo{Conn: id, Peer: other(n), Outbound: n == from, SendFraming: framing}
		if n == from {
			info.Attempt = attempt
		}
		if err := s.input(n, id, func(m *peer.Machine) error { return m.ConnUp(s.now, info) }); err != nil {
			s.t.Fatalf("%s: ConnUp: %v", n, err)
		}
	}
}

func (s *pairSim) send(n string) {
	v := s.next[n]
	err := s.input(n, 0, func(m *peer.Machine) error { return m.Send(s.now, other(n)+"#p", v) })
	switch {
	case err == nil:
		s.sent[n] = append(s.sent[n], v)
		s.next[n]++
	case errors.Is(err, peer.ErrQueueFull):
		// An honest sender waits and sends the same message again.
	default:
		s.t.Fatalf("%s: send %d: %v", n, v, err)
	}
}

// flush writes the first frame a writer holds; read reads the first
// item on a wire.
func (s *pairSim) flush(c *simConn, n string) {
	it := c.writer[n][0]
	c.writer[n] = c.writer[n][1:]
	c.wire[n] = append(c.wire[n], it)
	if !it.eof {
		s.input(n, 0, func(m *peer.Machine) error { return ignoreUnknown(m.FrameWritten(s.now, c.id, it.seq)) })
	}
}

func (s *pairSim) read(c *simConn, n string) {
	it := c.wire[n][0]
	c.wire[n] = c.wire[n][1:]
	to := other(n)
	if it.eof {
		s.input(to, 0, func(m *peer.Machine) error { return ignoreUnknown(m.ReadClosed(s.now, c.id)) })
		return
	}
	codec, _ := wire.CodecByName(c.framing)
	dec := codec.NewDecoder(0)
	if err := dec.Feed(it.frame); err != nil {
		s.t.Fatalf("frame: %v", err)
	}
	msg, ok, err := dec.Next()
	if !ok || err != nil {
		s.t.Fatalf("frame: %v", err)
	}
	s.input(to, 0, func(m *peer.Machine) error {
		err := m.Received(s.now, c.id, msg)
		if errors.Is(err, peer.ErrUnknownConn) && !s.faulty {
			s.t.Fatalf("%s: a frame on c%d arrived after the machine forgot it", to, c.id)
		}
		return err
	})
}

func ignoreUnknown(err error) error {
	if errors.Is(err, peer.ErrUnknownConn) {
		return nil
	}
	return err
}

// busy lists what can happen on the connections: (conn, sender, kind).
type step struct {
	c    *simConn
	n    string
	read bool
}

func (s *pairSim) steps() []step {
	var out []step
	for _, c := range s.conns {
		for _, n := range []string{"a", "b"} {
			if len(c.writer[n]) > 0 {
				out = append(out, step{c, n, false})
			}
			if len(c.wire[n]) > 0 && !s.paused[other(n)][c.id] {
				out = append(out, step{c, n, true})
			}
		}
	}
	return out
}

// TestPropInOrderExactlyOnce: messages between two nodes are delivered in
// order and exactly once, whatever the interleaving of sends, dials from
// both sides at once, extra connections that replace the current one
// (retire and drain), partial writes and reads, and keepalives, as long
// as nothing fails. No action names a connection its machine does not
// know, and Deadline is the earliest pending timer throughout.
func TestPropInOrderExactlyOnce(t *testing.T) {
	clear(seen)
	defer func() {
		t.Logf("actions seen: %v", seen)
		for _, kind := range []string{"peer.CloseWrite", "peer.PauseRead", "peer.ResumeRead", "peer.Writable", "peer.Dial", "refused at the greeting"} {
			if seen[kind] == 0 && !t.Failed() {
				t.Errorf("no %s in the whole run: the property no longer exercises it", kind)
			}
		}
	}()
	rapid.Check(t, func(t *rapid.T) {
		s := runPair(t, false)
		if len(s.faults) > 0 {
			t.Fatalf("faults without a fault injected: %v", s.faults)
		}
		for _, n := range []string{"a", "b"} {
			if got, want := s.got[other(n)], s.sent[n]; !slices.Equal(got, want) {
				t.Fatalf("%s sent %v, %s got %v", n, want, other(n), got)
			}
		}
	})
}

// TestPropAtMostOnceInOrderWithFaults: the same, with connections that
// crash, dials that fail and time that runs past every timeout. Messages
// may be lost, but none arrives twice or out of order.
func TestPropAtMostOnceInOrderWithFaults(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		s := runPair(t, true)
		for _, n := range []string{"a", "b"} {
			got := s.got[other(n)]
			for i := 1; i < len(got); i++ {
				if got[i] <= got[i-1] {
					t.Fatalf("%s got %v from %s: out of order or twice", other(n), got, n)
				}
			}
			for _, v := range got {
				if !slices.Contains(s.sent[n], v) {
					t.Fatalf("%s got %d, which %s never sent", other(n), v, n)
				}
			}
		}
	})
}

// runPair runs a random history on a pair of machines, then lets it
// settle: every dial completes, every frame is written and read.
func runPair(t *rapid.T, faulty bool) *pairSim {
	s := newPairSim(t)
	s.faulty = faulty
	kinds := 9
	if faulty {
		kinds = 12
	}
	for range rapid.IntRange(1, 200).Draw(t, "steps") {
		switch rapid.IntRange(0, kinds).Draw(t, "what") {
		case 10:
			// A connection breaks: both ends see it end.
			if len(s.conns) > 0 {
				i := rapid.IntRange(0, len(s.conns)-1).Draw(t, "crash")
				c := s.conns[i]
				s.conns = slices.Delete(s.conns, i, i+1)
				for _, n := range []string{"a", "b"} {
					s.input(n, 0, func(m *peer.Machine) error { return ignoreUnknown(m.ConnDown(s.now, c.id, errors.New("reset"))) })
				}
			}
		case 11:
			if len(s.dials) > 0 {
				d := s.dials[0]
				s.dials = s.dials[1:]
				s.input(d.from, 0, func(m *peer.Machine) error { return m.DialFailed(s.now, d.to, d.attempt, errors.New("refused")) })
			}
		case 12:
			s.now = s.now.Add(time.Duration(rapid.IntRange(1, 40).Draw(t, "s")) * time.Second)
			for _, n := range []string{"a", "b"} {
				s.input(n, 0, func(m *peer.Machine) error { m.Tick(s.now); return nil })
			}
		case 0, 1, 2:
			s.send(rapid.SampledFrom([]string{"a", "b"}).Draw(t, "sender"))
		case 3:
			if len(s.dials) > 0 {
				i := rapid.IntRange(0, len(s.dials)-1).Draw(t, "dial")
				d := s.dials[i]
				s.dials = slices.Delete(s.dials, i, i+1)
				s.connect(d.from, d.attempt)
			}
		case 4:
			// A connection nobody asked the machine for (a seed
			// address, a redial): it may replace the current one.
			s.connect(rapid.SampledFrom([]string{"a", "b"}).Draw(t, "redialer"), 0)
		case 5:
			if s.now.Sub(s.start) < 8*time.Second {
				s.now = s.now.Add(time.Duration(rapid.IntRange(1, 1500).Draw(t, "ms")) * time.Millisecond)
				for _, n := range []string{"a", "b"} {
					s.input(n, 0, func(m *peer.Machine) error { m.Tick(s.now); return nil })
				}
			}
		default:
			if st := s.steps(); len(st) > 0 {
				x := rapid.SampledFrom(st).Draw(t, "io")
				if x.read {
					s.read(x.c, x.n)
				} else {
					s.flush(x.c, x.n)
				}
			}
		}
	}
	// Let everything settle: complete the dials, write and read all.
	for range 100000 {
		if len(s.dials) > 0 {
			d := s.dials[0]
			s.dials = s.dials[1:]
			s.connect(d.from, d.attempt)
			continue
		}
		st := s.steps()
		if len(st) == 0 {
			break
		}
		if st[0].read {
			s.read(st[0].c, st[0].n)
		} else {
			s.flush(st[0].c, st[0].n)
		}
	}
	return s
}
