package rendezvous

import (
	"errors"
	"strconv"
	"time"

	"github.com/aemp-go/dataconn/core/wire"
)

// ConnRef is the adapter's handle for one stream (a dialed or accepted
// data connection). The rendezvous machine never looks inside it.
type ConnRef uint64

// ConfirmKey is the greeting key the acceptor of a data connection adds
// (value "1") when it matched the connection's id against an expectation
// or a pending dial-back. It is only sent to peers whose greeting carries
// KeyGo, so Perl peers never see it; a dialer talking to a node of this
// project reports success only when it is present (PROTOCOL.md 5, "Silent
// failure").
const ConfirmKey = "dcm"

// Defaults of Config and the clamp applied to timeouts.
const (
	// DefaultEarlyHold is the default Config.EarlyHold.
	DefaultEarlyHold = 3 * time.Second
	// DefaultMaxEarlyPerPeer is the default Config.MaxEarlyPerPeer.
	DefaultMaxEarlyPerPeer = 16
	// DefaultMaxExpectPerPeer is the default Config.MaxExpectPerPeer.
	DefaultMaxExpectPerPeer = 256
	// MaxTimeout caps every connect and expectation timeout, so that a
	// peer cannot pin an expectation (and its memory) for longer, and time
	// arithmetic cannot overflow. Reason texts still show the value asked for.
	MaxTimeout = 24 * time.Hour
)

// Config configures a Machine. Zero (or negative) fields take
// their defaults.
type Config struct {
	// Self is our node ID; it starts the texts of kill reasons we send.
	Self string
	// EarlyHold is how long an early incoming data connection (its id not
	// yet expected) is held before it is refused; 0 = DefaultEarlyHold.
	EarlyHold time.Duration
	// MaxEarlyPerPeer bounds the held streams per peer node; more are
	// refused. 0 = DefaultMaxEarlyPerPeer.
	MaxEarlyPerPeer int
	// MaxExpectPerPeer bounds the pending expectations per peer node; more
	// are refused with a kill sent back. 0 = DefaultMaxExpectPerPeer.
	MaxExpectPerPeer int
	// DialStagger is the happy-eyeballs delay between starting dials to
	// successive addresses; 0 = wire.DefaultDialStagger.
	DialStagger time.Duration
	// PerlCompat is set when our own greetings omit KeyGo: peers of this
	// project then neither confirm our ids nor hold our early streams, so
	// TargetIsGo is ignored (the Perl flow is used) and DialDone does not
	// require ConfirmKey.
	PerlCompat bool
	// RequireInit refuses, at once, an expectation whose init function
	// was not registered (RegisterInit): the initiator's port is killed
	// with "SELF: no init function NAME" (ErrNoInitFunc), so its
	// ConnectTo fails instead of handing over a stream nobody reads.
	RequireInit bool
	// ClaimGrace is how long an expectation whose timer fired lives on
	// while an accepted stream holds its claim (its match was already
	// confirmed to the initiator); the stream's handshake timeout normally
	// ends it first. 0 = DefaultClaimGrace.
	ClaimGrace time.Duration
	// MaxQueuedPerTarget bounds the set-ups of ours that wait for a slot
	// in one target's window; past it Connect fails at once with
	// ErrQueueFull. 0 = DefaultMaxQueuedPerTarget.
	MaxQueuedPerTarget int
	// MaxExpectQueuePerPeer bounds the expectations (and held round-trip
	// answers) of one peer that wait for one of its MaxExpectPerPeer
	// pending ones to settle; past it expectations are refused as before
	// (ErrExpectLimit). 0 = DefaultMaxExpectQueuePerPeer.
	MaxExpectQueuePerPeer int
}

// Defaults of the flow-control bounds.
const (
	// DefaultMaxQueuedPerTarget is the default Config.MaxQueuedPerTarget.
	DefaultMaxQueuedPerTarget = 100_000
	// DefaultMaxExpectQueuePerPeer is the default Config.MaxExpectQueuePerPeer.
	DefaultMaxExpectQueuePerPeer = 16_384
)

// DefaultClaimGrace is the default Config.ClaimGrace.
const DefaultClaimGrace = 30 * time.Second

