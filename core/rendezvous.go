package core

import (
	"cmp"
	"errors"
	"slices"
	"strconv"
	"time"
)

// Rendezvous is the pure state machine that pairs data connections
// (aemp-dataconn) with the requests that asked for them, on both sides:
//
//   - initiator: Connect sends _expect to the target, then dials the
//     target's listeners (staggered, happy eyeballs) or asks the target to
//     dial back (_connect), and reports exactly one RvDeliver or RvFail;
//   - target: Expect records an expectation bound to the announcing node,
//     ConnectBack dials back, and the acceptor side (IncomingGreeting,
//     IncomingDone, IncomingFailed) matches accepted streams by id and
//     authenticated peer, holding early streams of nodes of this project
//     until their expectation arrives.
//
// It does no I/O and reads no clock: time comes in as now, the adapter
// executes the actions returned by Poll and calls Tick at Deadline. It is
// not safe for concurrent use; the adapter serialises calls.
type Rendezvous struct {
	cfg     RendezvousConfig
	seq     uint64
	timers  rvTimerTable
	actions []RvAction
	head    int

	out        map[string]*rvOut
	exps       map[string]*rvExp
	expPerPeer map[string]int
	admitted   map[RvConnRef]rvAdmitted

	held        map[RvConnRef]*rvHeld
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
	stats   RvStats
}

type rvPhase uint8

const (
	rvPhaseRoundTrip rvPhase = iota // waiting for RoundTripDone
	rvPhaseDialing                  // dialing the target's addresses
	rvPhaseDialBack                 // _connect sent, waiting for the target's stream
	rvPhaseQueued                   // waiting for a slot in the target's window
	rvPhaseDone                     // finished (a queued entry left behind)
)

// rvOut is a pending Connect.
type rvOut struct {
	req         RvConnectRequest
	seq         uint64
	phase       rvPhase
	plan        *rvDialPlan
	backMatched bool
	backRef     RvConnRef
	fast        bool // counted in fastPerTarget
	retried     bool // the fast flow failed once and fell back to the round trip
	inflight    bool // counted in its target's window
}

