package transport_test

// Transport-level replay of transcripts/seed_db.txt with our node as D
// (TestPerlSeedDBReplay has it as the seed S).

import (
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/aemp-go/dataconn/transport"
)

// TestPerlSeedDBDReplay: transcripts/seed_db.txt with our node as D, the
// node that uses the database API with the Perl seed S, over memnet and
// TCP. A Perl D is a slave and sends its db_set/db_del to its master S
// (g_upd F {K:V}; F null [K]) and asks S with g_mon1 and g_db_*. Ours is
// global (Config.Global) and keeps the merged database itself: after the
// g_global/g_set exchange with S, Node.DBSet and Node.DBDel go to S as a
// global's g_upd (F {K:V} [] and F {} [K]), S's forwarding of its slave
// E's changes (g_upd from S, as a Perl global sends them to the other
// globals) reaches D's DBMonitor and DBFamily, D's own values included,
// and E leaving deletes k3. Nothing else goes on the wire (no g_mon1, no
// g_db_*).
func TestPerlSeedDBDReplay(t *testing.T) {
	onReplayNets(t, 70, func(t *testing.T, rn *replayNet) {
		s := rn.perl(t, "S", true)
		d, dAddr := rn.goNode(t, "D", true, func(cfg *transport.Config) { cfg.Seeds = []string{s.addr} })
		var mu sync.Mutex
		var changes []string
		now, cancel := d.DBMonitor("svc", func(_ string, set map[string]any, del []string) {
			mu.Lock()
			changes = append(changes, canonical([]any{set, del}))
			mu.Unlock()
		})
		if now != nil {
			t.Fatalf("svc before the start: %v", now)
		}
		if err := d.Start(); err != nil {
			t.Fatal(err)
		}
		step := make(chan func(), 1)
		do := func(f func()) { // a call of our node, from the script
			step <- f
		}
		script := goScript("S", func() {
			defer close(step)
			sc := s.mustHandshake(s.nextConn(), perlHS{role: perlAccepted})
			sc.expectBurst(`["","g_slave"]`, `["","g_global"]`)
			sc.send(`["","g_global"]`)
			sc.expectBurst(`["","g_upd","'g",{"S":null},[]]`,
				fmt.Sprintf(`["","g_set",{"'g":{"D":null,"S":null},"'l":{"D":[%q]}}]`, dAddr))
			sc.send(`["","g_upd","'g",{"D":null},[]]`, fmt.Sprintf(`["","g_set",{"'g":{"D":null,"S":null},"'l":{"S":[%q]}}]`, s.addr))
			sc.expectBurst(fmt.Sprintf(`["","g_upd","'l",{"S":[%q]},[]]`, s.addr))
			sc.settled("joined")
			// [0.4970-0.6968] D's db_set.
			do(func() {
				if err := d.DBSet("svc", "k1", []any{"v", int64(1)}); err != nil {
					t.Error(err)
				}
				if err := d.DBSet("svc", "k2", "two"); err != nil {
					t.Error(err)
				}
			})
			sc.expectBurst(`["","g_upd","svc",{"k1":["v",1]},[]]`, `["","g_upd","svc",{"k2":"two"},[]]`)
			// [1.8032] E's db_set, forwarded by S to its globals.
			sc.send(`["","g_upd","svc",{"k3":3},[]]`)
			sc.settled("k3")
			// [2.0974-2.2973] D's db_del and a change.
			do(func() {
				if err := d.DBDel("svc", "k1"); err != nil {
					t.Error(err)
				}
				if err := d.DBSet("svc", "k2", "changed"); err != nil {
					t.Error(err)
				}
			})
			sc.expectBurst(`["","g_upd","svc",{},["k1"]]`, `["","g_upd","svc",{"k2":"changed"},[]]`)
			// [2.9033] E leaves: S sends its globals the deletion.
			sc.send(`["","g_upd","svc",{},["k3"]]`)
			sc.settled("end")
		})
		for f := range step {
			f()
		}
		waitScript(t, script)
		cancel()
		checkFamily(t, d, "svc", `{"k2":"changed"}`)
		mu.Lock()
		defer mu.Unlock()
		want := []string{`[{"k1":["v",1]},[]]`, `[{"k2":"two"},[]]`, `[{"k3":3},[]]`, `[{},["k1"]]`, `[{"k2":"changed"},[]]`, `[{},["k3"]]`}
		if !slices.Equal(changes, want) {
			t.Errorf("D's monitor of svc saw %v, want %v", changes, want)
		}
	})
}
