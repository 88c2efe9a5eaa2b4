package transport

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aemp-go/dataconn/core/handshake"
	"github.com/aemp-go/dataconn/core/rendezvous"
	"github.com/aemp-go/dataconn/core/wire"
)

// DataConnConfig tunes data connections.
type DataConnConfig struct {
	// EarlyHold is how long an acceptor holds a data connection from a node
	// of this project whose expectation has not arrived yet; default 3s.
	EarlyHold time.Duration
	// MaxEarlyPerPeer caps such held connections per peer (more are
	// refused; an initiator of this project dials at most this many before
	// its expectation is known to be in place, so honest ones never are);
	// default 16.
	MaxEarlyPerPeer int
	// MaxExpectPerPeer caps pending expectations per peer; default 256.
	// It is announced to peers, which keep at most that many set-ups in
	// flight to this node; more wait in the peer's queue here (see
	// MaxExpectQueuePerPeer) rather than being refused.
	MaxExpectPerPeer int
	// DialStagger is the delay between dials to successive addresses of a
	// target (happy eyeballs); default 250ms.
	DialStagger time.Duration
	// MaxQueuedPerTarget bounds our set-ups waiting for a slot in one
	// target's window (the target's MaxExpectPerPeer, learnt from its
	// greeting); past it ConnectTo fails at once with
	// ErrDataConnQueueFull. Default 100,000.
	MaxQueuedPerTarget int
	// MaxExpectQueuePerPeer bounds a peer's expectations that wait, past
	// MaxExpectPerPeer, for one of its pending ones to settle; past it they
	// are refused. Default 16,384.
	MaxExpectQueuePerPeer int
}

// setDefaults fills in the rendezvous machine's defaults
// (rendezvous.Config.WithDefaults), so that the values announced to
// peers are the ones the machine applies.
func (c *DataConnConfig) setDefaults() {
	d := c.rendezvousConfig().WithDefaults()
	c.EarlyHold, c.MaxEarlyPerPeer, c.MaxExpectPerPeer = d.EarlyHold, d.MaxEarlyPerPeer, d.MaxExpectPerPeer
	c.DialStagger, c.MaxQueuedPerTarget, c.MaxExpectQueuePerPeer = d.DialStagger, d.MaxQueuedPerTarget, d.MaxExpectQueuePerPeer
}

// rendezvousConfig returns the part of the machine's config c sets.
func (c *DataConnConfig) rendezvousConfig() rendezvous.Config {
	return rendezvous.Config{
		EarlyHold:             c.EarlyHold,
		MaxEarlyPerPeer:       c.MaxEarlyPerPeer,
		MaxExpectPerPeer:      c.MaxExpectPerPeer,
		DialStagger:           c.DialStagger,
		MaxQueuedPerTarget:    c.MaxQueuedPerTarget,
		MaxExpectQueuePerPeer: c.MaxExpectQueuePerPeer,
	}
}

// InitFunc is a data-connection init function. It runs on the target node
// in a goroutine of its own with the initiator's node ID, the init data and
// the stream, which it owns (and must close).
type InitFunc func(from string, data []any, conn net.Conn)

// Host is what DataConns needs from the messaging layer it is embedded in:
// a Node provides it, and so can any framework that already has nodes and
// messaging.
type Host interface {
	// SendControl sends msg (["", TAG, args...]) to node's node port.
	SendControl(node string, msg wire.Message) error
	// RoundTrip returns once every control message sent to node before the
	// call has been processed there (the Perl flow's snd round trip).
	RoundTrip(ctx context.Context, node string) error
	// ListenerAddrs returns node's listener addresses in announced form,
	// or this node's own when node is our ID.
	ListenerAddrs(node string) []string
	// IsGoPeer reports whether node greeted with the key of this project
	// (wire.KeyGo) on its messaging connection: it then supports the fast
	// flow and the match confirmation.
	IsGoPeer(node string) bool
	// NetworkFor returns the network that dials an announced address and
	// the address in that network's syntax.
	NetworkFor(addr string) (Network, string, error)
	// Connected makes sure a messaging connection to node exists, so the
	// expectation message can travel.
	Connected(ctx context.Context, node string) error
}