// rvExp is an expectation announced by node from.
type rvExp struct {
	id, from string
	portName string
	timeout  float64
	initFunc string
	initData []any
	claimed  bool
	claimRef RvConnRef
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

// rvAdmitted is an accepted stream that got RvAdmit and whose handshake
// has not finished yet.
type rvAdmitted struct {
	id  string
	out bool // matched a pending outgoing dial-back (else an expectation)
}

// rvHeld is an accepted stream waiting for its id to become claimable:
// early (id not yet expected) or a duplicate of a claimed id.
type rvHeld struct {
	ref   RvConnRef
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
// authenticating as node (DialPlan; its stagger is RvTimerDialStagger).
type rvDialPlan struct {
	id, node string
	*DialPlan
}

// NewRendezvous returns an empty machine.
func NewRendezvous(cfg RendezvousConfig) *Rendezvous {
	return &Rendezvous{
		cfg:         cfg.normalized(),
		out:         make(map[string]*rvOut),
		exps:        make(map[string]*rvExp),
		expPerPeer:  make(map[string]int),
		admitted:    make(map[RvConnRef]rvAdmitted),
		held:        make(map[RvConnRef]*rvHeld),
		heldByID:    make(map[string][]*rvHeld),
		heldPerPeer: make(map[string]int),

		fastPerTarget: make(map[string]int),
		targets:       make(map[string]*rvTargetQ),
		waits:         make(map[string]*rvWaitQ),
		waitIDs:       make(map[string]*rvExp),
	}
}

// Poll returns the next action, or nil when there is none.
func (r *Rendezvous) Poll() RvAction {
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
func (r *Rendezvous) Counts() (outgoing, expectations, early int) {
	return len(r.out), len(r.exps) + len(r.waitIDs), len(r.held)
}

func (r *Rendezvous) emit(a RvAction) {
	r.count(a)
	r.actions = append(r.actions, a)
}

func (r *Rendezvous) nextSeq() uint64 {
	r.seq++
	return r.seq
}

// ---- initiator side ----

// Connect starts a data connection request. Exactly one RvDeliver or
// RvFail with req.ID follows, possibly at once.
func (r *Rendezvous) Connect(now time.Time, req RvConnectRequest) {
	r.now = now
	fail := func(rule error, text string) {
		r.emit(RvFail{ID: req.ID, Reason: DataConnReason("%s", text), Err: rvErr(rule, req.Target, text)})
	}
	switch {
	case req.ID == "":
		fail(ErrRvBadRequest, req.Target+": empty data connection id")
		return
	case r.out[req.ID] != nil || r.exps[req.ID] != nil || r.waitIDs[req.ID] != nil:
		fail(ErrRvBadRequest, req.Target+": data connection id already in use")
		return
	case req.Target == "" || req.Target == r.cfg.Self:
		fail(ErrRvBadRequest, req.Target+": not a remote node")
		return
	}
	tAddrs := rvDedupe(req.TargetAddrs)
	sAddrs := rvDedupe(req.SelfAddrs)
	if len(tAddrs) == 0 && len(sAddrs) == 0 {
		fail(ErrRvNoListeners, req.Target+": no listeners found")
		return
	}
	if req.Timeout <= 0 {
		fail(ErrRvTimeout, rvTimeoutText(req.Target, req.Timeout))
		return
	}
	tq := r.targetQ(req.Target, req.Window)
	if !tq.hasRoom() && tq.live >= r.cfg.MaxQueuedPerTarget {
		fail(ErrRvQueueFull, req.Target+": too many data connections queued for this node ("+
			strconv.Itoa(r.cfg.MaxQueuedPerTarget)+"; raise DataConnConfig.MaxQueuedPerTarget)")
		r.dropTargetQ(req.Target)
		return
	}
	o := &rvOut{req: req, seq: r.nextSeq()}
	if r.cfg.PerlCompat {
		o.req.TargetIsGo = false
	}
	o.req.TargetAddrs = tAddrs
	o.req.SelfAddrs = sAddrs
	o.req.InitData = slices.Clone(req.InitData)
	r.out[req.ID] = o
	start := now
	if !req.Start.IsZero() && req.Start.Before(now) {
		start = req.Start
	}
	r.timers.set(idTimer(RvTimerConnect, req.ID), start.Add(min(req.Timeout, RvMaxTimeout)))
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
func (r *Rendezvous) startOut(now time.Time, o *rvOut) {
	req := o.req
	tq := r.targetQ(req.Target, 0)
	tq.inflight++
	o.inflight = true
	tAddrs := o.req.TargetAddrs
	r.emit(RvSend{To: req.Target, Msg: ExpectMsg(req.ID, req.Port, req.Timeout.Seconds(), req.InitFunc, o.req.InitData...)})
	if o.req.TargetIsGo && len(tAddrs) > 0 && r.fastPerTarget[req.Target] < r.cfg.MaxEarlyPerPeer {
		o.fast = true
		r.fastPerTarget[req.Target]++
		r.startOutDial(now, o)
		return
	}
	o.phase = rvPhaseRoundTrip
	r.emit(RvRoundTrip{ID: req.ID, To: req.Target})
}

// connectExpired fails o at its deadline (RvTimerConnect).
func (r *Rendezvous) connectExpired(o *rvOut) {
	r.finishOut(o, ErrRvTimeout)
	text := rvTimeoutText(o.req.Target, o.req.Timeout)
	r.emit(RvFail{ID: o.req.ID, Reason: DataConnReason("%s", text), Err: rvErr(ErrRvTimeout, o.req.Target, text)})
}

// RvTimeoutReason is the kill reason of a set-up to target that did not
// succeed within d, as Perl words it: "TARGET: unable to establish
// connection within N seconds".
func RvTimeoutReason(target string, d time.Duration) *KillReason {
	return DataConnReason("%s", rvTimeoutText(target, d))
}

func rvTimeoutText(target string, d time.Duration) string {
	return target + ": unable to establish connection within " + RvSeconds(d.Seconds()) + " seconds"
}

// RoundTripDone reports that the snd round trip for id completed: the
// target has recorded the expectation, so dialing (or asking it to dial
// back) may start. Unknown or finished ids are ignored.
func (r *Rendezvous) RoundTripDone(now time.Time, id string) {
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
	r.emit(RvSend{To: o.req.Target, Msg: ConnectMsg(id, r.cfg.Self)})
	r.tryHeld(id)
}

func (r *Rendezvous) startOutDial(now time.Time, o *rvOut) {
	o.phase = rvPhaseDialing
	o.plan = r.newPlan(o.req.ID, o.req.Target, o.req.TargetAddrs)
	r.planStart(now, o.plan)
}

// unfast removes o from the count of fast-flow requests to its target.
func (r *Rendezvous) unfast(o *rvOut) {
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
func (r *Rendezvous) finishOut(o *rvOut, rule error) {
	r.timers.stop(idTimer(RvTimerConnect, o.req.ID))
	r.timers.stop(idTimer(RvTimerDialStagger, o.req.ID))
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
func (r *Rendezvous) DialFailed(now time.Time, id, addr string, err error) {
	r.now = now
	if err == nil {
		err = rvErr(ErrRvDialFailed, "", "dial of "+addr+" failed")
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

func (r *Rendezvous) checkOutExhausted(o *rvOut) {
	if !o.plan.Exhausted() {
		return
	}
	if o.fast && !o.retried && !errors.Is(o.plan.LastErr, ErrRvNotConfirmed) && !errors.Is(o.plan.LastErr, ErrRvWrongPeer) {
		// The fast flow's dials failed, typically because the target
		// refused our early stream before our expectation reached it (it
		// was busy, or held too many): fall back to the Perl flow once —
		// the round trip guarantees the expectation is in place — and
		// dial again, still within the timeout.
		o.retried = true
		r.unfast(o)
		r.timers.stop(idTimer(RvTimerDialStagger, o.req.ID))
		o.plan = nil
		o.phase = rvPhaseRoundTrip
		r.emit(RvRoundTrip{ID: o.req.ID, To: o.req.Target})
		return
	}
	r.finishOut(o, ErrRvDialFailed)
	cause := "no address answered"
	if o.plan.LastErr != nil {
		cause = o.plan.LastErr.Error()
	}
	text := o.req.Target + ": unable to connect: " + cause
	rerr := rvErr(ErrRvDialFailed, o.req.Target, text)
	rerr.Cause = o.plan.LastErr
	r.emit(RvFail{ID: o.req.ID, Reason: DataConnReason("%s", text), Err: rerr})
}

// DialDone reports that a stream we dialed for id (RvDial) completed its
// aemp-dataconn handshake as the initiator of a Connect or as a target
// dialing back after _connect; peer is the peer's authenticated greeting.
// The stream is delivered (RvDeliver), handed to the init function
// (RvCallInit) or closed (RvClose).
//
// A peer whose greeting carries KeyGo (or any peer, when the request had
// TargetIsGo) must confirm the id with RvConfirmKey=1; otherwise the
// stream is closed and counts as a failed attempt, like a peer that is not
// the node the id belongs to. With RendezvousConfig.PerlCompat (our
// greetings omit KeyGo, so no acceptor confirms) nothing is required.
func (r *Rendezvous) DialDone(now time.Time, id, addr string, ref RvConnRef, peer Greeting) {
	r.now = now
	if o := r.out[id]; o != nil && o.plan != nil {
		p := o.plan
		p.Ended(addr)
		if err := r.checkDialPeer(o.req.Target, peer, o.req.TargetIsGo); err != nil {
			r.emit(RvClose{Ref: ref, Err: err})
			p.LastErr = err
			r.planAdvance(now, p)
			r.checkOutExhausted(o)
			return
		}
		r.finishOut(o, ErrRvIDBusy)
		r.emit(RvDeliver{ID: id, Ref: ref})
		return
	}
	if e := r.exps[id]; e != nil && e.plan != nil {
		p := e.plan
		p.Ended(addr)
		err := r.checkDialPeer(e.from, peer, false)
		if err == nil && e.claimed {
			err = rvErr(ErrRvIDBusy, e.from, "an incoming stream already claimed the id")
		}
		if err != nil {
			r.emit(RvClose{Ref: ref, Err: err})
			p.LastErr = err
			r.planAdvance(now, p)
			return
		}
		r.finishExp(e, ErrRvIDBusy)
		r.emit(RvCallInit{Ref: ref, From: e.from, Func: e.initFunc, Data: e.initData})
		return
	}
	r.emit(RvClose{Ref: ref, Err: rvErr(ErrRvUnknownID, peer.NodeID, "no pending dial for this id")})
}

func (r *Rendezvous) checkDialPeer(want string, peer Greeting, targetIsGo bool) error {
	if peer.NodeID != want {
		return rvErr(ErrRvWrongPeer, peer.NodeID, "expected "+want+", got "+peer.NodeID)
	}
	if !r.cfg.PerlCompat && (targetIsGo || rvHasKey(peer, KeyGo)) {
		if v, ok := peer.Get(RvConfirmKey); !ok || v != "1" {
			return rvErr(ErrRvNotConfirmed, peer.NodeID, want+" did not confirm the id")
		}
	}
	return nil
}

// Cancel ends a pending Connect because the local caller gave up: RvFail
// with reason (a generic one when nil; an empty message is filled in).
// Unknown or finished ids are ignored.
func (r *Rendezvous) Cancel(now time.Time, id string, reason *KillReason) {
	r.now = now
	o := r.out[id]
	if o == nil {
		return
	}
	r.finishOut(o, ErrRvCancelled)
	text := o.req.Target + ": data connection cancelled"
	switch {
	case reason == nil:
		reason = DataConnReason("%s", text)
	case reason.Message == "":
		c := *reason
		if c.Family == "" {
			c.Family = KillReasonDataConn
		}
		c.Message = text
		reason = &c
	default:
		text = reason.Message
	}
	r.emit(RvFail{ID: id, Reason: reason, Err: rvErr(ErrRvCancelled, o.req.Target, text)})
}

// ---- target side ----

// Expect records the expectation m announced by node from (an _expect
// message on the authenticated messaging connection). It is refused, with
// a kill of m.Port's port sent back to from, when the id is empty or
// already known, or when from has MaxExpectPerPeer pending expectations.
// An early stream from from that carries the id is admitted at once.
func (r *Rendezvous) Expect(now time.Time, from string, m NodeMsgExpect) {
	r.now = now
	portName := rvPortName(m.Port)
	refuse := func(text string) {
		r.sendKill(from, portName, text)
	}
	switch {
	case m.ID == "":
		refuse(r.cfg.Self + ": empty data connection id from " + from)
		return
	case r.exps[m.ID] != nil || r.out[m.ID] != nil || r.waitIDs[m.ID] != nil:
		refuse(r.cfg.Self + ": data connection id from " + from + " already in use")
		return
	case r.expPerPeer[from] >= r.cfg.MaxExpectPerPeer && !r.canWait(from):
		refuse(r.cfg.Self + ": too many pending data connections from " + from)
		r.refuseHeld(m.ID, from, ErrRvExpectLimit, "its expectation was refused")
		r.stats.count(ErrRvExpectLimit)
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
	r.timers.set(idTimer(RvTimerExpect, e.id), now.Add(rvClampSeconds(m.Timeout)))
	if r.expPerPeer[from] >= r.cfg.MaxExpectPerPeer || r.waits[from] != nil {
		// Flow control: the expectation waits (within its timeout) for
		// one of from's pending ones to settle, in arrival order.
		r.waitExp(e)
		return
	}
	r.recordExp(e)
}

// expectExpired runs when the timer of the recorded expectation e falls
// due (RvTimerExpect): a claimed one lives on for ClaimGrace, once.
func (r *Rendezvous) expectExpired(now time.Time, e *rvExp) {
	if e.claimed && !e.expired {
		e.expired = true
		r.timers.set(idTimer(RvTimerExpect, e.id), now.Add(r.cfg.ClaimGrace))
		return
	}
	r.expireExp(e)
}

// recordExp makes e a pending, matchable expectation.
func (r *Rendezvous) recordExp(e *rvExp) {
	r.exps[e.id] = e
	r.expPerPeer[e.from]++
	r.tryHeld(e.id)
}

// expireExp forgets e at its deadline and tells the initiator, always
// with a reason text.
func (r *Rendezvous) expireExp(e *rvExp) {
	r.finishExp(e, ErrRvUnknownID)
	r.sendKill(e.from, e.portName, r.cfg.Self+": data connection from "+e.from+
		" not established within "+RvSeconds(e.timeout)+" seconds")
}

// sendKill sends ["", "kil1", portName, DataConn family, text] to node to.
// A port id without a name is never killed (that would be the node port).
func (r *Rendezvous) sendKill(to, portName, text string) {
	if portName == "" {
		return
	}
	r.emit(RvSend{To: to, Msg: KillMsg(portName, KillReasonDataConn, text)})
}

// finishExp forgets e; held duplicates for it are refused with rule.
func (r *Rendezvous) finishExp(e *rvExp, rule error) {
	r.timers.stop(idTimer(RvTimerExpect, e.id))
	r.timers.stop(idTimer(RvTimerDialStagger, e.id))
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
// DialDone that wins claims the expectation (RvCallInit). Without addresses,
// or for an invalid request, nothing happens and the expectation waits for
// its timer.
func (r *Rendezvous) ConnectBack(now time.Time, from string, m NodeMsgConnect, nodeAddrs []string) {
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
// is RvAdmit or RvRefuse for ref, at once or, for a held early stream,
// later.
func (r *Rendezvous) IncomingGreeting(now time.Time, ref RvConnRef, g Greeting) {
	r.now = now
	if _, dup := r.admitted[ref]; dup || r.held[ref] != nil {
		return // reported twice: the first report stands
	}
	peer := g.NodeID
	hasGo := rvHasKey(g, KeyGo)
	id, ok := g.Get(KeyDataConnID)
	if !ok || id == "" {
		r.emit(RvRefuse{Ref: ref, Err: rvErr(ErrRvUnknownID, peer, "no dataconn_id in the greeting")})
		return
	}
	if e := r.exps[id]; e != nil {
		switch {
		case peer != e.from:
			r.emit(RvRefuse{Ref: ref, Err: rvErr(ErrRvIDHijack, peer, peer+" presented an id announced by "+e.from)})
		case !e.claimed:
			r.claimExp(e, ref, hasGo)
		default:
			r.holdOrRefuse(now, ref, id, peer, hasGo, ErrRvIDBusy)
		}
		return
	}
	if o := r.out[id]; o != nil {
		switch {
		case peer != o.req.Target:
			r.emit(RvRefuse{Ref: ref, Err: rvErr(ErrRvIDHijack, peer, peer+" presented an id meant for "+o.req.Target)})
		case o.phase != rvPhaseDialBack:
			r.emit(RvRefuse{Ref: ref, Err: rvErr(ErrRvUnknownID, peer, "the id is not waiting for a dial-back")})
		case !o.backMatched:
			r.matchOut(o, ref, hasGo)
		default:
			r.holdOrRefuse(now, ref, id, peer, hasGo, ErrRvIDBusy)
		}
		return
	}
	r.holdOrRefuse(now, ref, id, peer, hasGo, ErrRvUnknownID)
}

func (r *Rendezvous) admit(ref RvConnRef, hasGo bool) {
	var extra []KV
	if hasGo {
		extra = []KV{{Key: RvConfirmKey, Value: "1"}}
	}
	r.emit(RvAdmit{Ref: ref, Extra: extra})
}

func (r *Rendezvous) claimExp(e *rvExp, ref RvConnRef, hasGo bool) {
	e.claimed, e.claimRef = true, ref
	r.admitted[ref] = rvAdmitted{id: e.id}
	r.admit(ref, hasGo)
}

func (r *Rendezvous) matchOut(o *rvOut, ref RvConnRef, hasGo bool) {
	o.backMatched, o.backRef = true, ref
	r.admitted[ref] = rvAdmitted{id: o.req.ID, out: true}
	r.admit(ref, hasGo)
}

// holdOrRefuse holds a stream of a node of this project until its id
// becomes claimable (at most EarlyHold, at most MaxEarlyPerPeer per peer);
// Perl peers cannot wait for a late match and are refused with rule.
func (r *Rendezvous) holdOrRefuse(now time.Time, ref RvConnRef, id, peer string, hasGo bool, rule error) {
	if e := r.waitIDs[id]; e != nil && e.from == peer {
		// Its expectation waits in the peer's queue: hold the stream
		// until the expectation is recorded or expires (its timer).
		h := &rvHeld{ref: ref, id: id, peer: peer, hasGo: hasGo, seq: r.nextSeq(), rule: rule, waiting: true}
		r.held[ref] = h
		r.heldByID[id] = append(r.heldByID[id], h)
		return
	}
	if !hasGo {
		r.emit(RvRefuse{Ref: ref, Err: rvErr(rule, peer, "")})
		return
	}
	if r.heldPerPeer[peer] >= r.cfg.MaxEarlyPerPeer {
		r.emit(RvRefuse{Ref: ref, Err: rvErr(ErrRvEarlyLimit, peer, "")})
		return
	}
	h := &rvHeld{ref: ref, id: id, peer: peer, hasGo: hasGo, seq: r.nextSeq(), rule: rule}
	r.held[ref] = h
	r.heldByID[id] = append(r.heldByID[id], h)
	r.heldPerPeer[peer]++
	r.timers.set(holdTimer(ref), now.Add(r.cfg.EarlyHold))
}

func (r *Rendezvous) unhold(h *rvHeld) {
	r.timers.stop(holdTimer(h.ref))
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
func (r *Rendezvous) tryHeld(id string) {
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
func (r *Rendezvous) refuseHeld(id, peer string, rule error, detail string) {
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
		r.emit(RvRefuse{Ref: h.ref, Err: rvErr(rule, peer, detail)})
	}
}

// IncomingDone reports that the handshake of an admitted stream completed
// (the peer is authenticated): RvCallInit for a claimed expectation,
// RvDeliver for a matched dial-back, RvClose when the match is gone (its
// timer fired meanwhile) or the stream was never admitted.
func (r *Rendezvous) IncomingDone(now time.Time, ref RvConnRef) {
	r.now = now
	if a, ok := r.admitted[ref]; ok {
		delete(r.admitted, ref)
		if o := r.out[a.id]; a.out && o != nil {
			r.finishOut(o, ErrRvIDBusy)
			r.emit(RvDeliver{ID: a.id, Ref: ref})
			return
		}
		if e := r.exps[a.id]; !a.out && e != nil {
			r.finishExp(e, ErrRvIDBusy)
			r.emit(RvCallInit{Ref: ref, From: e.from, Func: e.initFunc, Data: e.initData})
			return
		}
	}
	if h := r.held[ref]; h != nil {
		r.unhold(h)
		r.emit(RvClose{Ref: ref, Err: rvErr(ErrRvUnknownID, h.peer, "handshake completed before the id was matched")})
		return
	}
	r.emit(RvClose{Ref: ref, Err: rvErr(ErrRvUnknownID, "", "the stream matches nothing (expired or never admitted)")})
}

// IncomingFailed reports that an accepted stream's handshake failed or the
// adapter closed it: its claim is released (the expectation stays until
// its timer, and a held duplicate may take over) or its hold is dropped.
func (r *Rendezvous) IncomingFailed(now time.Time, ref RvConnRef, err error) {
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
func (r *Rendezvous) PeerDown(now time.Time, node string, err error) {
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
		r.finishOut(o, ErrRvPeerDown)
		text := node + ": node down: " + cause
		r.emit(RvFail{ID: o.req.ID, Reason: DataConnReason("%s", text), Err: rvErr(ErrRvPeerDown, node, text)})
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
		r.emit(RvRefuse{Ref: h.ref, Err: rvErr(ErrRvPeerDown, node, cause)})
	}
}

// ---- dial plans ----

func (r *Rendezvous) newPlan(id, node string, addrs []string) *rvDialPlan {
	return &rvDialPlan{id: id, node: node, DialPlan: NewDialPlan(addrs, r.cfg.DialStagger)}
}

// planStart starts the next dial, and arms the stagger timer for the one
// after it.
func (r *Rendezvous) planStart(now time.Time, p *rvDialPlan) {
	addr, ok := p.Start(now)
	if ok {
		r.emit(RvDial{ID: p.id, Addr: addr, Node: p.node})
	}
	if due := p.Due(); !due.IsZero() {
		r.timers.set(idTimer(RvTimerDialStagger, p.id), due)
	} else {
		r.timers.stop(idTimer(RvTimerDialStagger, p.id))
	}
}

// planFailed records the failure of an in-flight dial and starts the next
// one at once. It reports whether addr was in flight.
func (r *Rendezvous) planFailed(now time.Time, p *rvDialPlan, addr string, err error) bool {
	if !p.Failed(addr, err) {
		return false
	}
	r.planAdvance(now, p)
	return true
}

// planAdvance starts the next dial at once after a failure.
func (r *Rendezvous) planAdvance(now time.Time, p *rvDialPlan) {
	if p.Remaining() {
		r.planStart(now, p)
	}
}
