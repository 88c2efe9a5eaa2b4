package core

import (
	"errors"
	"strconv"
	"time"
)

// RvConnRef is the adapter's handle for one stream (a dialed or accepted
// data connection). The rendezvous machine never looks inside it.
type RvConnRef uint64

// RvConfirmKey is the greeting key the acceptor of a data connection adds
// (value "1") when it matched the connection's id against an expectation
// or a pending dial-back. It is only sent to peers whose greeting carries
// KeyGo, so Perl peers never see it; a dialer talking to a node of this
// project reports success only when it is present (PROTOCOL.md 5, "Silent
// failure").
const RvConfirmKey = "dcm"

// Defaults of RendezvousConfig and the clamp applied to timeouts.
const (
	// RvDefaultEarlyHold is the default RendezvousConfig.EarlyHold.
	RvDefaultEarlyHold = 3 * time.Second
	// RvDefaultMaxEarlyPerPeer is the default RendezvousConfig.MaxEarlyPerPeer.
	RvDefaultMaxEarlyPerPeer = 16
	// RvDefaultMaxExpectPerPeer is the default RendezvousConfig.MaxExpectPerPeer.
	RvDefaultMaxExpectPerPeer = 256
	// RvDefaultDialStagger is the default RendezvousConfig.DialStagger.
	RvDefaultDialStagger = 250 * time.Millisecond
	// RvMaxTimeout caps every connect and expectation timeout, so that a
	// peer cannot pin an expectation (and its memory) for longer, and time
	// arithmetic cannot overflow. Reason texts still show the value asked for.
	RvMaxTimeout = 24 * time.Hour
)

// RendezvousConfig configures a Rendezvous. Zero (or negative) fields take
// their defaults.
type RendezvousConfig struct {
	// Self is our node ID; it starts the texts of kill reasons we send.
	Self string
	// EarlyHold is how long an early incoming data connection (its id not
	// yet expected) is held before it is refused; 0 = RvDefaultEarlyHold.
	EarlyHold time.Duration
	// MaxEarlyPerPeer bounds the held streams per peer node; more are
	// refused. 0 = RvDefaultMaxEarlyPerPeer.
	MaxEarlyPerPeer int
	// MaxExpectPerPeer bounds the pending expectations per peer node; more
	// are refused with a kill sent back. 0 = RvDefaultMaxExpectPerPeer.
	MaxExpectPerPeer int
	// DialStagger is the happy-eyeballs delay between starting dials to
	// successive addresses; 0 = RvDefaultDialStagger.
	DialStagger time.Duration
	// PerlCompat is set when our own greetings omit KeyGo: peers of this
	// project then neither confirm our ids nor hold our early streams, so
	// TargetIsGo is ignored (the Perl flow is used) and DialDone does not
	// require RvConfirmKey.
	PerlCompat bool
	// ClaimGrace is how long an expectation whose timer fired lives on
	// while an accepted stream holds its claim (its match was already
	// confirmed to the initiator); the stream's handshake timeout normally
	// ends it first. 0 = RvDefaultClaimGrace.
	ClaimGrace time.Duration
	// MaxQueuedPerTarget bounds the set-ups of ours that wait for a slot
	// in one target's window; past it Connect fails at once with
	// ErrRvQueueFull. 0 = RvDefaultMaxQueuedPerTarget.
	MaxQueuedPerTarget int
	// MaxExpectQueuePerPeer bounds the expectations (and held round-trip
	// answers) of one peer that wait for one of its MaxExpectPerPeer
	// pending ones to settle; past it expectations are refused as before
	// (ErrRvExpectLimit). 0 = RvDefaultMaxExpectQueuePerPeer.
	MaxExpectQueuePerPeer int
}

// Defaults of the flow-control bounds.
const (
	// RvDefaultMaxQueuedPerTarget is the default RendezvousConfig.MaxQueuedPerTarget.
	RvDefaultMaxQueuedPerTarget = 100_000
	// RvDefaultMaxExpectQueuePerPeer is the default RendezvousConfig.MaxExpectQueuePerPeer.
	RvDefaultMaxExpectQueuePerPeer = 16_384
)

// RvDefaultClaimGrace is the default RendezvousConfig.ClaimGrace.
const RvDefaultClaimGrace = 30 * time.Second

func (c RendezvousConfig) normalized() RendezvousConfig {
	if c.EarlyHold <= 0 {
		c.EarlyHold = RvDefaultEarlyHold
	}
	if c.MaxEarlyPerPeer <= 0 {
		c.MaxEarlyPerPeer = RvDefaultMaxEarlyPerPeer
	}
	if c.MaxExpectPerPeer <= 0 {
		c.MaxExpectPerPeer = RvDefaultMaxExpectPerPeer
	}
	if c.DialStagger <= 0 {
		c.DialStagger = RvDefaultDialStagger
	}
	if c.ClaimGrace <= 0 {
		c.ClaimGrace = RvDefaultClaimGrace
	}
	if c.MaxQueuedPerTarget <= 0 {
		c.MaxQueuedPerTarget = RvDefaultMaxQueuedPerTarget
	}
	if c.MaxExpectQueuePerPeer <= 0 {
		c.MaxExpectQueuePerPeer = RvDefaultMaxExpectQueuePerPeer
	}
	return c
}

