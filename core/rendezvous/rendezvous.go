package rendezvous

import (
	"cmp"
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aemp-go/dataconn/core/wire"
)

// Machine is the pure rendezvous machine that pairs data connections
// (aemp-dataconn) with the requests that asked for them, on both sides:
//
//   - initiator: Connect sends _expect to the target, then dials the
//     target's listeners (staggered, happy eyeballs) or asks the target to
//     dial back (_connect), and reports exactly one Deliver or Fail;
//   - target: Expect records an expectation bound to the announcing node,
//     ConnectBack dials back, and the acceptor side (IncomingGreeting,
//     IncomingDone, IncomingFailed) matches accepted streams by id and
//     authenticated peer, holding early streams of nodes of this project
//     until their expectation arrives.
//
// It does no I/O and reads no clock: time comes in as now, the adapter
// executes the actions returned by Poll and calls Tick at Deadline. It is
// not safe for concurrent use; the adapter serialises calls.
type Machine struct {
	cfg     Config
	seq     uint64
	timers  rvTimerTable
	inits   map[string]bool // registered init functions (RequireInit)
	actions []Action
	head    int

	out        map[string]*rvOut
	exps       map[string]*rvExp
	expPerPeer map[string]int
	admitted   map[ConnRef]rvAdmitted

	held        map[ConnRef]*rvHeld
	heldByID    map[string][]*rvHeld
	heldPerPeer map[string]int

	// fastPerTarget counts outgoing requests per target that dialed
	// without the round trip (fast flow) and are not settled: the target
	// holds such streams early, at most MaxEarlyPerPeer per peer, so more
	// take the round trip first.
	fastPerTarget map[string]int

	// Flow control (rendezvous_flow.go): the initiator's window and queue
	// per target, the target's queue of waiting expectations per peer.
	now     time.Time
	targets map[string]*rvTargetQ
	waits   map[string]*rvWaitQ
	waitIDs map[string]*rvExp
	stats   Stats
}

type rvPhase uint8

const (
	rvPhaseRoundTrip rvPhase = iota // waiting for RoundTripDone
	rvPhaseDialing                  // dialing the target's addresses
	rvPhaseDialBack                 // _connect sent, waiting for the target's stream
	rvPhaseQueued                   // waiting for a slot in the target's window
	rvPhaseDone                     // finished (a queued entry left behind)
)

// rvOut is a pending Connect. A burst queues many set-ups behind a
// target's window, so it keeps only what the set-up still needs (Start
// and Window are used up by Connect) and packs its flags.
type rvOut struct {
	req     outReq
	seq     uint64
	plan    *rvDialPlan
	backRef ConnRef
	phase   rvPhase
	// targetIsGo is ConnectRequest.TargetIsGo (false with PerlCompat).
	targetIsGo  bool
	backMatched bool
	fast        bool // counted in fastPerTarget
	retried     bool // the fast flow failed once and fell back to the round trip
	inflight    bool // counted in its target's window
}

// outReq is the part of a ConnectRequest a pending Connect keeps.
type outReq struct {
	ID, Target, Port, InitFunc string
	Timeout                    time.Duration
	InitData                   []any
	TargetAddrs, SelfAddrs     []string
}

// rvExp is an expectation announced by node from.
type rvExp struct {
	id, from string
	portName string
	timeout  float64
	initFunc string
	initData []any
	claimed  bool
	claimRef ConnRef
	plan     *rvDialPlan // dial-back after _connect
	// expired is set when the timer fired while a stream held the claim:
	// the acceptor has already confirmed the match to the initiator, so
	// the expectation lives until that stream's handshake ends (bounded by
	// the handshake timeout).
	expired bool
	// waiting is set while the expectation waits in its peer's queue
	// (the peer had MaxExpectPerPeer pending): it is not matchable yet.
	waiting bool
}

// rvAdmitted is an accepted stream that got Admit and whose handshake
// has not finished yet.
type rvAdmitted struct {
	id  string
	out bool // matched a pending outgoing dial-back (else an expectation)
}

// rvHeld is an accepted stream waiting for its id to become claimable:
// early (id not yet expected) or a duplicate of a claimed id.
type rvHeld struct {
	ref   ConnRef
	id    string
	peer  string
	hasGo bool
	seq   uint64
	rule  error // refusal rule when the hold expires
	// waiting: held for an expectation waiting in its peer's queue; no
	// timer and not counted in heldPerPeer (the queue bounds these).
	waiting bool
}

// rvDialPlan dials a list of addresses for a data connection id,
// authenticating as node (wire.DialPlan; its stagger is TimerDialStagger).
type rvDialPlan struct {
	id, node string
	*wire.DialPlan
	redials []rvRedial // addresses in flight waiting for a redial (redial.go)
}

