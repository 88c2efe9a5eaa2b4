package transport_test

// memnet simulations (under testing/synctest) of networks that join
// through Config.Seeds: Go nodes in the global role (Config.Global) and
// scripted Perl nodes that answer as the Perl nodes of the recorded
// transcripts do (global_sim_perl_test.go). The mixed variants of the
// three-globals, late-seed and crash simulations are in
// global_sim_mixed_test.go.

import (
	"context"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aemp-go/dataconn/memnet"
	"github.com/aemp-go/dataconn/transport"
)

// globalRetryBound: a seed that is reachable is connected by the next
// attempt, at most 30r (r < 1.2 s) into Perl's schedule and at most every
// 30 s after it.
const globalRetryBound = 36 * time.Second

// seedAddr is the announced address of a memnet node listening on name:1.
func seedAddr(name string) string { return memnet.Scheme + "://" + name + ":1" }

// goGlobal starts a Go node (global by default) seeding to seeds.
func goGlobal(t *testing.T, w *memnet.World, name string, listen bool, mod func(*transport.Config), seeds ...string) *transport.Node {
	t.Helper()
	n := startNode(t, w, nodeSpec{name: name, listen: listen, mod: func(c *transport.Config) {
		c.Seeds = seeds
		c.Secret = secret // the scripted Perl slaves' (perl_test.go)
		c.Global = true
		if mod != nil {
			mod(c)
		}
	}})
	n.HandleDataConn("sim::hello", func(from string, data []any, c net.Conn) {
		io.WriteString(c, "hello from "+name)
		c.Close()
	})
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
	return n
}

// checkListeners asserts that every Go node knows every other node's
// listeners: its addresses, [] for a node without, and the Perl slaves'.
func checkListeners(t *testing.T, nodes []*transport.Node, perls []*scriptedPerl) {
	t.Helper()
	for _, n := range nodes {
		for _, o := range nodes {
			if o == n {
				continue
			}
			got, known := n.Listeners(o.ID())
			if want := o.Addrs(); !known || !slices.Equal(got, append([]string{}, want...)) {
				t.Errorf("%s knows %s's listeners as %v (known=%v), want %v", n.ID(), o.ID(), got, known, want)
			}
		}
		for _, p := range perls {
			if got, known := n.Listeners(p.id); !known || !slices.Equal(got, []string{p.addr}) {
				t.Errorf("%s knows Perl node %s's listeners as %v (known=%v), want [%s]", n.ID(), p.id, got, known, p.addr)
			}
		}
	}
}

// checkDataConn opens a data connection from a to b and reads b's answer.
func checkDataConn(t *testing.T, a, b *transport.Node) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := a.ConnectTo(ctx, b.ID(), 10*time.Second, "sim::hello")
	if err != nil {
		t.Errorf("data connection %s → %s: %v", a.ID(), b.ID(), err)
		return
	}
	defer c.Close()
	got, err := io.ReadAll(c)
	if want := "hello from " + b.ID(); string(got) != want || err != nil {
		t.Errorf("data connection %s → %s read %q, %v; want %q", a.ID(), b.ID(), got, err, want)
	}
}

