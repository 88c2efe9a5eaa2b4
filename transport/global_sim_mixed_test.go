package transport_test

// Mixed variants of the global simulations (global_sim_test.go): Go nodes
// and scripted Perl nodes (global_sim_perl_test.go) in one memnet network
// under testing/synctest: three globals meshing, one of them a Perl
// global; a Go node and a Perl slave both waiting for a seed that starts
// late; Perl slaves riding out a seed crash and its recovery.

import (
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aemp-go/dataconn/memnet"
	"github.com/aemp-go/dataconn/transport"
)

// checkPerlKnows asserts that the scripted Perl global p was told the
// listeners of every Go node in nodes.
func checkPerlKnows(t *testing.T, p *scriptedPerl, nodes []*transport.Node) {
	t.Helper()
	for _, n := range nodes {
		if got, known := p.knows(n.ID()); !known || !slices.Equal(got, n.Addrs()) {
			t.Errorf("Perl global %s knows %s's listeners as %v (known=%v), want %v", p.id, n.ID(), got, known, n.Addrs())
		}
	}
}

// checkPerlServed asserts that the scripted Perl nodes served every data
// connection announced to them, and nothing else.
func checkPerlServed(t *testing.T, perls []*scriptedPerl) {
	t.Helper()
	for _, p := range perls {
		p.mu.Lock()
		if len(p.errs) != 0 || len(p.expects) != 0 {
			t.Errorf("Perl node %s: failures %v, expectations never used %v", p.id, p.errs, p.expects)
		}
		p.mu.Unlock()
	}
}

// checkPerlDataConn opens data connection n from the Perl node p to
// target (the Perl way) and checks the target's answer.
func checkPerlDataConn(t *testing.T, p *scriptedPerl, target string, n int, seed bool) {
	t.Helper()
	got, err := p.connectTo(target, n, seed)
	if want := "hello from " + target; got != want || err != nil {
		t.Errorf("Perl data connection %s → %s read %q, %v; want %q", p.id, target, got, err, want)
	}
}

// TestGlobalSimThreeGlobalsMeshPerl: the Go seed S, the Go global A and
// the Perl global P (global from start-up, S its seed and master, as A in
// seed_three.txt and seed_down.txt) mesh: P learns A as a global from the
// seed's 'g (g_chg1/g_chg2) and dials it, the two exchange g_global and
// g_set; every node is connected to both others, knows both as globals
// and knows their listeners, within the retry bound; data connections
// succeed between the Go nodes both ways, from each Go node to P, and
// from P to each Go node (P's addresses from what it was told, as a Perl
// global's DataConn finds them).
func TestGlobalSimThreeGlobalsMeshPerl(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := memnet.New(45, memnet.WithDefaultLink(memnet.LinkConfig{Latency: 3 * time.Millisecond}), memnet.WithTrace(0))
		s := goGlobal(t, w, "S", true, nil)
		a := goGlobal(t, w, "A", true, nil, seedAddr("S"))
		p := startPerlGlobal(t, w, "P", "S")
		time.Sleep(globalRetryBound)
		nodes := []*transport.Node{s, a}
		checkListeners(t, nodes, []*scriptedPerl{p})
		checkPerlKnows(t, p, nodes)
		for _, n := range nodes {
			others := []string{"A", "P", "S"}
			others = slices.DeleteFunc(others, func(id string) bool { return id == n.ID() })
			if got := n.Peers(); !slices.Equal(got, others) {
				t.Errorf("%s is connected to %v, want %v", n.ID(), got, others)
			}
			if got := n.Globals(); !slices.Equal(got, others) {
				t.Errorf("%s knows the globals %v, want %v", n.ID(), got, others)
			}
		}
		for _, id := range []string{"S", "A"} {
			if !p.connected(id) {
				t.Errorf("Perl global P is not connected to %s", id)
			}
			if !p.globalsKnown()[id] {
				t.Errorf("Perl global P knows the globals %v, want %s among them", p.globalsKnown(), id)
			}
		}
		checkDataConn(t, a, s)
		checkDataConn(t, s, a)
		checkDataConnToPerl(t, a, p)
		checkDataConnToPerl(t, s, p)
		checkPerlDataConn(t, p, "A", 1, false)
		checkPerlDataConn(t, p, "S", 2, true)
		checkPerlServed(t, []*scriptedPerl{p})
		closeAll(a, s)
	})
}

