package transport_test

// Transport-level replays of the Perl network transcripts
// (core/peer/testdata/transcripts; the peer machine replays the same
// sessions in core/peer/testdata/perl_*.txt): seed_db, seed_down,
// seed_three, seed_three_lazy, seed_mon_stale and monitor_down, with our
// node in the role of the Perl node it replaces there, over memnet and
// real TCP. Every burst our node writes is compared as a set with what
// the Perl node wrote (Perl's order is random); sync barriers keep the
// order across connections that the recording had.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/aemp-go/dataconn/core/wire"
	"github.com/aemp-go/dataconn/transport"
)

// joinSlave greets s as the Perl slave id of seed_db/seed_down/seed_three
// does: bare g_slave, its db (its 'l), g_find of the seed, bare g_slave.
// Our seed answers g_global and g_found with its listeners.
func joinSlave(p *perlNode, seedID, seedAddr, addr string) *perlConn {
	pc := p.mustHandshake(p.dial(seedAddr), perlHS{role: perlDialed})
	pc.send(`["","g_slave"]`, fmt.Sprintf(`["","g_slave",{"'l":{%q:[%q]}}]`, p.id, addr),
		fmt.Sprintf(`["","g_find",%q]`, seedID), `["","g_slave"]`)
	pc.expectBurst(`["","g_global"]`, fmt.Sprintf(`["","g_found",%q,[%q]]`, seedID, seedAddr))
	return pc
}

// joinGlobal greets the seed as a Perl node that loaded Global at
// start-up does (seed_down, seed_three, seed_nobind: A): its db with 'l
// and 'g, g_mon1 'g, g_global, bare g_slave. It checks our seed's answer
// (g_global, the 'g family, the 'g flap, A joining 'g, the g_set with the
// merged shards in setL) and sends A's half of the exchange; it returns
// after our seed's answers to that, which it checks too.
func joinGlobal(p *perlNode, seedID, seedAddr, addr string, gNow, setL string) *perlConn {
	pc := p.mustHandshake(p.dial(seedAddr), perlHS{role: perlDialed})
	a, s := p.id, seedID
	pc.send(fmt.Sprintf(`["","g_slave",{"'g":{%q:null},"'l":{%q:[%q]}}]`, a, a, addr), `["","g_mon1","'g"]`,
		`["","g_global"]`, `["","g_slave"]`)
	pc.expectBurst(`["","g_global"]`, fmt.Sprintf(`["","g_chg1","'g",%s]`, gNow),
		fmt.Sprintf(`["","g_chg2","'g",{},[%q]]`, a), fmt.Sprintf(`["","g_upd","'g",{%q:null},[]]`, a),
		fmt.Sprintf(`["","g_chg2","'g",{%q:null},[]]`, a),
		fmt.Sprintf(`["","g_set",{"'g":%s,"'l":%s}]`, gNow, setL))
	pc.send(fmt.Sprintf(`["","g_upd","'g",{%q:null}]`, s),
		fmt.Sprintf(`["","g_set",{"'g":{%q:null},"'l":{%q:[%q]}}]`, a, a, addr),
		fmt.Sprintf(`["","g_upd","'l",{%q:[%q]}]`, s, seedAddr))
	pc.expectBurst(fmt.Sprintf(`["","g_chg2","'g",{%q:null},[]]`, s), fmt.Sprintf(`["","g_chg2","'g",{%q:null},[]]`, a),
		fmt.Sprintf(`["","g_upd","'l",{%q:[%q]},[]]`, a, addr))
	return pc
}

// checkFamily compares a family of our node's database with want (JSON).
func checkFamily(t *testing.T, n *transport.Node, family, want string) {
	t.Helper()
	got := n.DBFamily(family)
	if got == nil {
		got = map[string]any{}
	}
	if g := canonical(got); g != want {
		t.Errorf("%s's family %s is %s, want %s", n.ID(), family, g, want)
	}
}