// TestGlobalSimSeedWithTwentySlaves: one Go seed, fifteen Go slaves (one
// without listeners, five greeting as Perl nodes do) and five scripted
// Perl slaves, joining at staggered times. Every Go node learns every
// listener within the retry bound, the Perl slaves' g_find is answered,
// for the seed and for the other nodes (from the merged 'l), and data
// connections succeed between every ordered pair of Go nodes, from every
// Go node to every Perl slave, and from the Perl slaves to the seed and
// to Go nodes they find with g_find (the Perl flow, both ways).
func TestGlobalSimSeedWithTwentySlaves(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := memnet.New(41, memnet.WithDefaultLink(memnet.LinkConfig{Latency: 2 * time.Millisecond}), memnet.WithTrace(0))
		seed := goGlobal(t, w, "S", true, nil)
		nodes := []*transport.Node{seed}
		var perls []*scriptedPerl
		for i := range 15 {
			time.Sleep(100 * time.Millisecond)
			mod := func(c *transport.Config) { c.PerlCompat = i%3 == 1 }
			nodes = append(nodes, goGlobal(t, w, fmt.Sprintf("G%02d", i), i != 3, mod, seedAddr("S")))
			if i < 5 {
				perls = append(perls, startPerlSlave(t, w, fmt.Sprintf("P%02d", i), "S"))
			}
		}
		time.Sleep(globalRetryBound)
		checkListeners(t, nodes, perls)
		for _, p := range perls {
			if got, ok := p.foundOf("S").([]any); !ok || len(got) != 1 || got[0] != seedAddr("S") {
				t.Errorf("Perl slave %s: g_found of its seed is %v", p.id, p.foundOf("S"))
			}
		}
		if got := seed.Slaves(); len(got) < len(perls) {
			t.Errorf("the seed's slaves are %v, want at least the Perl slaves", got)
		}
		perls[0].ask(t, "P04")
		perls[0].ask(t, "G05")
		perls[0].ask(t, "G03")
		time.Sleep(time.Second)
		if got, ok := perls[0].foundOf("P04").([]any); !ok || len(got) != 1 || got[0] != perls[4].addr {
			t.Errorf("g_find P04: %v", perls[0].foundOf("P04"))
		}
		if got, ok := perls[0].foundOf("G05").([]any); !ok || len(got) != 1 || got[0] != seedAddr("G05") {
			t.Errorf("g_find G05: %v", perls[0].foundOf("G05"))
		}
		if got, ok := perls[0].foundOf("G03").([]any); !ok || len(got) != 0 {
			t.Errorf("g_find G03 (no listeners): %#v, want []", perls[0].foundOf("G03"))
		}
		// Data connections between any two nodes where the flow allows:
		// every Perl slave to the seed and to Go nodes it finds with
		// g_find (one of them greeting as Perl nodes do), the Perl way;
		// every ordered pair of Go nodes (the one without listeners
		// included, as initiator and as target); every Go node to every
		// Perl slave. (A Perl slave cannot reach the Go node without
		// listeners: nothing connects them; two scripted slaves prove
		// nothing about our node.)
		dcs := 0
		for i, p := range perls {
			for _, target := range []string{"S", "G05", "G01", fmt.Sprintf("G%02d", 10+i)} {
				dcs++
				got, err := p.connectTo(target, dcs, target == "S")
				if want := "hello from " + target; got != want || err != nil {
					t.Errorf("Perl data connection %s → %s read %q, %v; want %q", p.id, target, got, err, want)
				}
			}
		}
		for _, a := range nodes {
			for _, b := range nodes {
				if a != b {
					checkDataConn(t, a, b)
				}
			}
			for _, p := range perls {
				checkDataConnToPerl(t, a, p)
			}
		}
		checkPerlServed(t, perls)
		for _, n := range nodes {
			n.Close()
		}
	})
}

// checkDataConnToPerl opens a data connection from a to the scripted Perl
// slave p and reads its answer.
func checkDataConnToPerl(t *testing.T, a *transport.Node, p *scriptedPerl) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := a.ConnectTo(ctx, p.id, 10*time.Second, "sim::hello")
	if err != nil {
		t.Errorf("data connection %s → Perl %s: %v", a.ID(), p.id, err)
		return
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(perlStepLimit))
	got, err := io.ReadAll(c)
	if want := "hello from " + p.id; string(got) != want || err != nil {
		t.Errorf("data connection %s → Perl %s read %q, %v; want %q", a.ID(), p.id, got, err, want)
	}
}

// TestGlobalSimThreeGlobalsMesh: three Go globals, two of which know only
// the seed, end up pairwise connected, know each other as globals and
// know each other's listeners.
func TestGlobalSimThreeGlobalsMesh(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := memnet.New(42, memnet.WithDefaultLink(memnet.LinkConfig{Latency: 3 * time.Millisecond}), memnet.WithTrace(0))
		s := goGlobal(t, w, "S", true, nil)
		a := goGlobal(t, w, "A", true, nil, seedAddr("S"))
		b := goGlobal(t, w, "B", true, nil, seedAddr("S"))
		time.Sleep(globalRetryBound)
		nodes := []*transport.Node{s, a, b}
		checkListeners(t, nodes, nil)
		for _, n := range nodes {
			if got := n.Peers(); len(got) != 2 {
				t.Errorf("%s is connected to %v, want the two others", n.ID(), got)
			}
			if got := n.Globals(); len(got) != 2 {
				t.Errorf("%s knows the globals %v, want the two others", n.ID(), got)
			}
		}
		checkDataConn(t, a, b)
		checkDataConn(t, b, a)
		closeAll(b, a, s)
	})
}