// New returns an empty machine.
func New(cfg Config) *Machine {
	return &Machine{
		cfg:         cfg.WithDefaults(),
		out:         make(map[string]*rvOut),
		exps:        make(map[string]*rvExp),
		expPerPeer:  make(map[string]int),
		admitted:    make(map[ConnRef]rvAdmitted),
		held:        make(map[ConnRef]*rvHeld),
		heldByID:    make(map[string][]*rvHeld),
		heldPerPeer: make(map[string]int),

		fastPerTarget: make(map[string]int),
		targets:       make(map[string]*rvTargetQ),
		waits:         make(map[string]*rvWaitQ),
		waitIDs:       make(map[string]*rvExp),
		timers:        newTimerTable(),
	}
}

// Poll returns the next action, or nil when there is none.
func (r *Machine) Poll() Action {
	if r.head >= len(r.actions) {
		r.actions = r.actions[:0]
		r.head = 0
		return nil
	}
	a := r.actions[r.head]
	r.actions[r.head] = nil
	r.head++
	return a
}

// Counts returns how many outgoing requests, expectations and held
// streams are still pending. All are zero once every timer has fired.
func (r *Machine) Counts() (outgoing, expectations, early int) {
	return len(r.out), len(r.exps) + len(r.waitIDs), len(r.held)
}

func (r *Machine) emit(a Action) {
	r.count(a)
	r.actions = append(r.actions, a)
}

func (r *Machine) nextSeq() uint64 {
	r.seq++
	return r.seq
}

// ---- initiator side ----

// Connect starts a data connection request. Exactly one Deliver or
// Fail with req.ID follows, possibly at once.
func (r *Machine) Connect(now time.Time, req ConnectRequest) {
	r.now = now
	fail := func(rule error, text string) {
		r.emit(Fail{ID: req.ID, Reason: wire.DataConnReason("%s", text), Err: rvErr(rule, req.Target, text)})
	}
	switch {
	case req.ID == "":
		fail(ErrBadRequest, req.Target+": empty data connection id")
		return
	case r.out[req.ID] != nil || r.exps[req.ID] != nil || r.waitIDs[req.ID] != nil:
		fail(ErrBadRequest, req.Target+": data connection id already in use")
		return
	case req.Target == "" || req.Target == r.cfg.Self:
		fail(ErrBadRequest, req.Target+": not a remote node")
		return
	}
	tAddrs := rvDedupe(req.TargetAddrs)
	sAddrs := rvDedupe(req.SelfAddrs)
	if len(tAddrs) == 0 && len(sAddrs) == 0 {
		fail(ErrNoListeners, noListenersText(req.Target))
		return
	}
	if req.Timeout <= 0 {
		fail(ErrTimeout, rvTimeoutText(req.Target, req.Timeout))
		return
	}
	window := req.Window
	if r.cfg.PerlCompat {
		// Paced like a Perl node would be: it announces no window.
		window = 0
	}
	tq := r.targetQ(req.Target, window)
	if !tq.hasRoom() && tq.live >= r.cfg.MaxQueuedPerTarget {
		fail(ErrQueueFull, req.Target+": too many data connections queued for this node ("+
			strconv.Itoa(r.cfg.MaxQueuedPerTarget)+"; raise DataConnConfig.MaxQueuedPerTarget)")
		r.dropTargetQ(req.Target)
		return
	}
	o := &rvOut{req: outReq{
		ID: req.ID, Target: req.Target, Port: req.Port, InitFunc: req.InitFunc, Timeout: req.Timeout,
		InitData: slices.Clone(req.InitData), TargetAddrs: tAddrs, SelfAddrs: sAddrs,
	}, seq: r.nextSeq(), targetIsGo: req.TargetIsGo && !r.cfg.PerlCompat}
	r.out[req.ID] = o
	start := now
	if !req.Start.IsZero() && req.Start.Before(now) {
		start = req.Start
	}
	r.timers.Set(idTimer(TimerConnect, req.ID), start.Add(min(req.Timeout, MaxTimeout)))
	if !tq.hasRoom() {
		// The target holds no more pending set-ups from us: wait for a
		// slot. Nothing is sent, so nothing runs remotely if the wait
		// uses up the timeout.
		o.phase = rvPhaseQueued
		tq.push(o)
		return
	}
	r.startOut(now, o)
}

// startOut sends the expectation of o and starts its flow; o takes a slot
// of its target's window.
func (r *Machine) startOut(now time.Time, o *rvOut) {
	req := o.req
	tq := r.targetQ(req.Target, 0)
	tq.inflight++
	o.inflight = true
	tAddrs := o.req.TargetAddrs
	r.emit(Watch{ID: req.ID, Port: req.Port})
	r.emit(Send{To: req.Target, Msg: wire.ExpectMsg(req.ID, req.Port, req.Timeout.Seconds(), req.InitFunc, o.req.InitData...)})
	if o.targetIsGo && len(tAddrs) > 0 && r.fastPerTarget[req.Target] < r.cfg.MaxEarlyPerPeer {
		o.fast = true
		r.fastPerTarget[req.Target]++
		r.startOutDial(now, o)
		return
	}
	o.phase = rvPhaseRoundTrip
	r.emit(RoundTrip{ID: req.ID, To: req.Target})
}