// TestPerlSeedDBReplay: transcripts/seed_db.txt with our node as the seed
// S of two Perl slaves D and E that use the database API: db_set as
// two-argument g_upd, db_mon (g_chg1, then g_chg2 per change, E's
// included), db_family/db_keys/db_values answered by request id, db_del
// (SET null), E leaving (its keys go), db_mon ending (nothing after
// g_mon0).
func TestPerlSeedDBReplay(t *testing.T) {
	onReplayNets(t, 61, func(t *testing.T, rn *replayNet) {
		s, sAddr := rn.goNode(t, "S", true, nil)
		d, e := rn.perl(t, "D", true), rn.perl(t, "E", true)
		script := goScript("D and E", func() {
			dc := joinSlave(d, "S", sAddr, d.addr)
			// [0.3062] E joins the same way.
			ec := joinSlave(e, "S", sAddr, e.addr)
			// [0.4970-0.8974] D's db_set twice, then db_mon.
			dc.send(`["","g_upd","svc",{"k1":["v",1]}]`, `["","g_upd","svc",{"k2":"two"}]`, `["","g_mon1","svc"]`)
			dc.expectBurst(`["","g_chg1","svc",{"k1":["v",1],"k2":"two"}]`)
			// [1.0972-1.4970] the queries.
			dc.send(`["","g_db_family","svc","b"]`, `["","g_db_keys","svc","c"]`, `["","g_db_values","svc","d"]`)
			dc.expectBurst(`["","g_reply","b",{"k1":["v",1],"k2":"two"}]`, `["","g_reply","c",["k1","k2"]]`,
				`["","g_reply","d",[["v",1],"two"]]`)
			// [1.8032] E sets k3: the monitor D hears of it.
			ec.send(`["","g_upd","svc",{"k3":3}]`)
			dc.expectBurst(`["","g_chg2","svc",{"k3":3},[]]`)
			// [2.0974-2.4970] db_del (a null set), a change, db_reg's key
			// and its deletion.
			dc.send(`["","g_upd","svc",null,["k1"]]`, `["","g_upd","svc",{"k2":"changed"}]`,
				`["","g_upd","svc",{"D#r12VC8WYTb":"meta"}]`, `["","g_upd","svc",null,["D#r12VC8WYTb"]]`)
			dc.expectBurst(`["","g_chg2","svc",{},["k1"]]`, `["","g_chg2","svc",{"k2":"changed"},[]]`,
				`["","g_chg2","svc",{"D#r12VC8WYTb":"meta"},[]]`, `["","g_chg2","svc",{},["D#r12VC8WYTb"]]`)
			// [2.9030] E leaves: its shard goes.
			ec.closeConn()
			dc.expectBurst(`["","g_chg2","svc",{},["k3"]]`)
			// [3.2973] db_mon ends; the queries still work.
			dc.send(`["","g_mon0","svc"]`, `["","g_db_family","nosuch","e"]`, `["","g_db_keys","svc","f"]`)
			dc.expectBurst(`["","g_reply","e",{}]`, `["","g_reply","f",["k2"]]`)
			// Not in the recording: after g_mon0 a change is not sent.
			dc.send(`["","g_upd","svc",{"k4":4}]`)
			dc.settled("end")
		})
		waitScript(t, script)
		checkFamily(t, s, "svc", `{"k2":"changed","k4":4}`)
		if l, known := s.Listeners("D"); !known || !slices.Equal(l, []string{d.addr}) {
			t.Errorf("S knows D's listeners as %v (known=%v)", l, known)
		}
		waitUntil(t, "E's entry to go", func() bool { _, known := s.Listeners("E"); return !known })
	})
}

