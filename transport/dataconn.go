package transport

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

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
	// inline is what the doInline whose goroutine runs the queue takes
	// over.
	inline  inlineSlot
	timer   *time.Timer
	timerAt time.Time
	wg      sync.WaitGroup
	// inits are the streams of running init functions: Close closes them
	// so that init functions blocked on them return.
	inits map[net.Conn]struct{}
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
	rc.Self, rc.PerlCompat, rc.RequireInit = ep.id, ep.cfg.PerlCompat, true
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
	d.rv.RegisterInit(name)
	d.mu.Unlock()
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
	if uc, ok := d.host.(upChecker); !ok || !uc.isUp(target) {
		// (No timer when it is up already: a queued set-up stays small.)
		if err := d.connected(ctx, target, timeout); err != nil {
			return nil, err
		}
	}
	// The messaging connection that just came up may carry direct data
	// streams: half a round trip less than the rendezvous.
	if c, err, ok := d.connectDirect(ctx, target, start.Add(timeout), timeout, initFunc, initData); ok {
		return c, err
	}
	id, portID, err := d.ep.dataConnID(portID)
	if err != nil {
		return fail(ErrDataConnFailed, "%s: %v", target, err)
	}
	// The whole set-up, messaging connection included, ends at the
	// timeout: the machine's timer runs from start (req.Start) and decides
	// ties at that instant (its failOut). ctx only cancels it (no timer of
	// our own: a queued set-up stays small).
	rq := &dcRequest{id: id, done: make(chan struct{}, 1)}
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
	// The first dial runs on this goroutine, which would only wait for
	// it (later dials have goroutines of their own).
	if first := d.doInline(id, 0, func(now time.Time) { d.rv.Connect(now, req) }); first != nil {
		// ctx ends the set-up while its dial runs here, as the wait
		// below would.
		stop := context.AfterFunc(ctx, func() { d.ctxEnd(ctx, id, target, timeout) })
		first()
		stop()
	}
	done := rq.done
	if ctx.Err() != nil {
		done = nil // ended during the dial: the outcome is ctx's
	}
	select {
	case <-done:
	case <-ctx.Done():
		d.ctxEnd(ctx, id, target, timeout)
		<-rq.done // delivered just before, if not failed now
	}
	if rq.unwatch != nil {
		rq.unwatch()
	}
	o := rq.outcome
	if o.err != nil {
		return nil, &DataConnError{Node: target, Reason: o.err, Rule: dcRule(o.rule)}
	}
	return o.conn, nil
}

// ctxEnd ends the set-up id because ctx ended: its deadline expires it,
// a cancel cancels it.
func (d *DataConns) ctxEnd(ctx context.Context, id, target string, timeout time.Duration) {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		d.do(func(now time.Time) { d.rv.Expire(now, id) })
	} else {
		reason := d.ctxReason(ctx, target, timeout)
		d.do(func(now time.Time) { d.rv.Cancel(now, id, reason) })
	}
}

// connected makes sure the messaging connection to target is up within
// timeout; its error is a *DataConnError, as rendezvous.MessagingFailed
// words it.
func (d *DataConns) connected(ctx context.Context, target string, timeout time.Duration) error {
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	err := d.host.Connected(cctx, target)
	if err == nil {
		return nil
	}
	why := rendezvous.ConnectFailed
	var reason *wire.KillReason
	switch {
	case errors.Is(err, ErrNoRoute):
		why = rendezvous.NoRoute
	case errors.Is(cctx.Err(), context.DeadlineExceeded):
		why = rendezvous.ConnectExpired
	case cctx.Err() != nil:
		why, reason = rendezvous.ConnectCancelled, d.ctxReason(cctx, target, timeout)
	}
	r, merr := rendezvous.MessagingFailed(target, timeout, why, reason, err)
	var cause error
	if why == rendezvous.ConnectFailed {
		cause = err
	}
	return &DataConnError{Node: target, Reason: r, Rule: dcRule(merr), Cause: cause}
}

func (d *DataConns) ctxReason(ctx context.Context, target string, timeout time.Duration) *wire.KillReason {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return rendezvous.TimeoutReason(target, timeout)
	}
	return wire.DataConnReason("%s: %v", target, ctx.Err())
}

// ctxRule is the rule of a set-up that ctx ended (or whose deadline
// passed, ctx still live): the timeout, or the cancellation.
func ctxRule(ctx context.Context) error {
	if err := ctx.Err(); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return ErrDataConnCancelled
	}
	return ErrDataConnTimeout
}

// dcRule wraps the rule the rendezvous machine decided (a
// *rendezvous.Error): the rules this package names under a second name
// (ErrDataConnTimeout, ...) are that error itself; any other (a dial, a
// lost messaging connection, a plain kill by the target) is also
// ErrDataConnFailed.
func dcRule(machine error) error {
	for _, named := range []error{rendezvous.ErrTimeout, rendezvous.ErrNoListeners, rendezvous.ErrCancelled, rendezvous.ErrQueueFull, rendezvous.ErrNoInitFunc} {
		if errors.Is(machine, named) {
			return machine
		}
	}
	return fmt.Errorf("%w: %w", ErrDataConnFailed, machine)
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
		return nil, &DataConnError{Node: self, Reason: rendezvous.NoInitFuncReason(self, initFunc), Rule: ErrNoInitFunc}
	}
	a, b := newPipe()
	d.runInit(f, self, initData, b)
	return a, nil
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
