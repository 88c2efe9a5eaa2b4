package transport

import (
	"context"
	"net"
	"time"

	"github.com/aemp-go/dataconn/core/handshake"
	"github.com/aemp-go/dataconn/core/rendezvous"
	"github.com/aemp-go/dataconn/core/wire"
)

// dcHandle is what DataConns keeps for one connection handle (a
// rendezvous.ConnRef): the stream, once dialed or accepted, and for an
// accepted greeting the channel that waits for Admit or Refuse.
type dcHandle struct {
	conn net.Conn
	hold chan holdDecision
}

// dcRequest is what DataConns keeps for one data connection id, in one
// allocation (a burst queues many set-ups; each stays small): for our own
// set-ups what ConnectTo waits on (done, then outcome) and, once the
// machine asked for it (Watch), the end of the watch of its port; while
// dials or a round trip of the id run, their flight. A dial-back's record
// has no done.
type dcRequest struct {
	id      string
	done    chan struct{} // gets one value when outcome is set
	outcome *dcOutcome
	flight  *dcFlight
	unwatch func()
}

// finish sets the outcome of one of our set-ups and wakes its ConnectTo.
func (r *dcRequest) finish(o *dcOutcome) {
	if r.done != nil {
		r.outcome = o
		r.done <- struct{}{}
	}
}

// dcFlight is the dials and round trip of one id in flight: cancel ends
// them; n counts them, so that a dial-back's record goes with its last.
type dcFlight struct {
	ctx    context.Context
	cancel context.CancelFunc
	n      int
}

// inlineSlot is the action a caller of doInline whose goroutine runs the
// queue takes over (see doInline).
type inlineSlot struct {
	on  bool
	id  string
	ref rendezvous.ConnRef
	run func() // set when taken
}

// closeUntaken follows the actions of IncomingDone in the queue: the
// stream of ref, if no action took it, is closed.
type closeUntaken struct{ ref rendezvous.ConnRef }

type holdDecision struct {
	extra []wire.KV
	err   error
}

type dcOutcome struct {
	conn net.Conn
	err  *wire.KillReason
	rule error
}

// do runs one input on the machine and then the actions it emitted, in
// order, followed by after (steps of DataConns itself). Actions of
// different inputs run one at a time in the order of their inputs: when
// another goroutine is running actions, it runs these too and do returns
// at once.
func (d *DataConns) do(input func(now time.Time), after ...any) {
	d.doInline("", 0, input, after...)
}

// doInline is do that, when this goroutine runs the queue, returns the
// run of one action of its own input instead of starting a goroutine for
// it: the Dial of id (ConnectTo's first dial; id "" for none) or the
// CallInit of ref (an accepted stream's init function; 0 for none). The
// caller would only wait for that goroutine (ConnectTo) or end (the
// listener's handshake goroutine), so it runs it itself, which saves a
// goroutine start and a hand-over on the set-up's critical path.
func (d *DataConns) doInline(id string, ref rendezvous.ConnRef, input func(now time.Time), after ...any) (run func()) {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return
	}
	input(time.Now())
	d.drainLocked()
	d.queue = append(d.queue, after...)
	if d.running {
		d.mu.Unlock()
		return
	}
	d.running = true
	d.inline = inlineSlot{id: id, ref: ref, on: true}
	var closes []net.Conn
	for i := 0; i < len(d.queue) && !d.closed; i++ {
		a := d.queue[i]
		d.queue[i] = nil
		d.mu.Unlock()
		if c := d.exec(a); c != nil {
			closes = append(closes, c)
		}
		d.mu.Lock()
	}
	if cap(d.queue) > 64 {
		d.queue = nil // a burst's backlog is not kept
	} else {
		d.queue = d.queue[:0]
	}
	d.running = false
	run = d.inline.run
	d.inline = inlineSlot{}
	d.mu.Unlock()
	// Streams nobody takes are closed last, outside the lock and the
	// queue: closing a TLS stream may wait for its peer.
	for _, c := range closes {
		c.Close()
	}
	return run
}

// drainLocked queues the machine's pending actions and rearms the timer.
func (d *DataConns) drainLocked() {
	for {
		a := d.rv.Poll()
		if a == nil {
			break
		}
		d.queue = append(d.queue, a)
	}
	if dl := d.rv.Deadline(); !dl.IsZero() && (d.timerAt.IsZero() || !dl.Equal(d.timerAt)) {
		wait := dl.Sub(time.Now())
		if wait < 0 {
			wait = 0
		}
		d.timerAt = dl
		// One timer, moved: every set-up changes the deadline (twice,
		// as it starts and as it ends), and a new timer each time is an
		// allocation and a callback more.
		if d.timer == nil {
			d.timer = time.AfterFunc(wait, d.tick)
		} else {
			d.timer.Reset(wait)
		}
	}
}

