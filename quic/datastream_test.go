package quic_test

// Direct data streams (a data connection is a stream of the authenticated
// QUIC connection, with a header instead of a handshake). memnet has no
// multiplexed connections, so the properties of this path run here, over
// real QUIC on loopback.

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/aemp-go/dataconn/core/wire"
	"github.com/aemp-go/dataconn/quic"
	"github.com/aemp-go/dataconn/transport"
)

// initCall is what an init function saw.
type initCall struct {
	from string
	data []any
	// first is the result of the init function's first Read.
	n   int
	err error
}

// recordInit registers init function name on n: it reports each call on
// the returned channel after its first Read, then echoes and closes.
func recordInit(n *transport.Node, name string) <-chan initCall {
	ch := make(chan initCall, 16)
	n.HandleDataConn(name, func(from string, data []any, c net.Conn) {
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(testTimeout))
		buf := make([]byte, 64)
		k, err := c.Read(buf)
		ch <- initCall{from: from, data: data, n: k, err: err}
		if err == nil {
			_, _ = c.Write(buf[:k])
			_, _ = io.Copy(c, c)
		}
	})
	return ch
}

func waitCall(t *testing.T, ch <-chan initCall) initCall {
	t.Helper()
	select {
	case c := <-ch:
		return c
	case <-time.After(testTimeout):
		t.Fatal("the init function did not run")
	}
	return initCall{}
}

func noCall(t *testing.T, ch <-chan initCall, within time.Duration) {
	t.Helper()
	select {
	case c := <-ch:
		t.Fatalf("the init function ran (from %q, data %v)", c.from, c.data)
	case <-time.After(within):
	}
}

