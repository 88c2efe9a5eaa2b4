package rendezvous

import (
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/aemp-go/dataconn/core/wire"
)

// Direct data streams: on a multiplexed network (QUIC), a data connection
// to a peer that authenticated on the messaging connection is a new
// stream of that connection, opened with a short header
// (wire.AppendDataStreamHeader) instead of the rendezvous and an AEMP
// handshake. This file decides when one may be used (DirectAuth), what
// the target answers (DirectServe) and how the initiator's set-up ends
// (DirectSetup); the transport only opens, reads and writes the stream.

// ExtDataStream is the extension name, in the comma-separated value of
// wire.KeyGo, that announces direct data streams on a connection.
const ExtDataStream = "qstream"

// ErrStreamFailed is the rule of a direct data stream that failed before
// the target answered (the stream or its connection was lost, or the
// answer was malformed).
var ErrStreamFailed = errors.New("dataconn rendezvous: direct data stream failed")

// ListsDirect reports whether greeting g lists ExtDataStream in its
// wire.KeyGo value.
func ListsDirect(g wire.Greeting) bool {
	v, ok := g.Get(wire.KeyGo)
	return ok && slices.Contains(strings.Split(v, ","), ExtDataStream)
}

// DirectAuth is what the messaging handshake on a connection of a
// multiplexed network established, as the eligibility rule for direct
// data streams reads it.
type DirectAuth struct {
	// PerlCompat: this node runs in Perl-compatible mode.
	PerlCompat bool
	// Untrusted: the peer authenticated as tls_anon.
	Untrusted bool
	// ChannelBound: the peer's auth was hmac_sha3_512_cb, whose MAC
	// covers the connection's exporter, so the handshake could not have
	// been relayed from another connection.
	ChannelBound bool
	// TLSVerified: the transport verified certificates on both ends.
	TLSVerified bool
	// PeerListed: the peer's greeting lists ExtDataStream (ListsDirect).
	PeerListed bool
}

// Bind reports whether the connection is authenticated for the peer's
// node, so that the direct data streams the peer opens on it are served
// (DirectServe holds a stream until then). A tls_anon peer never is.
func (a DirectAuth) Bind() bool {
	return !a.PerlCompat && !a.Untrusted && (a.ChannelBound || a.TLSVerified)
}

// Use reports whether this node may open direct data streams to the
// peer on the connection: it is authenticated (Bind) and the peer
// announced them. Otherwise the rendezvous is used.
func (a DirectAuth) Use() bool { return a.Bind() && a.PeerListed }

// DirectServe is the target's side of one direct data stream: it checks
// the header, holds the stream (at most until Deadline, the handshake
// timeout after it arrived) until the connection is authenticated for
// the node the header names, and accepts or refuses it. Each step
// returns a DirectAnswer.
type DirectServe struct {
	local    string
	deadline time.Time
	need     int
	h        wire.DataStreamHeader
	phase    uint8
}

const (
	dsPrefix uint8 = iota
	dsBody
	dsHold
	dsDone
)

// DirectAnswer is what the target does next with a direct data stream;
// at most one of Refuse, Hold and Accept is set, and with none of them
// it reads until the stream holds Need bytes.
type DirectAnswer struct {
	// Need: read until the stream has delivered this many bytes.
	Need int
	// Refuse: answer with wire.AppendDataStreamRefusal of the reason's
	// message and close the stream.
	Refuse *wire.KillReason
	// Hold: wait (until Deadline) until the connection is authenticated
	// for node Hold, then report Authenticated.
	Hold string
	// Accept: answer wire.DataStreamAccept and run the init function of
	// Header with the stream.
	Accept bool
}

// NewDirectServe starts serving a direct data stream that arrived at
// node local at now; holdFor is the handshake timeout.
func NewDirectServe(now time.Time, local string, holdFor time.Duration) *DirectServe {
	return &DirectServe{local: local, deadline: now.Add(holdFor)}
}