// TestGlobalSimSeedStartsLate: A starts 5 s before its seed listens; it
// retries on Perl's schedule and connects within the retry bound; the
// seed learns A's listeners and A the seed's.
func TestGlobalSimSeedStartsLate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := memnet.New(43, memnet.WithDefaultLink(memnet.LinkConfig{Latency: time.Millisecond}), memnet.WithTrace(0))
		a := goGlobal(t, w, "A", true, nil, seedAddr("S"))
		ups := make(chan time.Time, 4)
		a.MonitorNode("S", func(up bool, _ error) {
			if up {
				ups <- time.Now()
			}
		})
		time.Sleep(5 * time.Second)
		if got := a.Peers(); len(got) != 0 {
			t.Fatalf("A is connected to %v before its seed exists", got)
		}
		started := time.Now()
		s := goGlobal(t, w, "S", true, nil)
		select {
		case at := <-ups:
			if d := at.Sub(started); d > globalRetryBound {
				t.Errorf("A reached its seed %v after it started, want within %v", d, globalRetryBound)
			}
		case <-time.After(globalRetryBound + time.Second):
			t.Fatal("A never reached its seed")
		}
		time.Sleep(time.Second)
		checkListeners(t, []*transport.Node{a, s}, nil)
		closeAll(a, s)
	})
}

// TestGlobalSimSeedCrash: the seed S crashes and comes back. A and B,
// meshed through 'g, stay connected to each other and reconnect to S
// within the retry bound; A's port monitors fire exactly once with the
// right reason: transport_error for S's port, the kill reason for B's
// (two monitors of one port), no_such_port for a port that does not
// exist.
func TestGlobalSimSeedCrash(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := memnet.New(44, memnet.WithDefaultLink(memnet.LinkConfig{Latency: 2 * time.Millisecond}), memnet.WithTrace(0))
		s := goGlobal(t, w, "S", true, nil)
		a := goGlobal(t, w, "A", true, nil, seedAddr("S"))
		b := goGlobal(t, w, "B", true, nil, seedAddr("S"))
		time.Sleep(5 * time.Second)
		sp := s.NewPort(func([]any) {})
		bp := b.NewPort(func([]any) {})
		var mu sync.Mutex
		fired := map[string][][]any{}
		watch := func(key, portID string) {
			if _, err := a.Monitor(portID, func(reason []any) {
				mu.Lock()
				fired[key] = append(fired[key], reason)
				mu.Unlock()
			}); err != nil {
				t.Fatalf("Monitor %s: %v", portID, err)
			}
		}
		watch("S", sp.ID())
		watch("B", bp.ID())
		watch("B2", bp.ID())
		watch("none", "B#nosuch")
		time.Sleep(time.Second)

		w.Crash("S")
		time.Sleep(8 * time.Second)
		s.Close()
		if got := a.Peers(); !slices.Equal(got, []string{"B"}) {
			t.Errorf("after the crash A's peers are %v, want [B]", got)
		}
		if err := b.Kill(bp.ID(), "bye"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second)

		w.Restart("S")
		s2 := goGlobal(t, w, "S", true, nil)
		time.Sleep(globalRetryBound)
		for _, n := range []*transport.Node{a, b} {
			if got := n.Peers(); len(got) != 2 {
				t.Errorf("after the recovery %s's peers are %v, want both others", n.ID(), got)
			}
		}
		checkListeners(t, []*transport.Node{a, b, s2}, nil)
		mu.Lock()
		got := fmt.Sprint(fired)
		mu.Unlock()
		want := fmt.Sprint(map[string][][]any{
			"S":    {{"transport_error", "S", "x"}},
			"B":    {{"bye"}},
			"B2":   {{"bye"}},
			"none": {{"no_such_port", "cannot monitor nonexistent port", "B#nosuch"}},
		})
		mu.Lock()
		sr := fired["S"]
		if len(sr) == 1 && len(sr[0]) == 3 && sr[0][0] == "transport_error" && sr[0][1] == "S" {
			sr[0][2] = "x" // the text is the connection's error
		}
		got = fmt.Sprint(fired)
		mu.Unlock()
		if got != want {
			t.Errorf("monitors fired %v, want exactly %v", got, want)
		}
		t.Logf("monitors fired %v; S's reason %v", got, sr)
		closeAll(a, b, s2)
	})
}
