package peer_test

import (
	"errors"
	"flag"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aemp-go/dataconn/core/handshake"
	"github.com/aemp-go/dataconn/core/peer"
	"github.com/aemp-go/dataconn/core/wire"
	"github.com/aemp-go/dataconn/internal/script"
)

var rewrite = flag.Bool("rewrite", false, "rewrite the expected outputs of testdata/*.txt with what the machine does")

// TestInteraction runs the scripts in testdata: each drives one machine
// (our node) with the commands of scriptDriver.run and prints what it
// asks for.
func TestInteraction(t *testing.T) {
	script.Run(t, "testdata/*.txt", *rewrite, func(t *testing.T) script.Handler {
		d := &scriptDriver{t: t, start: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), peerOf: map[peer.ConnID]string{}}
		d.now = d.start
		return d.run
	})
}

var jsonCodec, _ = wire.CodecByName("json")

// scriptDriver holds one script's machine, its clock and what it needs
// to print actions.
type scriptDriver struct {
	t       *testing.T
	m       *peer.Machine
	start   time.Time
	now     time.Time
	framing map[peer.ConnID]string
	peerOf  map[peer.ConnID]string
	// burst holds, per connection, the messages written since the last
	// burst command, as canonical JSON.
	burst map[peer.ConnID][]string
}

