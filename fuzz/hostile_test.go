package fuzz

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aemp-go/dataconn/core/handshake"
	"github.com/aemp-go/dataconn/core/wire"
	"github.com/aemp-go/dataconn/transport"
)

// The hostile catalogue: each test attacks real nodes on 127.0.0.1 over
// TCP and asserts the typed error the node reports, that the attack is
// cut off, and (env.finish) that no goroutine, descriptor or heap is left
// behind.

// TestHostileSlowloris: a peer that sends one byte per second is cut at
// the handshake timeout.
func TestHostileSlowloris(t *testing.T) {
	e := newEnv(t)
	defer e.finish()
	_, addr, logs := e.node("B", func(c *transport.Config) { c.HandshakeTimeout = 2 * time.Second })
	c := e.dial(addr)
	start := time.Now()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		line := []byte("aemp;1;slow;hmac_sha3_512;json\n")
		for i := 0; i < 10; i++ { // bounded: 10 bytes, 10 s at most
			if _, err := c.Write(line[i : i+1]); err != nil {
				return
			}
			select {
			case <-stop:
				return
			case <-time.After(time.Second):
			}
		}
	}()
	expectEOF(t, c, 8*time.Second)
	took := time.Since(start)
	close(stop)
	wg.Wait()
	if took < 1500*time.Millisecond || took > 5*time.Second {
		t.Fatalf("slow peer dropped after %v, want about the 2 s handshake timeout", took)
	}
	err := logs.wait(t, handshake.ErrTimeout, 2*time.Second)
	var he *handshake.Error
	if !errors.As(err, &he) || !he.Timeout() {
		t.Fatalf("logged %T %v, want a *handshake.Error that is a timeout", err, err)
	}
}

// TestHostileLongHandshakeLine: a handshake line over 4096 bytes drops
// the connection.
func TestHostileLongHandshakeLine(t *testing.T) {
	e := newEnv(t)
	defer e.finish()
	_, addr, logs := e.node("B", nil)
	for i, prefix := range []string{"", "aemp;1;X;hmac_sha3_512;json\n"} {
		c := e.dial(addr)
		go func() {
			// The node may close while we write; the error is expected.
			c.Write([]byte(prefix + strings.Repeat("x", 5000)))
		}()
		expectEOF(t, c, 5*time.Second)
		c.Close()
		// Each case is refused for the line length, not for anything else.
		logs.waitN(t, handshake.ErrLineTooLong, i+1, 10*time.Second)
	}
}

// messagingAttacker authenticates to addr as node id (with the shared
// secret) and returns the raw messaging stream and the handshake result.
func messagingAttacker(t *testing.T, e *env, addr, id string, framings []string) (net.Conn, *handshake.Result) {
	t.Helper()
	c := e.dial(addr)
	conn, res, err := attackerHandshake(c, handshake.Config{
		NodeID: id, Secret: hostileSecret, AcceptFramings: framings, SendFramings: framings,
		Extra: []wire.KV{{Key: wire.KeyGo, Value: "1"}},
	})
	if err != nil {
		t.Fatalf("attacker %s handshake: %v", id, err)
	}
	e.track(conn)
	return conn, res
}

// TestHostileFrameTooLarge: after the handshake, a message over the
// node's MaxFrame drops the messaging connection.
func TestHostileFrameTooLarge(t *testing.T) {
	for _, framing := range []string{"msgpack", "json"} {
		t.Run(framing, func(t *testing.T) {
			e := newEnv(t)
			defer e.finish()
			b, addr, logs := e.node("B", func(c *transport.Config) { c.MaxFrame = 1024 })
			conn, res := messagingAttacker(t, e, addr, "M", []string{framing})
			codec, _ := wire.CodecByName(res.SendFraming)
			small, _ := codec.AppendMessage(nil, wire.Message{"", "devnull"})
			big, _ := codec.AppendMessage(nil, wire.Message{"", "devnull", strings.Repeat("y", 4096)})
			if _, err := conn.Write(small); err != nil {
				t.Fatal(err)
			}
			waitFor(t, 5*time.Second, func() bool { return len(b.Peers()) == 1 }, "attacker connected")
			go conn.Write(big)
			expectEOF(t, conn, 5*time.Second)
			logs.wait(t, wire.ErrFrameTooLarge, 2*time.Second)
			var fe *wire.FrameError
			if !errors.As(logs.find(wire.ErrFrameTooLarge), &fe) || fe.Codec != framing {
				t.Fatalf("logged %v, want a %s *wire.FrameError", logs.find(wire.ErrFrameTooLarge), framing)
			}
			waitFor(t, 5*time.Second, func() bool { return len(b.Peers()) == 0 }, "attacker dropped")
		})
	}
}

