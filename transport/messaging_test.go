package transport_test

// Messaging between Nodes on memnet under testing/synctest: order and
// loss, node-down on partitions and reconnection, the framing matrix and
// hostile input on a messaging connection.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aemp-go/dataconn/core/handshake"
	"github.com/aemp-go/dataconn/core/wire"
	"github.com/aemp-go/dataconn/memnet"
	"github.com/aemp-go/dataconn/transport"
)

// seqRecorder checks that messages [from, seq] arrive from each sender in
// order, and counts them.
type seqRecorder struct {
	mu    sync.Mutex
	next  map[string]int64
	total int
	errs  []string
	done  chan struct{}
	want  int
}

func newSeqRecorder(want int) *seqRecorder {
	return &seqRecorder{next: map[string]int64{}, done: make(chan struct{}), want: want}
}

func (r *seqRecorder) handle(d []any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	from, _ := d[0].(string)
	seq, _ := d[1].(int64)
	if seq != r.next[from] {
		r.errs = append(r.errs, fmt.Sprintf("from %s: got #%d, want #%d", from, seq, r.next[from]))
	}
	r.next[from] = seq + 1
	r.total++
	if r.total == r.want {
		close(r.done)
	}
}

func (r *seqRecorder) check(t *testing.T, who string) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.errs) > 0 {
		t.Errorf("%s: %d order errors, first: %s", who, len(r.errs), r.errs[0])
	}
	if r.total != r.want {
		t.Errorf("%s: %d messages, want %d", who, r.total, r.want)
	}
}

// wait waits for all messages, at most d of (virtual) time.
func (r *seqRecorder) wait(t *testing.T, who string, d time.Duration) {
	t.Helper()
	select {
	case <-r.done:
	case <-time.After(d):
		t.Errorf("%s: not all messages arrived within %v", who, d)
	}
}

func TestMessagingTwoNodesOrderNoLoss(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const count = 2000
		w := memnet.New(21, memnet.WithDefaultLink(memnet.LinkConfig{Latency: 4 * time.Millisecond, Jitter: 3 * time.Millisecond}))
		a := listening(t, w, "a", nil)
		b := listening(t, w, "b", nil)
		meshPeers(a, b)
		ra, rb := newSeqRecorder(count), newSeqRecorder(count)
		pa, pb := a.NewPort(ra.handle), b.NewPort(rb.handle)
		var wg sync.WaitGroup
		// Both directions at once; both nodes dial (tie-break included).
		for _, s := range []struct {
			n  *transport.Node
			to string
		}{{a, pb.ID()}, {b, pa.ID()}} {
			wg.Go(func() {
				for i := range count {
					if err := s.n.Send(s.to, s.n.ID(), int64(i), strings.Repeat("x", i%300)); err != nil {
						t.Errorf("%s: send #%d: %v", s.n.ID(), i, err)
						return
					}
					if i%100 == 99 {
						time.Sleep(time.Millisecond)
					}
				}
			})
		}
		wg.Wait()
		ra.wait(t, "a", time.Minute)
		rb.wait(t, "b", time.Minute)
		ra.check(t, "a")
		rb.check(t, "b")
		closeAll(a, b)
	})
}

func TestMessagingNodesPerPairOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const nodes, count = 6, 150
		w := memnet.New(22, memnet.WithDefaultLink(memnet.LinkConfig{Latency: 2 * time.Millisecond, Jitter: 6 * time.Millisecond}))
		ns := make([]*transport.Node, nodes)
		recs := make([]*seqRecorder, nodes)
		ports := make([]*transport.Port, nodes)
		for i := range ns {
			ns[i] = listening(t, w, fmt.Sprintf("n%d", i), nil)
			recs[i] = newSeqRecorder((nodes - 1) * count)
			ports[i] = ns[i].NewPort(recs[i].handle)
		}
		meshPeers(ns...)
		var wg sync.WaitGroup
		for i, n := range ns {
			for j := range ns {
				if i == j {
					continue
				}
				wg.Go(func() {
					for k := range count {
						if err := n.Send(ports[j].ID(), n.ID(), int64(k)); err != nil {
							t.Errorf("%s -> %d: %v", n.ID(), j, err)
							return
						}
						if k%10 == 0 {
							time.Sleep(time.Duration(i+j) * time.Millisecond)
						}
					}
				})
			}
		}
		wg.Wait()
		for i, r := range recs {
			r.wait(t, ns[i].ID(), time.Minute)
			r.check(t, ns[i].ID())
		}
		for i, n := range ns {
			if got := len(n.Peers()); got != nodes-1 {
				t.Errorf("%s has %d peers, want %d", ns[i].ID(), got, nodes-1)
			}
		}
		closeAll(ns...)
	})
}