// connectExpired fails o at its deadline (TimerConnect).
func (r *Machine) connectExpired(o *rvOut) {
	r.finishOut(o, ErrTimeout)
	text := rvTimeoutText(o.req.Target, o.req.Timeout)
	r.emit(Fail{ID: o.req.ID, Reason: wire.DataConnReason("%s", text), Err: rvErr(ErrTimeout, o.req.Target, text)})
}

// failOut settles o with a failure, unless o's deadline has come: at or
// after it every failure is the timeout, with the initiator's own text
// (the deadline wins ties). Several events can fall on the deadline's
// instant (in virtual time always): the kill the target sends when its
// expectation expires (its timer started when the expectation arrived, so
// it never fires before ours), a dial's last failure, the caller giving
// up. Whatever order they arrive in, the outcome is the timeout.
func (r *Machine) failOut(o *rvOut, reason *wire.KillReason, err *Error) {
	if at, ok := r.timers.At(idTimer(TimerConnect, o.req.ID)); ok && !r.now.Before(at) {
		r.connectExpired(o)
		return
	}
	r.finishOut(o, err.Rule)
	r.emit(Fail{ID: o.req.ID, Reason: reason, Err: err})
}

// NoListenersReason is the kill reason of a set-up to target when no
// listener address is known for either node (nor a route to target), as
// Perl words it: "TARGET: no listeners found". Its rule is ErrNoListeners.
func NoListenersReason(target string) *wire.KillReason {
	return wire.DataConnReason("%s", noListenersText(target))
}

func noListenersText(target string) string { return target + ": no listeners found" }

// NoInitFuncReason is the kill reason with which node refuses a data
// connection for an init function name it does not have, as this
// project words it: `NODE: no init function "NAME"` (ClassifyKillReason
// reads it as ErrNoInitFunc). The machine sends it for an expectation
// (Config.RequireInit); a direct data stream's refusal and a set-up to
// the node itself use it too.
func NoInitFuncReason(node, name string) *wire.KillReason {
	return wire.DataConnReason("%s", noInitFuncText(node, name))
}

func noInitFuncText(node, name string) string {
	return node + ": no init function " + strconv.Quote(name)
}

// TimeoutReason is the kill reason of a set-up to target that did not
// succeed within d, as Perl words it: "TARGET: unable to establish
// connection within N seconds".
func TimeoutReason(target string, d time.Duration) *wire.KillReason {
	return wire.DataConnReason("%s", rvTimeoutText(target, d))
}

func rvTimeoutText(target string, d time.Duration) string {
	return target + ": unable to establish connection within " + Seconds(d.Seconds()) + " seconds"
}

// RoundTripDone reports that the snd round trip for id completed: the
// target has recorded the expectation, so dialing (or asking it to dial
// back) may start. Unknown or finished ids are ignored.
func (r *Machine) RoundTripDone(now time.Time, id string) {
	r.now = now
	o := r.out[id]
	if o == nil || o.phase != rvPhaseRoundTrip {
		return
	}
	if len(o.req.TargetAddrs) > 0 {
		r.startOutDial(now, o)
		return
	}
	o.phase = rvPhaseDialBack
	r.emit(Send{To: o.req.Target, Msg: wire.ConnectMsg(id, r.cfg.Self)})
	r.tryHeld(id)
}

func (r *Machine) startOutDial(now time.Time, o *rvOut) {
	o.phase = rvPhaseDialing
	o.plan = r.newPlan(o.req.ID, o.req.Target, o.req.TargetAddrs)
	r.planStart(now, o.plan)
}

// unfast removes o from the count of fast-flow requests to its target.
func (r *Machine) unfast(o *rvOut) {
	if !o.fast {
		return
	}
	o.fast = false
	if n := r.fastPerTarget[o.req.Target] - 1; n > 0 {
		r.fastPerTarget[o.req.Target] = n
	} else {
		delete(r.fastPerTarget, o.req.Target)
	}
}

// finishOut forgets o; held duplicates of its dial-back are refused.
func (r *Machine) finishOut(o *rvOut, rule error) {
	r.timers.Stop(idTimer(TimerConnect, o.req.ID))
	r.timers.Stop(idTimer(TimerDialStagger, o.req.ID))
	r.stopRedials(o.plan)
	if o.backMatched {
		delete(r.admitted, o.backRef)
	}
	delete(r.out, o.req.ID)
	r.unfast(o)
	r.refuseHeld(o.req.ID, o.req.Target, rule, "the data connection was settled")
	r.releaseOut(o)
}

