package transport_test

// Data connections in the topologies of issue 15's table where a Perl
// node uses our node as its seed and finds addresses only in its global
// database: a Perl node without listeners (seed_nobind.txt's N, global
// from start-up with our node as its master) joins, learns our listener
// from our g_set, and then opens a data connection to us (it dials our
// listener) or takes one from us (our _connect; it dials back). The data
// connections follow the recorded Perl flow (seed_nobind.txt connections
// #3 and #4, nobind_patched.txt). Over memnet and real TCP.

import (
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/aemp-go/dataconn/core/wire"
	"github.com/aemp-go/dataconn/transport"
)

// joinNobind greets our seed S as seed_nobind.txt's N does (no listeners,
// Global loaded at start-up, S its master) and checks S's answers, the
// g_set with S's listener among them: the only place a Perl global looks
// up S's address. It returns the connection and that address.
func joinNobind(n *perlNode, sAddr string) (*perlConn, string) {
	nc := n.mustHandshake(n.dial(sAddr), perlHS{role: perlDialed})
	nc.send(`["","g_slave",{"'g":{"N":null},"'l":{"N":[]}}]`, `["","g_mon1","'g"]`, `["","g_slave"]`, `["","g_global"]`)
	nc.expectBurst(`["","g_global"]`, `["","g_chg1","'g",{"S":null,"N":null}]`, `["","g_chg2","'g",{},["N"]]`,
		`["","g_upd","'g",{"N":null},[]]`, `["","g_chg2","'g",{"N":null},[]]`,
		fmt.Sprintf(`["","g_set",{"'g":{"N":null,"S":null},"'l":{"S":[%q]}}]`, sAddr))
	nc.send(`["","g_upd","'g",{"S":null}]`, `["","g_set",{"'l":{"N":[]},"'g":{"N":null}}]`, fmt.Sprintf(`["","g_upd","'l",{"S":[%q]}]`, sAddr))
	nc.expectBurst(`["","g_chg2","'g",{"S":null},[]]`, `["","g_chg2","'g",{"N":null},[]]`, `["","g_upd","'l",{"N":[]},[]]`)
	return nc, sAddr
}

// TestPerlNobindSeedPerlToGo: a Perl node without listeners uses our node
// as its seed, then opens a data connection to it: _expect, the snd
// round trip, then it dials the listener it found in our g_set with the
// id; our init function runs with the stream and the init data.
func TestPerlNobindSeedPerlToGo(t *testing.T) {
	onReplayNets(t, 71, func(t *testing.T, rn *replayNet) {
		size, sum := loadTranscriptFile(t, "../core/peer/testdata/transcripts/seed_nobind.txt").payload(t, 4, "A")
		s, sAddr := rn.goNode(t, "S", true, nil)
		calls := make(chan initCall, 2)
		s.HandleDataConn("main::receiver", hashingInit(calls))
		n := rn.perl(t, "N", false)
		script := goScript("N", func() {
			nc, addr := joinNobind(n, sAddr)
			nc.send(`["","AnyEvent::MP::DataConn::_expect","b@N","N#wN6OiNX57b",3,"main::receiver","hello",42]`,
				`["","snd","N#wN6OiNX57c"]`)
			nc.expectBurst(`["wN6OiNX57c"]`)
			dc := n.mustHandshake(n.dial(addr), perlHS{role: perlDataDialed, dataconnID: "b@N"})
			checkGreetingOf(dc, wire.ProtocolMessaging, "S")
			if _, err := dc.w.Write(perlPattern(size)); err != nil {
				scriptFail("write payload: %v", err)
			}
			closeWrite(dc.w)
			dc.raw.SetReadDeadline(time.Now().Add(perlStepLimit))
			if k, err := io.Copy(io.Discard, dc.r); err != nil || k != 0 {
				scriptFail("after our init function closed: %d bytes, %v; want EOF", k, err)
			}
			nc.settled("end")
		})
		waitScript(t, script)
		checkCall(t, nextCall(t, calls), "N", size, sum, "hello", int64(42))
	})
}