// TestPerlSeedDownReplay: transcripts/seed_down.txt with our node as the
// seed S: A is global from start-up with S as its master, D and C are
// slaves, D monitors 'l, 'g and svc. C leaves: S sends its shard's
// deletions to the global A (g_upd) and to the monitor D (g_chg2). Then A
// leaves: its entries sat in S's own db, so D hears of their deletion,
// and S redials the departed global.
func TestPerlSeedDownReplay(t *testing.T) {
	onReplayNets(t, 62, func(t *testing.T, rn *replayNet) {
		s, sAddr := rn.goNode(t, "S", true, nil)
		a, d, c := rn.perl(t, "A", true), rn.perl(t, "D", true), rn.perl(t, "C", true)
		script := goScript("A, D and C", func() {
			ac := joinGlobal(a, "S", sAddr, a.addr, `{"A":null,"S":null}`, fmt.Sprintf(`{"S":[%q]}`, sAddr))
			// [0.2951] slave D joins; its 'l goes to the global A.
			dc := joinSlave(d, "S", sAddr, d.addr)
			ac.expectBurst(fmt.Sprintf(`["","g_upd","'l",{"D":[%q]},[]]`, d.addr))
			// [0.5912] D monitors 'l.
			dc.send(`["","g_mon1","'l"]`)
			dc.expectBurst(fmt.Sprintf(`["","g_chg1","'l",{"A":[%q],"D":[%q],"S":[%q]}]`, a.addr, d.addr, sAddr))
			// [0.5981] slave C joins: A gets its 'l as g_upd, D as g_chg2.
			cc := joinSlave(c, "S", sAddr, c.addr)
			ac.expectBurst(fmt.Sprintf(`["","g_upd","'l",{"C":[%q]},[]]`, c.addr))
			dc.expectBurst(fmt.Sprintf(`["","g_chg2","'l",{"C":[%q]},[]]`, c.addr))
			// [0.6918-0.7917] D monitors 'g and svc (empty: null).
			dc.send(`["","g_mon1","'g"]`, `["","g_mon1","svc"]`)
			dc.expectBurst(`["","g_chg1","'g",{"A":null,"S":null}]`, `["","g_chg1","svc",null]`)
			// [1.0953] C publishes a service.
			cc.send(`["","g_upd","svc",{"c1":"C-service"}]`)
			ac.expectBurst(`["","g_upd","svc",{"c1":"C-service"},[]]`)
			dc.expectBurst(`["","g_chg2","svc",{"c1":"C-service"},[]]`)
			// [1.9958] C leaves.
			cc.closeConn()
			ac.expectBurst(`["","g_upd","svc",{},["c1"]]`, `["","g_upd","'l",{},["C"]]`)
			dc.expectBurst(`["","g_chg2","svc",{},["c1"]]`, `["","g_chg2","'l",{},["C"]]`)
			ac.settled("c-gone")
			// [3.0951] the global A leaves; S redials it.
			ac.closeConn()
			dc.expectBurst(`["","g_chg2","'l",{},["A"]]`, `["","g_chg2","'g",{},["A"]]`)
			a.nextConn().Close()
			dc.settled("end")
		})
		waitScript(t, script)
		checkFamily(t, s, "'g", `{"S":null}`)
		checkFamily(t, s, "'l", canonical(map[string]any{"D": []string{d.addr}, "S": []string{sAddr}}))
	})
}