// Rules that a data connection failure broke; a *DataConnError wraps one.
// The rules the rendezvous machine decides are its sentinels under a
// second name, so errors.Is matches either name.
var (
	// ErrDataConnTimeout is rendezvous.ErrTimeout.
	ErrDataConnTimeout = rendezvous.ErrTimeout
	// ErrDataConnNoRoute is rendezvous.ErrNoListeners.
	ErrDataConnNoRoute = rendezvous.ErrNoListeners
	// ErrDataConnKilled is rendezvous.ErrKilled: the target killed the
	// request's port; the rule its reason names (rendezvous.ClassifyKillReason)
	// is wrapped too.
	ErrDataConnKilled = rendezvous.ErrKilled
	// ErrDataConnCancelled is rendezvous.ErrCancelled.
	ErrDataConnCancelled = rendezvous.ErrCancelled
	// ErrDataConnFailed: any other failure (a dial, a handshake, the
	// messaging connection); the rule underneath is wrapped too.
	ErrDataConnFailed = errors.New("data connection: failed")
	// ErrNoInitFunc is rendezvous.ErrNoInitFunc.
	ErrNoInitFunc = rendezvous.ErrNoInitFunc
	// ErrDataConnQueueFull is rendezvous.ErrQueueFull:
	// DataConnConfig.MaxQueuedPerTarget set-ups already wait for the
	// target.
	ErrDataConnQueueFull = rendezvous.ErrQueueFull
)

// DataConnError is the error of a failed data connection. Its text is the
// message of the kill reason, as the Perl node words it; Reason is the full
// reason ["AnyEvent::MP::DataConn", message] and Rule the sentinel.
type DataConnError struct {
	Node   string
	Reason *wire.KillReason
	Rule   error
	// Cause is the failure underneath the rule, when known.
	Cause error
}

func (e *DataConnError) Error() string { return e.Reason.Error() }

// Unwrap returns the rule broken and, when known, the failure underneath
// (a *handshake.Error, *TLSError, *net.OpError...).
func (e *DataConnError) Unwrap() []error {
	if e.Cause == nil {
		return []error{e.Rule}
	}
	return []error{e.Rule, e.Cause}
}

// DataConns opens and accepts data connections. A Node has one; a
// framework with its own messaging makes one with NewDataConns, feeds it
// the control messages addressed to it (HandleControl) and the streams its
// listener accepts (ServeConn). It is safe for concurrent use.
type DataConns struct {
	ep   *endpoint
	host Host

	mu     sync.Mutex
	rv     *rendezvous.Machine
	closed bool
	funcs  map[string]InitFunc
	refSeq rendezvous.ConnRef
	// handles holds one record per connection handle of the machine.
	handles map[rendezvous.ConnRef]dcHandle
	// requests holds one record per data connection id: ours, or one we
	// dial back.
	requests map[string]*dcRequest
	// queue holds the actions the machine emitted and DataConns has not
	// run yet, in order; running is set while a goroutine runs them (one
	// at a time, so that the actions of two inputs never interleave).
	queue   []any
	running bool
	timer   *time.Timer
	timerAt time.Time
	wg      sync.WaitGroup
	// inits are the streams of running init functions: Close closes them
	// so that init functions blocked on them return.
	inits map[net.Conn]struct{}
}

// dcHandle is what DataConns keeps for one connection handle (a
// rendezvous.ConnRef): the stream, once dialed or accepted, and for an
// accepted greeting the channel that waits for Admit or Refuse.
type dcHandle struct {
	conn net.Conn
	hold chan holdDecision
}

