package transport_test

// Replay of transcripts/seed_global.txt (core/peer/testdata/transcripts)
// against our transport.Node as the seed B, over memnet (under
// testing/synctest) and real TCP on 127.0.0.1: a scripted Perl node A
// uses B as its seed, joins as a slave, turns global, and leaves. Every
// burst our node writes is compared, as a set, with what the Perl B wrote
// (Perl's order is random).

import (
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aemp-go/dataconn/core/wire"
	"github.com/aemp-go/dataconn/transport"
)

// canonical returns the JSON of a message with object keys sorted.
func canonical(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("unencodable %v", v)
	}
	return string(b)
}

// expectBurst reads len(want) messages (passing over keepalives; first
// the ones a sync kept) and checks that they are want as a set.
func (pc *perlConn) expectBurst(want ...string) {
	var got, exp []string
	for _, w := range want {
		var v any
		if err := json.Unmarshal([]byte(w), &v); err != nil {
			scriptFail("bad want %s: %v", w, err)
		}
		exp = append(exp, canonical(v))
	}
	for len(got) < len(want) && len(pc.skipped) > 0 {
		got = append(got, canonical([]any(pc.skipped[0])))
		pc.skipped = pc.skipped[1:]
	}
	for len(got) < len(want) {
		m, err := pc.next(perlStepLimit)
		if err != nil {
			scriptFail("%s: burst %v: after %v: %v", pc.p.id, exp, got, err)
		}
		if tag := tagOf(m); len(m) <= 1 || (tag == "" || tag == wire.NodeMsgTagDevNull) && len(m) == 2 {
			if s, _ := wire.AsString(m[0]); s == "" {
				continue
			}
		}
		got = append(got, canonical([]any(m)))
	}
	slices.Sort(got)
	slices.Sort(exp)
	if !slices.Equal(got, exp) {
		scriptFail("%s: burst %v, want as a set %v", pc.p.id, got, exp)
	}
}

func replaySeedGlobal(t *testing.T, nw, perlNet transport.Network, bind, perlBind string) {
	size, sum := loadTranscriptFile(t, "../core/peer/testdata/transcripts/seed_global.txt").payload(t, 2, "A")
	b, err := transport.NewNode(transport.Config{NodeID: "B", Secret: secret, Logger: quietLogger(), Framings: []string{"json"}, Global: true})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	calls := make(chan initCall, 4)
	b.HandleDataConn("main::receiver", hashingInit(calls))
	bAddr, err := b.Listen(context.Background(), nw, bind)
	if err != nil {
		t.Fatal(err)
	}
	a := newPerlNode(t, perlNet, "A")
	aAddr := a.listen(perlBind)
	redial := make(chan struct{})
	script := goScript("A", func() {
		pc := a.mustHandshake(a.dial(bAddr), perlHS{role: perlDialed})
		// [0.0008] A joins: bare g_slave twice, its db, g_find of the seed.
		pc.send(`["","g_slave"]`, `["","g_slave"]`, fmt.Sprintf(`["","g_slave",{"'l":{"A":[%q]}}]`, aAddr), `["","g_find","B"]`)
		pc.expectBurst(`["","g_global"]`, fmt.Sprintf(`["","g_found","B",[%q]]`, bAddr))
		// [0.0022] A turned global: B drops A's slave shard, adds A to
		// 'g and sends A its db.
		pc.send(`["","g_global"]`)
		pc.expectBurst(`["","g_upd","'g",{"A":null},[]]`,
			fmt.Sprintf(`["","g_set",{"'g":{"A":null,"B":null},"'l":{"B":[%q]}}]`, bAddr))
		// [0.0027-0.0038] A's connect_to B: _expect and the ordering
		// echo, then A's g_set: B mirrors A's 'l and tells the globals.
		pc.send(`["","AnyEvent::MP::DataConn::_expect","b@A","A#jv0vLQ1Gyb",3,"main::receiver","hello",42]`,
			`["","snd","A#jv0vLQ1Gyc"]`,
			fmt.Sprintf(`["","g_set",{"'g":{"A":null},"'l":{"A":[%q]}}]`, aAddr),
			`["","g_upd","'g",{"B":null},[]]`,
			fmt.Sprintf(`["","g_upd","'l",{"B":[%q]},[]]`, bAddr))
		pc.expectBurst(`["jv0vLQ1Gyc"]`, fmt.Sprintf(`["","g_upd","'l",{"A":[%q]},[]]`, aAddr))
		// [0.0040] connection #2: A, a global now, finds B's listener in
		// its database (the 'l of B's g_set above) and dials it with the
		// id; our node runs its init function with the stream.
		dc := a.mustHandshake(a.dial(bAddr), perlHS{role: perlDataDialed, dataconnID: "b@A"})
		checkGreetingOf(dc, wire.ProtocolMessaging, "B")
		if _, err := dc.w.Write(perlPattern(size)); err != nil {
			scriptFail("write payload: %v", err)
		}
		closeWrite(dc.w)
		dc.raw.SetReadDeadline(time.Now().Add(perlStepLimit))
		if n, err := io.Copy(io.Discard, dc.r); err != nil || n != 0 {
			scriptFail("after our init function closed: %d bytes, %v; want EOF", n, err)
		}
		// What a Perl A's DataConn looks up: B's merged 'l has A.
		if l, known := b.Listeners("A"); !known || !slices.Equal(l, []string{aAddr}) {
			scriptFail("B knows A's listeners as %v (known=%v), want [%s]", l, known, aAddr)
		}
		if g, s := b.Globals(), b.Slaves(); !slices.Equal(g, []string{"A"}) || len(s) != 0 {
			scriptFail("B's globals %v, slaves %v; want [A] and none", g, s)
		}
		// [1.9996] A closes; B forgets its 'g entry and redials the
		// departed global once.
		pc.raw.Close()
		c := a.nextConn()
		c.Close()
		close(redial)
	})
	waitScript(t, script)
	checkCall(t, nextCall(t, calls), "A", size, sum, "hello", int64(42))
	<-redial
	deadline := time.Now().Add(perlStepLimit)
	for len(b.Globals()) != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if g := b.Globals(); len(g) != 0 {
		t.Errorf("B still lists the globals %v after A left", g)
	}
}

