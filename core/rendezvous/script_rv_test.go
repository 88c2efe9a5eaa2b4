package rendezvous

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aemp-go/dataconn/internal/script"

	"github.com/aemp-go/dataconn/core/wire"
)

// TestRendezvousScripts runs the scripts in testdata: each
// drives one rendezvous machine (our node) with the commands of
// rvDriver.run and prints the actions it asks for.
func TestRendezvousScripts(t *testing.T) {
	script.Run(t, "testdata/*.txt", *rewrite, func(t *testing.T) script.Handler {
		d := &rvDriver{now: script.Start}
		return d.run
	})
}

// rvDriver holds one rendezvous script's machine and clock.
type rvDriver struct {
	r   *Machine
	now time.Time
	// The direct data stream commands (script_direct_test.go).
	serve *DirectServe
	setup *DirectSetup
}

// run executes one command. The commands:
//
//	node SELF [early-hold=D] [max-early=N] [max-expect=N] [stagger=D]
//	    [claim-grace=D] [max-queued=N] [max-expect-queue=N] [perl-compat]
//	connect ID to=NODE timeout=D [port=P] [func=F] [data=JSON]
//	    [addrs=A,B] [self-addrs=A,B] [go] [window=N]
//	round-trip-done ID         dial-fail ID ADDR [TEXT]
//	dial-done ID ADDR ref=N peer=NODE [go] [confirm]
//	dial-untrusted ID ADDR ref=N peer=NODE     incoming-untrusted ref=N peer=NODE
//	dial-refused ID ADDR       dial-unanswered ID ADDR
//	cancel ID [REASON]         peer-down NODE [TEXT]
//	killed ID [REASON]         expire ID
//	expect FROM MSG            connect-back FROM MSG [addrs=A,B]
//	    (MSG: the _expect or _connect message as JSON)
//	incoming ref=N peer=NODE [id=ID] [go]
//	incoming-done ref=N        incoming-failed ref=N [TEXT]
//	tick [+D]                  advance [+D]    timers          stats
//
// and the direct data stream commands of runDirect.
//
// D is a Go duration. After each command the actions are printed, one a
// line.
func (d *rvDriver) run(c *script.Cmd) (string, error) {
	if c.Name != "node" && d.r == nil {
		return "", errors.New("the first command must be node")
	}
	pos := c.Positional()
	arg := func(i int) string {
		if i < len(pos) {
			return pos[i]
		}
		return ""
	}
	flag := func(name string) bool {
		for _, a := range c.Args {
			if a == name {
				return true
			}
		}
		return false
	}
	str := func(key string) string { v, _ := c.Arg(key); return v }
	list := func(key string) []string {
		if v, ok := c.Arg(key); ok && v != "" {
			return strings.Split(v, ",")
		}
		return nil
	}
	dur := func(key string) (time.Duration, error) {
		v, ok := c.Arg(key)
		if !ok {
			return 0, nil
		}
		return time.ParseDuration(v)
	}
	num := func(key string) (int, error) {
		v, ok := c.Arg(key)
		if !ok {
			return 0, nil
		}
		return strconv.Atoi(v)
	}
	ref := func() (ConnRef, error) {
		n, err := strconv.ParseUint(str("ref"), 10, 64)
		return ConnRef(n), err
	}
	var errs []error
	must := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	switch c.Name {
	case "node":
		cfg := Config{Self: arg(0), PerlCompat: flag("perl-compat")}
		var err error
		cfg.EarlyHold, err = dur("early-hold")
		must(err)
		cfg.DialStagger, err = dur("stagger")
		must(err)
		cfg.ClaimGrace, err = dur("claim-grace")
		must(err)
		cfg.MaxEarlyPerPeer, err = num("max-early")
		must(err)
		cfg.MaxExpectPerPeer, err = num("max-expect")
		must(err)
		cfg.MaxQueuedPerTarget, err = num("max-queued")
		must(err)
		cfg.MaxExpectQueuePerPeer, err = num("max-expect-queue")
		must(err)
		d.r = New(cfg)
	case "connect":
		req := ConnectRequest{ID: arg(0), Target: str("to"), Port: str("port"), InitFunc: str("func"),
			TargetAddrs: list("addrs"), SelfAddrs: list("self-addrs"), TargetIsGo: flag("go")}
		var err error
		req.Timeout, err = dur("timeout")
		must(err)
		req.Window, err = num("window")
		must(err)
		if v, ok := c.Arg("data"); ok {
			req.InitData, err = jsonValues(v)
			must(err)
		}
		if req.Port == "" {
			req.Port = d.r.cfg.Self + "#p"
		}
		if len(errs) == 0 {
			d.r.Connect(d.now, req)
		}
	case "round-trip-done":
		d.r.RoundTripDone(d.now, arg(0))
	case "dial-fail":
		var err error
		if t := strings.Join(pos[min(2, len(pos)):], " "); t != "" {
			s, uerr := script.Unquote(t)
			must(uerr)
			err = errors.New(s)
		}
		d.r.DialFailed(d.now, arg(0), arg(1), err)
	case "dial-done":
		n, err := ref()
		must(err)
		d.r.DialDone(d.now, arg(0), arg(1), n, rvGreeting(str("peer"), "", flag("go"), flag("confirm")))
	case "dial-refused", "dial-unanswered":
		fault := DialRefused
		if c.Name == "dial-unanswered" {
			fault = DialUnanswered
		}
		d.r.DialFaulted(d.now, arg(0), arg(1), fault, errors.New(strings.TrimPrefix(c.Name, "dial-")))
	case "dial-untrusted":
		n, err := ref()
		must(err)
		d.r.DialUntrusted(d.now, arg(0), arg(1), n, rvGreeting(str("peer"), "", flag("go"), false))
	case "incoming-untrusted":
		n, err := ref()
		must(err)
		d.r.IncomingUntrusted(d.now, n, rvGreeting(str("peer"), "", false, false))
	case "cancel":
		var reason *wire.KillReason
		if len(pos) > 1 {
			v, err := jsonValues(arg(1))
			must(err)
			reason = wire.KillReasonFromValues(v)
		}
		d.r.Cancel(d.now, arg(0), reason)
	case "killed":
		var reason *wire.KillReason
		if len(pos) > 1 {
			v, err := jsonValues(arg(1))
			must(err)
			reason = wire.KillReasonFromValues(v)
		}
		d.r.Killed(d.now, arg(0), reason)
	case "expire":
		d.r.Expire(d.now, arg(0))
	case "peer-down":
		var err error
		if t := arg(1); t != "" {
			s, uerr := script.Unquote(t)
			must(uerr)
			err = errors.New(s)
		}
		d.r.PeerDown(d.now, arg(0), err)
	case "expect", "connect-back":
		v, err := jsonValues(arg(1))
		if err != nil {
			return "", err
		}
		if len(v) == 0 {
			return "", fmt.Errorf("%s: empty message", arg(1))
		}
		m, err := wire.ParseNodeMsg(v[1:])
		if err != nil {
			return "", err
		}
		switch m := m.(type) {
		case wire.NodeMsgExpect:
			d.r.Expect(d.now, arg(0), m)
		case wire.NodeMsgConnect:
			d.r.ConnectBack(d.now, arg(0), m, list("addrs"))
		default:
			return "", fmt.Errorf("%s is neither _expect nor _connect", arg(1))
		}
	case "incoming":
		n, err := ref()
		must(err)
		id, hasID := c.Arg("id")
		g := rvGreeting(str("peer"), id, flag("go"), false)
		if !hasID {
			g.KV = nil
			if flag("go") {
				g.KV = []wire.KV{{Key: wire.KeyGo, Value: "1"}}
			}
		}
		d.r.IncomingGreeting(d.now, n, g)
	case "incoming-done":
		n, err := ref()
		must(err)
		d.r.IncomingDone(d.now, n)
	case "incoming-failed":
		n, err := ref()
		must(err)
		d.r.IncomingFailed(d.now, n, errors.New("handshake failed"))
	case "advance":
		// The clock moves, the machine is not ticked: inputs that follow
		// fall on the new instant before its due timers have fired (in
		// virtual time, events at one instant arrive in any order).
		var err error
		if d.now, err = script.Advance(d.now, pos, d.r.Deadline()); err != nil {
			return "", err
		}
		return "now " + script.Rel(d.now), nil
	case "tick":
		var err error
		if d.now, err = script.Advance(d.now, pos, d.r.Deadline()); err != nil {
			return "", err
		}
		d.r.Tick(d.now)
		out := "now " + script.Rel(d.now)
		if acts := d.drain(); acts != "" {
			out += "\n" + acts
		}
		return out, nil
	case "timers":
		var b strings.Builder
		for _, tm := range d.r.Timers() {
			what := tm.ID
			if tm.Kind == TimerEarlyHold {
				what = "ref=" + strconv.FormatUint(uint64(tm.Ref), 10)
			}
			fmt.Fprintf(&b, "%s %s at %s\n", tm.Kind, what, script.Rel(tm.At))
		}
		if b.Len() == 0 {
			return "none", nil
		}
		return b.String(), nil
	case "stats":
		s := d.r.Stats()
		out := fmt.Sprintf("queued=%d in-flight=%d expectations=%d waiting=%d held=%d", s.Queued, s.InFlight, s.Expectations, s.ExpectWaiting, s.Held)
		for _, m := range []struct {
			name string
			m    map[string]uint64
		}{{"refused", s.Refused}, {"failed", s.Failed}} {
			keys := make([]string, 0, len(m.m))
			for k := range m.m {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				out += fmt.Sprintf("\n%s %q=%d", m.name, k, m.m[k])
			}
		}
		return out, nil
	default:
		if out, ok, err := d.runDirect(c); ok {
			return out, err
		}
		return "", fmt.Errorf("unknown command %q", c.Name)
	}
	if len(errs) > 0 {
		return "", errors.Join(errs...)
	}
	return d.drain(), nil
}