// dcRequest is what DataConns keeps for one data connection id, in one
// allocation (a burst queues many set-ups; each stays small): for our own
// set-ups what ConnectTo waits on (done, then outcome), the deadline and
// whether the target killed the request's port; while dials or a round
// trip of the id run, their flight. A dial-back's record has no done.
type dcRequest struct {
	d        *DataConns
	id       string
	deadline time.Time
	done     chan struct{} // gets one value when outcome is set
	outcome  *dcOutcome
	flight   *dcFlight
	killed   atomic.Bool
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

// NewDataConns makes a stand-alone data-connection endpoint for a
// framework that supplies its own messaging through host. cfg gives the
// identity and security (NodeID, Secret, TLS, ...), as for a Node.
func NewDataConns(cfg Config, host Host) (*DataConns, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	return newDataConns(&endpoint{cfg: cfg, id: cfg.NodeID, log: cfg.Logger, resume: newTLSResumer(cfg.Rand)}, host), nil
}

func newDataConns(ep *endpoint, host Host) *DataConns {
	rc := ep.cfg.DataConn.rendezvousConfig()
	rc.Self, rc.PerlCompat = ep.id, ep.cfg.PerlCompat
	return &DataConns{
		ep:       ep,
		host:     host,
		rv:       rendezvous.New(rc),
		funcs:    map[string]InitFunc{},
		inits:    map[net.Conn]struct{}{},
		handles:  map[rendezvous.ConnRef]dcHandle{},
		requests: map[string]*dcRequest{},
	}
}

// Register makes f the init function called name.
func (d *DataConns) Register(name string, f InitFunc) {
	d.mu.Lock()
	d.funcs[name] = f
	d.mu.Unlock()
}

// do runs one input on the machine and then the actions it emitted, in
// order, followed by after (steps of DataConns itself). Actions of
// different inputs run one at a time in the order of their inputs: when
// another goroutine is running actions, it runs these too and do returns
// at once.
func (d *DataConns) do(input func(now time.Time), after ...any) {
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
	d.mu.Unlock()
	// Streams nobody takes are closed last, outside the lock and the
	// queue: closing a TLS stream may wait for its peer.
	for _, c := range closes {
		c.Close()
	}
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
	if dl := d.rv.Deadline(); !dl.IsZero() && (d.timer == nil || !dl.Equal(d.timerAt)) {
		if d.timer != nil {
			d.timer.Stop()
		}
		wait := dl.Sub(time.Now())
		if wait < 0 {
			wait = 0
		}
		d.timerAt = dl
		d.timer = time.AfterFunc(wait, func() {
			d.do(func(now time.Time) {
				// Fired: the next drain arms a new timer even for the
				// same deadline (should the clock have run early).
				d.timer = nil
				d.rv.Tick(now)
			})
		})
	}
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
		go func() {
			defer d.landed(a.ID)
			d.dial(ctx, a)
		}()
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
		d.runInitLocked(f, a.From, a.Data, c)
	case rendezvous.Close:
		return d.takeConnLocked(a.Ref)
	case closeUntaken:
		return d.takeConnLocked(a.ref)
	}
	return nil
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
	d.inits[c] = struct{}{}
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		defer func() {
			d.mu.Lock()
			delete(d.inits, c)
			d.mu.Unlock()
		}()
		f(from, data, c)
	}()
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
	ctx = withRefusedRetry(ctx) // see dataconn_flow.go
	nw, addr, err := d.host.NetworkFor(a.Addr)
	var c net.Conn
	var res *handshake.Result
	if err == nil {
		c, res, err = d.ep.dialDataConn(ctx, nw, addr, d.ep.withTicket(a.Node, []wire.KV{{Key: wire.KeyDataConnID, Value: a.ID}}))
	}
	if err == nil && res.Untrusted {
		c.Close()
		err = ErrUntrustedPeer
	}
	if err != nil {
		d.do(func(now time.Time) { d.rv.DialFailed(now, a.ID, a.Addr, err) })
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
	d.do(func(now time.Time) { d.rv.DialDone(now, a.ID, a.Addr, ref, res.Peer) })
}

// ConnectTo opens a data connection to target (a node ID or a port ID
// NODE#NAME) and runs the init function initFunc there with initData and
// the far end of the stream. It returns the near end once the target has
// accepted it. On failure the error is a *DataConnError whose Reason is
// ["AnyEvent::MP::DataConn", message], and the init function does not run
// or runs with a stream that ends before any byte (when a fault cuts the
// handshake's last line, and always possible on a QUIC direct data stream,
// whose init function starts before the initiator hears it was accepted).
// timeout bounds the whole set-up (0 = 10s), as does ctx; a failure at the
// deadline is always ErrDataConnTimeout.
func (d *DataConns) ConnectTo(ctx context.Context, target string, timeout time.Duration, initFunc string, initData ...any) (net.Conn, error) {
	return d.connectTo(ctx, "", target, timeout, initFunc, initData)
}

