package transport_test

// Property of the global simulations (issue 15): in a network of Go
// globals joined through a seed, with or without a scripted Perl slave
// whose ports they monitor (global_monitor_perl_test.go), on memnet in
// virtual time, remote and
// local port monitors fire exactly once with the right reason, whatever
// rapid draws: the kill reason (killed by the port's node or by a kil1
// from another node), ["no_such_port", ...] for a port that does not
// exist, ["transport_error", NODE, MSG] when the port's node, or the
// monitoring node, loses the network; never after a cancel, never for
// a port that lives on.

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/aemp-go/dataconn/memnet"
	"github.com/aemp-go/dataconn/transport"
)

// monWatch is one monitor of a schedule.
type monWatch struct {
	Observer int // the node that monitors
	Node     int // the node of the port
	Port     int // index of the port on Node; -1: a port that does not exist
	Cancel   bool
}

// monEvent is a kill of a port (Crash false) or a crash of a node.
type monEvent struct {
	Crash     bool
	Node      int // the node crashed, or the port's node
	Port      int
	By        int // the node that calls Kill (the port's node: a local kill)
	Reason    []any
	AfterSecs int // virtual seconds to wait after it
}

type monSchedule struct {
	Nodes, Ports int // Go nodes (0 is the seed), ports per node
	// Perl adds a scripted Perl node (index Nodes), a slave of the seed
	// whose ports the Go nodes monitor and kill.
	Perl    bool
	Watches []monWatch
	Events  []monEvent
}

// all is the number of nodes, the Perl node included.
func (s monSchedule) all() int {
	if s.Perl {
		return s.Nodes + 1
	}
	return s.Nodes
}

func drawMonSchedule(t *rapid.T) monSchedule {
	s := monSchedule{Nodes: rapid.IntRange(2, 4).Draw(t, "nodes"), Ports: rapid.IntRange(1, 3).Draw(t, "ports"),
		Perl: rapid.Bool().Draw(t, "perl")}
	for i := range rapid.IntRange(1, 8).Draw(t, "watches") {
		w := monWatch{
			Observer: rapid.IntRange(0, s.Nodes-1).Draw(t, fmt.Sprintf("observer%d", i)),
			Node:     rapid.IntRange(0, s.all()-1).Draw(t, fmt.Sprintf("node%d", i)),
			Port:     rapid.IntRange(-1, s.Ports-1).Draw(t, fmt.Sprintf("port%d", i)),
		}
		w.Cancel = w.Port >= 0 && rapid.IntRange(0, 4).Draw(t, fmt.Sprintf("cancel%d", i)) == 0
		s.Watches = append(s.Watches, w)
	}
	words := []any{"bye", "die", "some reason", "remote"}
	crashed := false
	for i := range rapid.IntRange(0, 6).Draw(t, "events") {
		e := monEvent{AfterSecs: rapid.IntRange(0, 2).Draw(t, fmt.Sprintf("after%d", i))}
		if !crashed && rapid.IntRange(0, 5).Draw(t, fmt.Sprintf("crash%d", i)) == 0 {
			// One crash at most, never of the seed (the others would
			// lose each other only through it).
			e.Crash, crashed = true, true
			e.Node = rapid.IntRange(1, s.all()-1).Draw(t, fmt.Sprintf("crashed%d", i))
			s.Events = append(s.Events, e)
			continue
		}
		e.Node = rapid.IntRange(0, s.all()-1).Draw(t, fmt.Sprintf("knode%d", i))
		e.Port = rapid.IntRange(0, s.Ports-1).Draw(t, fmt.Sprintf("kport%d", i))
		e.By = rapid.IntRange(0, s.Nodes-1).Draw(t, fmt.Sprintf("by%d", i))
		if e.Node == s.Nodes && rapid.Bool().Draw(t, fmt.Sprintf("perlkill%d", i)) {
			e.By = s.Nodes // the Perl node kills its own port
		}
		for j := range rapid.IntRange(0, 2).Draw(t, fmt.Sprintf("reasons%d", i)) {
			e.Reason = append(e.Reason, rapid.SampledFrom(words).Draw(t, fmt.Sprintf("reason%d.%d", i, j)))
		}
		s.Events = append(s.Events, e)
	}
	return s
}

