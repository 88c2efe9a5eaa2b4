package main

import (
	"context"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/aemp-go/dataconn/core/peer"
)

func pingCommand(e *env) (*flag.FlagSet, func(context.Context, []string) error) {
	fs := newFlagSet(e, "ping", "aemp ping [flags] NODE[@ADDR]",
		`Open a messaging connection to NODE and measure the time it took (dial and
handshake), then make --count message round trips: each sends
["", "snd", PORT] to NODE's node port, which answers with an empty message
to PORT. With @ADDR and an empty NODE ("@host:port") any node at that address
is pinged.`)
	var nf nodeFlags
	nf.e = e
	nf.register(fs)
	count := fs.Int("count", 3, "number of message round trips")
	timeout := fs.Duration("timeout", 10*time.Second, "time allowed for the connection and for each round trip")
	return fs, func(ctx context.Context, args []string) error {
		if len(args) != 1 {
			return usagef("want exactly one NODE[@ADDR], got %d arguments", len(args))
		}
		if *count < 0 || *count > 1_000_000 {
			return usagef("--count must be between 0 and 1000000")
		}
		if *timeout <= 0 {
			return usagef("--timeout must be positive")
		}
		target, addr, err := splitTarget(args[0])
		if err != nil {
			return usagef("%q: %v", args[0], err)
		}
		if target == "" && addr == "" {
			return usagef("%q: want NODE, NODE@ADDR or @ADDR", args[0])
		}
		s, err := nf.build(nil)
		if err != nil {
			return err
		}
		defer s.close()
		rep := &reporter{w: e.stdout, json: nf.jsonOut}
		if _, err := s.listen(ctx); err != nil {
			return err
		}

		// Connection set-up.
		cctx, cancel := context.WithTimeout(ctx, *timeout)
		t0 := time.Now()
		if addr != "" {
			var id string
			id, err = s.node.ConnectAddr(cctx, addr)
			if err == nil && target != "" {
				err = peer.CheckDialed(addr, target, id) // peer.ErrWrongPeer
			}
			target = id
		} else {
			if err = s.resolveTarget(cctx, target, "", *timeout); err == nil {
				err = s.node.Connect(cctx, target)
			}
		}
		setup := time.Since(t0)
		cancel()
		if err != nil {
			return fmt.Errorf("connect: %v", err)
		}
		if len(s.node.Addrs()) > 0 {
			s.node.Announce(target)
		}
		rep.emit(event{Event: "connected", Node: s.node.ID(), Peer: target, SetupSeconds: ptr(setup.Seconds()),
			Text: fmt.Sprintf("connected to %s in %s", target, formatDuration(setup))})

		// Round trips through the node port's snd built-in.
		replies := make(chan struct{}, 1)
		port := s.node.NewPort(func([]any) {
			select {
			case replies <- struct{}{}:
			default:
			}
		})
		defer port.Kill()
		var rtts []float64
		var sum, lo, hi time.Duration
		for i := 0; i < *count; i++ {
			t := time.Now()
			if err := s.node.Send(target+"#", "snd", port.ID()); err != nil {
				return fmt.Errorf("round trip %d: %v", i+1, err)
			}
			timer := time.NewTimer(*timeout)
			select {
			case <-replies:
				timer.Stop()
			case <-timer.C:
				return fmt.Errorf("round trip %d: no answer from %s within %s", i+1, target, *timeout)
			case <-ctx.Done():
				timer.Stop()
				return fmt.Errorf("round trip %d: interrupted", i+1)
			}
			d := time.Since(t)
			rtts = append(rtts, d.Seconds())
			sum += d
			if i == 0 || d < lo {
				lo = d
			}
			if d > hi {
				hi = d
			}
			rep.emit(event{Event: "rtt", Peer: target, Seconds: ptr(d.Seconds()),
				Text: fmt.Sprintf("reply from %s: seq=%d time=%s", target, i+1, formatDuration(d))})
		}
		ev := event{Event: "ping", Node: s.node.ID(), Peer: target, SetupSeconds: ptr(setup.Seconds()), RTTSeconds: rtts}
		var b strings.Builder
		fmt.Fprintf(&b, "--- %s ping statistics ---\nconnect %s", target, formatDuration(setup))
		if len(rtts) > 0 {
			fmt.Fprintf(&b, ", %d round trips: min/avg/max = %s/%s/%s", len(rtts),
				formatDuration(lo), formatDuration(sum/time.Duration(len(rtts))), formatDuration(hi))
		}
		ev.Text = b.String()
		rep.emit(ev)
		return nil
	}
}