// nodeEvents records MonitorNode callbacks.
type nodeEvents struct {
	ch chan nodeEvent
}

type nodeEvent struct {
	up  bool
	err error
	at  time.Time
}

func watchNode(n *transport.Node, peer string) *nodeEvents {
	e := &nodeEvents{ch: make(chan nodeEvent, 16)}
	n.MonitorNode(peer, func(up bool, err error) { e.ch <- nodeEvent{up, err, time.Now()} })
	return e
}

// next returns the next event, failing the test if none comes within d.
func (e *nodeEvents) next(t *testing.T, what string, d time.Duration) nodeEvent {
	t.Helper()
	select {
	case ev := <-e.ch:
		return ev
	case <-time.After(d):
		t.Fatalf("%s: no node event within %v", what, d)
		return nodeEvent{}
	}
}

// TestMessagingPartitionNodeDownAndReconnect: keepalives hold an idle
// connection up; a partition takes the peer down within (PeerTimeout -
// KeepAlive, PeerTimeout] for ErrPeerTimeout; after healing it comes back.
// Once with short timers, once at the defaults (KeepAlive 10 s,
// PeerTimeout 30 s: the README's limits table).
func TestMessagingPartitionNodeDownAndReconnect(t *testing.T) {
	for _, tc := range []struct {
		name                   string
		keepAlive, peerTimeout time.Duration
		set                    bool
	}{
		{"short", time.Second, 3 * time.Second, true},
		{"defaults", 10 * time.Second, 30 * time.Second, false},
	} {
		t.Run(tc.name, func(t *testing.T) { testPartitionNodeDown(t, tc.keepAlive, tc.peerTimeout, tc.set) })
	}
}

func testPartitionNodeDown(t *testing.T, keepAlive, peerTimeout time.Duration, set bool) {
	synctest.Test(t, func(t *testing.T) {
		const lat = 5 * time.Millisecond
		w := memnet.New(23, memnet.WithDefaultLink(memnet.LinkConfig{Latency: lat}))
		cfg := func(c *transport.Config) {
			if set {
				c.KeepAlive, c.PeerTimeout = keepAlive, peerTimeout
			}
		}
		a := listening(t, w, "a", cfg)
		b := listening(t, w, "b", cfg)
		meshPeers(a, b)
		ea, eb := watchNode(a, "b"), watchNode(b, "a")
		got := make(chan []any, 16)
		pb := b.NewPort(func(d []any) { got <- d })
		if err := a.Send(pb.ID(), "before"); err != nil {
			t.Fatal(err)
		}
		if d := <-got; d[0] != "before" {
			t.Fatalf("got %v", d)
		}
		if ev := ea.next(t, "a", time.Second); !ev.up {
			t.Fatalf("a: first event is down: %v", ev.err)
		}
		if ev := eb.next(t, "b", time.Second); !ev.up {
			t.Fatalf("b: first event is down: %v", ev.err)
		}
		// Idle long enough for keepalives alone to keep the link up.
		time.Sleep(3 * peerTimeout)
		select {
		case ev := <-ea.ch:
			t.Fatalf("an idle connection with keepalives went down: %+v", ev)
		default:
		}
		w.Partition([]string{"a"}, []string{"b"})
		cut := time.Now()
		timeouts := 0
		for _, e := range []struct {
			name string
			ev   *nodeEvents
		}{{"a", ea}, {"b", eb}} {
			ev := e.ev.next(t, e.name, 2*peerTimeout)
			if ev.up {
				t.Fatalf("%s: up during the partition", e.name)
			}
			// The first side to time out closes its end; memnet lets the
			// other side's next write fail at once, so only one side is
			// sure to report the timeout itself.
			if errors.Is(ev.err, transport.ErrPeerTimeout) {
				timeouts++
			} else if ev.err == nil {
				t.Errorf("%s: down without a reason", e.name)
			}
			// The last thing read was at most a keepalive interval before
			// the cut.
			if d := ev.at.Sub(cut); d > peerTimeout || d < peerTimeout-keepAlive-2*lat {
				t.Errorf("%s: down %v after the partition, want within (%v, %v]", e.name, d, peerTimeout-keepAlive, peerTimeout)
			}
		}
		if timeouts == 0 {
			t.Error("neither side reported ErrPeerTimeout")
		}
		if p := a.Peers(); len(p) != 0 {
			t.Errorf("a still lists peers %v", p)
		}
		w.Heal()
		if err := a.Send(pb.ID(), "after"); err != nil {
			t.Fatal(err)
		}
		select {
		case d := <-got:
			if d[0] != "after" {
				t.Fatalf("got %v", d)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no message after heal")
		}
		if ev := ea.next(t, "a", time.Second); !ev.up {
			t.Errorf("a: not up again: %v", ev.err)
		}
		closeAll(a, b)
	})
}

// framingSpy records, per dialed stream, the bytes the node wrote.
type framingSpy struct {
	mu     sync.Mutex
	writes map[string]*bytes.Buffer
}

func (s *framingSpy) on(addr string, p []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.writes[addr] == nil {
		s.writes[addr] = new(bytes.Buffer)
	}
	s.writes[addr].Write(p)
}

// accepted returns the key of the one stream accepted by the spied node.
func (s *framingSpy) accepted() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k := range s.writes {
		if strings.HasPrefix(k, "in:") {
			return k
		}
	}
	return ""
}