// TestPerlSeedThreeReplay: transcripts/seed_three.txt with our node as
// the seed S: C joins as a slave; A, global from start-up, learns C's
// listener from S's g_set; C turns global lazily (its db_set as a
// slave's g_upd, g_global, g_set), and A hears all of it; then A leaves
// and C hears the deletions of A's entries in S's db.
func TestPerlSeedThreeReplay(t *testing.T) {
	onReplayNets(t, 63, func(t *testing.T, rn *replayNet) {
		s, sAddr := rn.goNode(t, "S", true, nil)
		c, a := rn.perl(t, "C", true), rn.perl(t, "A", true)
		script := goScript("C and A", func() {
			cc := joinSlave(c, "S", sAddr, c.addr)
			// [0.3012] A takes S as its master and learns C's listener.
			ac := joinGlobal(a, "S", sAddr, a.addr, `{"A":null,"S":null}`, fmt.Sprintf(`{"C":[%q],"S":[%q]}`, c.addr, sAddr))
			// [1.3009] C turns global.
			cc.send(fmt.Sprintf(`["","g_upd","'l",{"C":[%q]},[]]`, c.addr), `["","g_upd","'g",{"C":null},[]]`, `["","g_global"]`)
			cc.expectBurst(`["","g_upd","'g",{"C":null},[]]`,
				fmt.Sprintf(`["","g_set",{"'g":{"A":null,"C":null,"S":null},"'l":{"A":[%q],"S":[%q]}}]`, a.addr, sAddr))
			cc.send(`["","g_upd","'g",{"S":null},[]]`, fmt.Sprintf(`["","g_set",{"'l":{"C":[%q]},"'g":{"S":null,"C":null}}]`, c.addr))
			cc.expectBurst(fmt.Sprintf(`["","g_upd","'l",{"C":[%q]},[]]`, c.addr))
			// [1.3011-1.3017] what A heard of it.
			cl := fmt.Sprintf(`["","g_upd","'l",{"C":[%q]},[]]`, c.addr)
			ac.expectBurst(cl, `["","g_upd","'g",{"C":null},[]]`, `["","g_chg2","'g",{"C":null},[]]`,
				`["","g_upd","'g",{},["C"]]`, `["","g_chg2","'g",{},["C"]]`, `["","g_upd","'l",{},["C"]]`,
				`["","g_upd","'g",{"C":null},[]]`, `["","g_chg2","'g",{"C":null},[]]`, `["","g_chg2","'g",{"S":null},[]]`,
				`["","g_chg2","'g",{"C":null,"S":null},[]]`, cl)
			ac.settled("c-global")
			cc.settled("c-global")
			// [3.2970] A leaves; S redials it.
			ac.closeConn()
			cc.expectBurst(`["","g_upd","'g",{},["A"]]`, `["","g_upd","'l",{},["A"]]`)
			a.nextConn().Close()
			cc.settled("end")
		})
		waitScript(t, script)
		if g := s.Globals(); !slices.Equal(g, []string{"C"}) {
			t.Errorf("S's globals are %v, want [C]", g)
		}
		if l, known := s.Listeners("C"); !known || !slices.Equal(l, []string{c.addr}) {
			t.Errorf("S knows C's listeners as %v (known=%v)", l, known)
		}
	})
}

