package transport_test

// Properties of data connections between Nodes on memnet, over random
// schedules drawn by rapid and run in testing/synctest bubbles: latency
// and jitter, lost connection attempts, partitions, crashes, nodes without
// listeners, Perl-flow targets, a node with the wrong secret, timeouts from
// 1ms to 8s and concurrent ConnectTo calls in both directions and to self.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/aemp-go/dataconn/core/rendezvous"
	"github.com/aemp-go/dataconn/core/wire"
	"github.com/aemp-go/dataconn/memnet"
	"github.com/aemp-go/dataconn/transport"
)

// propRounds × rapid's checks per rapid.Check (100 by default, or
// -rapid.checks) is the number of schedules each property runs. Under the
// race detector it is halved: each schedule costs ~5x more there and the
// race runtime keeps every goroutine's creation stack for the life of
// the process; .ci/run runs the full size, and ten times more checks,
// without -race.
func propRounds() int {
	if raceEnabled {
		return 5
	}
	return 10
}

// dcNode describes a node of a schedule.
type dcNode struct {
	Name        string
	Listen      bool
	Perl        bool // greets like a Perl node: the initiator uses the Perl flow
	WrongSecret bool
}

// dcCall is one ConnectTo of a schedule.
type dcCall struct {
	From, To int
	Delay    time.Duration
	Timeout  time.Duration
	AsPort   bool // address the target as "NODE#port"
}

// dcFaults are the network faults of a schedule.
type dcFaults struct {
	DialLoss     float64
	PartitionAt  time.Duration // < 0: none
	PartitionFor time.Duration
	Cut          []bool        // nodes on the partition's first side
	CrashAt      time.Duration // < 0: none
	CrashNode    int
}

// dcSchedule is everything one run does.
type dcSchedule struct {
	Nodes            []dcNode
	Latency, Jitter  [][]time.Duration
	HandshakeTimeout time.Duration
	Calls            []dcCall
	Faults           dcFaults
	Preconnect       bool // nodes without listeners connect to the others first
}

// maxCallTimeout is the longest ConnectTo timeout a schedule draws.
const maxCallTimeout = 8192 * time.Millisecond

// drawSchedule draws a schedule; faulty selects the fault-free liveness
// variant (false) or the one with every fault (true).
func drawSchedule(t *rapid.T, faulty bool) dcSchedule {
	var s dcSchedule
	n := rapid.IntRange(2, 5).Draw(t, "nodes")
	for i := range n {
		nd := dcNode{Name: fmt.Sprintf("n%d", i), Listen: true}
		nd.Perl = rapid.IntRange(0, 4).Draw(t, "perl") == 0
		if faulty {
			nd.Listen = rapid.IntRange(0, 4).Draw(t, "nolisten") != 0
			nd.WrongSecret = rapid.IntRange(0, 9).Draw(t, "wrongsecret") == 0
		} else if i > 0 {
			// One listener at least; the others may use the dial-back.
			nd.Listen = rapid.IntRange(0, 3).Draw(t, "nolisten") != 0
		}
		s.Nodes = append(s.Nodes, nd)
	}
	s.Latency = make([][]time.Duration, n)
	s.Jitter = make([][]time.Duration, n)
	for i := range n {
		s.Latency[i] = make([]time.Duration, n)
		s.Jitter[i] = make([]time.Duration, n)
		for j := i + 1; j < n; j++ {
			s.Latency[i][j] = time.Duration(rapid.IntRange(0, 40).Draw(t, "latency_ms")) * time.Millisecond
			s.Jitter[i][j] = time.Duration(rapid.IntRange(0, 20).Draw(t, "jitter_ms")) * time.Millisecond
		}
	}
	s.HandshakeTimeout = 10 * time.Second
	if faulty {
		s.HandshakeTimeout = time.Duration(rapid.IntRange(20, 3000).Draw(t, "handshake_ms")) * time.Millisecond
	}
	calls := rapid.IntRange(1, 8).Draw(t, "calls")
	for range calls {
		c := dcCall{
			From:   rapid.IntRange(0, n-1).Draw(t, "from"),
			Delay:  time.Duration(rapid.IntRange(0, 500).Draw(t, "delay_ms")) * time.Millisecond,
			AsPort: rapid.Bool().Draw(t, "asport"),
		}
		// One call in eight goes to the caller's own node.
		if rapid.IntRange(0, 7).Draw(t, "self") == 0 {
			c.To = c.From
		} else {
			c.To = (c.From + rapid.IntRange(1, n-1).Draw(t, "to_offset")) % n
		}
		if faulty {
			// 1ms .. 8.192s, log-uniform.
			c.Timeout = time.Millisecond << rapid.IntRange(0, 13).Draw(t, "timeout_log2ms")
		} else {
			c.Timeout = time.Duration(rapid.IntRange(5, 8).Draw(t, "timeout_s")) * time.Second
			// Two nodes without listeners cannot reach each other.
			if !s.Nodes[c.From].Listen && !s.Nodes[c.To].Listen && c.From != c.To {
				c.To = 0
			}
		}
		s.Calls = append(s.Calls, c)
	}
	s.Faults = dcFaults{PartitionAt: -1, CrashAt: -1}
	if faulty {
		if rapid.Bool().Draw(t, "lossy") {
			s.Faults.DialLoss = rapid.Float64Range(0, 0.5).Draw(t, "dial_loss")
		}
		if rapid.IntRange(0, 2).Draw(t, "partition") == 0 {
			s.Faults.PartitionAt = time.Duration(rapid.IntRange(0, 600).Draw(t, "partition_at_ms")) * time.Millisecond
			s.Faults.PartitionFor = time.Duration(rapid.IntRange(1, 3000).Draw(t, "partition_ms")) * time.Millisecond
			for range n {
				s.Faults.Cut = append(s.Faults.Cut, rapid.Bool().Draw(t, "cut"))
			}
		}
		if rapid.IntRange(0, 3).Draw(t, "crash") == 0 {
			s.Faults.CrashAt = time.Duration(rapid.IntRange(0, 800).Draw(t, "crash_at_ms")) * time.Millisecond
			s.Faults.CrashNode = rapid.IntRange(0, n-1).Draw(t, "crash_node")
		}
	} else {
		s.Preconnect = true
	}
	return s
}