// Deadline is when the stream's set-up ends: until then it may be read
// and held; at it a held stream is refused.
func (s *DirectServe) Deadline() time.Time { return s.deadline }

// Header is the header the stream carries, once Prefix and Body accepted it.
func (s *DirectServe) Header() wire.DataStreamHeader { return s.h }

// Start is the first step: read the header's fixed prefix.
func (s *DirectServe) Start() DirectAnswer { return DirectAnswer{Need: wire.DataStreamPrefixLen} }

func (s *DirectServe) refuse(format string, args ...any) DirectAnswer {
	s.phase = dsDone
	return DirectAnswer{Refuse: wire.DataConnReason(format, args...)}
}

// Read reports the bytes the stream delivered so far (at least the Need
// of the last answer).
func (s *DirectServe) Read(buf []byte) DirectAnswer {
	switch s.phase {
	case dsPrefix:
		n, err := wire.DataStreamBodyLen(buf)
		if err != nil {
			return s.refuse("%s: %v", s.local, err)
		}
		s.phase = dsBody
		s.need = wire.DataStreamPrefixLen + n
		if len(buf) < s.need {
			return DirectAnswer{Need: s.need}
		}
		fallthrough
	case dsBody:
		if len(buf) < s.need {
			return DirectAnswer{Need: s.need}
		}
		if len(buf) > s.need {
			// An initiator sends nothing after the header before it has
			// the answer.
			return s.refuse("%s: data stream: bytes after the header before the answer", s.local)
		}
		h, err := wire.ParseDataStreamBody(buf[wire.DataStreamPrefixLen:])
		if err != nil {
			return s.refuse("%s: %v", s.local, err)
		}
		if h.To != s.local {
			return s.refuse("%s: data stream for node %q", s.local, h.To)
		}
		s.h = h
		s.phase = dsHold
		return DirectAnswer{Hold: h.From}
	}
	return DirectAnswer{}
}

// Authenticated ends the hold: ok tells whether the connection was
// authenticated for the header's node before the deadline (or the
// connection ended); closed whether the local node has closed; known
// whether the header's init function is registered.
func (s *DirectServe) Authenticated(ok, closed, known bool) DirectAnswer {
	if s.phase != dsHold {
		return DirectAnswer{}
	}
	switch {
	case !ok:
		return s.refuse("%s: data stream from %q on a connection not authenticated for it", s.local, s.h.From)
	case closed:
		return s.refuse("%s: node closed", s.local)
	case !known:
		s.phase = dsDone
		return DirectAnswer{Refuse: NoInitFuncReason(s.local, s.h.InitFunc)}
	}
	s.phase = dsDone
	return DirectAnswer{Accept: true}
}

// DirectSetup is the initiator's side of one direct data stream to
// target: it has its own deadline (now plus the set-up's timeout), and
// the same tie rule as the Machine's set-ups: at or after the deadline
// every failure is the timeout, with the initiator's text. Each input
// returns a DirectOutcome; the first outcome that is not Pending ends the
// set-up, and later inputs return Done.
type DirectSetup struct {
	target   string
	timeout  time.Duration
	deadline time.Time
	done     bool
}

// DirectOutcome is how a direct data stream set-up goes on.
type DirectOutcome uint8

const (
	// DirectPending: the set-up goes on (the stream is open, its header
	// sent; the answer is awaited).
	DirectPending DirectOutcome = iota
	// DirectAccepted: the target accepted; the stream is the data
	// connection.
	DirectAccepted
	// DirectFailed: the set-up failed with Err (and Reason).
	DirectFailed
	// DirectFallback: no stream could be opened before the deadline
	// (the connection died): use the rendezvous instead.
	DirectFallback
	// DirectDone: the set-up had already ended.
	DirectDone
)

// NewDirectSetup starts a direct data stream set-up to target at now.
func NewDirectSetup(now time.Time, target string, timeout time.Duration) *DirectSetup {
	return &DirectSetup{target: target, timeout: timeout, deadline: now.Add(timeout)}
}