// DialFailed reports that the dial of addr for id failed (connect, or the
// aemp-dataconn handshake). Unknown ids and addresses are ignored.
func (r *Machine) DialFailed(now time.Time, id, addr string, err error) {
	r.now = now
	if err == nil {
		err = rvErr(ErrDialFailed, "", "dial of "+addr+" failed")
	}
	if o := r.out[id]; o != nil && o.plan != nil {
		if r.planFailed(now, o.plan, addr, err) {
			r.checkOutExhausted(o)
		}
		return
	}
	if e := r.exps[id]; e != nil && e.plan != nil {
		// A dial-back that ran out of addresses leaves the expectation to
		// its timer, which tells the initiator.
		r.planFailed(now, e.plan, addr, err)
	}
}

func (r *Machine) checkOutExhausted(o *rvOut) {
	if !o.plan.Exhausted() {
		return
	}
	if o.fast && !o.retried && !errors.Is(o.plan.LastErr, ErrNotConfirmed) && !errors.Is(o.plan.LastErr, ErrWrongPeer) {
		// The fast flow's dials failed, typically because the target
		// refused our early stream before our expectation reached it (it
		// was busy, or held too many): fall back to the Perl flow once —
		// the round trip guarantees the expectation is in place — and
		// dial again, still within the timeout.
		o.retried = true
		r.unfast(o)
		r.timers.Stop(idTimer(TimerDialStagger, o.req.ID))
		r.stopRedials(o.plan)
		o.plan = nil
		o.phase = rvPhaseRoundTrip
		r.emit(RoundTrip{ID: o.req.ID, To: o.req.Target})
		return
	}
	cause := "no address answered"
	if o.plan.LastErr != nil {
		cause = o.plan.LastErr.Error()
	}
	text := o.req.Target + ": unable to connect: " + cause
	rerr := rvErr(ErrDialFailed, o.req.Target, text)
	rerr.Cause = o.plan.LastErr
	r.failOut(o, wire.DataConnReason("%s", text), rerr)
}

// DialDone reports that a stream we dialed for id (Dial) completed its
// aemp-dataconn handshake as the initiator of a Connect or as a target
// dialing back after _connect; peer is the peer's authenticated greeting.
// The stream is delivered (Deliver), handed to the init function
// (CallInit) or closed (Close).
//
// A peer whose greeting carries KeyGo (or any peer, when the request had
// TargetIsGo) must confirm the id with ConfirmKey=1; otherwise the
// stream is closed and counts as a failed attempt, like a peer that is not
// the node the id belongs to. With Config.PerlCompat (our
// greetings omit KeyGo, so no acceptor confirms) nothing is required.
func (r *Machine) DialDone(now time.Time, id, addr string, ref ConnRef, peer wire.Greeting) {
	r.now = now
	if o := r.out[id]; o != nil && o.plan != nil {
		p := o.plan
		p.endRedial(r, addr)
		p.Ended(addr)
		if err := r.checkDialPeer(o.req.Target, peer, o.targetIsGo); err != nil {
			r.emit(Close{Ref: ref, Err: err})
			p.LastErr = err
			r.planAdvance(now, p)
			r.checkOutExhausted(o)
			return
		}
		r.finishOut(o, ErrIDBusy)
		r.emit(Deliver{ID: id, Ref: ref})
		return
	}
	if e := r.exps[id]; e != nil && e.plan != nil {
		p := e.plan
		p.endRedial(r, addr)
		p.Ended(addr)
		err := r.checkDialPeer(e.from, peer, false)
		if err == nil && e.claimed {
			err = rvErr(ErrIDBusy, e.from, "an incoming stream already claimed the id")
		}
		if err != nil {
			r.emit(Close{Ref: ref, Err: err})
			p.LastErr = err
			r.planAdvance(now, p)
			return
		}
		r.finishExp(e, ErrIDBusy)
		r.emit(CallInit{Ref: ref, From: e.from, Func: e.initFunc, Data: e.initData})
		return
	}
	r.emit(Close{Ref: ref, Err: rvErr(ErrUnknownID, peer.NodeID, "no pending dial for this id")})
}

// DialUntrusted reports that the dial of addr for id connected, but its
// peer authenticated with tls_anon (handshake.Result.Untrusted): the stream
// is closed (ErrUntrusted) and the dial counts as failed, as DialFailed.
func (r *Machine) DialUntrusted(now time.Time, id, addr string, ref ConnRef, peer wire.Greeting) {
	r.now = now
	err := untrustedErr(peer.NodeID)
	r.emit(Close{Ref: ref, Err: err})
	r.DialFailed(now, id, addr, err)
}

// IncomingUntrusted reports that an accepted stream's handshake completed,
// but its peer authenticated with tls_anon: the stream is closed
// (ErrUntrusted) and its claim released, as IncomingFailed.
func (r *Machine) IncomingUntrusted(now time.Time, ref ConnRef, peer wire.Greeting) {
	r.now = now
	err := untrustedErr(peer.NodeID)
	r.emit(Close{Ref: ref, Err: err})
	r.IncomingFailed(now, ref, err)
}

