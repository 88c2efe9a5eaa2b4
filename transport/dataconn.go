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

func (c *DataConnConfig) setDefaults() {
	if c.EarlyHold <= 0 {
		c.EarlyHold = rendezvous.DefaultEarlyHold
	}
	if c.MaxEarlyPerPeer <= 0 {
		c.MaxEarlyPerPeer = rendezvous.DefaultMaxEarlyPerPeer
	}
	if c.MaxExpectPerPeer <= 0 {
		c.MaxExpectPerPeer = rendezvous.DefaultMaxExpectPerPeer
	}
	if c.DialStagger <= 0 {
		c.DialStagger = rendezvous.DefaultDialStagger
	}
	if c.MaxQueuedPerTarget <= 0 {
		c.MaxQueuedPerTarget = rendezvous.DefaultMaxQueuedPerTarget
	}
	if c.MaxExpectQueuePerPeer <= 0 {
		c.MaxExpectQueuePerPeer = rendezvous.DefaultMaxExpectQueuePerPeer
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

	mu      sync.Mutex
	rv      *rendezvous.Machine
	closed  bool
	funcs   map[string]InitFunc
	refSeq  rendezvous.ConnRef
	conns   map[rendezvous.ConnRef]net.Conn
	holds   map[rendezvous.ConnRef]chan holdDecision
	waiters map[string]chan *dcOutcome
	cancels map[string]context.CancelFunc // id → cancels its dials and round trip
	timer   *time.Timer
	timerAt time.Time
	wg      sync.WaitGroup
	// inits are the streams of running init functions: Close closes them
	// so that init functions blocked on them return.
	inits map[net.Conn]struct{}
}

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
	return newDataConns(&endpoint{cfg: cfg, id: cfg.NodeID, log: cfg.Logger, clock: cfg.Clock, resume: newTLSResumer(cfg.Rand)}, host), nil
}

func newDataConns(ep *endpoint, host Host) *DataConns {
	dc := ep.cfg.DataConn
	return &DataConns{
		ep:   ep,
		host: host,
		rv: rendezvous.New(rendezvous.Config{
			Self:             ep.id,
			EarlyHold:        dc.EarlyHold,
			MaxEarlyPerPeer:  dc.MaxEarlyPerPeer,
			MaxExpectPerPeer: dc.MaxExpectPerPeer,
			DialStagger:      dc.DialStagger,
			PerlCompat:       ep.cfg.PerlCompat,

			MaxQueuedPerTarget:    dc.MaxQueuedPerTarget,
			MaxExpectQueuePerPeer: dc.MaxExpectQueuePerPeer,
		}),
		funcs:   map[string]InitFunc{},
		inits:   map[net.Conn]struct{}{},
		conns:   map[rendezvous.ConnRef]net.Conn{},
		holds:   map[rendezvous.ConnRef]chan holdDecision{},
		waiters: map[string]chan *dcOutcome{},
		cancels: map[string]context.CancelFunc{},
	}
}

// Register makes f the init function called name.
func (d *DataConns) Register(name string, f InitFunc) {
	d.mu.Lock()
	d.funcs[name] = f
	d.mu.Unlock()
}

// do runs one input on the machine and executes the resulting actions.
func (d *DataConns) do(input func(now time.Time)) {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return
	}
	input(time.Now())
	acts := d.drainLocked()
	d.mu.Unlock()
	for _, a := range acts {
		d.exec(a)
	}
}