// run executes one command. The commands:
//
//	node ID [keepalive=D] [peer-timeout=D] [handshake=D] [max-send-queue=N] [max-pending=N] [max-held=N] [window=N] [prefer=a,b]
//	addpeer ID ADDR...        listeners ADDR...      port NAME     func NAME
//	monitor-node ID           monitor-nodes          monitor-port NAME    unmonitor N
//	send PORTID [DATA...]     sendto ID [MSG...]     kill PORTID [REASON...]    connect ID
//	greet cN ID               up cN ID in|out [attempt=N] [go] [framing=F]
//	down cN [TEXT]            crash ID (every connection of ID ends)
//	dial-fail ID attempt=N [refused|TEXT]
//	recv cN [MSG...]          heard cN              written cN SEQ    read-closed cN
//	tick [+D]                 timers                peers         close
//	monitor-port-id PORTID    db-set FAM KEY VALUE   db-del FAM KEY...   db-mon FAM
//	db FAM                    listeners-of ID        start         drawn seed|global U
//	seed-up cN ID ADDR attempt=N [anon]   seed-fail ADDR attempt=N
//	up ... [anon]             (anon: the peer authenticated with tls_anon)
//	burst cN [MSG...]         the messages written on cN since the last
//	                          burst, compared as a set with MSG... (Perl's
//	                          order within a burst is random): a difference
//	                          fails the test, even with -rewrite.
//
// DATA, MSG and REASON are JSON arrays; D is a Go duration.
func (d *scriptDriver) run(c *script.Cmd) (string, error) {
	if c.Name != "node" && d.m == nil {
		return "", errors.New("the first command must be node")
	}
	pos := c.Positional()
	arg := func(i int) string {
		if i < len(pos) {
			return pos[i]
		}
		return ""
	}
	var res string
	var err error
	switch c.Name {
	case "node":
		cfg := peer.Config{NodeID: arg(0)}
		for key, dst := range map[string]*time.Duration{"keepalive": &cfg.KeepAlive, "peer-timeout": &cfg.PeerTimeout, "handshake": &cfg.HandshakeTimeout} {
			if v, ok := c.Arg(key); ok {
				if *dst, err = time.ParseDuration(v); err != nil {
					return "", err
				}
			}
		}
		for key, dst := range map[string]*int{"max-send-queue": &cfg.MaxSendQueue, "max-pending": &cfg.MaxPending, "max-held": &cfg.MaxHeld, "window": &cfg.WriteWindow} {
			if v, ok := c.Arg(key); ok {
				if *dst, err = strconv.Atoi(v); err != nil {
					return "", err
				}
			}
		}
		if v, ok := c.Arg("prefer"); ok {
			cfg.Prefer = strings.Split(v, ",")
		}
		if v, ok := c.Arg("seeds"); ok {
			cfg.Seeds = strings.Split(v, ",")
		}
		for key, dst := range map[string]*int{"max-db-families": &cfg.MaxDBFamilies, "max-db-keys": &cfg.MaxDBKeys, "max-db-value": &cfg.MaxDBValue} {
			if v, ok := c.Arg(key); ok {
				if *dst, err = strconv.Atoi(v); err != nil {
					return "", err
				}
			}
		}
		cfg.Minimal = slices.Contains(pos, "minimal")
		d.m, err = peer.New(cfg)
		if err != nil {
			return "", err
		}
		d.framing, d.peerOf, d.now, d.burst = map[peer.ConnID]string{}, map[peer.ConnID]string{}, d.start, nil
		return "", nil
	case "addpeer":
		d.m.AddPeer(arg(0), pos[1:]...)
	case "listeners":
		d.m.SetListeners(d.now, pos)
	case "port":
		err = d.m.OpenPort(arg(0))
	case "func":
		d.m.RegisterFunc(arg(0))
	case "monitor-node":
		res = fmt.Sprintf("monitor %d", d.m.MonitorNode(arg(0)))
	case "monitor-nodes":
		res = fmt.Sprintf("monitor %d", d.m.MonitorNodes())
	case "monitor-port":
		var id peer.MonitorID
		if id, err = d.m.MonitorPort(arg(0)); err == nil {
			res = fmt.Sprintf("monitor %d", id)
		}
	case "unmonitor":
		n, perr := strconv.ParseUint(arg(0), 10, 64)
		if perr != nil {
			return "", perr
		}
		d.m.Unmonitor(d.now, peer.MonitorID(n))
	case "send", "kill":
		data, perr := values(arg(1))
		if perr != nil {
			return "", perr
		}
		if c.Name == "send" {
			err = d.m.Send(d.now, arg(0), data...)
		} else {
			err = d.m.Kill(d.now, arg(0), data...)
		}
	case "sendto":
		msg, perr := values(arg(1))
		if perr != nil {
			return "", perr
		}
		err = d.m.SendTo(d.now, arg(0), msg)
	case "connect":
		err = d.m.Connect(d.now, arg(0))
	case "greet":
		id, perr := connID(arg(0))
		if perr != nil {
			return "", perr
		}
		if err = d.m.Greeted(d.now, id, arg(1)); err == nil {
			res = "admitted"
			d.peerOf[id] = arg(1)
		}
	case "up":
		id, perr := connID(arg(0))
		if perr != nil {
			return "", perr
		}
		info := peer.ConnInfo{Conn: id, Peer: arg(1), Outbound: arg(2) == "out", SendFraming: "json"}
		if arg(2) != "in" && arg(2) != "out" {
			return "", fmt.Errorf("up: direction %q is neither in nor out", arg(2))
		}
		if v, ok := c.Arg("attempt"); ok {
			if info.Attempt, err = strconv.ParseUint(v, 10, 64); err != nil {
				return "", err
			}
		}
		if v, ok := c.Arg("framing"); ok {
			info.SendFraming = v
		}
		info.IsGo = arg(3) == "go"
		info.Untrusted = slices.Contains(pos, "anon")
		if err = d.m.ConnUp(d.now, info); err == nil {
			d.framing[id] = info.SendFraming
			d.peerOf[id] = info.Peer
		}
	case "down":
		id, perr := connID(arg(0))
		if perr != nil {
			return "", perr
		}
		err = d.m.ConnDown(d.now, id, errText(strings.Join(pos[1:], " "), "connection closed by peer"))
	case "crash":
		// Every connection and greeted handshake of the node ends, as
		// when its process dies: reads fail with a reset.
		var lines []string
		for _, id := range d.conns(arg(0)) {
			if e := d.m.ConnDown(d.now, id, errText("", "connection reset by peer")); e == nil {
				lines = append(lines, d.drain()...)
			}
		}
		return strings.Join(lines, "\n"), nil
	case "dial-fail":
		v, _ := c.Arg("attempt")
		n, perr := strconv.ParseUint(v, 10, 64)
		if perr != nil {
			return "", fmt.Errorf("dial-fail: attempt=%q: %v", v, perr)
		}
		derr := errText(strings.Join(pos[1:], " "), "connection refused")
		if arg(1) == "refused" {
			derr = fmt.Errorf("handshake: %w", handshake.ErrPeerClosed)
		}
		err = d.m.DialFailed(d.now, arg(0), n, derr)
	case "recv":
		id, perr := connID(arg(0))
		if perr != nil {
			return "", perr
		}
		msg, perr := values(arg(1))
		if perr != nil {
			return "", perr
		}
		err = d.m.Received(d.now, id, msg)
	case "read-closed":
		id, perr := connID(arg(0))
		if perr != nil {
			return "", perr
		}
		err = d.m.ReadClosed(d.now, id)
	case "heard":
		id, perr := connID(arg(0))
		if perr != nil {
			return "", perr
		}
		err = d.m.Heard(d.now, id)
	case "written":
		id, perr := connID(arg(0))
		if perr != nil {
			return "", perr
		}
		seq, perr := strconv.ParseUint(arg(1), 10, 64)
		if perr != nil {
			return "", perr
		}
		err = d.m.FrameWritten(d.now, id, seq)
	case "tick":
		if arg(0) != "" {
			dur, perr := time.ParseDuration(strings.TrimPrefix(arg(0), "+"))
			if perr != nil {
				return "", perr
			}
			d.now = d.now.Add(dur)
		}
		d.m.Tick(d.now)
		res = "now " + d.at(d.now)
	case "timers":
		var lines []string
		for _, tm := range d.m.Timers() {
			what := tm.Peer
			if tm.Conn != 0 {
				what = fmt.Sprintf("c%d (%s)", tm.Conn, tm.Peer)
			}
			if what == "" {
				what = "-"
			}
			lines = append(lines, fmt.Sprintf("%s %s at %s", tm.Kind, what, d.at(tm.At)))
		}
		if len(lines) == 0 {
			lines = append(lines, "none")
		}
		return strings.Join(lines, "\n"), nil
	case "peers":
		res = fmt.Sprintf("up %v", d.m.Peers())
	case "close":
		d.m.Close(d.now, nil)
	case "monitor-port-id":
		var id peer.MonitorID
		id, err = d.m.MonitorPortID(d.now, arg(0))
		res = fmt.Sprintf("monitor %d", id)
	case "db-set":
		v, perr := values("[" + arg(2) + "]")
		if perr != nil {
			return "", perr
		}
		err = d.m.DBSet(d.now, arg(0), arg(1), v[0])
	case "db-del":
		err = d.m.DBDel(d.now, arg(0), pos[1:]...)
	case "db-mon":
		id, fam := d.m.DBMonitor(arg(0))
		res = fmt.Sprintf("monitor %d: %s", id, show([]any{fam}))
	case "db":
		res = show([]any{d.m.DBFamily(arg(0))})
	case "globals":
		res = fmt.Sprintf("globals %v slaves %v", d.m.Globals(), d.m.Slaves())
	case "listeners-of":
		addrs, known := d.m.Listeners(arg(0))
		res = fmt.Sprintf("%v known=%v", addrs, known)
	case "start":
		err = d.m.Start(d.now)
	case "drawn":
		kind := map[string]peer.DrawKind{"seed": peer.DrawSeed, "global": peer.DrawGlobal}[arg(0)]
		u, perr := strconv.ParseFloat(arg(1), 64)
		if perr != nil || kind == 0 {
			return "", fmt.Errorf("drawn: want seed|global U (%v)", perr)
		}
		err = d.m.Drawn(d.now, kind, u)
	case "seed-up":
		id, perr := connID(arg(0))
		if perr != nil {
			return "", perr
		}
		info := peer.ConnInfo{Conn: id, Peer: arg(1), Outbound: true, Seed: arg(2), SendFraming: "json", Untrusted: slices.Contains(pos, "anon")}
		v, _ := c.Arg("attempt")
		if info.Attempt, err = strconv.ParseUint(v, 10, 64); err != nil {
			return "", err
		}
		if err = d.m.ConnUp(d.now, info); err == nil {
			d.framing[id] = info.SendFraming
			d.peerOf[id] = info.Peer
		}
	case "seed-fail":
		v, _ := c.Arg("attempt")
		n, perr := strconv.ParseUint(v, 10, 64)
		if perr != nil {
			return "", perr
		}
		ferr := errors.New("connection refused")
		if arg(1) == "self" {
			ferr = fmt.Errorf("handshake: %w", peer.ErrSelf)
		}
		err = d.m.SeedFailed(d.now, arg(0), n, ferr)
	case "burst":
		id, perr := connID(arg(0))
		if perr != nil {
			return "", perr
		}
		var want []string
		for _, s := range pos[1:] {
			v, perr := values(s)
			if perr != nil {
				return "", perr
			}
			want = append(want, show(v))
		}
		got := d.burst[id]
		delete(d.burst, id)
		slices.Sort(want)
		slices.Sort(got)
		if !slices.Equal(want, got) {
			return "", fmt.Errorf("burst on c%d differs from Perl's:\n  want %v\n  got  %v", id, want, got)
		}
		res = fmt.Sprintf("burst of %d as Perl's", len(got))
	default:
		return "", fmt.Errorf("unknown command %q", c.Name)
	}
	var lines []string
	if res != "" {
		lines = append(lines, res)
	}
	if err != nil {
		lines = append(lines, "error: "+err.Error())
	}
	lines = append(lines, d.drain()...)
	return strings.Join(lines, "\n"), nil
}