// Deadline is the set-up's deadline: the stream's deadline, and the
// bound on opening it.
func (s *DirectSetup) Deadline() time.Time { return s.deadline }

// DirectResult is the outcome's error, after DirectFailed: its kill reason as
// Perl words it and its *Error.
type DirectResult struct {
	Reason *wire.KillReason
	Err    *Error
}

func (s *DirectSetup) end(o DirectOutcome, reason *wire.KillReason, err *Error) (DirectOutcome, DirectResult) {
	s.done = true
	return o, DirectResult{Reason: reason, Err: err}
}

// fail ends the set-up with rule and text, unless its deadline has come
// (the deadline wins ties, as in Machine.failOut).
func (s *DirectSetup) fail(now time.Time, rule error, text string, cause error) (DirectOutcome, DirectResult) {
	if s.done {
		return DirectDone, DirectResult{}
	}
	if !now.Before(s.deadline) {
		return s.expire()
	}
	err := rvErr(rule, s.target, text)
	err.Cause = cause
	return s.end(DirectFailed, wire.DataConnReason("%s", text), err)
}

func (s *DirectSetup) expire() (DirectOutcome, DirectResult) {
	text := rvTimeoutText(s.target, s.timeout)
	return s.end(DirectFailed, wire.DataConnReason("%s", text), rvErr(ErrTimeout, s.target, text))
}

// OpenFailed reports that no stream could be opened. Before the deadline
// the set-up falls back to the rendezvous (DirectFallback); at or after
// it, it is the timeout.
func (s *DirectSetup) OpenFailed(now time.Time) (DirectOutcome, DirectResult) {
	if s.done {
		return DirectDone, DirectResult{}
	}
	if !now.Before(s.deadline) {
		return s.expire()
	}
	s.done = true
	return DirectFallback, DirectResult{}
}

// Cancel ends the set-up because the caller gave up (its context was
// cancelled), with reason (for example "B: context canceled"); at or
// after the deadline it is the timeout.
func (s *DirectSetup) Cancel(now time.Time, reason *wire.KillReason) (DirectOutcome, DirectResult) {
	text := ""
	if reason != nil {
		text = reason.Message
	}
	return s.fail(now, ErrCancelled, text, nil)
}

// Expire ends the set-up because a deadline of the caller's own (its
// context's) passed: the timeout, at once.
func (s *DirectSetup) Expire() (DirectOutcome, DirectResult) {
	if s.done {
		return DirectDone, DirectResult{}
	}
	return s.expire()
}

// Closed ends the set-up because the local node closed.
func (s *DirectSetup) Closed(now time.Time) (DirectOutcome, DirectResult) {
	return s.fail(now, ErrCancelled, s.target+": node closed", nil)
}

// Lost ends the set-up because the stream failed before the target's
// answer was read: ErrStreamFailed with detail, and cause underneath.
func (s *DirectSetup) Lost(now time.Time, detail string, cause error) (DirectOutcome, DirectResult) {
	return s.fail(now, ErrStreamFailed, s.target+": "+detail, cause)
}

// Accepted reports the target's wire.DataStreamAccept.
func (s *DirectSetup) Accepted() (DirectOutcome, DirectResult) {
	if s.done {
		return DirectDone, DirectResult{}
	}
	return s.end(DirectAccepted, nil, nil)
}

// Refused reports the target's refusal with text msg: the target's kill
// (KillError), as with the rendezvous; at or after the deadline the
// timeout (the deadline wins ties, as with Machine.Killed).
func (s *DirectSetup) Refused(now time.Time, msg string) (DirectOutcome, DirectResult) {
	if s.done {
		return DirectDone, DirectResult{}
	}
	if !now.Before(s.deadline) {
		return s.expire()
	}
	r := wire.DataConnReason("%s", msg)
	return s.end(DirectFailed, r, KillError(s.target, r))
}
