package transport_test

// Replay of transcripts/seed_global.txt (core/peer/testdata/transcripts)
// against our transport.Node as the seed B, over memnet (under
// testing/synctest) and real TCP on 127.0.0.1: a scripted Perl node A
// uses B as its seed, joins as a slave, turns global, and leaves. Every
// burst our node writes is compared, as a set, with what the Perl B wrote
// (Perl's order is random).

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aemp-go/dataconn/core/wire"
	"github.com/aemp-go/dataconn/memnet"
	"github.com/aemp-go/dataconn/tcp"
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

// expectBurst reads len(want) messages (passing over keepalives) and
// checks that they are want as a set.
func (pc *perlConn) expectBurst(want ...string) {
	var got, exp []string
	for _, w := range want {
		var v any
		if err := json.Unmarshal([]byte(w), &v); err != nil {
			scriptFail("bad want %s: %v", w, err)
		}
		exp = append(exp, canonical(v))
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
	b, err := transport.NewNode(transport.Config{NodeID: "B", Secret: secret, Logger: quietLogger(), Framings: []string{"json"}, Global: true})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
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
		// [0.0029-0.0038] the ordering echo, then A's g_set: B mirrors
		// A's 'l and tells the globals.
		pc.send(`["","snd","A#jv0vLQ1Gyc"]`,
			fmt.Sprintf(`["","g_set",{"'g":{"A":null},"'l":{"A":[%q]}}]`, aAddr),
			`["","g_upd","'g",{"B":null},[]]`,
			fmt.Sprintf(`["","g_upd","'l",{"B":[%q]},[]]`, bAddr))
		pc.expectBurst(`["jv0vLQ1Gyc"]`, fmt.Sprintf(`["","g_upd","'l",{"A":[%q]},[]]`, aAddr))
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
	t.Run("memnet", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			w := memnet.New(51, memnet.WithDefaultLink(memnet.LinkConfig{Latency: time.Millisecond}), memnet.WithTrace(0))
			replaySeedGlobal(t, w.Host("B"), w.Host("A"), "B:1", "A:1")
		})
	})
	t.Run("tcp", func(t *testing.T) {
		replaySeedGlobal(t, tcp.New(), tcp.New(), "127.0.0.1:0", "127.0.0.1:0")
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
	t.Run("memnet", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			w := memnet.New(52, memnet.WithDefaultLink(memnet.LinkConfig{Latency: time.Millisecond}), memnet.WithTrace(0))
			replayMonitor(t, w.Host("A"), w.Host("B"), "A:1")
		})
	})
	t.Run("tcp", func(t *testing.T) {
		replayMonitor(t, tcp.New(), tcp.New(), "127.0.0.1:0")
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
	t.Run("memnet", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			w := memnet.New(53, memnet.WithDefaultLink(memnet.LinkConfig{Latency: time.Millisecond}), memnet.WithTrace(0))
			replaySeedNobind(t, w.Host("S"), w.Host("A"), "S:1", "A:1")
		})
	})
	t.Run("tcp", func(t *testing.T) {
		replaySeedNobind(t, tcp.New(), tcp.New(), "127.0.0.1:0", "127.0.0.1:0")
	})
}

// TestPerlSeedRetryReplay: transcripts/seed_retry.txt with our node as A,
// started 5 s before its Perl seed S listens (memnet, virtual time): A
// retries on Perl's schedule, reaches S within the retry bound, tells it
// g_slave (so that a Perl seed runs its global service) and g_global, and
// the two globals exchange their databases.
func TestPerlSeedRetryReplay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := memnet.New(54, memnet.WithDefaultLink(memnet.LinkConfig{Latency: time.Millisecond}), memnet.WithTrace(0))
		a, err := transport.NewNode(transport.Config{NodeID: "A", Secret: secret, Logger: quietLogger(), Framings: []string{"json"},
			Global: true, Seeds: []string{seedAddr("S")}})
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		aAddr, err := a.Listen(context.Background(), w.Host("A"), "A:1")
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Second)
		if p := a.Peers(); len(p) != 0 {
			t.Fatalf("A is connected to %v before its seed listens", p)
		}
		s := newPerlNode(t, w.Host("S"), "S")
		s.listen("S:1")
		listening := time.Now()
		script := goScript("S", func() {
			pc := s.mustHandshake(s.nextConn(), perlHS{role: perlAccepted})
			if d := time.Since(listening); d > globalRetryBound {
				scriptFail("A reached S %v after S listened, want within %v", d, globalRetryBound)
			}
			pc.expectBurst(`["","g_slave"]`, `["","g_global"]`)
			pc.send(`["","g_global"]`)
			pc.expectBurst(`["","g_upd","'g",{"S":null},[]]`,
				fmt.Sprintf(`["","g_set",{"'g":{"A":null,"S":null},"'l":{"A":[%q]}}]`, aAddr))
			pc.send(fmt.Sprintf(`["","g_set",{"'g":{"S":null},"'l":{"S":[%q]}}]`, seedAddr("S")), `["","snd","S#sync"]`)
			for {
				if m := pc.nextMsg(); len(m) == 1 && m[0] == "sync" {
					break
				}
			}
		})
		waitScript(t, script)
		if p := a.Peers(); !slices.Equal(p, []string{"S"}) {
			t.Errorf("A's peers are %v, want [S]", p)
		}
		if l, known := a.Listeners("S"); !known || !slices.Equal(l, []string{seedAddr("S")}) {
			t.Errorf("A knows S's listeners as %v (known=%v)", l, known)
		}
	})
}