// authFraming returns the framing named in the auth line (third line) the
// node wrote to addr, and the first byte after it.
func (s *framingSpy) authFraming(addr string) (framing string, first byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.writes[addr]
	if b == nil {
		return "", 0
	}
	lines := bytes.SplitN(b.Bytes(), []byte("\n"), 4)
	if len(lines) < 4 {
		return "", 0
	}
	f := strings.Split(string(lines[2]), ";")
	if len(lines[3]) > 0 {
		first = lines[3][0]
	}
	return f[len(f)-1], first
}

func TestMessagingFramingMatrix(t *testing.T) {
	msgpackJSON := []string{"msgpack", "json"}
	cases := []struct {
		name           string
		fa, fb         []string
		aSends, bSends string
	}{
		{"msgpack-msgpack", nil, nil, "msgpack", "msgpack"},
		{"msgpack-json", []string{"json", "msgpack"}, msgpackJSON, "msgpack", "json"},
		{"json-only-peer", nil, []string{"json"}, "json", "json"},
		{"json-only-both", []string{"json"}, []string{"json"}, "json", "json"},
		{"no-common", []string{"msgpack"}, []string{"json"}, "", ""},
	}
	// Values every framing carries unchanged.
	payload := []any{"text", int64(-7), int64(1) << 40, 2.5, true, false, nil,
		[]any{"nested", int64(1)}, map[string]any{"k": "v"}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				w := memnet.New(24, memnet.WithDefaultLink(memnet.LinkConfig{Latency: time.Millisecond}))
				spy := &framingSpy{writes: map[string]*bytes.Buffer{}}
				a := startNode(t, w, nodeSpec{name: "a", listen: true, net: &spyNet{Network: w.Host("a"), OnWrite: spy.on},
					mod: func(c *transport.Config) { c.Framings = tc.fa }})
				b := startNode(t, w, nodeSpec{name: "b", listen: true, net: &spyNet{Network: w.Host("b"), OnWrite: spy.on},
					mod: func(c *transport.Config) { c.Framings = tc.fb }})
				meshPeers(a, b)
				err := a.Connect(context.Background(), "b")
				if tc.aSends == "" {
					if !errors.Is(err, handshake.ErrNoCommonFraming) {
						t.Fatalf("Connect: %v, want handshake.ErrNoCommonFraming", err)
					}
					if !strings.Contains(err.Error(), "no common framing") {
						t.Errorf("error text %q does not name the rule", err)
					}
					closeAll(a, b)
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				got := make(chan []any, 2)
				pa := a.NewPort(func(d []any) { got <- d })
				pb := b.NewPort(func(d []any) {
					b.Send(pa.ID(), d...) // echo
				})
				if err := a.Send(pb.ID(), payload...); err != nil {
					t.Fatal(err)
				}
				select {
				case d := <-got:
					if fmt.Sprintf("%#v", d) != fmt.Sprintf("%#v", payload) {
						t.Errorf("echo\n got %#v\nwant %#v", d, payload)
					}
				case <-time.After(time.Second):
					t.Fatal("no echo")
				}
				for _, side := range []struct{ who, key, want string }{
					{"a", "b:1", tc.aSends},
					{"b", spy.accepted(), tc.bSends},
				} {
					f, first := spy.authFraming(side.key)
					if f != side.want {
						t.Errorf("%s sends %q, want %q", side.who, f, side.want)
					}
					// The first message byte: a msgpack array or a JSON '['.
					if isJSON := first == '['; isJSON != (side.want == "json") || first == 0 {
						t.Errorf("%s's first message byte %#x does not match framing %s", side.who, first, side.want)
					}
				}
				closeAll(a, b)
			})
		})
	}
}