// TestPerlNobindSeedGoToPerl: our node opens a data connection to a Perl
// node without listeners that uses it as its seed. Our node knows N
// without listeners ([], not unknown), so it sends _expect, the snd round
// trip and _connect; N dials back the listener it found in our g_set (a
// Perl global that did not have it killed the request at once: "no
// listeners found"), and our stream reaches N.
func TestPerlNobindSeedGoToPerl(t *testing.T) {
	onReplayNets(t, 72, func(t *testing.T, rn *replayNet) {
		size, sum := loadTranscriptFile(t, "../core/peer/testdata/transcripts/seed_nobind.txt").payload(t, 4, "A")
		s, sAddr := rn.goNode(t, "S", true, nil)
		n := rn.perl(t, "N", false)
		joined := make(chan struct{})
		script := goScript("N", func() {
			nc, addr := joinNobind(n, sAddr)
			close(joined)
			exp := nc.expect(wire.NodeMsgTagExpect)
			id, _ := wire.AsString(exp[2])
			port, _ := wire.AsString(exp[3])
			if fn, _ := wire.AsString(exp[5]); len(exp) != 8 || !strings.HasSuffix(id, "@S") || !strings.HasPrefix(port, "S#") || fn != "main::receiver" {
				scriptFail("_expect %v", exp)
			}
			nc.answerSnd(nc.expect(wire.NodeMsgTagSnd))
			conn := nc.expect(wire.NodeMsgTagConnect)
			if len(conn) != 4 || conn[2] != id || conn[3] != "S" {
				scriptFail("_connect %v, want [\"\", %q, %q, \"S\"]", conn, wire.NodeMsgTagConnect, id)
			}
			dc := n.mustHandshake(n.dial(addr), perlHS{role: perlDataDialed, dataconnID: id})
			checkGreetingOf(dc, wire.ProtocolMessaging, "S")
			k, h := dc.readAll()
			if int(k) != size || h != sum {
				scriptFail("payload: %d bytes sha256 %s, want %d bytes %s", k, h, size, sum)
			}
			dc.close()
			nc.settled("end")
		})
		select {
		case <-joined:
		case <-time.After(2 * perlStepLimit):
			t.Fatalf("N did not join: %v", scriptState(script))
		}
		if l, known := s.Listeners("N"); !known || l == nil || len(l) != 0 {
			t.Fatalf("S knows N's listeners as %#v (known=%v), want [] known", l, known)
		}
		ctx, cancel := context.WithTimeout(context.Background(), perlStepLimit)
		defer cancel()
		c, err := s.ConnectTo(ctx, "N", 3*time.Second, "main::receiver", "hello", int64(42))
		if err != nil {
			t.Fatalf("ConnectTo N: %v (script: %v)", err, scriptState(script))
		}
		if _, err := c.Write(perlPattern(size)); err != nil {
			t.Fatal(err)
		}
		closeWrite(c)
		waitScript(t, script)
		c.Close()
		if out, exps, early := s.DataConns().Pending(); out+exps+early != 0 {
			t.Errorf("pending after success: %d %d %d", out, exps, early)
		}
	})
}

// TestPerlSeedGoWithoutListeners: our node without listeners seeds to a
// Perl global S and announces itself with an empty listener list ('l
// [], in its g_set), which a Perl node needs to open a data connection
// to it: S sends _expect, the snd round trip and _connect, and our node
// dials S's listener (from S's g_set) back; our init function gets the
// stream.
func TestPerlSeedGoWithoutListeners(t *testing.T) {
	onReplayNets(t, 73, func(t *testing.T, rn *replayNet) {
		size, sum := loadTranscriptFile(t, "../core/peer/testdata/transcripts/seed_nobind.txt").payload(t, 4, "A")
		s := rn.perl(t, "S", true)
		n, _ := rn.goNode(t, "N", false, func(c *transport.Config) { c.Seeds = []string{s.addr} })
		calls := make(chan initCall, 2)
		n.HandleDataConn("main::receiver", hashingInit(calls))
		if err := n.Start(); err != nil {
			t.Fatal(err)
		}
		script := goScript("S", func() {
			sc := s.mustHandshake(s.nextConn(), perlHS{role: perlAccepted})
			sc.expectBurst(`["","g_slave"]`, `["","g_global"]`)
			sc.send(`["","g_global"]`)
			sc.expectBurst(`["","g_upd","'g",{"S":null},[]]`, `["","g_set",{"'g":{"N":null,"S":null},"'l":{"N":[]}}]`)
			sc.send(fmt.Sprintf(`["","g_set",{"'g":{"S":null},"'l":{"S":[%q]}}]`, s.addr))
			sc.expectBurst(fmt.Sprintf(`["","g_upd","'l",{"S":[%q]},[]]`, s.addr))
			sc.send(`["","AnyEvent::MP::DataConn::_expect","b@S","S#wN6OiNX57b",3,"main::receiver","hello",42]`,
				`["","snd","S#wN6OiNX57c"]`)
			sc.expectBurst(`["wN6OiNX57c"]`)
			sc.send(`["","AnyEvent::MP::DataConn::_connect","b@S","S"]`)
			dc := s.mustHandshake(s.nextConn(), perlHS{role: perlAccepted})
			checkGreetingOf(dc, wire.ProtocolDataConn, "N")
			if v, _ := dc.peer.Get(wire.KeyDataConnID); v != "b@S" || dc.proto != wire.ProtocolDataConn {
				scriptFail("dial-back greeting %q: want aemp-dataconn with dataconn_id=b@S", dc.peerLines[0])
			}
			if _, err := dc.w.Write(perlPattern(size)); err != nil {
				scriptFail("write: %v", err)
			}
			closeWrite(dc.w)
			dc.raw.SetReadDeadline(time.Now().Add(perlStepLimit))
			io.Copy(io.Discard, dc.r)
			sc.settled("end")
		})
		waitScript(t, script)
		checkCall(t, nextCall(t, calls), "S", size, sum, "hello", int64(42))
	})
}