// TestPerlSeedThreeLazyReplay: transcripts/seed_three_lazy.txt with our
// node as A, a slave of the Perl seed S. A Perl A turns global only when
// its connect_to C runs, and loses that first _expect ("no known
// address"). Our node is global from the start: it gets S's db at the
// g_global exchange right after joining, C's listener included, so its
// data connection to C (the Perl flow: _expect, the snd round trip, the
// aemp-dataconn connection to C's listener) succeeds at once, while a
// node nobody told us of fails at once.
func TestPerlSeedThreeLazyReplay(t *testing.T) {
	onReplayNets(t, 64, func(t *testing.T, rn *replayNet) {
		s, c := rn.perl(t, "S", true), rn.perl(t, "C", true)
		a, aAddr := rn.goNode(t, "A", true, func(cfg *transport.Config) { cfg.Seeds = []string{s.addr} })
		if err := a.Start(); err != nil {
			t.Fatal(err)
		}
		const size = 3000
		script := goScript("S and C", func() {
			sc := s.mustHandshake(s.nextConn(), perlHS{role: perlAccepted})
			sc.expectBurst(`["","g_slave"]`, `["","g_global"]`)
			sc.send(`["","g_global"]`)
			sc.expectBurst(`["","g_upd","'g",{"S":null},[]]`,
				fmt.Sprintf(`["","g_set",{"'g":{"A":null,"S":null},"'l":{"A":[%q]}}]`, aAddr))
			// [0.8020] S's db: its slaves' shards, C's 'l among them.
			sc.send(fmt.Sprintf(`["","g_set",{"'g":{"A":null,"S":null},"'l":{"C":[%q],"S":[%q]}}]`, c.addr, s.addr))
			sc.expectBurst(fmt.Sprintf(`["","g_upd","'l",{"S":[%q]},[]]`, s.addr))
			sc.settled("db")
			// C: our node's messaging connection, _expect and the round
			// trip, then the data connection to the same listener.
			cc := c.mustHandshake(c.nextConn(), perlHS{role: perlAccepted})
			checkGreetingOf(cc, wire.ProtocolMessaging, "A")
			exp := cc.expectEventually(wire.NodeMsgTagExpect)
			for _, m := range cc.skipped {
				if tagOf(m) != "g_global" {
					scriptFail("C: before _expect our node sent %v", m)
				}
			}
			cc.skipped = nil
			id, _ := wire.AsString(exp[2])
			if fn, _ := wire.AsString(exp[5]); fn != "main::receiver" || len(exp) != 8 {
				scriptFail("C: _expect %v", exp)
			}
			cc.answerSnd(cc.expectEventually(wire.NodeMsgTagSnd))
			dc := c.mustHandshake(c.nextConn(), perlHS{role: perlAccepted})
			if v, _ := dc.peer.Get(wire.KeyDataConnID); v != id || dc.proto != wire.ProtocolDataConn {
				scriptFail("C: data connection greeting %q, want aemp-dataconn with dataconn_id=%s", dc.peerLines[0], id)
			}
			if n, _ := dc.readAll(); n != size {
				scriptFail("C: %d bytes on the data connection, want %d", n, size)
			}
			dc.close()
		})
		waitUntil(t, "C's listener from S's db", func() bool {
			l, known := a.Listeners("C")
			return known && slices.Equal(l, []string{c.addr})
		})
		ctx, cancel := context.WithTimeout(context.Background(), perlStepLimit)
		defer cancel()
		conn, err := a.ConnectTo(ctx, "C", 3*time.Second, "main::receiver", "hello", int64(42))
		if err != nil {
			t.Fatalf("ConnectTo C: %v (script: %v)", err, scriptState(script))
		}
		if _, err := conn.Write(perlPattern(size)); err != nil {
			t.Fatal(err)
		}
		closeWrite(conn)
		waitScript(t, script)
		conn.Close()
		start := time.Now()
		if _, err := a.ConnectTo(ctx, "Z", 3*time.Second, "main::receiver"); !errors.Is(err, transport.ErrDataConnNoRoute) {
			t.Errorf("ConnectTo an unknown node: %v, want ErrDataConnNoRoute", err)
		}
		if d := time.Since(start); d >= 3*time.Second {
			t.Errorf("ConnectTo an unknown node failed after %v, want at once", d)
		}
	})
}