// TestPerlSeedGlobalReplay: transcripts/seed_global.txt with our node as
// the seed B, over memnet and over real TCP.
func TestPerlSeedGlobalReplay(t *testing.T) {
	onReplayNets(t, 51, func(t *testing.T, rn *replayNet) {
		replaySeedGlobal(t, rn.net("B"), rn.net("A"), rn.bind("B"), rn.bind("A"))
	})
}

func replayMonitor(t *testing.T, nw, perlNet transport.Network, bind string) {
	a, err := transport.NewNode(transport.Config{NodeID: "A", Secret: secret, Logger: quietLogger(), Framings: []string{"json"}, Global: true})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	aAddr, err := a.Listen(context.Background(), nw, bind)
	if err != nil {
		t.Fatal(err)
	}
	type fire struct {
		key    string
		reason []any
	}
	fired := make(chan fire, 16)
	ports := map[string]*transport.Port{}
	// The application: main::mon_server opens three ports and reports
	// them; a "kill_me" message kills its port with the rest as reason.
	a.RegisterFunc("main::mon_server", func(from string, args []any) {
		reply, _ := wire.AsString(args[0])
		ids := []any{"ports"}
		for _, key := range []string{"b", "f", "g"} {
			var p *transport.Port
			p = a.NewPort(func(d []any) {
				if len(d) > 0 && d[0] == "kill_me" {
					p.Kill(d[1:]...)
				}
			})
			p.Monitor(func(r []any) { fired <- fire{key, r} })
			ports[key] = p
			ids = append(ids, p.ID())
		}
		a.Send(reply, ids...)
	})
	b := newPerlNode(t, perlNet, "B")
	script := goScript("B", func() {
		pc := b.mustHandshake(b.dial(aAddr), perlHS{role: perlDialed})
		// At node-up our node, a global, says so (as a Perl global does).
		pc.expectBurst(`["","g_global"]`)
		pc.send(`["","main::mon_server","B#oLUq9hEe7b",3]`)
		m := pc.expect("")
		if len(m) != 5 || m[0] != "oLUq9hEe7b" || m[1] != "ports" {
			scriptFail("ports answer %v", m)
		}
		name := func(v any) string {
			s, _ := wire.AsString(v)
			return s[strings.LastIndexByte(s, '#')+1:]
		}
		pb, pf, pg := name(m[2]), name(m[3]), name(m[4])
		// mon1, then a message that makes the application kill the port
		// with a reason: kil0 comes back as from a Perl A.
		pc.send(fmt.Sprintf(`["","mon1",%q]`, pb), fmt.Sprintf(`[%q,"kill_me","some","reason"]`, pb))
		pc.expectBurst(fmt.Sprintf(`["","kil0",%q,"some","reason"]`, pb))
		// A remote kill with a reason, and one without (a normal end, []).
		pc.send(fmt.Sprintf(`["","kil1",%q,"remote","kill"]`, pf), fmt.Sprintf(`["","kil1",%q]`, pg))
		// mon1 of a port that does not exist, answered at once.
		pc.send(`["","mon1","nosuchport"]`)
		pc.expectBurst(`["","kil0","nosuchport","no_such_port","cannot monitor nonexistent port","A#nosuchport"]`)
		// The other way: A monitors B's ports; the first monitor of a port
		// sends mon1, cancelling the last sends mon0; kil0 fires once.
		var once []fire
		cancel, err := a.Monitor("B#x1", func(r []any) { once = append(once, fire{"x1", r}) })
		if err != nil {
			scriptFail("Monitor: %v", err)
		}
		pc.expectBurst(`["","mon1","x1"]`)
		cancel()
		pc.expectBurst(`["","mon0","x1"]`)
		if _, err := a.Monitor("B#x2", func(r []any) { fired <- fire{"x2", r} }); err != nil {
			scriptFail("Monitor: %v", err)
		}
		if _, err := a.Monitor("B#x3", func(r []any) { fired <- fire{"x3", r} }); err != nil {
			scriptFail("Monitor: %v", err)
		}
		pc.expectBurst(`["","mon1","x2"]`, `["","mon1","x3"]`)
		pc.send(`["","kil0","x2","gone","away"]`, `["","kil0","x2","again"]`)
		pc.send(`["","snd","B#sync"]`)
		pc.expectBurst(`["sync"]`)
		if len(once) != 0 {
			scriptFail("a cancelled monitor fired: %v", once)
		}
		// B closes: the monitors of its ports fire with transport_error.
		pc.raw.Close()
	})
	waitScript(t, script)
	got := map[string][]any{}
	for len(got) < 5 {
		select {
		case f := <-fired:
			if _, dup := got[f.key]; dup {
				t.Errorf("monitor %s fired twice: %v", f.key, f.reason)
			}
			got[f.key] = f.reason
		case <-time.After(perlStepLimit):
			t.Fatalf("monitors fired %v, want five", got)
		}
	}
	want := map[string]string{"b": `["some","reason"]`, "f": `["remote","kill"]`, "g": `[]`, "x2": `["gone","away"]`}
	for k, w := range want {
		if canonical(got[k]) != w {
			t.Errorf("monitor %s fired with %s, want %s", k, canonical(got[k]), w)
		}
	}
	if r := got["x3"]; len(r) != 3 || r[0] != "transport_error" || r[1] != "B" {
		t.Errorf("monitor of B#x3 fired with %v, want [transport_error B ...]", r)
	}
	select {
	case f := <-fired:
		t.Errorf("monitor %s fired again: %v", f.key, f.reason)
	case <-time.After(100 * time.Millisecond):
	}
}