func untrustedErr(node string) *Error {
	// No detail: the text is the rule's, as the transport reported it before.
	return rvErr(ErrUntrusted, node, "")
}

func (r *Machine) checkDialPeer(want string, peer wire.Greeting, targetIsGo bool) error {
	if peer.NodeID != want {
		return rvErr(ErrWrongPeer, peer.NodeID, "expected "+want+", got "+peer.NodeID)
	}
	if !r.cfg.PerlCompat && (targetIsGo || rvHasKey(peer, wire.KeyGo)) {
		if v, ok := peer.Get(ConfirmKey); !ok || v != "1" {
			return rvErr(ErrNotConfirmed, peer.NodeID, want+" did not confirm the id")
		}
	}
	return nil
}

// Cancel ends a pending Connect because the local caller gave up: Fail
// with reason (a generic one when nil; an empty message is filled in)
// and ErrCancelled, or with the timeout once its deadline has come (see
// Expire). Unknown or finished ids are ignored.
func (r *Machine) Cancel(now time.Time, id string, reason *wire.KillReason) {
	r.now = now
	if o := r.out[id]; o != nil {
		reason, text := filledReason(reason, o.req.Target+": data connection cancelled")
		r.failOut(o, reason, rvErr(ErrCancelled, o.req.Target, text))
	}
}

// Expire ends a pending Connect because a deadline of the local caller's
// own passed (its context's): Fail with the timeout, as at the set-up's
// own deadline. Unknown or finished ids are ignored.
func (r *Machine) Expire(now time.Time, id string) {
	r.now = now
	if o := r.out[id]; o != nil {
		r.connectExpired(o)
	}
}

// Killed reports that the target killed the port of the pending Connect
// id (the one its Watch named) with reason: Fail with that reason (an
// empty message, as a Perl target's expiry kill has, is filled in) and
// ErrKilled, the rule the reason names (ClassifyKillReason) being the
// error's Cause; at or after the set-up's deadline the timeout instead
// (failOut). Unknown or finished ids are ignored.
func (r *Machine) Killed(now time.Time, id string, reason *wire.KillReason) {
	r.now = now
	o := r.out[id]
	if o == nil {
		return
	}
	// The text a reason without one gets is Cancel's, as before the
	// machine decided kills.
	filled, _ := filledReason(reason, o.req.Target+": data connection cancelled")
	r.failOut(o, filled, KillError(o.req.Target, filled))
}

// KillError is the error of a set-up to target that target ended with
// reason (a kill of the request's port, or a direct data stream's
// refusal): Rule ErrKilled, and as Cause the rule the reason's text names
// (ClassifyKillReason), if any.
func KillError(target string, reason *wire.KillReason) *Error {
	var text string
	if reason != nil {
		text = reason.Message
	}
	err := rvErr(ErrKilled, target, text)
	if rule := ClassifyKillReason(reason); rule != ErrKilled {
		err.Cause = rule
	}
	return err
}

// filledReason returns reason, or when it is nil or has no message one
// with text as its message, and the message.
func filledReason(reason *wire.KillReason, text string) (*wire.KillReason, string) {
	switch {
	case reason == nil:
		return wire.DataConnReason("%s", text), text
	case reason.Message == "":
		c := *reason
		if c.Family == "" {
			c.Family = wire.KillReasonDataConn
		}
		c.Message = text
		return &c, text
	}
	return reason, reason.Message
}

// ---- target side ----

// Expect records the expectation m announced by node from (an _expect
// message on the authenticated messaging connection). It is refused, with
// a kill of m.Port's port sent back to from, when the id is empty or
// already known, or when from has MaxExpectPerPeer pending expectations.
// An early stream from from that carries the id is admitted at once.
func (r *Machine) Expect(now time.Time, from string, m wire.NodeMsgExpect) {
	r.now = now
	portName := rvPortName(m.Port)
	refuse := func(text string) {
		r.sendKill(from, portName, text)
	}
	switch {
	case r.cfg.RequireInit && !r.inits[m.InitFunc]:
		// Only a port of the sender is killed.
		if i := strings.LastIndexByte(m.Port, '#'); i > 0 && m.Port[:i] == from && m.Port[i+1:] != "" {
			r.sendKill(from, m.Port[i+1:], noInitFuncText(r.cfg.Self, m.InitFunc))
		}
		return
	case m.ID == "":
		refuse(r.cfg.Self + ": empty data connection id from " + from)
		return
	case r.exps[m.ID] != nil || r.out[m.ID] != nil || r.waitIDs[m.ID] != nil:
		refuse(r.cfg.Self + ": data connection id from " + from + " already in use")
		return
	case r.expPerPeer[from] >= r.cfg.MaxExpectPerPeer && !r.canWait(from):
		refuse(r.cfg.Self + ": too many pending data connections from " + from)
		r.refuseHeld(m.ID, from, ErrExpectLimit, "its expectation was refused")
		r.stats.count(ErrExpectLimit)
		return
	}
	e := &rvExp{
		id:       m.ID,
		from:     from,
		portName: portName,
		timeout:  m.Timeout,
		initFunc: m.InitFunc,
		initData: slices.Clone(m.InitData),
	}
	r.timers.Set(idTimer(TimerExpect, e.id), now.Add(rvClampSeconds(m.Timeout)))
	if r.expPerPeer[from] >= r.cfg.MaxExpectPerPeer || r.waits[from] != nil {
		// Flow control: the expectation waits (within its timeout) for
		// one of from's pending ones to settle, in arrival order.
		r.waitExp(e)
		return
	}
	r.recordExp(e)
}