// TestPerlSeedMonStaleReplay: transcripts/seed_mon_stale.txt. First our
// node is the seed S: D monitors svc and leaves, a new D process joins
// with the same ID, E sets svc/k; a Perl S sends the new D a g_chg2 it
// never asked for, our S forgets a departed node's monitors and sends
// nothing.
func TestPerlSeedMonStaleReplay(t *testing.T) {
	onReplayNets(t, 65, func(t *testing.T, rn *replayNet) {
		{
			s, sAddr := rn.goNode(t, "S", true, nil)
			d, e := rn.perl(t, "D", true), rn.perl(t, "E", true)
			script := goScript("D and E", func() {
				dc := d.mustHandshake(d.dial(sAddr), perlHS{role: perlDialed})
				dc.send(fmt.Sprintf(`["","g_slave",{"'l":{"D":[%q]}}]`, d.addr), `["","g_find","S"]`, `["","g_mon1","svc"]`)
				dc.expectBurst(`["","g_global"]`, fmt.Sprintf(`["","g_found","S",[%q]]`, sAddr), `["","g_chg1","svc",null]`)
				// [0.9982] D's first process ends; [1.3007] the new D and
				// [1.8057] E join; E sets and leaves.
				dc.closeConn()
				scriptWait("S to see D's first process end", func() bool { return !hasPeer(s, "D")() })
				d2 := d.mustHandshake(d.dial(sAddr), perlHS{role: perlDialed})
				d2.send(fmt.Sprintf(`["","g_slave",{"'l":{"D":[%q]}}]`, d.addr))
				d2.expectBurst(`["","g_global"]`)
				d2.sync("joined")
				ec := e.mustHandshake(e.dial(sAddr), perlHS{role: perlDialed})
				ec.send(fmt.Sprintf(`["","g_slave",{"'l":{"E":[%q]}}]`, e.addr), `["","g_upd","svc",{"k":"v"}]`)
				ec.expectBurst(`["","g_global"]`)
				ec.settled("set")
				ec.closeConn()
				// No stale g_chg2 for the new D.
				d2.settled("end")
			})
			waitScript(t, script)
		}
	})
}

// TestPerlSeedMonStaleSlaveReplay: the other half of seed_mon_stale.txt:
// our node is the new D, and the stale g_chg2 of a family it does not
// monitor, from a Perl S, change nothing.
func TestPerlSeedMonStaleSlaveReplay(t *testing.T) {
	onReplayNets(t, 67, func(t *testing.T, rn *replayNet) {
		{
			s := rn.perl(t, "S", true)
			d, _ := rn.goNode(t, "D", true, func(cfg *transport.Config) { cfg.Seeds = []string{s.addr} })
			if err := d.Start(); err != nil {
				t.Fatal(err)
			}
			script := goScript("S", func() {
				sc := s.mustHandshake(s.nextConn(), perlHS{role: perlAccepted})
				sc.expectBurst(`["","g_slave"]`, `["","g_global"]`)
				// [2.1028] the stale change of a family D does not monitor.
				sc.send(`["","g_chg2","svc",{"k":"v"},[]]`)
				sc.settled("set")
				if f := d.DBFamily("svc"); f != nil {
					scriptFail("a stale g_chg2 changed D's svc: %v", f)
				}
				// [2.8032] and its deletion.
				sc.send(`["","g_chg2","svc",{},["k"]]`)
				sc.settled("end")
			})
			waitScript(t, script)
			if p := d.Peers(); !slices.Equal(p, []string{"S"}) {
				t.Errorf("D's peers are %v, want [S]", p)
			}
		}
	})
}