// RvConnectRequest asks the machine to open a data connection to another
// node on behalf of a local caller.
type RvConnectRequest struct {
	// ID is unique and unguessable, made by the adapter.
	ID string
	// Target is the target node ID; never our own (the adapter pairs
	// same-node connections itself).
	Target string
	// Port is the full port ID (SELF#name) the target kills on failure.
	Port string
	// Timeout bounds the whole set-up; <= 0 fails at once.
	Timeout time.Duration
	// InitFunc and InitData are what the target calls with its end.
	InitFunc string
	InitData []any
	// TargetAddrs are the target's listener addresses (may be empty).
	TargetAddrs []string
	// SelfAddrs are our listener addresses (may be empty).
	SelfAddrs []string
	// TargetIsGo is set when the target is a node of this project (its
	// messaging greeting had KeyGo): the fast flow is used and success
	// needs the target's RvConfirmKey.
	TargetIsGo bool
	// Start is when the caller began the set-up (before Connect, e.g.
	// while its messaging connection came up); the deadline is Start +
	// Timeout. Zero (or later than Connect's now) means now.
	Start time.Time
	// Window is how many pending set-ups from us the target holds (the
	// MaxExpectPerPeer it announced, KeyDataConnWindow); 0 =
	// RvDefaultMaxExpectPerPeer. More wait in our queue.
	Window int
}

// RvAction is one thing the adapter must do; Rendezvous.Poll returns them
// in order. It is one of the Rv* action structs of this package.
type RvAction interface{ isRvAction() }

// RvSend: send Msg on the messaging connection to node To.
type RvSend struct {
	To  string
	Msg Message
}

// RvRoundTrip: do a snd round trip to node To, then call
// Rendezvous.RoundTripDone(ID).
type RvRoundTrip struct{ ID, To string }

// RvDial: dial Addr now with protocol aemp-dataconn and dataconn_id=ID; the
// authenticated peer must be Node. Report the result with DialDone or
// DialFailed, passing the same ID and Addr.
type RvDial struct{ ID, Addr, Node string }

// RvDeliver: the data connection ID of a Connect succeeded; hand Ref to the
// local caller.
type RvDeliver struct {
	ID  string
	Ref RvConnRef
}

// RvFail: the data connection ID of a Connect failed; kill or answer the
// local caller with Reason (never nil, never an empty message). Err is a
// *RvError naming the rule (errors.Is with ErrRvTimeout, ErrRvNoListeners,
// ErrRvDialFailed, ErrRvPeerDown, ErrRvCancelled, ErrRvBadRequest).
// Exactly one RvDeliver or RvFail is emitted per Connect.
type RvFail struct {
	ID     string
	Reason *KillReason
	Err    error
}

// RvAdmit: send our deferred greeting on this accepted stream, with these
// extra greeting keys.
type RvAdmit struct {
	Ref   RvConnRef
	Extra []KV
}

// RvRefuse: close this accepted stream before sending our greeting.
type RvRefuse struct {
	Ref RvConnRef
	Err error
}

// RvCallInit: target-side success; run the init function Func with Data
// and the stream Ref, on behalf of node From.
type RvCallInit struct {
	Ref  RvConnRef
	From string
	Func string
	Data []any
}

// RvClose: close a stream that is no longer wanted (a losing or late dial,
// a stream whose match expired, a peer that failed a check).
type RvClose struct {
	Ref RvConnRef
	Err error
}

func (RvSend) isRvAction()      {}
func (RvRoundTrip) isRvAction() {}
func (RvDial) isRvAction()      {}
func (RvDeliver) isRvAction()   {}
func (RvFail) isRvAction()      {}
func (RvAdmit) isRvAction()     {}
func (RvRefuse) isRvAction()    {}
func (RvCallInit) isRvAction()  {}
func (RvClose) isRvAction()     {}

