package fuzz

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/aemp-go/dataconn/core/handshake"
	"github.com/aemp-go/dataconn/core/peer"
	"github.com/aemp-go/dataconn/core/wire"
)

// peerDriver plays the transport and the peers of one peer.Machine (node
// "m"; peers "a" and "b" have lower IDs, "x" and "y" higher) with inputs
// drawn by rapid, and checks every action against what the machine was
// told.
type peerDriver struct {
	m      *peer.Machine
	cfg    peer.Config
	now    time.Time
	closed bool
	steps  int

	nextConn peer.ConnID
	used     []peer.ConnID            // every ID reported to the machine
	seq      map[peer.ConnID]uint64   // last Write seq per connection
	unacked  map[peer.ConnID][]uint64 // seq of each unconfirmed frame
	sizes    map[peer.ConnID]map[uint64]int
	up       map[string]bool // NodeUp without NodeDown
	blocked  map[string]bool // ErrQueueFull since the last Writable
	attempts map[string]uint64
	// draws owed (Draw actions not yet answered) and seed attempts.
	draws        []peer.DrawKind
	seedAttempts map[string]uint64
	fired        map[peer.MonitorID]bool // monitors seen in MonitorFired or PortKilled
}

var fuzzPeers = []string{"a", "b", "x", "y"}

func (d *peerDriver) fatalf(t *rapid.T, format string, args ...any) {
	t.Fatalf("step %d: "+format, append([]any{d.steps}, args...)...)
}

// checkErr accepts the typed errors the machine's inputs may return.
func (d *peerDriver) checkErr(t *rapid.T, what string, err error) {
	if err == nil {
		return
	}
	for _, rule := range []error{
		peer.ErrQueueFull, peer.ErrConnReplaced, peer.ErrUnknownConn, peer.ErrConnKnown,
		peer.ErrUnknownPort, peer.ErrPortExists, peer.ErrUnknownFunc, peer.ErrIgnored,
		peer.ErrBadMessage, peer.ErrBadPortID, peer.ErrBadNodeID, peer.ErrSelf, peer.ErrFraming, peer.ErrClosed,
		peer.ErrKillNodePort, peer.ErrUntrusted, peer.ErrUntrustedRequest, peer.ErrDBLimit, peer.ErrDBValue, peer.ErrDBReserved,
		wire.ErrNodeMsgMalformed, wire.ErrFrameUnencodable,
	} {
		if errors.Is(err, rule) {
			if errors.Is(err, peer.ErrDBLimit) {
				var dl *peer.DBLimitError
				if !errors.As(err, &dl) || dl.Limit == "" || dl.Max <= 0 {
					d.fatalf(t, "%s: database-limit error %v does not name its limit", what, err)
				}
			}
			if errors.Is(err, peer.ErrQueueFull) {
				var qf *peer.QueueFullError
				if !errors.As(err, &qf) || qf.Limit == "" || qf.Max <= 0 {
					d.fatalf(t, "%s: queue-full error %v does not name its limit", what, err)
				}
			}
			return
		}
	}
	d.fatalf(t, "%s: untyped error %T %v", what, err, err)
}

// input runs f, then polls and checks every action.
func (d *peerDriver) input(t *rapid.T, what string, upped peer.ConnID, f func() error) error {
	d.steps++
	known := d.m.Conns()
	if upped != 0 {
		known = append(known, upped)
	}
	err := f()
	d.checkErr(t, what, err)
	// A refused send (also one the machine made itself, answering a
	// request) is owed a Writable.
	var qf *peer.QueueFullError
	if errors.As(err, &qf) {
		d.blocked[qf.Peer] = true
	}
	for n := 0; ; n++ {
		if n > 10000 {
			d.fatalf(t, "%s: more than 10000 actions for one input", what)
		}
		a := d.m.Poll()
		if a == nil {
			break
		}
		if d.closed {
			d.fatalf(t, "%s: action %T after Close", what, a)
		}
		d.check(t, what, known, a)
	}
	if what == "close" {
		d.closed = true
	}
	for c := range d.seq {
		d.dropIfGone(c)
	}
	d.checkTimers(t)
	return err
}