// TestPerlMonitorReplay: transcripts/monitor.txt with our node as A (a
// Perl B monitors A's ports: kill with a reason, remote kill with and
// without one, a port that does not exist), and the other way round: our
// node monitors B's ports (mon1 once per port, mon0 when the last monitor
// goes, kil0 fires once, node down fires transport_error). Over memnet
// and real TCP.
func TestPerlMonitorReplay(t *testing.T) {
	onReplayNets(t, 52, func(t *testing.T, rn *replayNet) {
		replayMonitor(t, rn.net("A"), rn.net("B"), rn.bind("A"))
	})
}

func replaySeedNobind(t *testing.T, nw, perlNet transport.Network, bind, aBind string) {
	s, err := transport.NewNode(transport.Config{NodeID: "S", Secret: secret, Logger: quietLogger(), Framings: []string{"json"}, Global: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	sAddr, err := s.Listen(context.Background(), nw, bind)
	if err != nil {
		t.Fatal(err)
	}
	n := newPerlNode(t, perlNet, "N")
	a := newPerlNode(t, perlNet, "A")
	aAddr := a.listen(aBind)
	script := goScript("N and A", func() {
		// N, global from start-up with S as its master, has no listeners.
		nc := n.mustHandshake(n.dial(sAddr), perlHS{role: perlDialed})
		nc.send(`["","g_slave",{"'g":{"N":null},"'l":{"N":[]}}]`, `["","g_mon1","'g"]`, `["","g_slave"]`, `["","g_global"]`)
		nc.expectBurst(`["","g_global"]`, `["","g_chg1","'g",{"S":null,"N":null}]`, `["","g_chg2","'g",{},["N"]]`,
			`["","g_upd","'g",{"N":null},[]]`, `["","g_chg2","'g",{"N":null},[]]`,
			fmt.Sprintf(`["","g_set",{"'g":{"N":null,"S":null},"'l":{"S":[%q]}}]`, sAddr))
		nc.send(`["","g_upd","'g",{"S":null}]`, `["","g_set",{"'l":{"N":[]},"'g":{"N":null}}]`, fmt.Sprintf(`["","g_upd","'l",{"S":[%q]}]`, sAddr))
		nc.expectBurst(`["","g_chg2","'g",{"S":null},[]]`, `["","g_chg2","'g",{"N":null},[]]`, `["","g_upd","'l",{"N":[]},[]]`)
		// Known without listeners: [], not unknown.
		if l, known := s.Listeners("N"); !known || l == nil || len(l) != 0 {
			scriptFail("S knows N's listeners as %#v (known=%v), want [] known", l, known)
		}
		// [0.2992] A joins the same way; it learns that N is known
		// without listeners, and N learns A's listeners.
		ac := a.mustHandshake(a.dial(sAddr), perlHS{role: perlDialed})
		ac.send(fmt.Sprintf(`["","g_slave",{"'g":{"A":null},"'l":{"A":[%q]}}]`, aAddr), `["","g_mon1","'g"]`, `["","g_global"]`, `["","g_slave"]`)
		ac.expectBurst(`["","g_global"]`, `["","g_chg1","'g",{"A":null,"N":null,"S":null}]`, `["","g_chg2","'g",{},["A"]]`,
			`["","g_upd","'g",{"A":null},[]]`, `["","g_chg2","'g",{"A":null},[]]`,
			fmt.Sprintf(`["","g_set",{"'l":{"N":[],"S":[%q]},"'g":{"N":null,"S":null,"A":null}}]`, sAddr))
		// A's half of the exchange: its g_set (its own 'l, which S
		// mirrors, as it did for N); N hears of A's listeners through S.
		ac.send(`["","g_upd","'g",{"S":null}]`, fmt.Sprintf(`["","g_set",{"'l":{"A":[%q]},"'g":{"A":null}}]`, aAddr))
		want := canonical([]any{"", "g_upd", "'l", map[string]any{"A": []any{aAddr}}, []any{}})
		for {
			if m := nc.nextMsg(); canonical([]any(m)) == want {
				break
			}
		}
		ac.send(`["","snd","A#sync"]`)
		for {
			if m := ac.nextMsg(); len(m) == 1 && m[0] == "sync" {
				break
			}
		}
	})
	waitScript(t, script)
	if l, known := s.Listeners("A"); !known || !slices.Equal(l, []string{aAddr}) {
		t.Errorf("S knows A's listeners as %v (known=%v), want [%s]", l, known, aAddr)
	}
	if l, known := s.Listeners("X"); known || l != nil {
		t.Errorf("S knows the unknown X as %#v (known=%v), want nil and false", l, known)
	}
}

// TestPerlSeedNobindReplay: transcripts/seed_nobind.txt with our node as
// the seed S of a Perl node without listeners (N) and a Perl global with
// listeners (A), over memnet and real TCP: every burst as a set, [] for
// N (not null), and N learns A's listeners through S.
func TestPerlSeedNobindReplay(t *testing.T) {
	onReplayNets(t, 53, func(t *testing.T, rn *replayNet) {
		replaySeedNobind(t, rn.net("S"), rn.net("A"), rn.bind("S"), rn.bind("A"))
	})
}

// drawRand is a Config.Rand that answers the node's 8-byte reads, its
// backoff draws, with u (fixed, so that the schedule is known) and every
// other read (nonces, ids) from crypto/rand.
type drawRand struct{ u float64 }

func (d drawRand) Read(b []byte) (int, error) {
	if len(b) == 8 {
		binary.BigEndian.PutUint64(b, uint64(d.u*(1<<53))<<11)
		return 8, nil
	}
	return crand.Read(b)
}

// TestPerlSeedRetryReplay: transcripts/seed_retry.txt with our node as A,
// started before its Perl seed S listens, over memnet (virtual time) and
// real TCP on loopback. The draw of A's backoff is injected: u = 0.98 on
// memnet (r = 1.188 s, the recording's r ≈ 1.19: attempts at 0, 2.376,
// 7.128 s against 0, 2.377, 7.127 recorded), u = 0 on TCP (r = 0.6 s, the
// shortest schedule, so the run costs under 4 s). S's address first
// answers the attempts at 0 and 2r by closing the connection (the
// recording's RSTs); then the Perl S listens there, and A's attempt at 6r
// reaches it. A tells it g_slave (so that a Perl seed runs its global
// service) and g_global, and the two globals exchange their databases.
// Then S opens a data connection to A with the listener it learnt (Perl →
// Go when the Go node seeds to the Perl node).
func TestPerlSeedRetryReplay(t *testing.T) {
	onReplayNets(t, 54, func(t *testing.T, rn *replayNet) {
		u, slack := 0.98, 20*time.Millisecond
		if !rn.virtual() {
			u, slack = 0, time.Second // scheduling delays of a slow machine
		}
		r := time.Duration(float64(600*time.Millisecond) * (1 + u))
		// S's address, closing every connection and noting when.
		refuser, err := rn.net("S").Listen(context.Background(), rn.bind("S"))
		if err != nil {
			t.Fatal(err)
		}
		sBind := refuser.Addr().String()
		sAddr := transport.FormatAddr(rn.net("S"), sBind)
		attempts := make(chan time.Time, 2)
		go func() {
			for {
				c, err := refuser.Accept()
				if err != nil {
					return
				}
				attempts <- time.Now()
				c.Close()
			}
		}()
		a, aAddr := rn.goNode(t, "A", true, func(c *transport.Config) {
			c.Seeds = []string{sAddr}
			c.Rand = drawRand{u}
		})
		calls := make(chan initCall, 2)
		a.HandleDataConn("main::receiver", hashingInit(calls))
		started := time.Now()
		if err := a.Start(); err != nil {
			t.Fatal(err)
		}
		var at [2]time.Duration
		for i := range at {
			select {
			case x := <-attempts:
				at[i] = x.Sub(started)
			case <-time.After(10 * 6 * r):
				t.Fatalf("attempt %d of A never reached S's address (earlier ones at %v)", i, at[:i])
			}
		}
		refuser.Close()
		if p := a.Peers(); len(p) != 0 {
			t.Fatalf("A is connected to %v before its seed listens", p)
		}
		s := rn.perl(t, "S", false)
		s.listen(sBind)
		script := goScript("S", func() {
			pc := s.mustHandshake(s.nextConn(), perlHS{role: perlAccepted})
			at := append(at[:], time.Since(started))
			for i, want := range []time.Duration{0, 2 * r, 6 * r} {
				if at[i] < want || at[i] > want+slack {
					scriptFail("A's attempts reached S at %v, want at 0, 2r, 6r (r = %v, slack %v)", at, r, slack)
				}
			}
			pc.expectBurst(`["","g_slave"]`, `["","g_global"]`)
			pc.send(`["","g_global"]`)
			pc.expectBurst(`["","g_upd","'g",{"S":null},[]]`,
				fmt.Sprintf(`["","g_set",{"'g":{"A":null,"S":null},"'l":{"A":[%q]}}]`, aAddr))
			pc.send(fmt.Sprintf(`["","g_set",{"'g":{"S":null},"'l":{"S":[%q]}}]`, sAddr))
			pc.sync("sync")
			// Perl → Go with our node seeding to the Perl node: S, a
			// global, finds A's listener in A's g_set above and opens a
			// data connection the Perl way.
			pc.send(`["","AnyEvent::MP::DataConn::_expect","b@S","S#p1",3,"main::receiver","hello",42]`)
			pc.sync("p2")
			dc := s.mustHandshake(s.dial(aAddr), perlHS{role: perlDataDialed, dataconnID: "b@S"})
			checkGreetingOf(dc, wire.ProtocolMessaging, "A")
			if _, err := dc.w.Write(perlPattern(2048)); err != nil {
				scriptFail("write payload: %v", err)
			}
			closeWrite(dc.w)
			dc.raw.SetReadDeadline(time.Now().Add(perlStepLimit))
			io.Copy(io.Discard, dc.r)
		})
		waitScript(t, script)
		t.Logf("A's attempts reached S at %v, then connected (r = %v)", at, r)
		checkCall(t, nextCall(t, calls), "S", 2048, patternSum(2048), "hello", int64(42))
		if p := a.Peers(); !slices.Equal(p, []string{"S"}) {
			t.Errorf("A's peers are %v, want [S]", p)
		}
		if l, known := a.Listeners("S"); !known || !slices.Equal(l, []string{sAddr}) {
			t.Errorf("A knows S's listeners as %v (known=%v)", l, known)
		}
	})
}