// hostileConn opens an authenticated messaging connection from a test
// controlled peer "c" to b, which watches c.
func hostileConn(t *testing.T, w *memnet.World, b *transport.Node, framing string) (io.ReadWriteCloser, *nodeEvents) {
	t.Helper()
	ev := watchNode(b, "c")
	c, res, err := rawHandshake(context.Background(), w, "c", b.Addrs()[0], wire.ProtocolMessaging, []string{framing}, simSecret)
	if err != nil {
		t.Fatal(err)
	}
	if res.SendFraming != framing {
		t.Fatalf("framing %s", res.SendFraming)
	}
	if e := ev.next(t, "b", time.Second); !e.up {
		t.Fatalf("b: c down: %v", e.err)
	}
	return c, ev
}

// expectDropped checks that b drops c's connection with rule and that c
// reads the end of the stream.
func expectDropped(t *testing.T, c io.Reader, ev *nodeEvents, rule error) {
	t.Helper()
	e := ev.next(t, "b", 5*time.Second)
	if e.up || !errors.Is(e.err, rule) {
		t.Fatalf("b: event up=%v err=%v, want down with %v", e.up, e.err, rule)
	}
	if !strings.Contains(e.err.Error(), "from c") {
		t.Errorf("reason %q does not name the peer", e.err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := io.Copy(io.Discard, c)
		done <- err
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("c's stream still open")
	}
}

// TestMessagingOversizedFrameDropsConnection: a message just under
// MaxFrame is delivered, one over it drops the connection for
// ErrFrameTooLarge; with MaxFrame 1024 and at the default 16 MiB (the
// README's limits table).
func TestMessagingOversizedFrameDropsConnection(t *testing.T) {
	for _, limit := range []int{1024, 0} {
		for _, framing := range []string{"msgpack", "json"} {
			t.Run(fmt.Sprintf("%s/MaxFrame=%d", framing, limit), func(t *testing.T) { testOversizedFrame(t, framing, limit) })
		}
	}
}

func testOversizedFrame(t *testing.T, framing string, limit int) {
	synctest.Test(t, func(t *testing.T) {
		w := memnet.New(25, memnet.WithDefaultLink(memnet.LinkConfig{Latency: time.Millisecond}))
		var mu sync.Mutex
		var calls [][]any
		b := listening(t, w, "b", func(c *transport.Config) { c.MaxFrame = limit })
		max := limit
		if max == 0 {
			max = 16 << 20
		}
		p := b.NewPort(func(d []any) { mu.Lock(); calls = append(calls, d); mu.Unlock() })
		c, ev := hostileConn(t, w, b, framing)
		codec, _ := wire.CodecByName(framing)
		small, _ := codec.AppendMessage(nil, wire.Message{p.Name(), "small"})
		// Framing overhead is under 64 bytes for these messages.
		nearText := strings.Repeat("n", max-64)
		near, _ := codec.AppendMessage(nil, wire.Message{p.Name(), nearText})
		big, _ := codec.AppendMessage(nil, wire.Message{p.Name(), strings.Repeat("y", max+1)})
		if len(near) > max || len(big) <= max {
			t.Fatalf("test messages of %d and %d bytes do not straddle the limit %d", len(near), len(big), max)
		}
		go func() {
			c.Write(small)
			c.Write(near)
			c.Write(big)
		}()
		expectDropped(t, c, ev, wire.ErrFrameTooLarge)
		c.Close()
		synctest.Wait()
		mu.Lock()
		if len(calls) != 2 || len(calls[0]) != 1 || calls[0][0] != "small" || len(calls[1]) != 1 || calls[1][0] != nearText {
			t.Errorf("port got %d messages, want only the small one and the one just under the limit", len(calls))
		}
		mu.Unlock()
		// A well-behaved node still talks to b afterwards.
		a := listening(t, w, "a", nil)
		meshPeers(a, b)
		got := make(chan []any, 1)
		q := b.NewPort(func(d []any) { got <- d })
		a.Send(q.ID(), "fine")
		select {
		case d := <-got:
			if d[0] != "fine" {
				t.Errorf("got %v", d)
			}
		case <-time.After(time.Second):
			t.Error("b no longer receives")
		}
		closeAll(a, b)
	})
}

func TestMessagingGarbageDropsConnection(t *testing.T) {
	cases := []struct {
		framing string
		garbage []byte
	}{
		{"msgpack", []byte{0xc1, 0xc1, 0xc1}}, // 0xc1 is never used in msgpack
		{"msgpack", []byte{0x05}},             // not an array
		{"json", []byte("}}}")},
		{"json", []byte(`"not an array"`)},
	}
	for i, tc := range cases {
		t.Run(fmt.Sprintf("%s-%d", tc.framing, i), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				w := memnet.New(26, memnet.WithDefaultLink(memnet.LinkConfig{Latency: time.Millisecond}))
				b := listening(t, w, "b", nil)
				c, ev := hostileConn(t, w, b, tc.framing)
				c.Write(tc.garbage)
				expectDropped(t, c, ev, wire.ErrFrameMalformed)
				c.Close()
				closeAll(b)
			})
		})
	}
}