// drainLocked collects pending actions and rearms the timer.
func (d *DataConns) drainLocked() []rendezvous.Action {
	var acts []rendezvous.Action
	for {
		a := d.rv.Poll()
		if a == nil {
			break
		}
		acts = append(acts, a)
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
	return acts
}

func (d *DataConns) exec(a rendezvous.Action) {
	switch a := a.(type) {
	case rendezvous.Send:
		if err := d.host.SendControl(a.To, a.Msg); err != nil {
			d.ep.log.Debug("data connection control message not sent", "to", a.To, "err", err)
		}
	case rendezvous.RoundTrip:
		ctx := d.idContext(a.ID)
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			if err := d.host.RoundTrip(ctx, a.To); err == nil {
				d.do(func(now time.Time) { d.rv.RoundTripDone(now, a.ID) })
			}
		}()
	case rendezvous.Dial:
		ctx := d.idContext(a.ID)
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			d.dial(ctx, a)
		}()
	case rendezvous.Deliver:
		d.mu.Lock()
		c := d.conns[a.Ref]
		delete(d.conns, a.Ref)
		w := d.waiters[a.ID]
		delete(d.waiters, a.ID)
		d.stopIDLocked(a.ID)
		d.mu.Unlock()
		if w != nil && c != nil {
			w <- &dcOutcome{conn: c}
		} else if c != nil {
			c.Close()
		}
	case rendezvous.Fail:
		d.mu.Lock()
		w := d.waiters[a.ID]
		delete(d.waiters, a.ID)
		d.stopIDLocked(a.ID)
		d.mu.Unlock()
		if w != nil {
			w <- &dcOutcome{err: a.Reason, rule: a.Err}
		}
	case rendezvous.Admit:
		d.mu.Lock()
		h := d.holds[a.Ref]
		delete(d.holds, a.Ref)
		d.mu.Unlock()
		if h != nil {
			h <- holdDecision{extra: a.Extra}
		}
	case rendezvous.Refuse:
		d.mu.Lock()
		h := d.holds[a.Ref]
		delete(d.holds, a.Ref)
		c := d.conns[a.Ref]
		delete(d.conns, a.Ref)
		d.mu.Unlock()
		if h != nil {
			h <- holdDecision{err: a.Err}
		}
		if c != nil {
			c.Close()
		}
	case rendezvous.CallInit:
		d.mu.Lock()
		c := d.conns[a.Ref]
		delete(d.conns, a.Ref)
		f := d.funcs[a.Func]
		d.mu.Unlock()
		if c == nil {
			return
		}
		if f == nil {
			d.ep.log.Warn("data connection for unknown init function closed", "from", a.From, "func", a.Func)
			c.Close()
			return
		}
		d.runInit(f, a.From, a.Data, c)
	case rendezvous.Close:
		d.mu.Lock()
		c := d.conns[a.Ref]
		delete(d.conns, a.Ref)
		d.mu.Unlock()
		if c != nil {
			c.Close()
		}
	}
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
	d.inits[c] = struct{}{}
	d.wg.Add(1)
	d.mu.Unlock()
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

// idContext returns the context of a pending outgoing id (cancelled when
// the id is decided).
func (d *DataConns) idContext(id string) context.Context {
	d.mu.Lock()
	defer d.mu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	if old := d.cancels[id]; old != nil {
		prev := old
		d.cancels[id] = func() { prev(); cancel() }
	} else {
		d.cancels[id] = cancel
	}
	if d.closed {
		cancel()
	}
	return ctx
}

func (d *DataConns) stopIDLocked(id string) {
	if c := d.cancels[id]; c != nil {
		c()
		delete(d.cancels, id)
	}
}