// propT is what runSchedule needs from a test (*rapid.T, *testing.T).
type propT interface {
	nodeT
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
}

// dcInitCall is one call of the init function.
type dcInitCall struct {
	node, from string
	data       []any
	got        []byte
	readErr    error
}

// dcOutcome is what one ConnectTo gave.
type dcOutcome struct {
	err      error
	elapsed  time.Duration
	sent     []byte
	reply    []byte
	ioErr    error
	finished bool
}

// propPayload is what call k sends; the init function answers with
// propReply of what it read.
func propPayload(k int) []byte {
	return []byte(fmt.Sprintf("call %d: %s", k, strings.Repeat(string(rune('a'+k%26)), 40+k)))
}

func propReply(got []byte) []byte { return append([]byte("ack "), got...) }

// streamDeadline bounds every read and write of a data connection in a
// schedule: far beyond every timer, so hitting it means a stream was left
// open.
const streamDeadline = 10 * time.Minute

// runSchedule runs s on a fresh World (inside the caller's bubble) and
// checks the properties.
func runSchedule(t propT, seed int64, s dcSchedule, faulty bool, st *propStats) {
	w := memnet.New(seed)
	n := len(s.Nodes)
	for i := range n {
		for j := i + 1; j < n; j++ {
			w.SetLink(s.Nodes[i].Name, s.Nodes[j].Name, memnet.LinkConfig{Latency: s.Latency[i][j], Jitter: s.Jitter[i][j]})
		}
	}
	var mu sync.Mutex
	inits := map[int][]dcInitCall{}
	var running atomic.Int32 // init functions still running
	nodes := make([]*transport.Node, n)
	for i, nd := range s.Nodes {
		nodes[i] = startNode(t, w, nodeSpec{name: nd.Name, listen: nd.Listen, mod: func(c *transport.Config) {
			c.PerlCompat = nd.Perl
			c.HandshakeTimeout = s.HandshakeTimeout
			if faulty {
				// Partitions long enough to make nodes go down.
				c.KeepAlive, c.PeerTimeout = time.Second, 3*time.Second
			}
			if nd.WrongSecret {
				c.Secret = []byte("not the shared secret")
			}
		}})
		self := nd.Name
		nodes[i].HandleDataConn("prop", func(from string, data []any, c net.Conn) {
			running.Add(1)
			defer running.Add(-1)
			defer c.Close()
			call := dcInitCall{node: self, from: from, data: data}
			c.SetDeadline(time.Now().Add(streamDeadline))
			call.got, call.readErr = io.ReadAll(c)
			if call.readErr == nil && len(call.got) > 0 {
				c.Write(propReply(call.got))
			}
			k := -1
			if len(data) > 0 {
				if v, ok := data[0].(int64); ok {
					k = int(v)
				}
			}
			mu.Lock()
			inits[k] = append(inits[k], call)
			mu.Unlock()
		})
	}
	meshPeers(nodes...)
	if s.Preconnect {
		for i, nd := range s.Nodes {
			if nd.Listen {
				continue
			}
			for _, other := range s.Nodes {
				if other.Listen {
					if err := nodes[i].Connect(context.Background(), other.Name); err != nil {
						t.Fatalf("seed %d: preconnect %s -> %s: %v", seed, nd.Name, other.Name, err)
					}
				}
			}
		}
	}
	w.SetDialLoss(s.Faults.DialLoss)

	// Faults.
	var faultWG sync.WaitGroup
	crashed := ""
	if f := s.Faults; f.PartitionAt >= 0 {
		var ga, gb []string
		for i, cut := range f.Cut {
			if cut {
				ga = append(ga, s.Nodes[i].Name)
			} else {
				gb = append(gb, s.Nodes[i].Name)
			}
		}
		faultWG.Go(func() {
			time.Sleep(f.PartitionAt)
			w.Partition(ga, gb)
			time.Sleep(f.PartitionFor)
			w.Heal()
		})
	}
	if f := s.Faults; f.CrashAt >= 0 {
		crashed = s.Nodes[f.CrashNode].Name
		faultWG.Go(func() {
			time.Sleep(f.CrashAt)
			w.Crash(crashed)
		})
	}

	// Calls.
	out := make([]dcOutcome, len(s.Calls))
	var callWG sync.WaitGroup
	for k, c := range s.Calls {
		callWG.Go(func() {
			time.Sleep(c.Delay)
			from, to := nodes[c.From], s.Nodes[c.To].Name
			target := to
			if c.AsPort {
				target = to + "#someport"
			}
			start := time.Now()
			conn, err := from.ConnectTo(context.Background(), target, c.Timeout, "prop", int64(k), from.ID())
			o := dcOutcome{err: err, elapsed: time.Since(start), finished: true}
			if err == nil {
				o.sent = propPayload(k)
				conn.SetDeadline(time.Now().Add(streamDeadline))
				if _, o.ioErr = conn.Write(o.sent); o.ioErr == nil {
					if cw, ok := conn.(transport.CloseWriter); ok {
						o.ioErr = cw.CloseWrite()
					}
				}
				if o.ioErr == nil {
					o.reply, o.ioErr = io.ReadAll(conn)
				}
				conn.Close()
			}
			out[k] = o
		})
	}
	callWG.Wait()
	faultWG.Wait()

	// Every timer that any call, expectation or held stream armed has
	// fired after this (message dials take up to two handshake timeouts,
	// a partition holds messages up to 3s, an expectation lives up to
	// maxCallTimeout, a held stream EarlyHold).
	time.Sleep(2*s.HandshakeTimeout + 3*time.Second + maxCallTimeout + rendezvous.DefaultEarlyHold + time.Second)
	if r := running.Load(); r != 0 {
		t.Errorf("seed %d: %d init functions still blocked on their stream after every timer fired", seed, r)
	}
	mu.Lock()
	defer mu.Unlock()

	st.add(s, out)
	for k, c := range s.Calls {
		o := out[k]
		from, to := s.Nodes[c.From].Name, s.Nodes[c.To].Name
		who := fmt.Sprintf("seed %d: call %d %s->%s (timeout %v)", seed, k, from, to, c.Timeout)
		if !o.finished {
			t.Fatalf("%s: ConnectTo did not return", who)
		}
		if o.elapsed > c.Timeout {
			t.Errorf("%s: returned after %v, beyond its timeout", who, o.elapsed)
		}
		calls := inits[k]
		faultHit := crashed != "" && (crashed == from || crashed == to)
		// The handshake is symmetric: the initiator is done when the
		// target's auth line arrives, the target when the initiator's
		// does. A fault in between (a partition, a crash, the target's
		// handshake timeout, its expectation's timer) makes the two ends
		// conclude differently, and no protocol can avoid that for the
		// last line of a handshake. What holds then, and is asserted:
		//   - connected, the init function never ran: the initiator's
		//     stream ends (EOF or an error, never a hang) without a byte
		//     from the target;
		//   - failed, the init function ran: its stream ends before any
		//     byte (the initiator closed it);
		// and a crash of either end may cut the data exchange of a
		// connection that both ends completed. Each is counted and
		// reported; without faults (TestPropDataConnLiveness) each fails.
		// TestDataConnConfirmedThenExpired is the case that is avoidable.
		if faulty && o.err == nil && len(calls) == 0 {
			if len(o.reply) != 0 || errors.Is(o.ioErr, os.ErrDeadlineExceeded) {
				t.Errorf("%s: connected without an init call, yet the stream gave %q and error %v instead of ending without data", who, o.reply, o.ioErr)
			}
			st.count(&st.okNoInit)
			continue
		}
		if o.err == nil {
			if len(calls) != 1 {
				t.Fatalf("%s: succeeded after %v, init called %d times; the initiator's exchange: reply %q, error %v", who, o.elapsed, len(calls), o.reply, o.ioErr)
			}
			ic := calls[0]
			if ic.node != to || ic.from != from || len(ic.data) != 2 || ic.data[1] != from {
				t.Errorf("%s: init call on %s from %s with %v", who, ic.node, ic.from, ic.data)
			}
			if o.ioErr != nil || ic.readErr != nil {
				if !faultHit {
					t.Errorf("%s: data exchange failed without a crash: initiator %v, target %v", who, o.ioErr, ic.readErr)
				}
				if errors.Is(o.ioErr, os.ErrDeadlineExceeded) || errors.Is(ic.readErr, os.ErrDeadlineExceeded) {
					t.Errorf("%s: stream hung until its deadline", who)
				}
				st.count(&st.exchangeCut)
				continue
			}
			if string(ic.got) != string(o.sent) || string(o.reply) != string(propReply(o.sent)) {
				t.Errorf("%s: bytes changed: sent %q, target read %q, reply %q", who, o.sent, ic.got, o.reply)
			}
			continue
		}
		// Failure: a typed error with a Perl-style reason text, and the init
		// function never called or its stream closed before any data.
		var de *transport.DataConnError
		if !errors.As(o.err, &de) {
			t.Errorf("%s: error %v is a %T, not a *DataConnError", who, o.err, o.err)
		} else {
			v := de.Reason.Values()
			if len(v) < 2 || v[0] != wire.KillReasonDataConn || !strings.HasPrefix(o.err.Error(), to+": ") || len(o.err.Error()) <= len(to)+2 {
				t.Errorf("%s: reason %#v", who, v)
			}
			if errors.Is(o.err, transport.ErrDataConnTimeout) != strings.Contains(o.err.Error(), "unable to establish connection within") {
				t.Errorf("%s: rule %v does not match text %q", who, de.Rule, o.err)
			}
		}
		if !faulty {
			t.Errorf("%s: failed without any fault: %v", who, o.err)
		}
		switch len(calls) {
		case 0:
		case 1:
			st.count(&st.failedInitRan)
			if len(calls[0].got) != 0 {
				t.Errorf("%s: failed (%v), but the init function read %q", who, o.err, calls[0].got)
			}
			if errors.Is(calls[0].readErr, os.ErrDeadlineExceeded) {
				t.Errorf("%s: failed (%v), and the init function's stream was left open", who, o.err)
			}
		default:
			t.Errorf("%s: failed, init called %d times", who, len(calls))
		}
	}
	if len(inits[-1]) != 0 {
		t.Errorf("seed %d: init called with foreign data %v", seed, inits[-1][0].data)
	}
	for k := range inits {
		if k >= len(s.Calls) {
			t.Errorf("seed %d: init called for unknown call %d", seed, k)
		}
	}
	for i, nd := range nodes {
		if o, e, h := nd.DataConns().Pending(); o+e+h != 0 {
			t.Errorf("seed %d: %s still holds %d outgoing, %d expectations, %d early streams after every timer fired", seed, s.Nodes[i].Name, o, e, h)
		}
	}
	closeAll(nodes...)
}