// tick runs the machine's due timers.
func (d *DataConns) tick() {
	d.do(func(now time.Time) {
		// Fired: the next drain arms the timer again even for the
		// same deadline (should the clock have run early).
		d.timerAt = time.Time{}
		d.rv.Tick(now)
	})
}

// exec runs one action; every action is quick and does not block (sends
// to channels have room, goroutines do the waiting). It returns a stream
// to close once the queue is done.
func (d *DataConns) exec(a any) (closeConn net.Conn) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if s, ok := a.(rendezvous.Send); ok {
		// Outside the lock: the host has locks of its own.
		d.mu.Unlock()
		if err := d.host.SendControl(s.To, s.Msg); err != nil {
			d.ep.log.Debug("data connection control message not sent", "to", s.To, "err", err)
		}
		d.mu.Lock()
		return nil
	}
	if d.closed {
		return nil
	}
	switch a := a.(type) {
	case rendezvous.Watch:
		d.watchLocked(a)
	case rendezvous.RoundTrip:
		ctx := d.takeoffLocked(a.ID)
		go func() {
			defer d.landed(a.ID)
			if err := d.host.RoundTrip(ctx, a.To); err == nil {
				d.do(func(now time.Time) { d.rv.RoundTripDone(now, a.ID) })
			}
		}()
	case rendezvous.Dial:
		ctx := d.takeoffLocked(a.ID)
		run := func() {
			defer d.landed(a.ID)
			d.dial(ctx, a)
		}
		if s := &d.inline; s.on && s.run == nil && s.id != "" && s.id == a.ID {
			s.run = run
		} else {
			go run()
		}
	case rendezvous.Deliver:
		c := d.takeConnLocked(a.Ref)
		r := d.endRequestLocked(a.ID)
		if r == nil || r.done == nil || c == nil {
			return c
		}
		r.finish(&dcOutcome{conn: c})
	case rendezvous.Fail:
		if r := d.endRequestLocked(a.ID); r != nil {
			r.finish(&dcOutcome{err: a.Reason, rule: a.Err})
		}
	case rendezvous.Admit:
		if h := d.takeHoldLocked(a.Ref); h != nil {
			h <- holdDecision{extra: a.Extra}
		}
	case rendezvous.Refuse:
		if h := d.takeHoldLocked(a.Ref); h != nil {
			h <- holdDecision{err: a.Err}
		}
		return d.takeConnLocked(a.Ref)
	case rendezvous.CallInit:
		c := d.takeConnLocked(a.Ref)
		if c == nil {
			return nil
		}
		f := d.funcs[a.Func]
		if f == nil {
			d.ep.log.Warn("data connection for unknown init function closed", "from", a.From, "func", a.Func)
			return c
		}
		run := d.initRunLocked(f, a.From, a.Data, c)
		if s := &d.inline; s.on && s.run == nil && s.ref != 0 && s.ref == a.Ref {
			s.run = run
		} else {
			go run()
		}
	case rendezvous.Close:
		return d.takeConnLocked(a.Ref)
	case closeUntaken:
		return d.takeConnLocked(a.ref)
	}
	return nil
}

// watchLocked watches the port of our set-up a.ID, if the host can tell
// kills (portWatcher): the target kills it when it refuses or expires
// the expectation, and the machine then decides the outcome (Killed).
// ConnectTo ends the watch.
func (d *DataConns) watchLocked(a rendezvous.Watch) {
	pw, ok := d.host.(portWatcher)
	if r := d.requests[a.ID]; !ok || r == nil || r.done == nil {
		return
	}
	id := a.ID
	// Outside the lock: the host has locks of its own.
	d.mu.Unlock()
	stop := pw.WatchPort(a.Port, func(reason []any) {
		r := wire.KillReasonFromValues(reason)
		d.do(func(now time.Time) { d.rv.Killed(now, id, r) })
	})
	d.mu.Lock()
	if r := d.requests[id]; r != nil && r.done != nil && !d.closed {
		r.unwatch = stop
		return
	}
	// Settled meanwhile (Close): end the watch at once.
	d.mu.Unlock()
	stop()
	d.mu.Lock()
}