// TestPerlMonitorDownReplay: transcripts/monitor_down.txt with our node as
// B, whose seed is the Perl node A. B calls A's main::mon_server, which
// answers with two ports; B monitors the first twice and the second once
// (one mon1 per port). A's process ends: every monitor fires once with
// ["transport_error", "A", MSG], and B restarts seeding at once, then 2r
// and 4r later (checked on memnet, in virtual time).
func TestPerlMonitorDownReplay(t *testing.T) {
	onReplayNets(t, 66, func(t *testing.T, rn *replayNet) {
		a := rn.perl(t, "A", true)
		b, _ := rn.goNode(t, "B", true, func(cfg *transport.Config) { cfg.Seeds = []string{a.addr} })
		got := make(chan []any, 1)
		p := b.NewPort(func(d []any) { got <- d })
		if err := b.Start(); err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		fired := map[string][][]any{}
		attempts := make(chan time.Time, 8)
		lost := make(chan time.Time, 1)
		script := goScript("A", func() {
			ac := a.mustHandshake(a.nextConn(), perlHS{role: perlAccepted})
			ac.expectBurst(`["","g_slave"]`, `["","g_global"]`)
			if err := b.Send("A#", "main::mon_server", p.ID(), 2); err != nil {
				scriptFail("Send to A's node port: %v", err)
			}
			ac.expectBurst(fmt.Sprintf(`["","main::mon_server",%q,2]`, p.ID()))
			ac.send(fmt.Sprintf(`[%q,"ports","A#pAaQPrmcgb","A#pAaQPrmcgc"]`, p.Name()))
			select {
			case d := <-got:
				if canonical(d) != `["ports","A#pAaQPrmcgb","A#pAaQPrmcgc"]` {
					scriptFail("B's port got %v", d)
				}
			case <-time.After(perlStepLimit):
				scriptFail("A's answer did not reach B's port")
			}
			for i, port := range []string{"A#pAaQPrmcgb", "A#pAaQPrmcgb", "A#pAaQPrmcgc"} {
				key := fmt.Sprintf("%d %s", i, port)
				if _, err := b.Monitor(port, func(r []any) {
					mu.Lock()
					fired[key] = append(fired[key], r)
					mu.Unlock()
				}); err != nil {
					scriptFail("Monitor %s: %v", port, err)
				}
			}
			ac.expectBurst(`["","mon1","pAaQPrmcgb"]`, `["","mon1","pAaQPrmcgc"]`)
			ac.settled("monitored")
			// [1.4988] A's process ends. B redials its seed: A is gone,
			// so each attempt is refused (closed before a greeting).
			lost <- time.Now()
			ac.closeConn()
			for range 3 {
				conn := a.nextConn()
				attempts <- time.Now()
				conn.Close()
				if !rn.virtual() {
					break
				}
			}
		})
		waitScript(t, script)
		waitUntil(t, "the monitors to fire", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(fired) == 3
		})
		mu.Lock()
		for k, rs := range fired {
			if len(rs) != 1 || len(rs[0]) != 3 || rs[0][0] != "transport_error" || rs[0][1] != "A" {
				t.Errorf("monitor %s fired %v, want once with [transport_error A MSG]", k, rs)
			}
		}
		mu.Unlock()
		if !rn.virtual() {
			return
		}
		var at []time.Time
		for range 3 {
			at = append(at, <-attempts)
		}
		if d := at[0].Sub(<-lost); d > 100*time.Millisecond {
			t.Errorf("first redial %v after the seed was lost, want at once", d)
		}
		g1, g2 := at[1].Sub(at[0]), at[2].Sub(at[1])
		if g1 < 1200*time.Millisecond || g1 >= 2400*time.Millisecond {
			t.Errorf("second redial %v after the first, want 2r in [1.2 s, 2.4 s)", g1)
		}
		if d := g2 - 2*g1; d < -50*time.Millisecond || d > 50*time.Millisecond {
			t.Errorf("redials %v then %v apart, want 2r then 4r", g1, g2)
		}
	})
}