// RegisterInit records that the init function name exists on this node
// (see Config.RequireInit).
func (r *Machine) RegisterInit(name string) {
	if r.inits == nil {
		r.inits = make(map[string]bool)
	}
	r.inits[name] = true
}

// expectExpired runs when the timer of the recorded expectation e falls
// due (TimerExpect): a claimed one lives on for ClaimGrace, once.
func (r *Machine) expectExpired(now time.Time, e *rvExp) {
	if e.claimed && !e.expired {
		e.expired = true
		r.timers.Set(idTimer(TimerExpect, e.id), now.Add(r.cfg.ClaimGrace))
		return
	}
	r.expireExp(e)
}

// recordExp makes e a pending, matchable expectation.
func (r *Machine) recordExp(e *rvExp) {
	r.exps[e.id] = e
	r.expPerPeer[e.from]++
	r.tryHeld(e.id)
}

// expireExp forgets e at its deadline and tells the initiator, always
// with a reason text.
func (r *Machine) expireExp(e *rvExp) {
	r.finishExp(e, ErrUnknownID)
	r.sendKill(e.from, e.portName, r.cfg.Self+": data connection from "+e.from+
		" not established within "+Seconds(e.timeout)+" seconds")
}

// sendKill sends ["", "kil1", portName, DataConn family, text] to node to.
// A port id without a name is never killed (that would be the node port).
func (r *Machine) sendKill(to, portName, text string) {
	if portName == "" {
		return
	}
	r.emit(Send{To: to, Msg: wire.KillMsg(portName, wire.KillReasonDataConn, text)})
}

// finishExp forgets e; held duplicates for it are refused with rule.
func (r *Machine) finishExp(e *rvExp, rule error) {
	r.timers.Stop(idTimer(TimerExpect, e.id))
	r.timers.Stop(idTimer(TimerDialStagger, e.id))
	r.stopRedials(e.plan)
	if e.claimed {
		delete(r.admitted, e.claimRef)
	}
	delete(r.exps, e.id)
	if n := r.expPerPeer[e.from] - 1; n > 0 {
		r.expPerPeer[e.from] = n
	} else {
		delete(r.expPerPeer, e.from)
	}
	r.refuseHeld(e.id, e.from, rule, "the expectation was settled")
	r.pumpWaits(e.from)
}

// ConnectBack acts on a _connect from node from: dial m.Node (which must
// be from, and must own the expectation m.ID) at nodeAddrs, staggered. The
// DialDone that wins claims the expectation (CallInit). Without addresses,
// or for an invalid request, nothing happens and the expectation waits for
// its timer.
func (r *Machine) ConnectBack(now time.Time, from string, m wire.NodeMsgConnect, nodeAddrs []string) {
	r.now = now
	e := r.exps[m.ID]
	if e == nil || e.from != from || m.Node != from || e.plan != nil || e.claimed {
		return
	}
	addrs := rvDedupe(nodeAddrs)
	if len(addrs) == 0 {
		return
	}
	e.plan = r.newPlan(m.ID, from, addrs)
	r.planStart(now, e.plan)
}

// ---- acceptor ----