// WithDefaults returns c with every zero (or negative) field set to its
// default: the one place the defaults of data connections are applied
// (transport.DataConnConfig takes them from here).
func (c Config) WithDefaults() Config {
	if c.EarlyHold <= 0 {
		c.EarlyHold = DefaultEarlyHold
	}
	if c.MaxEarlyPerPeer <= 0 {
		c.MaxEarlyPerPeer = DefaultMaxEarlyPerPeer
	}
	if c.MaxExpectPerPeer <= 0 {
		c.MaxExpectPerPeer = DefaultMaxExpectPerPeer
	}
	if c.DialStagger <= 0 {
		c.DialStagger = wire.DefaultDialStagger
	}
	if c.ClaimGrace <= 0 {
		c.ClaimGrace = DefaultClaimGrace
	}
	if c.MaxQueuedPerTarget <= 0 {
		c.MaxQueuedPerTarget = DefaultMaxQueuedPerTarget
	}
	if c.MaxExpectQueuePerPeer <= 0 {
		c.MaxExpectQueuePerPeer = DefaultMaxExpectQueuePerPeer
	}
	return c
}

// ConnectRequest asks the machine to open a data connection to another
// node on behalf of a local caller.
type ConnectRequest struct {
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
	// needs the target's ConfirmKey.
	TargetIsGo bool
	// Start is when the caller began the set-up (before Connect, e.g.
	// while its messaging connection came up); the deadline is Start +
	// Timeout. Zero (or later than Connect's now) means now.
	Start time.Time
	// Window is how many pending set-ups from us the target holds (the
	// MaxExpectPerPeer it announced, KeyDataConnWindow); 0 =
	// DefaultMaxExpectPerPeer, as always with Config.PerlCompat
	// (AnnouncedWindow reads it from a greeting). More wait in our queue.
	Window int
}

// Action is one thing the adapter must do; Rendezvous.Poll returns them
// in order. It is one of the Rv* action structs of this package.
type Action interface{ isRvAction() }

// Send: send Msg on the messaging connection to node To.
type Send struct {
	To  string
	Msg wire.Message
}

// Watch: from now on the target may kill Port, the local port the
// Connect ID named (its expectation is about to be sent): report such a
// kill with Machine.Killed(ID) until the Connect's Deliver or Fail. A set-up
// waiting in its target's queue has sent nothing yet and needs no watch.
type Watch struct{ ID, Port string }

// RoundTrip: do a snd round trip to node To, then call
// Machine.RoundTripDone(ID).
type RoundTrip struct{ ID, To string }

// Dial: dial Addr now with protocol aemp-dataconn and dataconn_id=ID; the
// authenticated peer must be Node. Report the result with DialDone or
// DialFailed, passing the same ID and Addr.
type Dial struct{ ID, Addr, Node string }

// Deliver: the data connection ID of a Connect succeeded; hand Ref to the
// local caller.
type Deliver struct {
	ID  string
	Ref ConnRef
}

// Fail: the data connection ID of a Connect failed; kill or answer the
// local caller with Reason (never nil, never an empty message). Err is a
// *Error naming the rule (errors.Is with ErrTimeout, ErrNoListeners,
// ErrDialFailed, ErrPeerDown, ErrCancelled, ErrKilled, ErrQueueFull,
// ErrBadRequest). At or after the Connect's deadline it is always the
// timeout, whatever input ended it (the deadline wins ties).
// Exactly one Deliver or Fail is emitted per Connect.
type Fail struct {
	ID     string
	Reason *wire.KillReason
	Err    error
}

// Admit: send our deferred greeting on this accepted stream, with these
// extra greeting keys.
type Admit struct {
	Ref   ConnRef
	Extra []wire.KV
}

// Refuse: close this accepted stream before sending our greeting.
type Refuse struct {
	Ref ConnRef
	Err error
}

// CallInit: target-side success; run the init function Func with Data
// and the stream Ref, on behalf of node From.
type CallInit struct {
	Ref  ConnRef
	From string
	Func string
	Data []any
}

// Close: close a stream that is no longer wanted (a losing or late dial,
// a stream whose match expired, a peer that failed a check).
type Close struct {
	Ref ConnRef
	Err error
}

func (Send) isRvAction()      {}
func (Watch) isRvAction()     {}
func (RoundTrip) isRvAction() {}
func (Dial) isRvAction()      {}
func (Deliver) isRvAction()   {}
func (Fail) isRvAction()      {}
func (Admit) isRvAction()     {}
func (Refuse) isRvAction()    {}
func (CallInit) isRvAction()  {}
func (Close) isRvAction()     {}