func (d *peerDriver) check(t *rapid.T, what string, known []peer.ConnID, a peer.Action) {
	conn := func(c peer.ConnID) {
		if !slices.Contains(known, c) {
			d.fatalf(t, "%s: %T names connection %d, unknown to the machine", what, a, c)
		}
	}
	switch a := a.(type) {
	case peer.Write:
		conn(a.Conn)
		if a.Seq != d.seq[a.Conn]+1 {
			d.fatalf(t, "%s: write #%d on %d after #%d", what, a.Seq, a.Conn, d.seq[a.Conn])
		}
		d.seq[a.Conn] = a.Seq
		inflight := 0
		for _, s := range d.unacked[a.Conn] {
			inflight += d.sizes[a.Conn][s]
		}
		if inflight > 0 && inflight >= d.cfg.WriteWindow {
			d.fatalf(t, "%s: write on %d with %d bytes in flight (window %d)", what, a.Conn, inflight, d.cfg.WriteWindow)
		}
		if len(a.Frame) == 0 {
			d.fatalf(t, "%s: empty frame", what)
		}
		d.unacked[a.Conn] = append(d.unacked[a.Conn], a.Seq)
		if d.sizes[a.Conn] == nil {
			d.sizes[a.Conn] = map[uint64]int{}
		}
		d.sizes[a.Conn][a.Seq] = len(a.Frame)
	case peer.CloseWrite:
		conn(a.Conn)
	case peer.Close:
		conn(a.Conn)
		if a.Err == nil {
			d.fatalf(t, "%s: Close without a reason", what)
		}
	case peer.PauseRead:
		conn(a.Conn)
	case peer.ResumeRead:
		conn(a.Conn)
	case peer.Dial:
		if !slices.Contains(fuzzPeers, a.Peer) || len(a.Addrs) == 0 || a.Attempt == 0 {
			d.fatalf(t, "%s: dial %+v", what, a)
		}
		d.attempts[a.Peer] = a.Attempt
	case peer.NodeUp:
		if d.up[a.Peer] {
			d.fatalf(t, "%s: node-up %s twice", what, a.Peer)
		}
		d.up[a.Peer] = true
	case peer.NodeDown:
		if !d.up[a.Peer] {
			d.fatalf(t, "%s: node-down %s while down", what, a.Peer)
		}
		if a.Err == nil {
			d.fatalf(t, "%s: node-down without a reason", what)
		}
		d.up[a.Peer] = false
	case peer.Unreachable:
		if a.Err == nil {
			d.fatalf(t, "%s: unreachable without a reason", what)
		}
	case peer.Writable:
		// Owed to a refused sender: one the caller saw, or the machine's
		// own answer to a held-back request (its error has no one to go
		// to), so only the peer can be checked.
		if !slices.Contains(fuzzPeers, a.Peer) {
			d.fatalf(t, "%s: writable for %q", what, a.Peer)
		}
		d.blocked[a.Peer] = false
	case peer.PortKilled:
		d.fire(t, what, a.Monitors)
	case peer.MonitorFired:
		if len(a.Reason) > 0 && a.Reason[0] == "transport_error" && len(a.Reason) != 3 {
			d.fatalf(t, "%s: transport_error reason %v is not [transport_error NODE MSG]", what, a.Reason)
		}
		d.fire(t, what, a.Monitors)
	case peer.Draw:
		d.draws = append(d.draws, a.Kind)
	case peer.DialSeed:
		if a.Attempt <= d.seedAttempts[a.Addr] {
			d.fatalf(t, "%s: seed attempt %d of %s after %d", what, a.Attempt, a.Addr, d.seedAttempts[a.Addr])
		}
		d.seedAttempts[a.Addr] = a.Attempt
	case peer.Deliver, peer.Call, peer.DataConn, peer.DBChanged:
	default:
		d.fatalf(t, "%s: unknown action %T", what, a)
	}
}

// fire checks that a monitor fires at most once.
func (d *peerDriver) fire(t *rapid.T, what string, ids []peer.MonitorID) {
	for _, id := range ids {
		if d.fired[id] {
			d.fatalf(t, "%s: monitor %d fired twice", what, id)
		}
		d.fired[id] = true
	}
}

