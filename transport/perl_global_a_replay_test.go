package transport_test

// Transport-level replay of transcripts/seed_global.txt with our node as
// A (TestPerlSeedGlobalReplay has it as the seed B).

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/aemp-go/dataconn/core/wire"
	"github.com/aemp-go/dataconn/transport"
)

// TestPerlSeedGlobalAReplay: transcripts/seed_global.txt with our node as
// A, the node that uses the Perl node B as its seed, over memnet and TCP.
// It greets B with g_slave (a Perl seed then runs its global service) and
// g_global; the two globals exchange g_upd 'g and g_set and mirror each
// other's 'l, as the recording's A and B do at t=0.0021-0.0038. Then A
// opens the recording's data connection to B: _expect b@A-like with
// main::receiver "hello" 42, the snd round trip, the aemp-dataconn
// connection to B's listener with the id and the 4096-byte payload (Go →
// Perl with the Perl node as our seed).
func TestPerlSeedGlobalAReplay(t *testing.T) {
	onReplayNets(t, 69, func(t *testing.T, rn *replayNet) {
		size, sum := loadTranscriptFile(t, "../core/peer/testdata/transcripts/seed_global.txt").payload(t, 2, "A")
		b := rn.perl(t, "B", true)
		a, aAddr := rn.goNode(t, "A", true, func(cfg *transport.Config) { cfg.Seeds = []string{b.addr} })
		if err := a.Start(); err != nil {
			t.Fatal(err)
		}
		ready := make(chan struct{})
		script := goScript("B", func() {
			bc := b.mustHandshake(b.nextConn(), perlHS{role: perlAccepted})
			bc.expectBurst(`["","g_slave"]`, `["","g_global"]`)
			// [0.0021] B, global now, says so; A answers as a global.
			bc.send(`["","g_global"]`)
			bc.expectBurst(`["","g_upd","'g",{"B":null},[]]`,
				fmt.Sprintf(`["","g_set",{"'g":{"A":null,"B":null},"'l":{"A":[%q]}}]`, aAddr))
			// [0.0023] B's half: A joins B's 'g, B's db; A mirrors B's 'l.
			bc.send(`["","g_upd","'g",{"A":null},[]]`, fmt.Sprintf(`["","g_set",{"'l":{"B":[%q]},"'g":{"A":null,"B":null}}]`, b.addr))
			bc.expectBurst(fmt.Sprintf(`["","g_upd","'l",{"B":[%q]},[]]`, b.addr))
			// [0.0038] B's mirror of A's 'l.
			bc.send(fmt.Sprintf(`["","g_upd","'l",{"A":[%q]},[]]`, aAddr))
			bc.settled("db")
			close(ready)
			// [0.0027] A's connect_to B.
			exp := bc.expectEventually(wire.NodeMsgTagExpect)
			id, _ := wire.AsString(exp[2])
			if fn, _ := wire.AsString(exp[5]); fn != "main::receiver" || len(exp) != 8 || exp[6] != "hello" {
				scriptFail("B: _expect %v", exp)
			}
			if v, ok := wire.AsInt(exp[7]); !ok || v != 42 {
				scriptFail("B: _expect %v", exp)
			}
			bc.answerSnd(bc.expectEventually(wire.NodeMsgTagSnd))
			for _, m := range bc.skipped {
				scriptFail("B: with the data connection our node also sent %v", m)
			}
			dc := b.mustHandshake(b.nextConn(), perlHS{role: perlAccepted})
			if v, _ := dc.peer.Get(wire.KeyDataConnID); v != id || dc.proto != wire.ProtocolDataConn {
				scriptFail("B: data connection greeting %q, want aemp-dataconn with dataconn_id=%s", dc.peerLines[0], id)
			}
			if n, got := dc.readAll(); n != int64(size) || got != sum {
				scriptFail("B: %d bytes (sha256 %s) on the data connection, want %d (%s)", n, got, size, sum)
			}
			dc.close()
		})
		select {
		case <-ready:
		case err := <-script:
			t.Fatalf("before the data connection: %v", err)
		}
		if l, known := a.Listeners("B"); !known || !slices.Equal(l, []string{b.addr}) {
			t.Fatalf("A knows B's listeners as %v (known=%v)", l, known)
		}
		ctx, cancel := context.WithTimeout(context.Background(), perlStepLimit)
		defer cancel()
		conn, err := a.ConnectTo(ctx, "B", 3*time.Second, "main::receiver", "hello", int64(42))
		if err != nil {
			t.Fatalf("ConnectTo B: %v (script: %v)", err, scriptState(script))
		}
		if _, err := conn.Write(perlPattern(size)); err != nil {
			t.Fatal(err)
		}
		closeWrite(conn)
		waitScript(t, script)
		conn.Close()
		if g := a.Globals(); !slices.Equal(g, []string{"B"}) {
			t.Errorf("A's globals are %v, want [B]", g)
		}
	})
}