func (d *DataConns) connectTo(ctx context.Context, portID, target string, timeout time.Duration, initFunc string, initData []any) (net.Conn, error) {
	if node, _, err := SplitPortID(target); err == nil {
		target = node
	}
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	fail := func(rule error, format string, args ...any) (net.Conn, error) {
		return nil, &DataConnError{Node: target, Reason: wire.DataConnReason(format, args...), Rule: rule}
	}
	if target == d.ep.id {
		return d.localPair(target, initFunc, initData)
	}
	// The messaging connection must come up within the timeout; after
	// that the machine's own timer bounds the set-up, and ctx only
	// cancels it.
	start := time.Now()
	if c, err, ok := d.connectDirect(ctx, target, time.Now().Add(timeout), timeout, initFunc, initData); ok {
		return c, err // a stream of the messaging connection (datastream.go)
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	err := d.host.Connected(cctx, target)
	cerr := cctx.Err()
	cancel()
	if err != nil {
		if errors.Is(err, ErrNoRoute) {
			return nil, &DataConnError{Node: target, Reason: rendezvous.NoListenersReason(target), Rule: ErrDataConnNoRoute}
		}
		if cerr != nil {
			return d.ctxFailure(cctx, target, timeout)
		}
		msg := err.Error()
		if !strings.HasPrefix(msg, target+": ") {
			msg = target + ": " + msg
		}
		return nil, &DataConnError{Node: target, Reason: wire.DataConnReason("%s", msg), Rule: ErrDataConnFailed, Cause: err}
	}
	id, err := d.ep.randomID()
	if err != nil {
		return fail(ErrDataConnFailed, "%s: %v", target, err)
	}
	id += "@" + d.ep.id
	if portID == "" {
		portID = d.ep.id + "#" + id
	}
	// The whole set-up, messaging connection included, ends at deadline.
	// Ties are decided in one way (several events can fall on the same
	// instant, in virtual time always): a stream delivered at the
	// deadline is returned; any failure at or after it is the timeout,
	// with the initiator's own text. In particular the target's kill when
	// its expectation expires (its timer started when the expectation
	// arrived, so it never fires before our deadline) is never reported
	// instead of the timeout.
	rq := &dcRequest{d: d, id: id, deadline: start.Add(timeout), done: make(chan struct{}, 1)}
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return fail(ErrDataConnCancelled, "%s: node closed", target)
	}
	d.requests[id] = rq
	d.mu.Unlock()
	req := rendezvous.ConnectRequest{
		ID: id, Target: target, Port: portID, Timeout: timeout, Start: start, Window: d.peerWindow(target),
		InitFunc: initFunc, InitData: initData,
		TargetAddrs: d.host.ListenerAddrs(target),
		SelfAddrs:   d.host.ListenerAddrs(d.ep.id),
		TargetIsGo:  d.host.IsGoPeer(target),
	}
	timedOut := func() (net.Conn, error) {
		return nil, &DataConnError{Node: target, Reason: rendezvous.TimeoutReason(target, timeout), Rule: fmt.Errorf("%w: %w", ErrDataConnTimeout, rendezvous.ErrTimeout)}
	}
	if pw, ok := d.host.(portWatcher); ok {
		// The target kills the port named in the expectation when it
		// refuses or expires it: fail at once with its reason.
		defer pw.WatchPort(portID, rq.portKilled)()
	}
	d.do(func(now time.Time) { d.rv.Connect(now, req) })
	// The whole set-up, messaging connection included, ends at the
	// timeout: the machine's timer runs from start (req.Start). ctx only
	// cancels it (no timer of our own: a queued set-up stays small).
	tctx := ctx
	select {
	case <-rq.done:
		o := rq.outcome
		if o.err != nil {
			if rq.late() {
				return timedOut()
			}
			rule := ruleOf(o.err, o.rule)
			// Only the watcher cancels while we wait here.
			if rq.killed.Load() && errors.Is(o.rule, rendezvous.ErrCancelled) {
				rule = fmt.Errorf("%w: %w", ErrDataConnKilled, ruleOf(o.err, nil))
			}
			return nil, &DataConnError{Node: target, Reason: o.err, Rule: rule}
		}
		return o.conn, nil
	case <-tctx.Done():
		reason := d.ctxReason(tctx, target, timeout)
		d.do(func(now time.Time) { d.rv.Cancel(now, id, reason) })
		<-rq.done
		o := rq.outcome
		if o.conn != nil { // delivered just before the cancel
			return o.conn, nil
		}
		if errors.Is(tctx.Err(), context.DeadlineExceeded) || rq.late() {
			return timedOut()
		}
		return nil, &DataConnError{Node: target, Reason: o.err, Rule: ruleOf(o.err, o.rule)}
	}
}