// IncomingGreeting reports the greeting g of a stream accepted on our
// listener that asked for aemp-dataconn, before we sent ours. The answer
// is Admit or Refuse for ref, at once or, for a held early stream,
// later.
func (r *Machine) IncomingGreeting(now time.Time, ref ConnRef, g wire.Greeting) {
	r.now = now
	if _, dup := r.admitted[ref]; dup || r.held[ref] != nil {
		return // reported twice: the first report stands
	}
	peer := g.NodeID
	hasGo := rvHasKey(g, wire.KeyGo)
	id, ok := g.Get(wire.KeyDataConnID)
	if !ok || id == "" {
		r.emit(Refuse{Ref: ref, Err: rvErr(ErrUnknownID, peer, "no dataconn_id in the greeting")})
		return
	}
	if e := r.exps[id]; e != nil {
		switch {
		case peer != e.from:
			r.emit(Refuse{Ref: ref, Err: rvErr(ErrIDHijack, peer, peer+" presented an id announced by "+e.from)})
		case !e.claimed:
			r.claimExp(e, ref, hasGo)
		default:
			r.holdOrRefuse(now, ref, id, peer, hasGo, ErrIDBusy)
		}
		return
	}
	if o := r.out[id]; o != nil {
		switch {
		case peer != o.req.Target:
			r.emit(Refuse{Ref: ref, Err: rvErr(ErrIDHijack, peer, peer+" presented an id meant for "+o.req.Target)})
		case o.phase != rvPhaseDialBack:
			r.emit(Refuse{Ref: ref, Err: rvErr(ErrUnknownID, peer, "the id is not waiting for a dial-back")})
		case !o.backMatched:
			r.matchOut(o, ref, hasGo)
		default:
			r.holdOrRefuse(now, ref, id, peer, hasGo, ErrIDBusy)
		}
		return
	}
	r.holdOrRefuse(now, ref, id, peer, hasGo, ErrUnknownID)
}

func (r *Machine) admit(ref ConnRef, hasGo bool) {
	var extra []wire.KV
	if hasGo {
		extra = []wire.KV{{Key: ConfirmKey, Value: "1"}}
	}
	r.emit(Admit{Ref: ref, Extra: extra})
}

func (r *Machine) claimExp(e *rvExp, ref ConnRef, hasGo bool) {
	e.claimed, e.claimRef = true, ref
	r.admitted[ref] = rvAdmitted{id: e.id}
	r.admit(ref, hasGo)
}

func (r *Machine) matchOut(o *rvOut, ref ConnRef, hasGo bool) {
	o.backMatched, o.backRef = true, ref
	r.admitted[ref] = rvAdmitted{id: o.req.ID, out: true}
	r.admit(ref, hasGo)
}

// holdOrRefuse holds a stream of a node of this project until its id
// becomes claimable (at most EarlyHold, at most MaxEarlyPerPeer per peer);
// Perl peers cannot wait for a late match and are refused with rule.
func (r *Machine) holdOrRefuse(now time.Time, ref ConnRef, id, peer string, hasGo bool, rule error) {
	if e := r.waitIDs[id]; e != nil && e.from == peer {
		// Its expectation waits in the peer's queue: hold the stream
		// until the expectation is recorded or expires (its timer).
		h := &rvHeld{ref: ref, id: id, peer: peer, hasGo: hasGo, seq: r.nextSeq(), rule: rule, waiting: true}
		r.held[ref] = h
		r.heldByID[id] = append(r.heldByID[id], h)
		return
	}
	if !hasGo {
		r.emit(Refuse{Ref: ref, Err: rvErr(rule, peer, "")})
		return
	}
	if r.heldPerPeer[peer] >= r.cfg.MaxEarlyPerPeer {
		r.emit(Refuse{Ref: ref, Err: rvErr(ErrEarlyLimit, peer, "")})
		return
	}
	h := &rvHeld{ref: ref, id: id, peer: peer, hasGo: hasGo, seq: r.nextSeq(), rule: rule}
	r.held[ref] = h
	r.heldByID[id] = append(r.heldByID[id], h)
	r.heldPerPeer[peer]++
	r.timers.Set(holdTimer(ref), now.Add(r.cfg.EarlyHold))
}

func (r *Machine) unhold(h *rvHeld) {
	r.timers.Stop(holdTimer(h.ref))
	delete(r.held, h.ref)
	list := r.heldByID[h.id]
	if i := slices.Index(list, h); i >= 0 {
		list = slices.Delete(list, i, i+1)
	}
	if len(list) == 0 {
		delete(r.heldByID, h.id)
	} else {
		r.heldByID[h.id] = list
	}
	if h.waiting {
		return // not counted in heldPerPeer
	}
	if n := r.heldPerPeer[h.peer] - 1; n > 0 {
		r.heldPerPeer[h.peer] = n
	} else {
		delete(r.heldPerPeer, h.peer)
	}
}

// tryHeld admits the oldest held stream for id whose peer may claim it now.
func (r *Machine) tryHeld(id string) {
	for _, h := range r.heldByID[id] {
		if e := r.exps[id]; e != nil {
			if e.claimed {
				return
			}
			if h.peer == e.from {
				r.unhold(h)
				r.claimExp(e, h.ref, h.hasGo)
				return
			}
			continue
		}
		o := r.out[id]
		if o == nil || o.phase != rvPhaseDialBack || o.backMatched {
			return
		}
		if h.peer == o.req.Target {
			r.unhold(h)
			r.matchOut(o, h.ref, h.hasGo)
			return
		}
	}
}

