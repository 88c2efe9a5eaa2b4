package transport_test

// Transport-level replay of transcripts/seed_three.txt with our node as
// C (TestPerlSeedThreeReplay has it as the seed S).

import (
	"fmt"
	"io"
	"slices"
	"testing"
	"time"

	"github.com/aemp-go/dataconn/core/wire"
	"github.com/aemp-go/dataconn/transport"
)

// TestPerlSeedThreeCReplay: transcripts/seed_three.txt with our node as C,
// a node seeding to the Perl seed S, over memnet and TCP. A Perl C joins
// as a slave and turns global lazily (t=1.30), when its DataConn loads;
// ours is global from the start (Config.Global), so it plays the C of
// t=1.30 at once: g_slave and g_global to S, the g_upd/g_set exchange
// with S, the mirror of S's 'l. When A, global from start-up with S as
// its master, joins S, S tells its globals (C now among them) A's 'g and
// 'l entries, and our C meets A: A's g_global and g_set, and C's g_set
// with its listener. Then A opens the recording's data connection to C
// (_expect b@A with main::receiver "hello" 42, the snd round trip, the
// aemp-dataconn connection to C's listener) and our init function gets
// the payload: Perl → Go with a Perl seed and a second Perl global. At
// the end A leaves (t=3.297): C sends S the deletions of A's entries, as
// the recording's C does, S sends its own, C forgets A and redials it.
func TestPerlSeedThreeCReplay(t *testing.T) {
	onReplayNets(t, 75, func(t *testing.T, rn *replayNet) {
		s, a := rn.perl(t, "S", true), rn.perl(t, "A", true)
		c, cAddr := rn.goNode(t, "C", true, func(cfg *transport.Config) { cfg.Seeds = []string{s.addr} })
		calls := make(chan initCall, 2)
		c.HandleDataConn("main::receiver", hashingInit(calls))
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		const size = 4096
		script := goScript("S and A", func() {
			sc := s.mustHandshake(s.nextConn(), perlHS{role: perlAccepted})
			sc.expectBurst(`["","g_slave"]`, `["","g_global"]`)
			sc.send(`["","g_global"]`)
			sc.expectBurst(`["","g_upd","'g",{"S":null},[]]`,
				fmt.Sprintf(`["","g_set",{"'g":{"C":null,"S":null},"'l":{"C":[%q]}}]`, cAddr))
			sc.send(`["","g_upd","'g",{"C":null},[]]`, fmt.Sprintf(`["","g_set",{"'g":{"S":null},"'l":{"S":[%q]}}]`, s.addr))
			sc.expectBurst(fmt.Sprintf(`["","g_upd","'l",{"S":[%q]},[]]`, s.addr))
			sc.settled("joined")
			// [0.3014-0.3016] A joins S: S tells its globals.
			sc.send(`["","g_upd","'g",{"A":null},[]]`, fmt.Sprintf(`["","g_upd","'l",{"A":[%q]},[]]`, a.addr))
			// Our C, a global, dials the new member of 'g.
			ac := a.mustHandshake(a.nextConn(), perlHS{role: perlAccepted})
			checkGreetingOf(ac, wire.ProtocolMessaging, "C")
			ac.send(`["","g_global"]`)
			ac.expectBurst(`["","g_global"]`, `["","g_upd","'g",{"A":null},[]]`,
				fmt.Sprintf(`["","g_set",{"'g":{"A":null,"C":null,"S":null},"'l":{"C":[%q],"S":[%q]}}]`, cAddr, s.addr))
			// [1.3021] A's g_set: its local db.
			ac.send(fmt.Sprintf(`["","g_set",{"'g":{"A":null},"'l":{"A":[%q]}}]`, a.addr))
			// [1.3020-1.3023] the mirror of A's 'l, to A and to S, and
			// A joining C's 'g, to S (the recording's C: its master S).
			ac.expectBurst(fmt.Sprintf(`["","g_upd","'l",{"A":[%q]},[]]`, a.addr))
			sc.expectBurst(`["","g_upd","'g",{"A":null},[]]`, fmt.Sprintf(`["","g_upd","'l",{"A":[%q]},[]]`, a.addr))
			ac.settled("met")
			sc.settled("met")
			// [1.2983] A's connect_to C: _expect, the round trip, then
			// the data connection to the listener C announced.
			ac.send(`["","AnyEvent::MP::DataConn::_expect","b@A","A#xHDTgJs2Xb",3,"main::receiver","hello",42]`)
			ac.settled("xHDTgJs2Xc")
			dc := a.mustHandshake(a.dial(cAddr), perlHS{role: perlDataDialed, dataconnID: "b@A"})
			checkGreetingOf(dc, wire.ProtocolMessaging, "C")
			if _, err := dc.w.Write(perlPattern(size)); err != nil {
				scriptFail("write payload: %v", err)
			}
			closeWrite(dc.w)
			dc.raw.SetReadDeadline(time.Now().Add(perlStepLimit))
			io.Copy(io.Discard, dc.r)
			// [3.2970] A leaves: C deletes A's entries, which sat in its
			// own db, and tells S (3.2986), which sends its deletions too;
			// C redials the departed global.
			ac.closeConn()
			sc.expectBurst(`["","g_upd","'g",{},["A"]]`, `["","g_upd","'l",{},["A"]]`)
			sc.send(`["","g_upd","'g",{},["A"]]`, `["","g_upd","'l",{},["A"]]`)
			a.nextConn().Close()
			sc.settled("end")
		})
		waitScript(t, script)
		checkCall(t, nextCall(t, calls), "A", size, patternSum(size), "hello", int64(42))
		waitUntil(t, "C to forget A", func() bool { _, known := c.Listeners("A"); return !known })
		if g := c.Globals(); !slices.Equal(g, []string{"S"}) {
			t.Errorf("C's globals are %v, want [S]", g)
		}
		if l, known := c.Listeners("S"); !known || !slices.Equal(l, []string{s.addr}) {
			t.Errorf("C knows S's listeners as %v (known=%v)", l, known)
		}
	})
}