// Rules of the rendezvous machine. Every error it produces is an *Error
// whose Unwrap returns one of these.
var (
	// ErrUnknownID: a data connection carries no id, or one that is not
	// (or no longer) expected.
	ErrUnknownID = errors.New("dataconn rendezvous: unknown or expired data connection id")
	// ErrIDHijack: the authenticated peer of a data connection is not the
	// node the id belongs to.
	ErrIDHijack = errors.New("dataconn rendezvous: data connection id belongs to another node")
	// ErrIDBusy: another stream already claimed (or used) this id.
	ErrIDBusy = errors.New("dataconn rendezvous: data connection id already claimed")
	// ErrEarlyLimit: too many held early data connections from one node.
	ErrEarlyLimit = errors.New("dataconn rendezvous: too many early data connections from one node")
	// ErrExpectLimit: too many pending expectations from one node.
	ErrExpectLimit = errors.New("dataconn rendezvous: too many pending data connections from one node")
	// ErrNoListeners: neither node has listener addresses.
	ErrNoListeners = errors.New("dataconn rendezvous: no listeners found")
	// ErrUntrusted is wire.ErrUntrustedRequest (peer.ErrUntrustedRequest):
	// a data connection whose peer authenticated with tls_anon, dialed
	// (DialUntrusted) or accepted (IncomingUntrusted), is closed; a dial
	// counts as failed.
	ErrUntrusted = wire.ErrUntrustedRequest
	// ErrTimeout: the data connection was not established in time.
	ErrTimeout = errors.New("dataconn rendezvous: not established within the timeout")
	// ErrDialFailed: every address of the target failed.
	ErrDialFailed = errors.New("dataconn rendezvous: unable to connect")
	// ErrWrongPeer: a dialed address authenticated as another node.
	ErrWrongPeer = errors.New("dataconn rendezvous: dialed address answered as another node")
	// ErrNotConfirmed: a node of this project accepted the data
	// connection without confirming its id (ConfirmKey).
	ErrNotConfirmed = errors.New("dataconn rendezvous: peer did not confirm the data connection id")
	// ErrPeerDown: the messaging connection to the node was lost.
	ErrPeerDown = errors.New("dataconn rendezvous: node down")
	// ErrCancelled: the local caller gave up.
	ErrCancelled = errors.New("dataconn rendezvous: cancelled")
	// ErrQueueFull: MaxQueuedPerTarget set-ups already wait for one
	// target.
	ErrQueueFull = errors.New("dataconn rendezvous: too many data connections queued for one node")
	// ErrBadRequest: a Connect request is invalid (empty or duplicate id,
	// no or own target).
	ErrBadRequest = errors.New("dataconn rendezvous: invalid connect request")
	// ErrKilled: the target killed the request's port (Killed); the
	// rule its reason names (ClassifyKillReason), if any, is the
	// error's Cause.
	ErrKilled = errors.New("dataconn rendezvous: killed by the target")
	// ErrNoInitFunc: the target has no init function of the requested
	// name (a target of this project refuses the request; its kill text
	// says so).
	ErrNoInitFunc = errors.New("dataconn rendezvous: no such init function")
)

// Error is an error of the rendezvous machine: Rule is one of the Err*
// sentinels, Node the peer concerned (if any), Detail what happened.
type Error struct {
	Rule   error
	Node   string
	Detail string
	// Cause is the failure underneath (the last dial's error), if any.
	Cause error
}

// Error returns the rule text followed by the detail.
func (e *Error) Error() string {
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
func (e *Error) Unwrap() []error {
	if e.Cause == nil {
		return []error{e.Rule}
	}
	return []error{e.Rule, e.Cause}
}

func rvErr(rule error, node, detail string) *Error {
	return &Error{Rule: rule, Node: node, Detail: detail}
}

// Seconds formats a number of seconds the way Perl stringifies numbers
// (%.15g): "5" for 5, "0.5" for 0.5.
func Seconds(sec float64) string {
	return strconv.FormatFloat(sec, 'g', 15, 64)
}

// rvClampSeconds converts seconds to a duration within [0, MaxTimeout].
func rvClampSeconds(sec float64) time.Duration {
	if !(sec > 0) { // also NaN
		return 0
	}
	if sec >= MaxTimeout.Seconds() {
		return MaxTimeout
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
func rvHasKey(g wire.Greeting, key string) bool {
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