// propStats counts what the schedules of a property exercised, so that a
// generator that stopped producing interesting cases is noticed.
type propStats struct {
	mu                                   sync.Mutex
	schedules, ok, failed, timeouts      int
	self, perl, dialBack, partitions     int
	crashes, lossy, wrongSecret, noRoute int
	// The asymmetric ends (see runSchedule).
	okNoInit, failedInitRan, exchangeCut int
}

func (st *propStats) count(n *int) {
	st.mu.Lock()
	*n++
	st.mu.Unlock()
}

func (st *propStats) add(s dcSchedule, out []dcOutcome) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.schedules++
	for k, c := range s.Calls {
		switch err := out[k].err; {
		case err == nil:
			st.ok++
		case errors.Is(err, transport.ErrDataConnTimeout):
			st.timeouts++
		case errors.Is(err, transport.ErrDataConnNoRoute):
			st.noRoute++
		default:
			st.failed++
		}
		if c.From == c.To {
			st.self++
		}
		if s.Nodes[c.To].Perl {
			st.perl++
		}
		if !s.Nodes[c.To].Listen && s.Nodes[c.From].Listen {
			st.dialBack++
		}
	}
	if s.Faults.PartitionAt >= 0 {
		st.partitions++
	}
	if s.Faults.CrashAt >= 0 {
		st.crashes++
	}
	if s.Faults.DialLoss > 0 {
		st.lossy++
	}
	for _, n := range s.Nodes {
		if n.WrongSecret {
			st.wrongSecret++
			break
		}
	}
}