// TestGlobalSimSeedStartsLateMixed: the Go node A and the Perl slave P
// both start 5 s before their Go seed S exists; each retries on Perl's
// schedule and reaches S within the retry bound of S's start. Then every
// node knows every listener (A learns P's from S's forwarding, P finds A
// and S with g_find), and data connections succeed between A and S, A
// and P, and from P to S.
func TestGlobalSimSeedStartsLateMixed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := memnet.New(46, memnet.WithDefaultLink(memnet.LinkConfig{Latency: time.Millisecond}), memnet.WithTrace(0))
		a := goGlobal(t, w, "A", true, nil, seedAddr("S"))
		ups := make(chan time.Time, 4)
		a.MonitorNode("S", func(up bool, _ error) {
			if up {
				ups <- time.Now()
			}
		})
		p := startPerlSlave(t, w, "P", "S")
		time.Sleep(5 * time.Second)
		if got := a.Peers(); len(got) != 0 {
			t.Fatalf("A is connected to %v before its seed exists", got)
		}
		if got := p.upTimes(); len(got) != 0 {
			t.Fatalf("P reached its seed at %v before it exists", got)
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
		time.Sleep(globalRetryBound)
		if got := p.upTimes(); len(got) != 1 || got[0].Sub(started) > globalRetryBound {
			t.Errorf("P reached its seed at %v after it started (%d times), want once within %v", durationsSince(started, got), len(got), globalRetryBound)
		}
		checkListeners(t, []*transport.Node{a, s}, []*scriptedPerl{p})
		p.ask(t, "A")
		time.Sleep(time.Second)
		if got := strList(p.foundOf("S")); !slices.Equal(got, []string{seedAddr("S")}) {
			t.Errorf("P: g_found of its seed is %v", p.foundOf("S"))
		}
		if got := strList(p.foundOf("A")); !slices.Equal(got, []string{seedAddr("A")}) {
			t.Errorf("P: g_found of A is %v", p.foundOf("A"))
		}
		checkDataConn(t, a, s)
		checkDataConn(t, s, a)
		checkDataConnToPerl(t, a, p)
		checkDataConnToPerl(t, s, p)
		checkPerlDataConn(t, p, "A", 1, false)
		checkPerlDataConn(t, p, "S", 2, true)
		checkPerlServed(t, []*scriptedPerl{p})
		closeAll(a, s)
	})
}

// durationsSince returns ts as offsets from t0 (for messages).
func durationsSince(t0 time.Time, ts []time.Time) []time.Duration {
	var out []time.Duration
	for _, t := range ts {
		out = append(out, t.Sub(t0))
	}
	return out
}