func (d *peerDriver) checkTimers(t *rapid.T) {
	timers := d.m.Timers()
	at, ok := d.m.Deadline()
	if ok != (len(timers) > 0) || (ok && !timers[0].At.Equal(at)) {
		d.fatalf(t, "Deadline %v/%v, timers %v", at, ok, timers)
	}
	conns := d.m.Conns()
	for i, tm := range timers {
		if i > 0 && tm.At.Before(timers[i-1].At) {
			d.fatalf(t, "timers not sorted: %v", timers)
		}
		if tm.At.Before(time.Unix(1e9, 0)) {
			// Every deadline is an input's now plus a delay: one before
			// the first input was armed from a zero time.
			d.fatalf(t, "timer %v armed at %v, before the first input", tm.Kind, tm.At)
		}
		if tm.Conn != 0 && !slices.Contains(conns, tm.Conn) {
			d.fatalf(t, "timer %v for forgotten connection %d", tm.Kind, tm.Conn)
		}
		if tm.At.Before(d.now) && !d.closed {
			// Due timers fire at the Tick that passes them; only inputs
			// other than Tick may leave one due (it fires at the next).
			_ = tm
		}
	}
	var up []string
	for _, p := range fuzzPeers {
		if d.up[p] {
			up = append(up, p)
		}
	}
	if got := d.m.Peers(); !d.closed && !slices.Equal(got, up) {
		d.fatalf(t, "Peers() = %v, NodeUp/NodeDown say %v", got, up)
	}
}

// drawMsg returns a message a peer might send: well-formed requests,
// garbage of every shape, or whatever bytes decode to in msgpack.
func drawMsg(t *rapid.T) wire.Message {
	val := rapid.OneOf(
		rapid.Just[any](nil),
		rapid.Map(rapid.Int64Range(-3, 3), func(i int64) any { return i }),
		rapid.Map(rapid.SampledFrom([]string{"", "p", "q", "a#p", "m#p", "m#q", "x#r", "AnyEvent::MP::DataConn", "#", "m#"}), func(s string) any { return s }),
		rapid.Just[any](map[string]any{"'l": map[string]any{"x": []any{"mem://x2"}, "m": []any{"mem://m"}}}),
		rapid.Just[any]([]any{"mem://y2"}),
		rapid.Just[any]([]any{}),
		rapid.Map(rapid.SampledFrom([]string{"svc", "'l", "'g", "k", "b"}), func(s string) any { return s }),
		rapid.Just[any](map[string]any{"svc": map[string]any{"k": int64(1), "j": "v"}, "'g": map[string]any{"x": nil}}),
		rapid.Just[any](map[string]any{"x": []any{"mem://x3"}, "k": nil}),
		rapid.Just[any]([]any{"k", "x"}),
	)
	switch rapid.IntRange(0, 3).Draw(t, "msg shape") {
	case 0:
		tag := rapid.SampledFrom([]string{"", "snd", "kil1", "kil", "devnull", "g_slave", "g_find", "g_found", "mon1",
			"mon0", "kil0", "g_global", "g_set", "g_upd", "g_mon1", "g_mon0", "g_chg1", "g_chg2", "g_reply",
			"g_db_family", "g_db_keys", "g_db_values",
			wire.NodeMsgTagExpect, wire.NodeMsgTagConnect, "f", "nofunc"}).Draw(t, "tag")
		return append(wire.Message{"", tag}, rapid.SliceOfN(val, 0, 4).Draw(t, "args")...)
	case 1:
		port := rapid.SampledFrom([]any{"p", "q", "nosuch", int64(1), nil}).Draw(t, "port")
		return append(wire.Message{port}, rapid.SliceOfN(val, 0, 3).Draw(t, "data")...)
	case 2:
		codec, _ := wire.CodecByName("msgpack")
		dec := codec.NewDecoder(1 << 12)
		if dec.Feed(rapid.SliceOfN(rapid.Byte(), 0, 64).Draw(t, "bytes")) == nil {
			if msg, ok, err := dec.Next(); ok && err == nil {
				return msg
			}
		}
		return wire.Message{}
	}
	return wire.Message{"", ""}
}