// header encodes a direct data stream header.
func header(t *testing.T, from, to, fn string, data ...any) []byte {
	t.Helper()
	h, err := wire.AppendDataStreamHeader(nil, wire.DataStreamHeader{From: from, To: to, InitFunc: fn, InitData: data})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// answer reads the target's answer on a raw stream: accepted, or the
// refusal text; closed is set when the stream ended without an answer.
func answer(t *testing.T, s net.Conn) (accepted bool, refusal string, closed bool) {
	t.Helper()
	_ = s.SetReadDeadline(time.Now().Add(testTimeout))
	var b [3]byte
	if _, err := io.ReadFull(s, b[:1]); err != nil {
		if errors.Is(err, io.EOF) {
			return false, "", true
		}
		t.Fatalf("reading the answer: %v", err)
	}
	switch b[0] {
	case wire.DataStreamAccept:
		return true, "", false
	case wire.DataStreamRefuse:
		if _, err := io.ReadFull(s, b[1:]); err != nil {
			t.Fatal(err)
		}
		text := make([]byte, binary.BigEndian.Uint16(b[1:]))
		if _, err := io.ReadFull(s, text); err != nil {
			t.Fatal(err)
		}
		return false, string(text), false
	}
	t.Fatalf("answer byte %#x", b[0])
	return
}

// TestDirectDataStream: between nodes of this project over QUIC, a data
// connection to a warm peer works in both directions, carries the
// initiator's node ID and data, and is a stream of the messaging
// connection's QUIC connection (no new socket, no handshake: see
// TestSetupRTTDirect for the round trips).
func TestDirectDataStream(t *testing.T) {
	checkLeaks(t)
	a, _, aAddr := quicNode(t, "a", quic.Config{}, nil)
	b, _, bAddr := quicNode(t, "b", quic.Config{}, nil)
	a.AddPeer("b", bAddr)
	b.AddPeer("a", aAddr)
	atB, atA := recordInit(b, "test::rec"), recordInit(a, "test::rec")
	if err := a.Connect(testCtx(t), "b"); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []struct {
		from, to *transport.Node
		calls    <-chan initCall
	}{{a, b, atB}, {b, a, atA}} {
		c, err := dir.from.ConnectTo(testCtx(t), dir.to.ID(), 5*time.Second, "test::rec", int64(7), "x", []any{"nested", true})
		if err != nil {
			t.Fatalf("%s→%s: ConnectTo: %v", dir.from.ID(), dir.to.ID(), err)
		}
		if _, ok := c.(*quic.Stream); !ok {
			t.Fatalf("data connection is a %T, want the bare *quic.Stream", c)
		}
		if err := echoed(c); err != nil {
			t.Fatal(err)
		}
		_ = c.Close()
		call := waitCall(t, dir.calls)
		if call.from != dir.from.ID() || len(call.data) != 3 || call.data[0] != int64(7) || call.data[1] != "x" {
			t.Fatalf("init function called from %q with %#v", call.from, call.data)
		}
	}
	if got := a.Peers(); len(got) != 1 {
		t.Fatalf("a has peers %q", got)
	}
}

// TestDirectDataStreamHostile: what a direct data stream must not achieve.
func TestDirectDataStreamHostile(t *testing.T) {
	checkLeaks(t)
	const hsTimeout = 400 * time.Millisecond
	b, _, bAddr := quicNode(t, "b", quic.Config{}, func(c *transport.Config) { c.HandshakeTimeout = hsTimeout })
	calls := recordInit(b, "test::rec")
	quicAddr := hostPort(bAddr)

	t.Run("unauthenticated connection", func(t *testing.T) {
		// A QUIC connection on which no messaging handshake ran: the
		// stream is held for the handshake timeout, then refused.
		raw := newNet(t, quic.Config{})
		s, err := raw.Dial(testCtx(t), quicAddr)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		start := time.Now()
		if _, err := s.Write(header(t, "a", "b", "test::rec")); err != nil {
			t.Fatal(err)
		}
		ok, why, _ := answer(t, s)
		if ok || !strings.Contains(why, "not authenticated") {
			t.Fatalf("answer: accepted=%v %q, want a refusal naming the rule", ok, why)
		}
		if held := time.Since(start); held < hsTimeout/2 {
			t.Fatalf("refused after %v: not held for the handshake", held)
		}
		noCall(t, calls, 50*time.Millisecond)
	})

	t.Run("held until the messaging handshake", func(t *testing.T) {
		// The stream arrives before the messaging handshake on the same
		// QUIC connection has finished: it waits for it and belongs to
		// the node that authenticated; another node ID on the same
		// connection is refused.
		a, aNet := dialNode(t, "a", quic.Config{}, func(c *transport.Config) { c.HandshakeTimeout = hsTimeout })
		a.AddPeer("b", bAddr)
		early, err := aNet.Dial(testCtx(t), quicAddr)
		if err != nil {
			t.Fatal(err)
		}
		defer early.Close()
		if _, err := early.Write(header(t, "a", "b", "test::rec", "early")); err != nil {
			t.Fatal(err)
		}
		if err := a.Connect(testCtx(t), "b"); err != nil {
			t.Fatal(err)
		}
		if ok, why, _ := answer(t, early); !ok {
			t.Fatalf("held stream refused: %q", why)
		}
		if _, err := early.Write([]byte("p")); err != nil {
			t.Fatal(err)
		}
		if call := waitCall(t, calls); call.from != "a" || len(call.data) != 1 || call.data[0] != "early" || call.n != 1 {
			t.Fatalf("init function saw %+v", call)
		}
		other, err := aNet.Dial(testCtx(t), quicAddr)
		if err != nil {
			t.Fatal(err)
		}
		defer other.Close()
		if _, err := other.Write(header(t, "mallory", "b", "test::rec")); err != nil {
			t.Fatal(err)
		}
		if ok, why, _ := answer(t, other); ok || !strings.Contains(why, "not authenticated") {
			t.Fatalf("stream claiming another node: accepted=%v %q", ok, why)
		}
		wrongTo, err := aNet.Dial(testCtx(t), quicAddr)
		if err != nil {
			t.Fatal(err)
		}
		defer wrongTo.Close()
		if _, err := wrongTo.Write(header(t, "a", "c", "test::rec")); err != nil {
			t.Fatal(err)
		}
		if ok, why, _ := answer(t, wrongTo); ok || !strings.Contains(why, `for node "c"`) {
			t.Fatalf("stream for another target: accepted=%v %q", ok, why)
		}
		noCall(t, calls, 50*time.Millisecond)

		// Garbage and oversized headers on the authenticated connection.
		long := strings.Repeat("f", wire.MaxLineLen+1)
		for _, bad := range []struct {
			name   string
			bytes  []byte
			refuse string // "" = closed without an answer
		}{
			{"wrong version", []byte{wire.DataStreamMagic, 9, 0, 1, 0x90}, "version"},
			{"empty body", []byte{wire.DataStreamMagic, 1, 0, 0}, "empty body"},
			{"not msgpack", []byte{wire.DataStreamMagic, 1, 0, 2, 0xc1, 0xc1}, "malformed"},
			{"not an array", []byte{wire.DataStreamMagic, 1, 0, 1, 0x01}, "malformed"},
			{"too few fields", append([]byte{wire.DataStreamMagic, 1, 0, 3}, 0x92, 0xa1, 'a'), "malformed"},
			{"init function too long", header(t, "a", "b", "x")[:0], ""},
			{"truncated body", []byte{wire.DataStreamMagic, 1, 0xff, 0xff, 0x94}, ""},
		} {
			if bad.name == "init function too long" {
				body := append([]byte{0x93, 0xa1, 'a', 0xa1, 'b', 0xda, 0, 0}, long...)
				binary.BigEndian.PutUint16(body[6:], uint16(len(long)))
				bad.bytes = append([]byte{wire.DataStreamMagic, 1, 0, 0}, body...)
				binary.BigEndian.PutUint16(bad.bytes[2:], uint16(len(body)))
				bad.refuse = "malformed"
			}
			s, err := aNet.Dial(testCtx(t), quicAddr)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.Write(bad.bytes); err != nil {
				t.Fatal(err)
			}
			if bad.refuse == "" {
				_ = s.(*quic.Stream).CloseWrite()
			}
			ok, why, closed := answer(t, s)
			_ = s.Close()
			switch {
			case ok:
				t.Fatalf("%s: accepted", bad.name)
			case bad.refuse == "" && !closed:
				t.Fatalf("%s: answered %q, want the stream closed", bad.name, why)
			case bad.refuse != "" && !strings.Contains(why, bad.refuse):
				t.Fatalf("%s: refusal %q, want it to name %q", bad.name, why, bad.refuse)
			}
		}
		noCall(t, calls, 50*time.Millisecond)

		// The node's own data connections still work on this connection.
		c, err := a.ConnectTo(testCtx(t), "b", 5*time.Second, "test::rec", "after")
		if err != nil {
			t.Fatal(err)
		}
		if err := echoed(c); err != nil {
			t.Fatal(err)
		}
		_ = c.Close()
		if call := waitCall(t, calls); call.from != "a" || call.data[0] != "after" {
			t.Fatalf("init function saw %+v", call)
		}
	})

	t.Run("unknown init function", func(t *testing.T) {
		a, _ := dialNode(t, "a2", quic.Config{}, nil)
		a.AddPeer("b", bAddr)
		_, err := a.ConnectTo(testCtx(t), "b", 5*time.Second, "test::nope")
		var de *transport.DataConnError
		if !errors.As(err, &de) || !errors.Is(err, transport.ErrNoInitFunc) || !errors.Is(err, transport.ErrDataConnKilled) ||
			de.Reason.Family != wire.KillReasonDataConn || de.Reason.Message != `b: no init function "test::nope"` {
			t.Fatalf("ConnectTo: %v (%#v), want a *DataConnError for the unknown init function", err, de)
		}
	})

	t.Run("init data too large for a header", func(t *testing.T) {
		// Honest load never fails on the header limit: the request takes
		// the rendezvous and the handshake instead.
		a, _ := dialNode(t, "a3", quic.Config{}, nil)
		a.AddPeer("b", bAddr)
		big := strings.Repeat("d", wire.MaxDataStreamHeader)
		c, err := a.ConnectTo(testCtx(t), "b", 5*time.Second, "test::rec", big)
		if err != nil {
			t.Fatal(err)
		}
		if err := echoed(c); err != nil {
			t.Fatal(err)
		}
		_ = c.Close()
		if call := waitCall(t, calls); call.from != "a3" || call.data[0] != big {
			t.Fatalf("init function called from %q with %d values", call.from, len(call.data))
		}
	})
}

// TestDirectDataStreamCrash: the link dies in the middle of a set-up.
// ConnectTo gives exactly one typed error within its timeout, and an
// init function that ran sees its stream closed before any byte arrives.
func TestDirectDataStreamCrash(t *testing.T) {
	checkLeaks(t)
	qcfg := quic.Config{IdleTimeout: 3 * time.Second, KeepAlivePeriod: 200 * time.Millisecond}
	for _, mode := range []string{"answer lost", "target vanished"} {
		t.Run(mode, func(t *testing.T) {
			b, _, bAddr := quicNode(t, "b", qcfg, nil)
			calls := recordInit(b, "test::rec")
			r := newRelay(t, hostPort(bAddr))
			a, _ := dialNode(t, "a", qcfg, nil)
			a.AddPeer("b", "quic://"+r.front.LocalAddr().String())
			if err := a.Connect(testCtx(t), "b"); err != nil {
				t.Fatal(err)
			}
			// A warm data connection first: the path is direct.
			c, err := a.ConnectTo(testCtx(t), "b", 5*time.Second, "test::rec")
			if err != nil {
				t.Fatal(err)
			}
			if err := echoed(c); err != nil {
				t.Fatal(err)
			}
			_ = c.Close()
			waitCall(t, calls)

			if mode == "answer lost" {
				r.cutBack.Store(true)
			} else {
				r.cut.Store(true)
			}
			const timeout = time.Second
			start := time.Now()
			c, err = a.ConnectTo(context.Background(), "b", timeout, "test::rec")
			took := time.Since(start)
			var de *transport.DataConnError
			if c != nil || !errors.As(err, &de) || !errors.Is(err, transport.ErrDataConnTimeout) ||
				!strings.Contains(de.Reason.Message, "unable to establish connection within 1 seconds") {
				t.Fatalf("ConnectTo = %v, %v; want one timeout *DataConnError", c, err)
			}
			if took > timeout+timeout/2+time.Second {
				t.Fatalf("ConnectTo failed after %v, timeout %v", took, timeout)
			}
			if mode == "target vanished" {
				noCall(t, calls, 100*time.Millisecond)
				return
			}
			call := waitCall(t, calls)
			if call.n != 0 || call.err == nil {
				t.Fatalf("init function of the failed set-up read %d bytes, err %v; want its stream closed first", call.n, call.err)
			}
		})
	}
}

// echoBytes is used by the fuzz-free sanity check below.
var _ = bytes.Equal

// TestDirectDataStreamHeldEvicted: held direct data streams count among
// the listener's handshakes; when the cap evicts one, it is closed at
// once instead of being held until the handshake timeout.
func TestDirectDataStreamHeldEvicted(t *testing.T) {
	checkLeaks(t)
	const hsTimeout = 10 * time.Second
	b, _, bAddr := quicNode(t, "b", quic.Config{}, func(c *transport.Config) {
		c.HandshakeTimeout = hsTimeout
		c.MaxHandshakes = 1
	})
	calls := recordInit(b, "test::rec")
	raw := newNet(t, quic.Config{})
	open := func() net.Conn {
		s, err := raw.Dial(testCtx(t), hostPort(bAddr))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		if _, err := s.Write(header(t, "a", "b", "test::rec")); err != nil {
			t.Fatal(err)
		}
		return s
	}
	first := open()
	// b holds it in a goroutine of its own; count goroutines once that
	// one is there (the count stops changing).
	settle := func() int {
		g := runtime.NumGoroutine()
		for range 200 {
			time.Sleep(10 * time.Millisecond)
			if n := runtime.NumGoroutine(); n == g {
				return g
			} else {
				g = n
			}
		}
		return g
	}
	held := settle()
	start := time.Now()
	open() // evicts first, and is held in its place
	if ok, why, _ := answer(t, first); ok {
		t.Fatalf("evicted stream accepted (%q)", why)
	}
	// The evicted stream's goroutine ends now, not at the handshake
	// timeout: the count returns to one held stream's.
	for runtime.NumGoroutine() > held {
		if time.Since(start) > hsTimeout/2 {
			t.Fatalf("%d goroutines %v after the eviction, %d with one held stream", runtime.NumGoroutine(), time.Since(start), held)
		}
		time.Sleep(5 * time.Millisecond)
	}
	noCall(t, calls, 50*time.Millisecond)
}