// checkSchedules runs the property propRounds times rapid's check count,
// then checks that the schedules covered what the property is about.
func checkSchedules(t *testing.T, faulty bool) {
	st := &propStats{}
	for range propRounds() {
		rapid.Check(t, func(rt *rapid.T) {
			seed := rapid.Int64().Draw(rt, "memnet_seed")
			s := drawSchedule(rt, faulty)
			rapid.SyncTest(rt, func(rt *rapid.T) { runSchedule(rt, seed, s, faulty, st) })
		})
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	t.Logf("%d schedules: %d connected, %d timed out, %d no route, %d failed otherwise; calls to self %d, to Perl-flow targets %d, by dial-back %d; schedules with partitions %d, crashes %d, lost dials %d, a wrong secret %d; asymmetric ends: connected but the init function never ran %d, failed but the init function ran (on an empty stream) %d, both ends done and the data exchange cut by a crash %d",
		st.schedules, st.ok, st.timeouts, st.noRoute, st.failed, st.self, st.perl, st.dialBack, st.partitions, st.crashes, st.lossy, st.wrongSecret, st.okNoInit, st.failedInitRan, st.exchangeCut)
	need := []struct {
		what string
		n    int
	}{{"schedules", st.schedules / propRounds()}, {"connections", st.ok}, {"calls to self", st.self},
		{"Perl-flow calls", st.perl}, {"dial-back calls", st.dialBack}}
	if faulty {
		need = append(need, []struct {
			what string
			n    int
		}{{"timeouts", st.timeouts}, {"other failures", st.failed}, {"no-route failures", st.noRoute},
			{"partitions", st.partitions}, {"crashes", st.crashes}, {"lossy schedules", st.lossy}, {"wrong secrets", st.wrongSecret}}...)
	}
	for _, n := range need {
		if n.n < 20 {
			t.Errorf("only %d %s over all schedules: the generator no longer covers them", n.n, n.what)
		}
	}
}

// TestPropDataConnFaults: under every fault, each ConnectTo returns once
// within its timeout. Success means exactly one init call on the target
// with that stream and intact bytes both ways, unless a fault struck:
// then either the init function never ran and the initiator's stream
// ends without a byte from the target, or a crash cut the exchange.
// Failure means a typed error with a reason text whose rule matches it,
// and no init call or one whose stream ends before any byte. Nothing is
// left pending once every timer has fired; no goroutine outlives the
// nodes. The log line counts each asymmetric end.
func TestPropDataConnFaults(t *testing.T) { checkSchedules(t, true) }

// TestPropDataConnLiveness: without faults and with timeouts of 5s or
// more, every ConnectTo succeeds, whatever the flows (fast, Perl, dial
// back, self), latencies and concurrency.
func TestPropDataConnLiveness(t *testing.T) { checkSchedules(t, false) }