func waitFor(t *testing.T, d time.Duration, cond func() bool, what string) {
	t.Helper()
	end := time.Now().Add(d)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("timed out after %v waiting for: %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// readMessages decodes messages from conn in the background until it is
// closed, sending each node-port message to out.
func readMessages(conn net.Conn, framing string, out chan<- wire.NodeMsg) {
	codec, _ := wire.CodecByName(framing)
	dec := codec.NewDecoder(0)
	buf := make([]byte, 32<<10)
	for {
		n, err := conn.Read(buf)
		if n > 0 {
			if dec.Feed(buf[:n]) != nil {
				return
			}
			for {
				msg, ok, err := dec.Next()
				if err != nil || !ok {
					break
				}
				if len(msg) > 0 && msg[0] == "" {
					if nm, err := wire.ParseNodeMsg(msg[1:]); err == nil {
						select {
						case out <- nm:
						default:
						}
					}
				}
			}
		}
		if err != nil {
			close(out)
			return
		}
	}
}

// TestHostileExpectFlood: an authenticated node floods _expect messages
// and never dials: the node keeps at most MaxExpectPerPeer of them plus
// MaxExpectQueuePerPeer waiting ones, refuses the rest with a DataConn
// kill, and every kept one expires.
func TestHostileExpectFlood(t *testing.T) {
	e := newEnv(t)
	defer e.finish()
	const limit, queue, flood = 8, 16, 200
	b, addr, _ := e.node("B", func(c *transport.Config) {
		c.DataConn.MaxExpectPerPeer = limit
		c.DataConn.MaxExpectQueuePerPeer = queue
	})
	b.HandleDataConn("f", func(_ string, _ []any, c net.Conn) { c.Close() })
	conn, res := messagingAttacker(t, e, addr, "M", []string{"msgpack"})
	msgs := make(chan wire.NodeMsg, 4*flood)
	go readMessages(conn, res.RecvFraming, msgs)
	codec, _ := wire.CodecByName(res.SendFraming)
	var out []byte
	for i := 0; i < flood; i++ {
		out, _ = codec.AppendMessage(out, wire.ExpectMsg(fmt.Sprintf("flood%d", i), fmt.Sprintf("M#p%d", i), 1, "f"))
	}
	if _, err := conn.Write(out); err != nil {
		t.Fatal(err)
	}
	// Refused ones are killed at once with a DataConn reason; kept ones
	// when they expire (1 s): flood kills in all.
	kills := map[string]string{}
	deadline := time.After(10 * time.Second)
	maxPending := 0
	for len(kills) < flood {
		select {
		case nm, ok := <-msgs:
			if !ok {
				t.Fatalf("node dropped the connection after %d kills", len(kills))
			}
			if k, isKill := nm.(wire.NodeMsgKill); isKill {
				r := wire.KillReasonFromValues(k.Reason)
				if r == nil || r.Family != wire.KillReasonDataConn || r.Message == "" {
					t.Fatalf("kill of %s with reason %#v", k.Port, k.Reason)
				}
				kills[k.Port] = r.Error()
			}
		case <-deadline:
			t.Fatalf("only %d of %d expectations were refused or expired", len(kills), flood)
		}
		_, exp, _ := b.DataConns().Pending()
		maxPending = max(maxPending, exp)
	}
	if maxPending > limit+queue {
		t.Fatalf("node held %d expectations from one peer, cap %d+%d", maxPending, limit, queue)
	}
	refused := 0
	for _, text := range kills {
		if strings.Contains(text, "too many pending data connections") {
			refused++
		}
	}
	if refused < flood-limit-queue {
		t.Fatalf("%d refused for the cap, want at least %d: %v", refused, flood-limit-queue, kills)
	}
	waitFor(t, 5*time.Second, func() bool { o, x, h := b.DataConns().Pending(); return o+x+h == 0 }, "every expectation expired")
}
