package transport

import (
	"context"
	"errors"
	"net"
	"syscall"
	"time"

	"github.com/aemp-go/dataconn/core/handshake"
	"github.com/aemp-go/dataconn/core/wire"
)

// Flow control of data-connection set-ups (see core/rendezvous/rendezvous_flow.go):
// a node announces in its greeting how many pending set-ups it holds per
// peer (rendezvous.KeyDataConnWindow = DataConnConfig.MaxExpectPerPeer); an
// initiator keeps at most that many in flight to it and queues the rest,
// each within its own timeout. A target queues expectations past its limit
// instead of refusing them, and holds a stream that arrives for a waiting
// expectation until the expectation can be matched.

// A listener whose backlog overflowed refuses new connections on some
// stacks (memnet, BSD): during a burst, a refused data-connection dial is
// retried with a doubling backoff for up to refusedRetryFor, within the
// set-up's own context, before it counts as failed.
const (
	refusedRetryFor      = time.Second
	refusedRetryFirst    = 5 * time.Millisecond
	refusedRetryMaxDelay = 100 * time.Millisecond
)

type refusedRetryKey struct{}

// withRefusedRetry marks ctx so that the network dial of a handshake
// under it retries a refused connection (see refusedRetryFor).
func withRefusedRetry(ctx context.Context) context.Context {
	return context.WithValue(ctx, refusedRetryKey{}, true)
}

// dialNet dials addr on nw; under withRefusedRetry a refused connection
// is retried with a doubling backoff for up to refusedRetryFor, within
// ctx.
func (n *endpoint) dialNet(ctx context.Context, nw Network, addr string) (net.Conn, error) {
	retry, _ := ctx.Value(refusedRetryKey{}).(bool)
	start := time.Now()
	delay := refusedRetryFirst
	for {
		c, err := nw.Dial(ctx, addr)
		if err == nil || !retry || !errors.Is(err, syscall.ECONNREFUSED) || time.Now().Sub(start)+delay > refusedRetryFor {
			return c, err
		}
		if !n.pause(ctx, delay) {
			return nil, err
		}
		delay = min(2*delay, refusedRetryMaxDelay)
	}
}

// pause waits for d; false when ctx ended first.
func (n *endpoint) pause(ctx context.Context, d time.Duration) bool {
	done := make(chan struct{})
	t := time.AfterFunc(d, func() { close(done) })
	select {
	case <-done:
		return true
	case <-ctx.Done():
		t.Stop()
		return false
	}
}

// droppedRetryFor bounds how long dialDataConn dials again after
// unanswered closes: far beyond what a busy listener makes an honest
// initiator wait (a handshake cap frees slots within a quarter of the
// handshake timeout), and short enough that a target
// that never answers fails with its cause rather than the timeout (the
// fast flow falls back to the round trip once, so twice this, well within
// the default 10 s).
const droppedRetryFor = 3 * time.Second

// dialDataConn dials addr and runs the aemp-dataconn handshake as the
// initiator. A listener at its handshake cap may drop a connection it has
// not read yet (listener.go), and during an honest burst the initiator's
// own greeting can be late enough for that. The initiator then sees the
// stream close before the acceptor's greeting (handshake.Error's
// Unanswered), which proves the acceptor did nothing with it: the dial is
// made again with the refused-dial backoff, for up to droppedRetryFor and
// within ctx (the set-up's own, which ends with its timeout), instead of
// failing the set-up. A refusal the acceptor answers (a wrong secret, TLS
// required) still fails at once; an acceptor that closes every connection
// unanswered fails the set-up after droppedRetryFor.
func (n *endpoint) dialDataConn(ctx context.Context, nw Network, addr string, extra []wire.KV) (net.Conn, *handshake.Result, error) {
	start := time.Now()
	delay := refusedRetryFirst
	for {
		c, res, err := n.dialHandshake(ctx, nw, addr, wire.ProtocolDataConn, extra)
		var he *handshake.Error
		if err == nil || !errors.As(err, &he) || !he.Unanswered || time.Since(start)+delay > droppedRetryFor {
			return c, res, err
		}
		if !n.pause(ctx, delay) {
			return nil, nil, err
		}
		delay = min(2*delay, refusedRetryMaxDelay)
	}
}

// peerWindow returns the window target announced (0: the default); the
// machine ignores it in PerlCompat mode.
func (d *DataConns) peerWindow(target string) int {
	if wh, ok := d.host.(windowHost); ok {
		return wh.PeerWindow(target)
	}
	return 0
}

// windowHost is implemented by hosts that know a peer's announced window
// (the Node); without it the default window is used.
type windowHost interface {
	// PeerWindow returns the window node announced, 0 when unknown.
	PeerWindow(node string) int
}

// PeerWindow returns the window the peer announced on its messaging
// connection (0 when it did not).
func (h nodeHost) PeerWindow(node string) int {
	h.n.mu.Lock()
	defer h.n.mu.Unlock()
	if mc := h.n.mconns[h.n.m.Current(node)]; mc != nil {
		return mc.window
	}
	return 0
}

// DataConnStats is a snapshot of a node's data-connection load.
type DataConnStats struct {
	// Queued set-ups of ours wait for a slot in their target's window;
	// InFlight ones are being set up.
	Queued, InFlight int
	// Expectations of peers are pending; ExpectWaiting wait in their
	// peer's queue; HeldEarly are accepted streams held for a late match.
	Expectations, ExpectWaiting, HeldEarly int
	// Refused counts what this node refused or expired as a target, by
	// rule; Failed counts our set-ups that failed, by rule.
	Refused, Failed map[string]uint64
}

// Stats returns the data-connection load and counters.
func (d *DataConns) Stats() DataConnStats {
	d.mu.Lock()
	s := d.rv.Stats()
	d.mu.Unlock()
	return DataConnStats{
		Queued: s.Queued, InFlight: s.InFlight,
		Expectations: s.Expectations, ExpectWaiting: s.ExpectWaiting, HeldEarly: s.Held,
		Refused: s.Refused, Failed: s.Failed,
	}
}