// late reports that the set-up's deadline has passed: the timeout then
// decides its outcome.
func (s *dcRequest) late() bool { return !time.Now().Before(s.deadline) }

// portKilled cancels the set-up with the target's kill reason, unless
// the deadline passed.
func (s *dcRequest) portKilled(reason []any) {
	if s.late() {
		return // the timeout decides
	}
	s.killed.Store(true)
	r := wire.KillReasonFromValues(reason)
	s.d.do(func(now time.Time) { s.d.rv.Cancel(now, s.id, r) })
}

func (d *DataConns) ctxReason(ctx context.Context, target string, timeout time.Duration) *wire.KillReason {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return rendezvous.TimeoutReason(target, timeout)
	}
	return wire.DataConnReason("%s: %v", target, ctx.Err())
}

func (d *DataConns) ctxFailure(ctx context.Context, target string, timeout time.Duration) (net.Conn, error) {
	r := d.ctxReason(ctx, target, timeout)
	return nil, &DataConnError{Node: target, Reason: r, Rule: ruleOf(r, nil)}
}

// ruleOf classifies a failure: the machine's rule when it gave one (a
// *rendezvous.Error; rules without a name of their own here are wrapped in
// ErrDataConnFailed), else the rule the reason text names
// (rendezvous.ClassifyKillReason), a plain kill being ErrDataConnFailed.
func ruleOf(r *wire.KillReason, machine error) error {
	if machine != nil {
		for _, rule := range []error{rendezvous.ErrTimeout, rendezvous.ErrNoListeners, rendezvous.ErrCancelled, rendezvous.ErrQueueFull} {
			if errors.Is(machine, rule) {
				return machine
			}
		}
		return fmt.Errorf("%w: %w", ErrDataConnFailed, machine)
	}
	if rule := rendezvous.ClassifyKillReason(r); rule != rendezvous.ErrKilled {
		return rule
	}
	return ErrDataConnFailed
}

// localPair connects the node to itself: an in-process connected pair, no
// network.
func (d *DataConns) localPair(self, initFunc string, initData []any) (net.Conn, error) {
	d.mu.Lock()
	f := d.funcs[initFunc]
	closed := d.closed
	d.mu.Unlock()
	if closed {
		return nil, &DataConnError{Node: self, Reason: wire.DataConnReason("%s: node closed", self), Rule: ErrDataConnCancelled}
	}
	if f == nil {
		return nil, &DataConnError{Node: self, Reason: wire.DataConnReason("%s: init function %q not found", self, initFunc), Rule: ErrNoInitFunc}
	}
	a, b := newPipe()
	d.runInit(f, self, initData, b)
	return a, nil
}

// ConnectToPort is the port-flavoured ConnectTo for frameworks: it runs in
// the background; on success cb receives the stream, on failure the port
// is killed with the reason ["AnyEvent::MP::DataConn", message] and cb is
// not called.
func (n *Node) ConnectToPort(port *Port, target string, timeout time.Duration, cb func(net.Conn), initFunc string, initData ...any) {
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		c, err := n.dc.connectTo(n.ctx, port.ID(), target, timeout, initFunc, initData)
		if err != nil {
			var de *DataConnError
			if errors.As(err, &de) {
				port.Kill(de.Reason.Values()...)
			} else {
				port.Kill(wire.DataConnReason("%s: %v", target, err).Values()...)
			}
			return
		}
		cb(c)
	}()
}

// HandleControl feeds a control message addressed to this node's node port
// (already parsed) from node `from`. It reports whether the message was a
// data-connection message.
func (d *DataConns) HandleControl(from string, m wire.NodeMsg) bool {
	switch m := m.(type) {
	case wire.NodeMsgExpect:
		d.expect(from, m)
	case wire.NodeMsgConnect:
		d.connectBack(from, m)
	default:
		return false
	}
	return true
}