// refuseHeld refuses every held stream for id from peer.
func (r *Machine) refuseHeld(id, peer string, rule error, detail string) {
	list := r.heldByID[id]
	if len(list) == 0 {
		return
	}
	var drop []*rvHeld
	for _, h := range list {
		if h.peer == peer {
			drop = append(drop, h)
		}
	}
	for _, h := range drop {
		r.unhold(h)
		r.emit(Refuse{Ref: h.ref, Err: rvErr(rule, peer, detail)})
	}
}

// IncomingDone reports that the handshake of an admitted stream completed
// (the peer is authenticated): CallInit for a claimed expectation,
// Deliver for a matched dial-back, Close when the match is gone (its
// timer fired meanwhile) or the stream was never admitted.
func (r *Machine) IncomingDone(now time.Time, ref ConnRef) {
	r.now = now
	if a, ok := r.admitted[ref]; ok {
		delete(r.admitted, ref)
		if o := r.out[a.id]; a.out && o != nil {
			r.finishOut(o, ErrIDBusy)
			r.emit(Deliver{ID: a.id, Ref: ref})
			return
		}
		if e := r.exps[a.id]; !a.out && e != nil {
			r.finishExp(e, ErrIDBusy)
			r.emit(CallInit{Ref: ref, From: e.from, Func: e.initFunc, Data: e.initData})
			return
		}
	}
	if h := r.held[ref]; h != nil {
		r.unhold(h)
		r.emit(Close{Ref: ref, Err: rvErr(ErrUnknownID, h.peer, "handshake completed before the id was matched")})
		return
	}
	r.emit(Close{Ref: ref, Err: rvErr(ErrUnknownID, "", "the stream matches nothing (expired or never admitted)")})
}

// IncomingFailed reports that an accepted stream's handshake failed or the
// adapter closed it: its claim is released (the expectation stays until
// its timer, and a held duplicate may take over) or its hold is dropped.
func (r *Machine) IncomingFailed(now time.Time, ref ConnRef, err error) {
	r.now = now
	if a, ok := r.admitted[ref]; ok {
		delete(r.admitted, ref)
		if o := r.out[a.id]; a.out && o != nil {
			o.backMatched = false
		} else if e := r.exps[a.id]; !a.out && e != nil {
			e.claimed = false
			if e.expired {
				r.expireExp(e)
				return
			}
		}
		r.tryHeld(a.id)
		return
	}
	if h := r.held[ref]; h != nil {
		r.unhold(h)
	}
}

// PeerDown reports that the messaging connection to node was lost:
// requests to node still waiting for their round trip fail, and streams
// held for node are refused. Expectations stay until their timers.
func (r *Machine) PeerDown(now time.Time, node string, err error) {
	r.now = now
	cause := "connection lost"
	if err != nil {
		cause = err.Error()
	}
	var outs []*rvOut
	for _, o := range r.out {
		if o.req.Target == node && o.phase == rvPhaseRoundTrip {
			outs = append(outs, o)
		}
	}
	slices.SortFunc(outs, func(a, b *rvOut) int { return cmp.Compare(a.seq, b.seq) })
	for _, o := range outs {
		text := node + ": node down: " + cause
		r.failOut(o, wire.DataConnReason("%s", text), rvErr(ErrPeerDown, node, text))
	}
	var hs []*rvHeld
	for _, h := range r.held {
		if h.peer == node {
			hs = append(hs, h)
		}
	}
	slices.SortFunc(hs, func(a, b *rvHeld) int { return cmp.Compare(a.seq, b.seq) })
	for _, h := range hs {
		r.unhold(h)
		r.emit(Refuse{Ref: h.ref, Err: rvErr(ErrPeerDown, node, cause)})
	}
}

// ---- dial plans ----

func (r *Machine) newPlan(id, node string, addrs []string) *rvDialPlan {
	return &rvDialPlan{id: id, node: node, DialPlan: wire.NewDialPlan(addrs, r.cfg.DialStagger)}
}

// planStart starts the next dial, and arms the stagger timer for the one
// after it.
func (r *Machine) planStart(now time.Time, p *rvDialPlan) {
	addr, ok := p.Start(now)
	if ok {
		r.emit(Dial{ID: p.id, Addr: addr, Node: p.node})
	}
	if due := p.Due(); !due.IsZero() {
		r.timers.Set(idTimer(TimerDialStagger, p.id), due)
	} else {
		r.timers.Stop(idTimer(TimerDialStagger, p.id))
	}
}

// planFailed records the failure of an in-flight dial and starts the next
// one at once. It reports whether addr was in flight.
func (r *Machine) planFailed(now time.Time, p *rvDialPlan, addr string, err error) bool {
	p.endRedial(r, addr)
	if !p.Failed(addr, err) {
		return false
	}
	r.planAdvance(now, p)
	return true
}

// planAdvance starts the next dial at once after a failure.
func (r *Machine) planAdvance(now time.Time, p *rvDialPlan) {
	if p.Remaining() {
		r.planStart(now, p)
	}
}
