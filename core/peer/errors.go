package peer

import (
	"errors"
	"fmt"

	"github.com/aemp-go/dataconn/core/wire"
)

// Rules of the peer machine. Inputs that break one return an error that
// wraps the sentinel (errors.Is); the transport adds context, it does not
// redefine them.
var (
	// ErrQueueFull: a send would exceed a queue bound (MaxSendQueue bytes
	// for a connection that is up, MaxPending messages for one that is
	// not). The message was not queued; the sender should wait for the
	// Writable action for that peer and send again. Errors wrap it in a
	// *QueueFullError that names the limit.
	ErrQueueFull = errors.New("peer: send queue full")
	// ErrConnReplaced: a connection lost the tie-break against a
	// simultaneous one between the same two nodes (the lower node ID's
	// connection is kept). It is the answer to Greeted, and the reason of
	// a retired connection's end.
	ErrConnReplaced = errors.New("peer: connection replaced by a concurrent one")
	// ErrClosedByPeer: the peer ended the current connection (ReadClosed).
	ErrClosedByPeer = errors.New("peer: connection closed by the peer")
	// ErrPeerTimeout: nothing arrived on a connection for PeerTimeout.
	ErrPeerTimeout = errors.New("peer: peer timed out")
	// ErrWriteStalled: frames handed to the writer were not confirmed
	// (FrameWritten) within PeerTimeout: the peer does not read.
	ErrWriteStalled = errors.New("peer: writes stalled")
	// ErrNoRoute: no address is known for a node that must be dialed.
	ErrNoRoute = errors.New("peer: no listeners found")
	// ErrWrongPeer: a dialed address authenticated as another node than
	// the one dialed (CheckDialed); the dialer goes on with the node's
	// next address.
	ErrWrongPeer = errors.New("peer: dialed address answered as another node")
	// ErrConnectTimeout: no connection came up within the connect
	// window (2 × HandshakeTimeout) after a send needed one.
	ErrConnectTimeout = errors.New("peer: connect timeout")
	// ErrDialBackTimeout: our dial was refused, we guessed the peer was
	// dialing us (it has the lower ID), and its connection did not arrive
	// within HandshakeTimeout.
	ErrDialBackTimeout = errors.New("peer: refused dial and no connection from the peer")
	// ErrUnknownConn: an input names a connection the machine does not
	// know (never reported, or already ended). Nothing was changed.
	ErrUnknownConn = errors.New("peer: unknown connection")
	// ErrConnKnown: ConnUp or Greeted reuses a connection ID still in use.
	ErrConnKnown = errors.New("peer: connection id already in use")
	// ErrUnknownPort: a message names a local port that does not exist;
	// it is dropped.
	ErrUnknownPort = errors.New("peer: no such port")
	// ErrPortExists: OpenPort with the name of an open port.
	ErrPortExists = errors.New("peer: port exists")
	// ErrUnknownFunc: a node-port call of a function not registered; it is
	// ignored.
	ErrUnknownFunc = errors.New("peer: call of unknown function")
	// ErrIgnored: a node-port request the node does not serve (can,
	// eval, time, _spawn; with Config.Minimal also the g_* requests other
	// than g_slave/g_find/g_found).
	ErrIgnored = errors.New("peer: node-port request ignored")
	// ErrBadMessage: a message whose port element is not a string.
	ErrBadMessage = errors.New("peer: message without a string port")
	// ErrBadPortID: a port ID is not of the form NODE#NAME.
	ErrBadPortID = errors.New("peer: malformed port id")
	// ErrBadNodeID: an empty node ID where a peer's is needed.
	ErrBadNodeID = errors.New("peer: empty node id")
	// ErrSelf: a messaging connection to our own node ID.
	ErrSelf = errors.New("peer: cannot open a messaging connection to myself")
	// ErrFraming: ConnUp names a framing no codec implements.
	ErrFraming = errors.New("peer: unsupported framing")
	// ErrKillNodePort: a kil1 of the node port "" (a Perl node obeys it
	// and then ignores every node request); refused.
	ErrKillNodePort = errors.New("peer: refused kil1 of the node port")
	// ErrUntrusted: a peer that authenticated with tls_anon (no shared
	// secret) tried to write to the database (g_slave DB, g_set, g_upd,
	// g_global); refused. Reads (g_find, g_mon1, g_db_*) are served.
	ErrUntrusted = errors.New("peer: database write from an untrusted (tls_anon) peer")
	// ErrUntrustedRequest: a peer that authenticated with tls_anon proved
	// nothing about its node ID, so its function calls and data-connection
	// requests (_expect, _connect) are refused; it may still send to
	// ports. An _expect's port is killed with the reason, so that the
	// initiator does not wait for its timeout. It is
	// wire.ErrUntrustedRequest, which the rendezvous machine decides for
	// the data connections themselves (rendezvous.ErrUntrusted).
	ErrUntrustedRequest = wire.ErrUntrustedRequest
	// ErrDBLimit: a peer's database shard would exceed a limit; the write
	// was refused as a whole. Errors wrap it in a *DBLimitError.
	ErrDBLimit = errors.New("peer: database limit")
	// ErrDBValue: a database value cannot be encoded.
	ErrDBValue = errors.New("peer: database value not encodable")
	// ErrDBReserved: DBSet or DBDel of a family the node keeps itself
	// ('l, 'g).
	ErrDBReserved = errors.New("peer: database family kept by the node")
	// ErrClosed: the machine was closed; every later input is refused.
	ErrClosed = errors.New("peer: node closed")
)