// expected returns, per watch, the reason it must fire with (nil: it
// must not fire; a transport_error is given as [transport_error NODE]).
func (s monSchedule) expected(name func(node int) string, portID func(node, port int) string) [][]any {
	want := make([][]any, len(s.Watches))
	dead := map[[2]int]bool{}
	crashed := -1
	for i, w := range s.Watches {
		if w.Port < 0 {
			want[i] = []any{"no_such_port", "cannot monitor nonexistent port", name(w.Node) + "#nosuch"}
		}
	}
	for _, e := range s.Events {
		if e.Crash {
			crashed = e.Node
			for i, w := range s.Watches {
				if want[i] == nil && !w.Cancel && w.Observer != w.Node && (w.Observer == e.Node || w.Node == e.Node) {
					want[i] = []any{"transport_error", name(w.Node)}
				}
			}
			continue
		}
		key := [2]int{e.Node, e.Port}
		if dead[key] || crashed >= 0 && (e.Node == crashed || e.By == crashed) {
			continue // nothing to kill, or the kill cannot reach it
		}
		dead[key] = true
		for i, w := range s.Watches {
			if want[i] == nil && !w.Cancel && w.Node == e.Node && w.Port == e.Port {
				r := e.Reason
				if r == nil {
					r = []any{}
				}
				want[i] = r
			}
		}
	}
	return want
}

func runMonSchedule(t *rapid.T, seed int64, s monSchedule) {
	w := memnet.New(seed, memnet.WithDefaultLink(memnet.LinkConfig{Latency: 2 * time.Millisecond}), memnet.WithTrace(0))
	defer w.Close()
	name := func(i int) string {
		if i == s.Nodes {
			return "P0"
		}
		return fmt.Sprintf("M%d", i)
	}
	var nodes []*transport.Node
	for i := range s.Nodes {
		var seeds []string
		if i > 0 {
			seeds = []string{seedAddr(name(0))}
		}
		n := startNode(t, w, nodeSpec{name: name(i), listen: true, mod: func(c *transport.Config) {
			c.Seeds, c.Global = seeds, true
			c.Secret = secret // the scripted Perl node's (perl_test.go)
		}})
		if err := n.Start(); err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, n)
	}
	var pp *propPerl
	if s.Perl {
		pp = startPropPerl(t, w, name(s.Nodes), name(0), s.Ports)
	}
	ports := make([][]*transport.Port, s.Nodes)
	for i, n := range nodes {
		for range s.Ports {
			ports[i] = append(ports[i], n.NewPort(func([]any) {}))
		}
	}
	portID := func(node, port int) string {
		switch {
		case port < 0:
			return name(node) + "#nosuch"
		case node == s.Nodes:
			return fmt.Sprintf("%s#p%d", name(node), port)
		}
		return ports[node][port].ID()
	}
	time.Sleep(5 * time.Second) // the globals mesh through the seed
	for i, n := range nodes {
		connected := map[string]bool{}
		for _, p := range n.Peers() {
			connected[p] = true
		}
		for j := range s.Nodes {
			if j != i && !connected[name(j)] {
				t.Fatalf("%s is connected to %v, want every other Go node", name(i), n.Peers())
			}
		}
	}
	if s.Perl {
		if _, known := nodes[0].Listeners(name(s.Nodes)); !known {
			t.Fatalf("the Perl node did not join the seed: %v", pp.failures())
		}
	}
	var mu sync.Mutex
	fired := make([][][]any, len(s.Watches))
	for i, wt := range s.Watches {
		cancel, err := nodes[wt.Observer].Monitor(portID(wt.Node, wt.Port), func(r []any) {
			mu.Lock()
			fired[i] = append(fired[i], r)
			mu.Unlock()
		})
		if err != nil {
			t.Fatalf("Monitor %s from %s: %v", portID(wt.Node, wt.Port), name(wt.Observer), err)
		}
		if wt.Cancel {
			cancel()
		}
	}
	time.Sleep(time.Second)
	crashed := -1
	for _, e := range s.Events {
		switch {
		case e.Crash:
			w.Crash(name(e.Node))
			crashed = e.Node
		case crashed >= 0 && (e.Node == crashed || e.By == crashed):
		case e.By == s.Nodes:
			pp.kill(fmt.Sprintf("p%d", e.Port), e.Reason)
		default:
			if err := nodes[e.By].Kill(portID(e.Node, e.Port), e.Reason...); err != nil {
				t.Fatalf("Kill %s from %s: %v", portID(e.Node, e.Port), name(e.By), err)
			}
		}
		time.Sleep(time.Duration(e.AfterSecs)*time.Second + 100*time.Millisecond)
	}
	time.Sleep(10 * time.Second)
	want := s.expected(name, portID)
	check := func(when string) {
		mu.Lock()
		defer mu.Unlock()
		for i, wt := range s.Watches {
			got, exp := fired[i], want[i]
			what := fmt.Sprintf("%s: monitor %d of %s by %s", when, i, portID(wt.Node, wt.Port), name(wt.Observer))
			switch {
			case exp == nil && len(got) != 0:
				t.Fatalf("%s fired %v, want never", what, got)
			case exp == nil:
			case len(got) != 1:
				t.Fatalf("%s fired %d times (%v), want once with %v", what, len(got), got, exp)
			case len(exp) > 0 && exp[0] == "transport_error":
				if r := got[0]; len(r) != 3 || r[0] != exp[0] || r[1] != exp[1] {
					t.Fatalf("%s fired with %v, want %v and a message", what, r, exp)
				}
			case canonical(got[0]) != canonical(exp):
				t.Fatalf("%s fired with %s, want %s", what, canonical(got[0]), canonical(exp))
			}
		}
	}
	check("after the events")
	time.Sleep(40 * time.Second) // redials, keepalives: nothing fires again
	check("later")
	if pp != nil {
		if errs := pp.failures(); len(errs) != 0 {
			t.Fatalf("the Perl node: %v", errs)
		}
	}
	closeAll(nodes...)
}