// conns returns the connection IDs the driver has seen for node id,
// sorted.
func (d *scriptDriver) conns(id string) []peer.ConnID {
	var out []peer.ConnID
	for c := peer.ConnID(1); c < 1000; c++ {
		if d.peerOf[c] == id {
			out = append(out, c)
		}
	}
	return out
}

func (d *scriptDriver) at(t time.Time) string { return "+" + t.Sub(d.start).String() }

// drain polls every action and prints one line each.
func (d *scriptDriver) drain() []string {
	var lines []string
	for a := d.m.Poll(); a != nil; a = d.m.Poll() {
		lines = append(lines, d.show(a))
	}
	return lines
}

func (d *scriptDriver) show(a peer.Action) string {
	switch a := a.(type) {
	case peer.Dial:
		return fmt.Sprintf("dial %s %v attempt=%d", a.Peer, a.Addrs, a.Attempt)
	case peer.Write:
		f := d.frame(a.Conn, a.Frame)
		if !a.Keepalive {
			if d.burst == nil {
				d.burst = map[peer.ConnID][]string{}
			}
			d.burst[a.Conn] = append(d.burst[a.Conn], f)
		}
		s := fmt.Sprintf("write c%d #%d %s", a.Conn, a.Seq, f)
		if a.Keepalive {
			s += " (keepalive)"
		}
		return s
	case peer.CloseWrite:
		return fmt.Sprintf("close-write c%d", a.Conn)
	case peer.PauseRead:
		return fmt.Sprintf("pause-read c%d", a.Conn)
	case peer.ResumeRead:
		return fmt.Sprintf("resume-read c%d", a.Conn)
	case peer.Close:
		return fmt.Sprintf("close c%d: %v", a.Conn, a.Err)
	case peer.NodeUp:
		return fmt.Sprintf("node-up %s monitors=%v", a.Peer, a.Monitors)
	case peer.NodeDown:
		return fmt.Sprintf("node-down %s: %v dropped=%d monitors=%v", a.Peer, a.Err, a.Dropped, a.Monitors)
	case peer.Unreachable:
		return fmt.Sprintf("unreachable %s: %v dropped=%d", a.Peer, a.Err, a.Dropped)
	case peer.Writable:
		return "writable " + a.Peer
	case peer.Deliver:
		return fmt.Sprintf("deliver %s from %s: %s", a.Port, a.From, show(a.Data))
	case peer.Call:
		return fmt.Sprintf("call %s from %s: %s", a.Func, a.From, show(a.Args))
	case peer.PortKilled:
		return fmt.Sprintf("port-killed %s: %s monitors=%v", a.Port, show(a.Reason), a.Monitors)
	case peer.DataConn:
		return fmt.Sprintf("dataconn from %s: %T%+v", a.From, a.Msg, a.Msg)
	case peer.MonitorFired:
		return fmt.Sprintf("monitor-fired %s: %s monitors=%v", a.Port, show(a.Reason), a.Monitors)
	case peer.DBChanged:
		return fmt.Sprintf("db-changed %s set=%s del=%v monitors=%v", a.Family, show([]any{a.Set}), a.Del, a.Monitors)
	case peer.DialSeed:
		return fmt.Sprintf("dial-seed %s attempt=%d", a.Addr, a.Attempt)
	case peer.Draw:
		return "draw " + a.Kind.String()
	}
	return fmt.Sprintf("unknown action %T", a)
}

