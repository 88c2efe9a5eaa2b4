package transport

import (
	"errors"
	"syscall"

	"github.com/aemp-go/dataconn/core/handshake"
	"github.com/aemp-go/dataconn/core/rendezvous"
)

// Flow control of data-connection set-ups (see core/rendezvous/rendezvous_flow.go):
// a node announces in its greeting how many pending set-ups it holds per
// peer (rendezvous.KeyDataConnWindow = DataConnConfig.MaxExpectPerPeer); an
// initiator keeps at most that many in flight to it and queues the rest,
// each within its own timeout. A target queues expectations past its limit
// instead of refusing them, and holds a stream that arrives for a waiting
// expectation until the expectation can be matched.

// A refused or unanswered data-connection dial (a burst filled a
// listener's backlog, or a listener at its handshake cap dropped the
// stream before reading it) is dialed again as the machine decides
// (rendezvous.DialFaulted, TimerRedial); dialFault tells it which it was.
func dialFault(err error) rendezvous.DialFault {
	var he *handshake.Error
	switch {
	case errors.As(err, &he) && he.Unanswered:
		return rendezvous.DialUnanswered
	case errors.Is(err, syscall.ECONNREFUSED):
		return rendezvous.DialRefused
	}
	return rendezvous.DialOther
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