// monRounds is how many times rapid's check count of schedules the
// monitor property runs: half the data-connection properties' rounds
// (each schedule is a whole network), and so halved under the race
// detector as theirs are.
func monRounds() int { return max(1, propRounds()/2) }

// TestPropGlobalMonitorsOnce: see the file comment.
func TestPropGlobalMonitorsOnce(t *testing.T) {
	var st struct {
		sync.Mutex
		kills, crashes, nosuch, cancels, locals, perl, perlKills int
	}
	for range monRounds() {
		rapid.Check(t, func(rt *rapid.T) {
			seed := rapid.Int64().Draw(rt, "memnet_seed")
			s := drawMonSchedule(rt)
			rapid.SyncTest(rt, func(rt *rapid.T) { runMonSchedule(rt, seed, s) })
			st.Lock()
			if s.Perl {
				st.perl++
			}
			for _, e := range s.Events {
				switch {
				case e.Crash:
					st.crashes++
				case s.Perl && e.Node == s.Nodes:
					st.perlKills++
				default:
					st.kills++
				}
			}
			for _, w := range s.Watches {
				switch {
				case w.Port < 0:
					st.nosuch++
				case w.Cancel:
					st.cancels++
				case w.Observer == w.Node:
					st.locals++
				}
			}
			st.Unlock()
		})
	}
	t.Logf("kills %d (of Perl ports %d), crashes %d, monitors of missing ports %d, cancelled %d, local %d; schedules with a Perl node %d",
		st.kills+st.perlKills, st.perlKills, st.crashes, st.nosuch, st.cancels, st.locals, st.perl)
	for what, n := range map[string]int{"kills": st.kills, "crashes": st.crashes, "missing ports": st.nosuch, "cancels": st.cancels,
		"local monitors": st.locals, "schedules with a Perl node": st.perl, "kills of Perl ports": st.perlKills} {
		if n < 10 {
			t.Errorf("only %d %s over all schedules: the generator no longer covers them", n, what)
		}
	}
}