// QueueFullError says which bound a send hit and how to raise it. It
// wraps ErrQueueFull.
type QueueFullError struct {
	Peer   string
	Limit  string // "MaxSendQueue" (bytes) or "MaxPending" (messages)
	Max    int    // the configured bound
	Queued int    // what is queued now, in the limit's unit
}

// Error implements error.
func (e *QueueFullError) Error() string {
	unit := "bytes"
	if e.Limit == "MaxPending" {
		unit = "messages"
	}
	return fmt.Sprintf("%v for %s: %d %s queued, Config.%s is %d; wait for Writable or raise Config.%s",
		ErrQueueFull, e.Peer, e.Queued, unit, e.Limit, e.Max, e.Limit)
}

// Unwrap returns ErrQueueFull.
func (e *QueueFullError) Unwrap() error { return ErrQueueFull }

// wrapf returns an error wrapping rule with a formatted context.
// CheckDialed is the rule for the handshake of a Dial of node want to
// addr that authenticated as got: nil when got is want, else an error
// wrapping ErrWrongPeer (the connection is not reported to the machine).
func CheckDialed(addr, want, got string) error {
	if got == want {
		return nil
	}
	return wrapf(ErrWrongPeer, "%s answered as node %q, expected %q", addr, got, want)
}

func wrapf(rule error, format string, args ...any) error {
	return fmt.Errorf("%w: %s", rule, fmt.Sprintf(format, args...))
}

// DBLimitError says which database limit a peer's write hit and how to
// raise it. It wraps ErrDBLimit.
type DBLimitError struct {
	Peer   string
	Limit  string // "MaxDBFamilies", "MaxDBKeys" or "MaxDBValue" (bytes)
	Max    int
	Got    int
	Family string // MaxDBValue: where
	Key    string

	monitored bool // the limit counts the families the peer monitors (g_mon1)
}

// Error implements error.
func (e *DBLimitError) Error() string {
	what := map[string]string{"MaxDBFamilies": "families", "MaxDBKeys": "keys", "MaxDBValue": "bytes"}[e.Limit]
	if e.Key != "" {
		what = fmt.Sprintf("bytes in %s/%s", e.Family, e.Key)
	}
	if e.monitored {
		return fmt.Sprintf("%v: %s would monitor %d families, Config.%s is %d; raise Config.%s if this peer is honest",
			ErrDBLimit, e.Peer, e.Got, e.Limit, e.Max, e.Limit)
	}
	return fmt.Sprintf("%v: the shard of %s would hold %d %s, Config.%s is %d; raise Config.%s if this peer is honest",
		ErrDBLimit, e.Peer, e.Got, what, e.Limit, e.Max, e.Limit)
}

// Unwrap returns ErrDBLimit.
func (e *DBLimitError) Unwrap() error { return ErrDBLimit }