func (d *DataConns) expect(from string, m wire.NodeMsgExpect) {
	d.mu.Lock()
	_, known := d.funcs[m.InitFunc]
	d.mu.Unlock()
	if !known {
		// Refuse at once: the initiator's port is killed with the reason
		// and its ConnectTo fails instead of handing over a stream that
		// nobody reads.
		if node, name, err := SplitPortID(m.Port); err == nil && node == from && name != "" {
			r := wire.DataConnReason("%s: no init function %q", d.ep.id, m.InitFunc)
			d.host.SendControl(from, wire.KillMsg(name, r.Values()...))
		}
		d.ep.log.Debug("expectation for unknown init function refused", "from", from, "func", m.InitFunc)
		return
	}
	d.do(func(now time.Time) { d.rv.Expect(now, from, m) })
}

func (d *DataConns) connectBack(from string, m wire.NodeMsgConnect) {
	addrs := d.host.ListenerAddrs(m.Node)
	d.do(func(now time.Time) { d.rv.ConnectBack(now, from, m, addrs) })
}

// PeerDown tells DataConns that the messaging connection to node is lost.
func (d *DataConns) PeerDown(node string, err error) {
	d.do(func(now time.Time) { d.rv.PeerDown(now, node, err) })
}

// incomingGreeting decides on an accepted stream whose peer asked for
// aemp-dataconn; it may hold the stream until its expectation arrives.
func (d *DataConns) incomingGreeting(ctx context.Context, g wire.Greeting) (rendezvous.ConnRef, []wire.KV, error) {
	return d.incomingGreetingProven(ctx, g, nil)
}

// incomingGreetingProven is incomingGreeting that calls proven (when not
// nil), before any wait, if the stream's id matches an expectation or
// dial-back of its peer (rendezvous.Machine.Proven).
func (d *DataConns) incomingGreetingProven(ctx context.Context, g wire.Greeting, proven func()) (rendezvous.ConnRef, []wire.KV, error) {
	h := make(chan holdDecision, 1)
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return 0, nil, ErrClosed
	}
	ref := d.newRefLocked(nil)
	d.handles[ref] = dcHandle{hold: h}
	d.mu.Unlock()
	isProven := false
	d.do(func(now time.Time) {
		d.rv.IncomingGreeting(now, ref, g)
		isProven = d.rv.Proven(ref)
	})
	if isProven && proven != nil {
		proven()
	}
	select {
	case hd := <-h:
		return ref, hd.extra, hd.err
	case <-ctx.Done():
		d.mu.Lock()
		d.takeHoldLocked(ref)
		d.mu.Unlock()
		return ref, nil, ctx.Err()
	}
}

func (d *DataConns) incomingDone(ref rendezvous.ConnRef, c net.Conn, res *handshake.Result) {
	if res.Untrusted {
		c.Close()
		d.incomingFailed(ref, ErrUntrustedPeer)
		return
	}
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		c.Close()
		return
	}
	h := d.handles[ref]
	h.conn = c
	d.handles[ref] = h
	d.mu.Unlock()
	// A stream the machine did not take is closed.
	d.do(func(now time.Time) { d.rv.IncomingDone(now, ref) }, closeUntaken{ref})
}

func (d *DataConns) incomingFailed(ref rendezvous.ConnRef, err error) {
	d.do(func(now time.Time) { d.rv.IncomingFailed(now, ref, err) })
}