// Rules of the rendezvous machine. Every error it produces is an *RvError
// whose Unwrap returns one of these.
var (
	// ErrRvUnknownID: a data connection carries no id, or one that is not
	// (or no longer) expected.
	ErrRvUnknownID = errors.New("dataconn rendezvous: unknown or expired data connection id")
	// ErrRvIDHijack: the authenticated peer of a data connection is not the
	// node the id belongs to.
	ErrRvIDHijack = errors.New("dataconn rendezvous: data connection id belongs to another node")
	// ErrRvIDBusy: another stream already claimed (or used) this id.
	ErrRvIDBusy = errors.New("dataconn rendezvous: data connection id already claimed")
	// ErrRvEarlyLimit: too many held early data connections from one node.
	ErrRvEarlyLimit = errors.New("dataconn rendezvous: too many early data connections from one node")
	// ErrRvExpectLimit: too many pending expectations from one node.
	ErrRvExpectLimit = errors.New("dataconn rendezvous: too many pending data connections from one node")
	// ErrRvNoListeners: neither node has listener addresses.
	ErrRvNoListeners = errors.New("dataconn rendezvous: no listeners found")
	// ErrRvTimeout: the data connection was not established in time.
	ErrRvTimeout = errors.New("dataconn rendezvous: not established within the timeout")
	// ErrRvDialFailed: every address of the target failed.
	ErrRvDialFailed = errors.New("dataconn rendezvous: unable to connect")
	// ErrRvWrongPeer: a dialed address authenticated as another node.
	ErrRvWrongPeer = errors.New("dataconn rendezvous: dialed address answered as another node")
	// ErrRvNotConfirmed: a node of this project accepted the data
	// connection without confirming its id (RvConfirmKey).
	ErrRvNotConfirmed = errors.New("dataconn rendezvous: peer did not confirm the data connection id")
	// ErrRvPeerDown: the messaging connection to the node was lost.
	ErrRvPeerDown = errors.New("dataconn rendezvous: node down")
	// ErrRvCancelled: the local caller gave up.
	ErrRvCancelled = errors.New("dataconn rendezvous: cancelled")
	// ErrRvQueueFull: MaxQueuedPerTarget set-ups already wait for one
	// target.
	ErrRvQueueFull = errors.New("dataconn rendezvous: too many data connections queued for one node")
	// ErrRvBadRequest: a Connect request is invalid (empty or duplicate id,
	// no or own target).
	ErrRvBadRequest = errors.New("dataconn rendezvous: invalid connect request")
	// ErrRvKilled: the target killed the request's port with a reason
	// that names no rule of its own (ClassifyKillReason).
	ErrRvKilled = errors.New("dataconn rendezvous: killed by the target")
	// ErrRvNoInitFunc: the target has no init function of the requested
	// name (a target of this project refuses the request; its kill text
	// says so).
	ErrRvNoInitFunc = errors.New("dataconn rendezvous: no such init function")
)

// RvError is an error of the rendezvous machine: Rule is one of the ErrRv*
// sentinels, Node the peer concerned (if any), Detail what happened.
type RvError struct {
	Rule   error
	Node   string
	Detail string
	// Cause is the failure underneath (the last dial's error), if any.
	Cause error
}

// Error returns the rule text followed by the detail.
func (e *RvError) Error() string {
	s := "dataconn rendezvous: error"
	if e.Rule != nil {
		s = e.Rule.Error()
	}
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

// Unwrap returns the rule sentinel and the cause, if any.
func (e *RvError) Unwrap() []error {
	if e.Cause == nil {
		return []error{e.Rule}
	}
	return []error{e.Rule, e.Cause}
}

func rvErr(rule error, node, detail string) *RvError {
	return &RvError{Rule: rule, Node: node, Detail: detail}
}

// RvSeconds formats a number of seconds the way Perl stringifies numbers
// (%.15g): "5" for 5, "0.5" for 0.5.
func RvSeconds(sec float64) string {
	return strconv.FormatFloat(sec, 'g', 15, 64)
}

// rvClampSeconds converts seconds to a duration within [0, RvMaxTimeout].
func rvClampSeconds(sec float64) time.Duration {
	if !(sec > 0) { // also NaN
		return 0
	}
	if sec >= RvMaxTimeout.Seconds() {
		return RvMaxTimeout
	}
	return time.Duration(sec * float64(time.Second))
}

// rvPortName returns the local name of a full port ID NODE#NAME, or "" when
// the id has no '#'.
func rvPortName(port string) string {
	for i := 0; i < len(port); i++ {
		if port[i] == '#' {
			return port[i+1:]
		}
	}
	return ""
}

// rvHasKey reports whether g has a field key, with or without a value.
func rvHasKey(g Greeting, key string) bool {
	for _, kv := range g.KV {
		if kv.Key == key {
			return true
		}
	}
	return false
}

// rvDedupe returns addrs without empty entries and duplicates, in order.
func rvDedupe(addrs []string) []string {
	if len(addrs) <= 1 {
		if len(addrs) == 1 && addrs[0] == "" {
			return nil
		}
		return addrs
	}
	out := make([]string, 0, len(addrs))
	seen := make(map[string]struct{}, len(addrs))
	for _, a := range addrs {
		if a == "" {
			continue
		}
		if _, dup := seen[a]; dup {
			continue
		}
		seen[a] = struct{}{}
		out = append(out, a)
	}
	return out
}