// rvGreeting is the authenticated greeting of a data connection's peer.
func rvGreeting(node, id string, hasGo, confirm bool) wire.Greeting {
	g := wire.Greeting{Protocol: wire.ProtocolDataConn, Version: "1", NodeID: node}
	if id != "" {
		g.KV = append(g.KV, wire.KV{Key: wire.KeyDataConnID, Value: id})
	}
	if hasGo {
		g.KV = append(g.KV, wire.KV{Key: wire.KeyGo, Value: "1"})
	}
	if confirm {
		g.KV = append(g.KV, wire.KV{Key: ConfirmKey, Value: "1"})
	}
	return g
}

func (d *rvDriver) drain() string {
	var b strings.Builder
	for a := d.r.Poll(); a != nil; a = d.r.Poll() {
		switch a := a.(type) {
		case Send:
			fmt.Fprintf(&b, "send %s %s\n", a.To, jsonShow(a.Msg))
		case Watch:
			fmt.Fprintf(&b, "watch %s port=%s\n", a.ID, a.Port)
		case RoundTrip:
			fmt.Fprintf(&b, "round-trip %s to %s\n", a.ID, a.To)
		case Dial:
			fmt.Fprintf(&b, "dial %s %s as %s\n", a.ID, a.Addr, a.Node)
		case Deliver:
			fmt.Fprintf(&b, "deliver %s ref=%d\n", a.ID, a.Ref)
		case Fail:
			fmt.Fprintf(&b, "fail %s reason=%s err=%s\n", a.ID, jsonShow(a.Reason.Values()), showErr(a.Err))
		case Admit:
			extra := ""
			for _, kv := range a.Extra {
				extra += " " + kv.Key + "=" + kv.Value
			}
			fmt.Fprintf(&b, "admit ref=%d%s\n", a.Ref, extra)
		case Refuse:
			fmt.Fprintf(&b, "refuse ref=%d err=%s\n", a.Ref, showErr(a.Err))
		case CallInit:
			fmt.Fprintf(&b, "call-init ref=%d from=%s func=%s data=%s\n", a.Ref, a.From, a.Func, jsonShow(a.Data))
		case Close:
			fmt.Fprintf(&b, "close ref=%d err=%s\n", a.Ref, showErr(a.Err))
		}
	}
	return strings.TrimSuffix(b.String(), "\n")
}

var scriptJSON, _ = wire.CodecByName("json")

func jsonShow(v []any) string {
	if v == nil {
		v = []any{}
	}
	b, err := scriptJSON.AppendMessage(nil, v)
	if err != nil {
		return fmt.Sprintf("%v", v)
	}
	return string(b)
}

// jsonValues parses a JSON array as the JSON framing decodes it.
func jsonValues(s string) ([]any, error) {
	dec := scriptJSON.NewDecoder(0)
	if err := dec.Feed([]byte(s)); err != nil {
		return nil, fmt.Errorf("%q: %v", s, err)
	}
	msg, ok, err := dec.Next()
	if !ok || err != nil {
		return nil, fmt.Errorf("%q is not one JSON array (%v)", s, err)
	}
	return msg, nil
}