func (d *DataConns) newRefLocked(c net.Conn) rendezvous.ConnRef {
	d.refSeq++
	if c != nil {
		d.conns[d.refSeq] = c
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
	if strings.IndexByte(target, '#') > 0 { // a port ID (no error made for a node ID)
		if node, _, err := SplitPortID(target); err == nil {
			target = node
		}
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
			return fail(ErrDataConnNoRoute, "%s: no listeners found", target)
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
	// The messaging connection that just came up may carry direct data
	// streams: half a round trip less than the rendezvous.
	if c, err, ok := d.connectDirect(ctx, target, start.Add(timeout), timeout, initFunc, initData); ok {
		return c, err
	}
	id, err := d.ep.randomID()
	if err != nil {
		return fail(ErrDataConnFailed, "%s: %v", target, err)
	}
	id += "@" + d.ep.id
	if portID == "" {
		portID = d.ep.id + "#" + id
	}
	w := make(chan *dcOutcome, 1) // a pointer: a queued set-up holds a small channel
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return fail(ErrDataConnCancelled, "%s: node closed", target)
	}
	d.waiters[id] = w
	d.mu.Unlock()
	req := rendezvous.ConnectRequest{
		ID: id, Target: target, Port: portID, Timeout: timeout, Start: start, Window: d.peerWindow(target),
		InitFunc: initFunc, InitData: initData,
		TargetAddrs: d.host.ListenerAddrs(target),
		SelfAddrs:   d.host.ListenerAddrs(d.ep.id),
		TargetIsGo:  d.host.IsGoPeer(target),
	}
	// The whole set-up, messaging connection included, ends at deadline.
	// Ties are decided in one way (several events can fall on the same
	// instant, in virtual time always): a stream delivered at the
	// deadline is returned; any failure at or after it is the timeout,
	// with the initiator's own text. In particular the target's kill when
	// its expectation expires (its timer started when the expectation
	// arrived, so it never fires before our deadline) is never reported
	// instead of the timeout.
	sw := &setupWatch{d: d, id: id, deadline: start.Add(timeout)}
	late := sw.late
	killed := &sw.killed
	timedOut := func() (net.Conn, error) {
		return nil, &DataConnError{Node: target, Reason: rendezvous.TimeoutReason(target, timeout), Rule: fmt.Errorf("%w: %w", ErrDataConnTimeout, rendezvous.ErrTimeout)}
	}
	if pw, ok := d.host.(portWatcher); ok {
		// The target kills the port named in the expectation when it
		// refuses or expires it: fail at once with its reason.
		defer pw.WatchPort(portID, sw.portKilled)()
	}
	d.do(func(now time.Time) { d.rv.Connect(now, req) })
	// The whole set-up, messaging connection included, ends at the
	// timeout: the machine's timer runs from start (req.Start). ctx only
	// cancels it (no timer of our own: a queued set-up stays small).
	tctx := ctx
	select {
	case o := <-w:
		if o.err != nil {
			if late() {
				return timedOut()
			}
			rule := ruleOf(o.err, o.rule)
			// Only the watcher cancels while we wait here.
			if killed.Load() && errors.Is(o.rule, rendezvous.ErrCancelled) {
				rule = fmt.Errorf("%w: %w", ErrDataConnKilled, ruleOf(o.err, nil))
			}
			return nil, &DataConnError{Node: target, Reason: o.err, Rule: rule}
		}
		return o.conn, nil
	case <-tctx.Done():
		reason := d.ctxReason(tctx, target, timeout)
		d.do(func(now time.Time) { d.rv.Cancel(now, id, reason) })
		o := <-w
		if o.conn != nil { // delivered just before the cancel
			return o.conn, nil
		}
		if errors.Is(tctx.Err(), context.DeadlineExceeded) || late() {
			return timedOut()
		}
		return nil, &DataConnError{Node: target, Reason: o.err, Rule: ruleOf(o.err, o.rule)}
	}
}

// setupWatch is what a set-up's port watcher needs, in one allocation
// (a burst may queue many set-ups; each stays small).
type setupWatch struct {
	d        *DataConns
	id       string
	deadline time.Time
	killed   atomic.Bool
}

// late reports that the set-up's deadline has passed: the timeout then
// decides its outcome.
func (s *setupWatch) late() bool { return !s.d.ep.clock.Now().Before(s.deadline) }

// portKilled cancels the set-up with the target's kill reason, unless
// the deadline passed.
func (s *setupWatch) portKilled(reason []any) {
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
	d.holds[ref] = h
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
		delete(d.holds, ref)
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
	d.conns[ref] = c
	d.mu.Unlock()
	d.do(func(now time.Time) { d.rv.IncomingDone(now, ref) })
	// A stream the machine did not take is closed.
	d.mu.Lock()
	left := d.conns[ref]
	delete(d.conns, ref)
	d.mu.Unlock()
	if left != nil {
		left.Close()
	}
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
	for id, c := range d.cancels {
		c()
		delete(d.cancels, id)
	}
	for ref, c := range d.conns {
		c.Close()
		delete(d.conns, ref)
	}
	for ref, h := range d.holds {
		h <- holdDecision{err: ErrClosed}
		delete(d.holds, ref)
	}
	for id, w := range d.waiters {
		w <- &dcOutcome{err: wire.DataConnReason("%s: node closed", d.ep.id), rule: fmt.Errorf("%w: %w", rendezvous.ErrCancelled, ErrClosed)}
		delete(d.waiters, id)
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