// TestMessagingFloodToMissingPort: 24 MiB of messages to a port that does
// not exist are dropped as they arrive: the connection stays up, a later
// message to a real port arrives, and b's heap does not grow with the
// flood.
func TestMessagingFloodToMissingPort(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := memnet.New(27, memnet.WithDefaultLink(memnet.LinkConfig{Latency: time.Millisecond}))
		b := listening(t, w, "b", nil)
		got := make(chan []any, 1)
		p := b.NewPort(func(d []any) { got <- d })
		c, ev := hostileConn(t, w, b, "msgpack")
		codec, _ := wire.CodecByName("msgpack")
		junk := bytes.Repeat([]byte{0xab}, 1024)
		var batch []byte
		for range 64 {
			batch, _ = codec.AppendMessage(batch, wire.Message{"no-such-port", junk, int64(7)})
		}
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		const rounds = 24 * 1024 / 64 // 24 MiB in all
		for i := range rounds {
			if _, err := c.Write(batch); err != nil {
				t.Fatalf("write %d: %v", i, err)
			}
		}
		end, _ := codec.AppendMessage(nil, wire.Message{p.Name(), "end"})
		c.Write(end)
		select {
		case d := <-got:
			if d[0] != "end" {
				t.Fatalf("got %v", d)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the message after the flood did not arrive")
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		if grow := int64(after.HeapAlloc) - int64(before.HeapAlloc); grow > 4<<20 {
			t.Errorf("heap grew by %d bytes during a 24 MiB flood", grow)
		}
		select {
		case e := <-ev.ch:
			t.Errorf("b: node event during the flood: up=%v err=%v", e.up, e.err)
		default:
		}
		c.Close()
		closeAll(b)
	})
}

// TestMessagingSimultaneousDialKeepsOrder: both nodes start sending at the
// same instant, so each dials the other and one of the two connections
// loses the tie-break while messages are already in flight on it. Order
// per pair must survive the switch, over many jitter draws.
func TestMessagingSimultaneousDialKeepsOrder(t *testing.T) {
	for seed := int64(1); seed <= 20; seed++ {
		synctest.Test(t, func(t *testing.T) {
			const count = 300
			w := memnet.New(seed, memnet.WithDefaultLink(memnet.LinkConfig{Latency: 2 * time.Millisecond, Jitter: 4 * time.Millisecond}))
			a := listening(t, w, "a", nil)
			b := listening(t, w, "b", nil)
			meshPeers(a, b)
			ra, rb := newSeqRecorder(count), newSeqRecorder(count)
			pa, pb := a.NewPort(ra.handle), b.NewPort(rb.handle)
			var wg sync.WaitGroup
			for _, s := range []struct {
				n  *transport.Node
				to string
			}{{a, pb.ID()}, {b, pa.ID()}} {
				wg.Go(func() {
					for i := range count {
						if err := s.n.Send(s.to, s.n.ID(), int64(i)); err != nil {
							t.Errorf("seed %d: %s: send #%d: %v", seed, s.n.ID(), i, err)
							return
						}
						if i%5 == 4 {
							time.Sleep(200 * time.Microsecond)
						}
					}
				})
			}
			wg.Wait()
			ra.wait(t, "a", time.Minute)
			rb.wait(t, "b", time.Minute)
			ra.check(t, fmt.Sprintf("seed %d: a", seed))
			rb.check(t, fmt.Sprintf("seed %d: b", seed))
			closeAll(a, b)
		})
	}
}