// frame decodes a written frame in its connection's framing and shows it
// as JSON.
func (d *scriptDriver) frame(c peer.ConnID, b []byte) string {
	codec, ok := wire.CodecByName(d.framing[c])
	if !ok {
		return fmt.Sprintf("%x", b)
	}
	dec := codec.NewDecoder(0)
	if err := dec.Feed(b); err != nil {
		return "undecodable: " + err.Error()
	}
	msg, ok, err := dec.Next()
	if !ok || err != nil {
		return fmt.Sprintf("undecodable: %v", err)
	}
	return show(msg)
}

func show(v []any) string {
	b, err := jsonCodec.AppendMessage(nil, v)
	if err != nil {
		return fmt.Sprintf("%v", v)
	}
	return string(b)
}

// values parses a JSON array (empty: none) as the JSON framing decodes it.
func values(s string) ([]any, error) {
	if s == "" {
		return nil, nil
	}
	dec := jsonCodec.NewDecoder(0)
	if err := dec.Feed([]byte(s)); err != nil {
		return nil, fmt.Errorf("%q: %v", s, err)
	}
	msg, ok, err := dec.Next()
	if !ok || err != nil {
		return nil, fmt.Errorf("%q is not one JSON array (%v)", s, err)
	}
	return msg, nil
}

func connID(s string) (peer.ConnID, error) {
	n, err := strconv.ParseUint(strings.TrimPrefix(s, "c"), 10, 64)
	if err != nil || n == 0 || !strings.HasPrefix(s, "c") {
		return 0, fmt.Errorf("connection %q is not cN with N > 0", s)
	}
	return peer.ConnID(n), nil
}

func errText(s, def string) error {
	if s == "" {
		s = def
	}
	return errors.New(s)
}