// takeConnLocked removes and returns the stream of ref (nil if none).
func (d *DataConns) takeConnLocked(ref rendezvous.ConnRef) net.Conn {
	h, ok := d.handles[ref]
	if !ok || h.conn == nil {
		return nil
	}
	c := h.conn
	if h.conn = nil; h.hold == nil {
		delete(d.handles, ref)
	} else {
		d.handles[ref] = h
	}
	return c
}

// takeHoldLocked removes and returns the hold channel of ref (nil if
// none).
func (d *DataConns) takeHoldLocked(ref rendezvous.ConnRef) chan holdDecision {
	h, ok := d.handles[ref]
	if !ok || h.hold == nil {
		return nil
	}
	hold := h.hold
	if h.hold = nil; h.conn == nil {
		delete(d.handles, ref)
	} else {
		d.handles[ref] = h
	}
	return hold
}

// endRequestLocked forgets the request id, cancels what of it is in
// flight and returns its record (nil if none).
func (d *DataConns) endRequestLocked(id string) *dcRequest {
	r := d.requests[id]
	if r == nil {
		return nil
	}
	delete(d.requests, id)
	if r.flight != nil {
		r.flight.cancel()
		r.flight = nil
	}
	return r
}

// runInit runs an init function in its own goroutine; its stream is
// closed by Close if the function is still running then.
func (d *DataConns) runInit(f InitFunc, from string, data []any, c net.Conn) {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		c.Close()
		return
	}
	d.runInitLocked(f, from, data, c)
	d.mu.Unlock()
}

func (d *DataConns) runInitLocked(f InitFunc, from string, data []any, c net.Conn) {
	go d.initRunLocked(f, from, data, c)()
}

// initRunLocked registers an init function's stream (Close closes it if
// the function still runs then) and returns the function's run, to be
// called once, on a goroutine of its own.
func (d *DataConns) initRunLocked(f InitFunc, from string, data []any, c net.Conn) func() {
	d.inits[c] = struct{}{}
	d.wg.Add(1)
	return func() {
		defer d.wg.Done()
		defer func() {
			d.mu.Lock()
			delete(d.inits, c)
			d.mu.Unlock()
		}()
		f(from, data, c)
	}
}

// takeoffLocked counts one more dial or round trip of id in flight and
// returns its context, cancelled when the id is decided (or DataConns
// closes). landed counts it back.
func (d *DataConns) takeoffLocked(id string) context.Context {
	r := d.requests[id]
	if r == nil {
		r = &dcRequest{id: id} // a dial-back
		d.requests[id] = r
	}
	if r.flight == nil {
		ctx, cancel := context.WithCancel(context.Background())
		r.flight = &dcFlight{ctx: ctx, cancel: cancel}
	}
	r.flight.n++
	d.wg.Add(1)
	return r.flight.ctx
}

// landed ends one dial or round trip of id. A dial-back's record (no
// ConnectTo waits on it) goes with its last one.
func (d *DataConns) landed(id string) {
	d.mu.Lock()
	if r := d.requests[id]; r != nil && r.flight != nil {
		if r.flight.n--; r.flight.n == 0 {
			r.flight.cancel()
			r.flight = nil
			if r.done == nil {
				delete(d.requests, id)
			}
		}
	}
	d.mu.Unlock()
	d.wg.Done()
}

func (d *DataConns) newRefLocked(c net.Conn) rendezvous.ConnRef {
	d.refSeq++
	if c != nil {
		d.handles[d.refSeq] = dcHandle{conn: c}
	}
	return d.refSeq
}

func (d *DataConns) dial(ctx context.Context, a rendezvous.Dial) {
	nw, addr, err := d.host.NetworkFor(a.Addr)
	var c net.Conn
	var res *handshake.Result
	if err == nil {
		c, res, err = d.ep.dialHandshake(ctx, nw, addr, wire.ProtocolDataConn, d.ep.withTicket(a.Node, []wire.KV{{Key: wire.KeyDataConnID, Value: a.ID}}))
	}
	if err != nil {
		// A refused or unanswered dial may be made again (the machine's
		// redial rule).
		fault := dialFault(err)
		d.do(func(now time.Time) { d.rv.DialFaulted(now, a.ID, a.Addr, fault, err) })
		return
	}
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		c.Close()
		return
	}
	ref := d.newRefLocked(c)
	d.mu.Unlock()
	if res.Untrusted {
		// The machine closes it and counts the dial as failed.
		d.do(func(now time.Time) { d.rv.DialUntrusted(now, a.ID, a.Addr, ref, res.Peer) }, closeUntaken{ref})
		return
	}
	d.do(func(now time.Time) { d.rv.DialDone(now, a.ID, a.Addr, ref, res.Peer) })
}