// scriptWait polls cond in a script (bounded: 2000 polls, 5 ms apart).
func scriptWait(what string, cond func() bool) {
	for range 2000 {
		if cond() {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	scriptFail("timed out waiting for %s", what)
}

// TestPerlSeedNobindNReplay: transcripts/seed_nobind.txt from the other
// side: our node is N, without listeners, seeding to the Perl S. It
// announces 'l [] (known, no listeners), learns A's listener from S,
// dials A from 'g (the keepalive dial a Perl N makes at 1.39 s), the two
// globals exchange their databases, and A's data connection to N works:
// _expect, the snd echo, _connect, and N dials A back. When A leaves, S
// hears it from N and N redials A.
func TestPerlSeedNobindNReplay(t *testing.T) {
	onReplayNets(t, 68, func(t *testing.T, rn *replayNet) {
		size, sum := loadTranscriptFile(t, "../core/peer/testdata/transcripts/seed_nobind.txt").payload(t, 4, "A")
		s, a := rn.perl(t, "S", true), rn.perl(t, "A", true)
		n, _ := rn.goNode(t, "N", false, func(c *transport.Config) { c.Seeds = []string{s.addr} })
		calls := make(chan initCall, 2)
		n.HandleDataConn("main::receiver", hashingInit(calls))
		if err := n.Start(); err != nil {
			t.Fatal(err)
		}
		script := goScript("S and A", func() {
			sc := s.mustHandshake(s.nextConn(), perlHS{role: perlAccepted})
			sc.expectBurst(`["","g_slave"]`, `["","g_global"]`)
			sc.send(`["","g_global"]`)
			sc.expectBurst(`["","g_upd","'g",{"S":null},[]]`, `["","g_set",{"'g":{"N":null,"S":null},"'l":{"N":[]}}]`)
			sc.send(fmt.Sprintf(`["","g_set",{"'g":{"N":null,"S":null},"'l":{"S":[%q]}}]`, s.addr))
			sc.expectBurst(fmt.Sprintf(`["","g_upd","'l",{"S":[%q]},[]]`, s.addr))
			// [0.2993] S tells its globals of A.
			sc.send(`["","g_upd","'g",{"A":null},[]]`, fmt.Sprintf(`["","g_upd","'l",{"A":[%q]},[]]`, a.addr))
			// [1.3888] N dials A: the globals exchange their dbs.
			ac := a.mustHandshake(a.nextConn(), perlHS{role: perlAccepted})
			checkGreetingOf(ac, wire.ProtocolMessaging, "N")
			ac.expectBurst(`["","g_global"]`)
			ac.send(`["","g_global"]`)
			ac.expectBurst(`["","g_upd","'g",{"A":null},[]]`,
				fmt.Sprintf(`["","g_set",{"'g":{"A":null,"N":null,"S":null},"'l":{"N":[],"S":[%q]}}]`, s.addr))
			sc.expectBurst(`["","g_upd","'g",{"A":null},[]]`)
			ac.send(fmt.Sprintf(`["","g_set",{"'l":{"A":[%q]},"'g":{"A":null}}]`, a.addr))
			ac.expectBurst(fmt.Sprintf(`["","g_upd","'l",{"A":[%q]},[]]`, a.addr))
			sc.expectBurst(fmt.Sprintf(`["","g_upd","'l",{"A":[%q]},[]]`, a.addr))
			// [2.2952] A's data connection to N, which has no listeners.
			ac.send(`["","AnyEvent::MP::DataConn::_expect","b@A","A#wN6OiNX57b",3,"main::receiver","hello",42]`,
				`["","snd","A#wN6OiNX57c"]`)
			ac.expectBurst(`["wN6OiNX57c"]`)
			ac.send(`["","AnyEvent::MP::DataConn::_connect","b@A","A"]`)
			dc := a.mustHandshake(a.nextConn(), perlHS{role: perlAccepted})
			if v, _ := dc.peer.Get(wire.KeyDataConnID); v != "b@A" || dc.proto != wire.ProtocolDataConn {
				scriptFail("dial-back greeting %q: want aemp-dataconn with dataconn_id=b@A", dc.peerLines[0])
			}
			if _, err := dc.w.Write(perlPattern(size)); err != nil {
				scriptFail("write: %v", err)
			}
			closeWrite(dc.w)
			dc.raw.SetReadDeadline(time.Now().Add(perlStepLimit))
			io.Copy(io.Discard, dc.r)
			ac.settled("dc")
			// [4.2960] A leaves: N tells S, and redials A.
			ac.closeConn()
			sc.expectBurst(`["","g_upd","'l",{},["A"]]`, `["","g_upd","'g",{},["A"]]`)
			a.nextConn().Close()
			sc.send(`["","g_upd","'g",{},["A"]]`, `["","g_upd","'l",{},["A"]]`)
			sc.settled("end")
		})
		waitScript(t, script)
		checkCall(t, nextCall(t, calls), "A", size, sum, "hello", int64(42))
		checkFamily(t, n, "'g", `{"N":null,"S":null}`)
	})
}