// TestGlobalSimSeedCrashMixed: the Go seed S of the Go globals A and B
// and of the Perl slaves P1 and P2 crashes and comes back (a new process,
// same id and address). While S is down, A and B stay connected (A also
// to P2, whose port it monitors), and they forget the Perl slaves' listeners, which they knew only from S's
// shard; the Perl slaves redial S on Perl's schedule (at once, 2r, 6r,
// ...). After the recovery every Perl slave is back within the retry
// bound, every node knows every listener again, and data connections
// succeed between every ordered pair of Go nodes, from every Go node to
// every Perl slave, and from every Perl slave to S, A and B. Monitors
// fire exactly once with the right reason: A's monitor of a port P2 does
// not have with no_such_port (P2's answer to mon1); P1's monitor of a
// port of the new S with its kill reason (S's kil0), and no kil0 for the
// port of the process that crashed.
func TestGlobalSimSeedCrashMixed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := memnet.New(47, memnet.WithDefaultLink(memnet.LinkConfig{Latency: 2 * time.Millisecond}), memnet.WithTrace(0))
		s := goGlobal(t, w, "S", true, nil)
		a := goGlobal(t, w, "A", true, nil, seedAddr("S"))
		b := goGlobal(t, w, "B", true, nil, seedAddr("S"))
		perls := []*scriptedPerl{startPerlSlave(t, w, "P1", "S"), startPerlSlave(t, w, "P2", "S")}
		time.Sleep(5 * time.Second)
		checkListeners(t, []*transport.Node{s, a, b}, perls)
		// Monitors: P1 monitors a port of S (mon1 on its seed
		// connection); A monitors a port P2 does not have.
		sp := s.NewPort(func([]any) {})
		if !perls[0].toSeed(jsonMsg("", "mon1", sp.Name())) {
			t.Fatal("P1 is not connected to its seed")
		}
		var mu sync.Mutex
		var fired [][]any
		if _, err := a.Monitor("P2#nosuch", func(r []any) {
			mu.Lock()
			fired = append(fired, r)
			mu.Unlock()
		}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second)

		w.Crash("S")
		time.Sleep(8 * time.Second)
		s.Close()
		for _, n := range []*transport.Node{a, b} {
			if got := n.Peers(); slices.Contains(got, "S") || !slices.Contains(got, map[string]string{"A": "B", "B": "A"}[n.ID()]) {
				t.Errorf("after the crash %s's peers are %v, want the other Go global and not S", n.ID(), got)
			}
			for _, p := range perls {
				if got, known := n.Listeners(p.id); known {
					t.Errorf("after the crash %s still knows %s's listeners %v (from the seed's shard)", n.ID(), p.id, got)
				}
			}
		}
		for _, p := range perls {
			if p.connected("S") {
				t.Errorf("Perl slave %s is still connected to the crashed seed", p.id)
			}
		}

		w.Restart("S")
		restarted := time.Now()
		s2 := goGlobal(t, w, "S", true, nil)
		time.Sleep(globalRetryBound)
		nodes := []*transport.Node{s2, a, b}
		for _, n := range nodes {
			if got := n.Peers(); len(got) < 2 {
				t.Errorf("after the recovery %s's peers are %v, want at least the Go nodes", n.ID(), got)
			}
		}
		for _, p := range perls {
			ups := p.upTimes()
			if len(ups) != 2 || ups[1].Sub(restarted) > globalRetryBound || ups[1].Before(restarted) {
				t.Errorf("Perl slave %s reached its seed at %v after the restart, want twice, the second within %v",
					p.id, durationsSince(restarted, ups), globalRetryBound)
			}
		}
		checkListeners(t, nodes, perls)
		// After the recovery P1 monitors a port of the new S, which is
		// killed with a reason: one kil0 with it, and none for the old
		// process's port.
		sp2 := s2.NewPort(func([]any) {})
		if !perls[0].toSeed(jsonMsg("", "mon1", sp2.Name())) {
			t.Fatal("P1 is not connected to the restarted seed")
		}
		time.Sleep(time.Second)
		sp2.Kill("bye", "now")
		time.Sleep(time.Second)
		if got, want := perls[0].kills(), []string{canonical([]any{"", "kil0", sp2.Name(), "bye", "now"})}; !slices.Equal(got, want) {
			t.Errorf("P1 got the kil0 messages %v, want exactly %v", got, want)
		}
		mu.Lock()
		if want := canonical([][]any{{"no_such_port", "cannot monitor nonexistent port", "P2#nosuch"}}); canonical(fired) != want {
			t.Errorf("A's monitor of P2#nosuch fired %s, want exactly %s", canonical(fired), want)
		}
		mu.Unlock()
		dcs := 0
		for _, p := range perls {
			if got := strList(p.foundOf("S")); !slices.Equal(got, []string{seedAddr("S")}) {
				t.Errorf("Perl slave %s: g_found of its seed after the recovery is %v", p.id, p.foundOf("S"))
			}
			for _, target := range []string{"S", "A", "B"} {
				dcs++
				checkPerlDataConn(t, p, target, dcs, target == "S")
			}
		}
		for _, x := range nodes {
			for _, y := range nodes {
				if x != y {
					checkDataConn(t, x, y)
				}
			}
			for _, p := range perls {
				checkDataConnToPerl(t, x, p)
			}
		}
		checkPerlServed(t, perls)
		for _, p := range perls {
			t.Logf("Perl slave %s reached its seed at %v after the restart", p.id, durationsSince(restarted, p.upTimes()))
		}
		closeAll(a, b, s2)
	})
}
