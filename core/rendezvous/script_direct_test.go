package rendezvous

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aemp-go/dataconn/core/wire"
	"github.com/aemp-go/dataconn/internal/script"
)

// runDirect executes the direct data stream commands (DirectAuth,
// DirectServe, DirectSetup); ok is false for any other command. The
// commands:
//
//	direct-auth [perl-compat] [untrusted] [cb] [tls] [listed]
//	direct-serve [hold=D]       (a stream arrives at the node; D: the handshake timeout)
//	direct-header from=N to=N func=F [data=JSON] [extra]
//	direct-bytes HEX            (the stream delivers these bytes)
//	direct-authenticated [fail] [closed] [funcs=F,G]
//	direct-connect to=N timeout=D
//	direct-open-failed          direct-cancel [REASON]   direct-expire
//	direct-closed               direct-lost TEXT
//	direct-accepted             direct-refused TEXT
//	messaging-failed no-route|cancelled|expired|failed to=N [timeout=D] [TEXT]
func (d *rvDriver) runDirect(c *script.Cmd) (string, bool, error) {
	pos := c.Positional()
	flag := func(name string) bool {
		for _, a := range c.Args {
			if a == name {
				return true
			}
		}
		return false
	}
	str := func(key string) string { v, _ := c.Arg(key); return v }
	dur := func(key string) (time.Duration, error) {
		if v, ok := c.Arg(key); ok {
			return time.ParseDuration(v)
		}
		return 5 * time.Second, nil
	}
	text := func() (string, error) { return script.Unquote(strings.Join(pos, " ")) }
	switch c.Name {
	case "direct-auth":
		a := DirectAuth{PerlCompat: flag("perl-compat"), Untrusted: flag("untrusted"),
			ChannelBound: flag("cb"), TLSVerified: flag("tls"), PeerListed: flag("listed")}
		return fmt.Sprintf("bind=%t use=%t", a.Bind(), a.Use()), true, nil
	case "direct-serve":
		hs, err := dur("hold")
		if err != nil {
			return "", true, err
		}
		d.serve = NewDirectServe(d.now, d.r.cfg.Self, hs)
		return d.showServe(d.serve.Start(), nil), true, nil
	case "direct-header", "direct-bytes":
		if d.serve == nil {
			return "", true, fmt.Errorf("%s before direct-serve", c.Name)
		}
		var b []byte
		if c.Name == "direct-bytes" {
			var err error
			if b, err = hex.DecodeString(strings.Join(pos, "")); err != nil {
				return "", true, err
			}
		} else {
			h := wire.DataStreamHeader{From: str("from"), To: str("to"), InitFunc: str("func")}
			if v, ok := c.Arg("data"); ok {
				var err error
				if h.InitData, err = jsonValues(v); err != nil {
					return "", true, err
				}
			}
			var err error
			if b, err = wire.AppendDataStreamHeader(nil, h); err != nil {
				return "", true, err
			}
			if flag("extra") {
				b = append(b, 'x')
			}
		}
		// The stream delivers b, as fast as the machine asks for it.
		a := d.serve.Start()
		var steps []string
		for a.Need > 0 && a.Need <= len(b) {
			steps = append(steps, fmt.Sprintf("read %d", a.Need))
			// What has arrived: everything up to the need, or all of b
			// once the header is complete (the initiator's extra bytes).
			got := b[:a.Need]
			if a.Need > wire.DataStreamPrefixLen {
				got = b
			}
			a = d.serve.Read(got)
		}
		return d.showServe(a, steps), true, nil
	case "direct-authenticated":
		if d.serve == nil {
			return "", true, fmt.Errorf("%s before direct-serve", c.Name)
		}
		known := false
		if v, ok := c.Arg("funcs"); ok {
			for _, f := range strings.Split(v, ",") {
				known = known || f == d.serve.Header().InitFunc
			}
		}
		return d.showServe(d.serve.Authenticated(!flag("fail"), flag("closed"), known), nil), true, nil
	case "messaging-failed":
		t, err := dur("timeout")
		if err != nil {
			return "", true, err
		}
		why := map[string]NotConnected{"no-route": NoRoute, "cancelled": ConnectCancelled, "expired": ConnectExpired, "failed": ConnectFailed}[pos[0]]
		if why == 0 {
			return "", true, fmt.Errorf("messaging-failed: unknown %q", pos[0])
		}
		var cause error
		var reason *wire.KillReason
		if len(pos) > 1 {
			txt, err := script.Unquote(strings.Join(pos[1:], " "))
			if err != nil {
				return "", true, err
			}
			cause = errors.New(txt)
			reason = wire.DataConnReason("%s", txt)
		}
		r, e := MessagingFailed(str("to"), t, why, reason, cause)
		return fmt.Sprintf("fail reason=%s err=%s", jsonShow(r.Values()), showErr(e)), true, nil
	case "direct-connect":
		to, ok := c.Arg("to")
		if !ok {
			return "", true, fmt.Errorf("direct-connect needs to=NODE")
		}
		t, err := dur("timeout")
		if err != nil {
			return "", true, err
		}
		d.setup = NewDirectSetup(d.now, to, t)
		return "open until " + script.Rel(d.setup.Deadline()), true, nil
	}
	if !strings.HasPrefix(c.Name, "direct-") {
		return "", false, nil
	}
	if d.setup == nil {
		return "", true, fmt.Errorf("%s before direct-connect", c.Name)
	}
	var o DirectOutcome
	var r DirectResult
	switch c.Name {
	case "direct-open-failed":
		o, r = d.setup.OpenFailed(d.now)
	case "direct-cancel":
		var reason *wire.KillReason
		if len(pos) > 0 {
			v, err := jsonValues(pos[0])
			if err != nil {
				return "", true, err
			}
			reason = wire.KillReasonFromValues(v)
		}
		o, r = d.setup.Cancel(d.now, reason)
	case "direct-expire":
		o, r = d.setup.Expire()
	case "direct-closed":
		o, r = d.setup.Closed(d.now)
	case "direct-lost":
		t, err := text()
		if err != nil {
			return "", true, err
		}
		o, r = d.setup.Lost(d.now, t, nil)
	case "direct-accepted":
		o, r = d.setup.Accepted()
	case "direct-refused":
		t, err := text()
		if err != nil {
			return "", true, err
		}
		o, r = d.setup.Refused(d.now, t)
	default:
		return "", false, nil
	}
	switch o {
	case DirectPending:
		return "pending", true, nil
	case DirectAccepted:
		return "accepted", true, nil
	case DirectFallback:
		return "fallback to the rendezvous", true, nil
	case DirectDone:
		return "done already", true, nil
	}
	return fmt.Sprintf("fail reason=%s err=%s", jsonShow(r.Reason.Values()), showErr(r.Err)), true, nil
}

// showServe prints the steps of a DirectServe and its answer.
func (d *rvDriver) showServe(a DirectAnswer, steps []string) string {
	switch {
	case a.Refuse != nil:
		steps = append(steps, "refuse "+jsonShow(a.Refuse.Values()))
	case a.Hold != "":
		steps = append(steps, fmt.Sprintf("hold until %s for %s", script.Rel(d.serve.Deadline()), a.Hold))
	case a.Accept:
		h := d.serve.Header()
		steps = append(steps, fmt.Sprintf("accept from=%s func=%s data=%s", h.From, h.InitFunc, jsonShow(h.InitData)))
	case a.Need > 0:
		steps = append(steps, fmt.Sprintf("read %d", a.Need))
	default:
		steps = append(steps, "nothing")
	}
	return strings.Join(steps, "\n")
}