// peerProperty drives one machine with arbitrary inputs in any order,
// including ones a correct transport never sends (unknown and reused
// connection IDs, stale attempts, frames confirmed twice). The machine
// must not panic, return only typed errors, name only connections it
// knows, keep writes within the window and in sequence, pair NodeUp and
// NodeDown, and keep Deadline the
// earliest of its listed timers.
func peerProperty(t *rapid.T) {
	cfg := peer.Config{
		NodeID:        "m",
		KeepAlive:     time.Duration(rapid.IntRange(1, 20).Draw(t, "keepalive")) * time.Second,
		PeerTimeout:   time.Duration(rapid.IntRange(1, 40).Draw(t, "peer timeout")) * time.Second,
		MaxSendQueue:  rapid.IntRange(1, 200).Draw(t, "max send queue"),
		MaxPending:    rapid.IntRange(1, 5).Draw(t, "max pending"),
		MaxHeld:       rapid.IntRange(1, 5).Draw(t, "max held"),
		WriteWindow:   rapid.IntRange(1, 64).Draw(t, "window"),
		Minimal:       rapid.IntRange(0, 4).Draw(t, "minimal") == 0,
		MaxDBFamilies: rapid.IntRange(1, 4).Draw(t, "max db families"),
		MaxDBKeys:     rapid.IntRange(1, 6).Draw(t, "max db keys"),
		MaxDBValue:    rapid.IntRange(1, 64).Draw(t, "max db value"),
		Seeds:         rapid.SliceOfN(rapid.SampledFrom([]string{"mem://x", "mem://s1", "mem://s2"}), 0, 2).Draw(t, "seeds"),
	}
	m, err := peer.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	d := &peerDriver{m: m, cfg: m.Config(), now: time.Unix(1e9, 0),
		seq: map[peer.ConnID]uint64{}, unacked: map[peer.ConnID][]uint64{}, sizes: map[peer.ConnID]map[uint64]int{},
		up: map[string]bool{}, blocked: map[string]bool{}, attempts: map[string]uint64{},
		seedAttempts: map[string]uint64{}, fired: map[peer.MonitorID]bool{}}
	for _, p := range fuzzPeers[:3] {
		m.AddPeer(p, "mem://"+p)
	}
	m.SetListeners(d.now, []string{"mem://m"})
	m.RegisterFunc("f")
	anyConn := func(label string) peer.ConnID {
		if len(d.used) == 0 || rapid.IntRange(0, 9).Draw(t, label+" fresh") == 0 {
			return peer.ConnID(rapid.IntRange(0, 3).Draw(t, label+" wild"))
		}
		return rapid.SampledFrom(d.used).Draw(t, label)
	}
	newConn := func() peer.ConnID {
		if len(d.used) > 0 && rapid.IntRange(0, 9).Draw(t, "reuse id") == 0 {
			return rapid.SampledFrom(d.used).Draw(t, "reused id")
		}
		d.nextConn++
		d.used = append(d.used, d.nextConn+100)
		return d.nextConn + 100
	}
	for range rapid.IntRange(1, 300).Draw(t, "inputs") {
		p := rapid.SampledFrom(fuzzPeers).Draw(t, "peer")
		switch op := rapid.IntRange(0, 21).Draw(t, "op"); op {
		case 0, 1:
			port := rapid.SampledFrom([]string{p + "#p", "m#p", "m#nosuch", "bad"}).Draw(t, "to")
			d.input(t, "send", 0, func() error { return m.Send(d.now, port, int64(d.steps), "payload") })
		case 2:
			msg := drawMsg(t)
			d.input(t, "sendto", 0, func() error { return m.SendTo(d.now, p, msg) })
		case 3:
			c := newConn()
			d.input(t, "greet", 0, func() error { return m.Greeted(d.now, c, p) })
		case 4, 5:
			c := newConn()
			info := peer.ConnInfo{Conn: c, Peer: p, Outbound: rapid.Bool().Draw(t, "outbound"),
				SendFraming: rapid.SampledFrom([]string{"json", "msgpack", "nope"}).Draw(t, "framing"),
				IsGo:        rapid.Bool().Draw(t, "go peer"), Untrusted: rapid.IntRange(0, 3).Draw(t, "untrusted") == 0}
			if info.Outbound && rapid.Bool().Draw(t, "current attempt") {
				info.Attempt = d.attempts[p]
			}
			d.input(t, "up", c, func() error { return m.ConnUp(d.now, info) })
		case 6:
			c := anyConn("down")
			d.input(t, "down", 0, func() error { return m.ConnDown(d.now, c, errors.New("reset")) })
		case 7:
			err := errors.New("refused")
			if rapid.Bool().Draw(t, "peer closed") {
				err = fmt.Errorf("handshake: %w", handshake.ErrPeerClosed)
			}
			att := d.attempts[p] - uint64(rapid.IntRange(0, 1).Draw(t, "stale"))
			d.input(t, "dial-fail", 0, func() error { return m.DialFailed(d.now, p, att, err) })
		case 8, 9:
			c := anyConn("recv")
			msg := drawMsg(t)
			d.input(t, "recv", 0, func() error { return m.Received(d.now, c, msg) })
		case 10:
			c := anyConn("heard")
			d.input(t, "heard", 0, func() error { return m.Heard(d.now, c) })
		case 11:
			c := anyConn("written")
			seq := d.seq[c]
			if len(d.unacked[c]) > 0 {
				seq = rapid.SampledFrom(d.unacked[c]).Draw(t, "seq")
			}
			// Confirmed frames leave the window before the machine hands
			// out the next ones.
			n := 0
			for n < len(d.unacked[c]) && d.unacked[c][n] <= seq {
				n++
			}
			d.unacked[c] = d.unacked[c][n:]
			d.input(t, "written", 0, func() error { return m.FrameWritten(d.now, c, seq) })
		case 12:
			c := anyConn("read-closed")
			d.input(t, "read-closed", 0, func() error { return m.ReadClosed(d.now, c) })
		case 13:
			d.now = d.now.Add(time.Duration(rapid.IntRange(0, 45000).Draw(t, "ms")) * time.Millisecond)
			d.input(t, "tick", 0, func() error { m.Tick(d.now); return nil })
		case 14:
			d.input(t, "connect", 0, func() error { return m.Connect(d.now, p) })
		case 15:
			name := rapid.SampledFrom([]string{"p", "q", ""}).Draw(t, "port name")
			switch rapid.IntRange(0, 3).Draw(t, "port op") {
			case 0:
				d.input(t, "open", 0, func() error { return m.OpenPort(name) })
			case 1:
				d.input(t, "kill", 0, func() error { m.KillPort(d.now, name, "reason"); return nil })
			case 2:
				d.input(t, "monitor-port", 0, func() error { _, err := m.MonitorPort(name); return err })
			case 3:
				d.input(t, "kill remote", 0, func() error { return m.Kill(d.now, p+"#"+name, "why") })
			}
		case 16:
			switch rapid.IntRange(0, 2).Draw(t, "monitor op") {
			case 0:
				d.input(t, "monitor-node", 0, func() error { m.MonitorNode(p); return nil })
			case 1:
				d.input(t, "monitor-nodes", 0, func() error { m.MonitorNodes(); return nil })
			case 2:
				id := peer.MonitorID(rapid.IntRange(0, 10).Draw(t, "monitor"))
				d.input(t, "unmonitor", 0, func() error { m.Unmonitor(d.now, id); return nil })
			}
		case 18:
			// The global role's inputs: the embedder's database API and
			// remote port monitors.
			fam := rapid.SampledFrom([]string{"svc", "'l", "'g", "other"}).Draw(t, "family")
			switch rapid.IntRange(0, 4).Draw(t, "db op") {
			case 0:
				v := rapid.SampledFrom([]any{int64(1), "v", nil, []any{"a"}, map[string]any{"p": "m#p"}}).Draw(t, "value")
				d.input(t, "db-set", 0, func() error { return m.DBSet(d.now, fam, "k", v) })
			case 1:
				d.input(t, "db-del", 0, func() error { return m.DBDel(d.now, fam, "k", "j") })
			case 2:
				d.input(t, "db-mon", 0, func() error { m.DBMonitor(fam); return nil })
			case 3:
				port := rapid.SampledFrom([]string{p + "#p", p + "#q", "m#p", "m#nosuch", "bad"}).Draw(t, "watched")
				d.input(t, "monitor-port-id", 0, func() error { _, err := m.MonitorPortID(d.now, port); return err })
			case 4:
				d.input(t, "listeners", 0, func() error {
					m.SetListeners(d.now, rapid.SliceOfN(rapid.SampledFrom([]string{"mem://m", "mem://m2"}), 0, 2).Draw(t, "ours"))
					return nil
				})
			}
		case 19:
			// Seeding: Start, the answers to Draw, seed dials.
			switch rapid.IntRange(0, 3).Draw(t, "seed op") {
			case 0:
				d.input(t, "start", 0, func() error { return m.Start(d.now) })
			case 1:
				kind := peer.DrawKind(rapid.IntRange(0, 3).Draw(t, "draw kind"))
				if len(d.draws) > 0 && rapid.Bool().Draw(t, "owed draw") {
					kind, d.draws = d.draws[0], d.draws[1:]
				}
				u := rapid.Float64Range(-1, 2).Draw(t, "u")
				d.input(t, "drawn", 0, func() error { return m.Drawn(d.now, kind, u) })
			case 2:
				a := rapid.SampledFrom([]string{"mem://x", "mem://s1", "mem://s2"}).Draw(t, "seed")
				att := d.seedAttempts[a] - uint64(rapid.IntRange(0, 1).Draw(t, "stale"))
				d.input(t, "seed-fail", 0, func() error { return m.SeedFailed(d.now, a, att, errors.New("refused")) })
			case 3:
				c := newConn()
				a := rapid.SampledFrom([]string{"mem://x", "mem://s1", "mem://s2"}).Draw(t, "seed")
				who := rapid.SampledFrom(append([]string{"m"}, fuzzPeers...)).Draw(t, "seed is")
				info := peer.ConnInfo{Conn: c, Peer: who, Outbound: true, Seed: a, Attempt: d.seedAttempts[a], SendFraming: "json",
					Untrusted: rapid.Bool().Draw(t, "anon")}
				d.input(t, "seed-up", c, func() error { return m.ConnUp(d.now, info) })
			}
		case 20, 21:
			// A message of the global protocol from an up peer.
			c := anyConn("recv g")
			msg := append(wire.Message{"", rapid.SampledFrom([]string{"g_global", "g_set", "g_upd", "g_slave", "g_mon1", "g_find", "mon1", "kil0"}).Draw(t, "g tag")},
				rapid.SliceOfN(rapid.SampledFrom([]any{"svc", "'l", "'g", "p", "k", nil, map[string]any{"svc": map[string]any{"k": int64(1)}}, map[string]any{"k": "v"}, []any{"k"}}), 0, 3).Draw(t, "g args")...)
			d.input(t, "recv g", 0, func() error { return m.Received(d.now, c, msg) })
		case 17:
			if rapid.IntRange(0, 9).Draw(t, "really close") == 0 {
				d.input(t, "close", 0, func() error { m.Close(d.now, nil); return nil })
			}
		}
	}
	// Every deadline fires eventually: after the last one nothing is due.
	for range 1000 {
		at, ok := m.Deadline()
		if !ok {
			break
		}
		d.now = at
		d.input(t, "final tick", 0, func() error { m.Tick(d.now); return nil })
		if next, ok := m.Deadline(); ok && !next.After(at) {
			d.fatalf(t, "Tick(%v) left a timer due at %v", at, next)
		}
	}
}

// dropIfGone forgets the write bookkeeping of a connection the machine
// no longer knows (its IDs may be reused).
func (d *peerDriver) dropIfGone(c peer.ConnID) {
	if !slices.Contains(d.m.Conns(), c) {
		delete(d.seq, c)
		delete(d.unacked, c)
		delete(d.sizes, c)
	}
}

// FuzzPeer is the peer-machine property as a go test -fuzz target.
func FuzzPeer(f *testing.F) {
	f.Fuzz(rapid.MakeFuzz(peerProperty))
}

// TestPeerProperty runs the same property with rapid's own random inputs.
func TestPeerProperty(t *testing.T) {
	rapid.Check(t, peerProperty)
}