// ServeConn runs the acceptor's side of the handshake on a stream that a
// framework's listener accepted, for data connections only: a peer asking
// for plain messaging (aemp) is refused. nw is the network the stream came
// from (nil when unknown). It returns when the handshake has ended; on
// success the init function runs in its own goroutine.
func (d *DataConns) ServeConn(ctx context.Context, nw Network, c net.Conn) error {
	nonce, err := d.ep.nonce()
	if err != nil {
		c.Close()
		return err
	}
	m, err := handshake.New(d.ep.handshakeConfig(wire.ProtocolMessaging, nil, true, nw, c), nonce, time.Now())
	if err != nil {
		c.Close()
		return err
	}
	opts := d.ep.driveOptions(nw)
	var ref rendezvous.ConnRef
	opts.OnPeerGreeting = func(ctx context.Context, g wire.Greeting, protocol string) ([]wire.KV, error) {
		if protocol != wire.ProtocolDataConn {
			return nil, fmt.Errorf("aemp: %q refused: this endpoint serves data connections only", protocol)
		}
		var extra []wire.KV
		var err error
		ref, extra, err = d.incomingGreeting(ctx, g)
		return extra, err
	}
	conn, res, err := Drive(ctx, c, m, opts)
	if err != nil {
		if ref != 0 {
			d.incomingFailed(ref, err)
		}
		return err
	}
	d.incomingDone(ref, conn, res)
	return nil
}

// Close fails every pending data connection, closes the streams of init
// functions still running and waits for them and every other goroutine of
// DataConns to end. Streams returned by ConnectTo belong to the caller
// and stay open.
func (d *DataConns) Close() error {
	d.close()
	return nil
}

func (d *DataConns) close() {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return
	}
	d.closed = true
	if d.timer != nil {
		d.timer.Stop()
	}
	clear(d.queue)
	d.queue = d.queue[:0]
	for ref, h := range d.handles {
		if h.conn != nil {
			h.conn.Close()
		}
		if h.hold != nil {
			h.hold <- holdDecision{err: ErrClosed}
		}
		delete(d.handles, ref)
	}
	for id, r := range d.requests {
		if r.flight != nil {
			r.flight.cancel()
		}
		r.finish(&dcOutcome{err: wire.DataConnReason("%s: node closed", d.ep.id), rule: fmt.Errorf("%w: %w", rendezvous.ErrCancelled, ErrClosed)})
		delete(d.requests, id)
	}
	for c := range d.inits {
		c.Close()
	}
	d.mu.Unlock()
	d.wg.Wait()
}

// Pending reports what the rendezvous machine still holds: outgoing
// requests, expectations and early streams (all zero when idle).
func (d *DataConns) Pending() (outgoing, expectations, early int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.rv.Counts()
}

// portWatcher is implemented by hosts that can tell when a local port is
// killed (the Node): the target's kill of the expectation's port then ends
// the attempt at once instead of at the timeout.
type portWatcher interface {
	WatchPort(portID string, f func(reason []any)) (stop func())
}

// ---- the Node as Host ----

// WatchPort calls f when the local port portID is killed. A port ID of
// this node that names no port gets a port made for the purpose, removed
// by stop.
func (h nodeHost) WatchPort(portID string, f func(reason []any)) (stop func()) {
	node, name, err := SplitPortID(portID)
	if err != nil || node != h.n.id || name == "" {
		return func() {}
	}
	return h.n.watchPort(name, f)
}

type nodeHost struct{ n *Node }

func (h nodeHost) SendControl(node string, msg wire.Message) error { return h.n.sendTo(node, msg) }
func (h nodeHost) RoundTrip(ctx context.Context, node string) error {
	return h.n.roundTrip(ctx, node)
}
func (h nodeHost) ListenerAddrs(node string) []string {
	if node == h.n.id {
		return h.n.Addrs()
	}
	return h.n.PeerAddrs(node)
}
func (h nodeHost) IsGoPeer(node string) bool {
	h.n.mu.Lock()
	defer h.n.mu.Unlock()
	return h.n.m.IsGo(node)
}
func (h nodeHost) NetworkFor(addr string) (Network, string, error) { return h.n.networkFor(addr) }
func (h nodeHost) Connected(ctx context.Context, node string) error {
	return h.n.Connect(ctx, node)
}

// HandleDataConn registers the init function called name on this node.
func (n *Node) HandleDataConn(name string, f InitFunc) { n.dc.Register(name, f) }

// ConnectTo opens a data connection to target; see DataConns.ConnectTo.
func (n *Node) ConnectTo(ctx context.Context, target string, timeout time.Duration, initFunc string, initData ...any) (net.Conn, error) {
	return n.dc.ConnectTo(ctx, target, timeout, initFunc, initData...)
}

// DataConns returns the node's data-connection endpoint.
func (n *Node) DataConns() *DataConns { return n.dc }
