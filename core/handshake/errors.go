package handshake

import "errors"

// Handshake rule sentinels. Every handshake failure is reported as a
// *Error whose Unwrap returns one of these, so callers can test
// the broken rule with errors.Is.
var (
	// ErrVersionMismatch: the peer's protocol version is not 1.
	ErrVersionMismatch = errors.New("aemp handshake: version mismatch")
	// ErrUnparsableGreeting: the peer's greeting names another protocol.
	ErrUnparsableGreeting = errors.New("aemp handshake: unparsable greeting")
	// ErrEchoAttack: the peer sent back exactly our own two lines.
	ErrEchoAttack = errors.New("aemp handshake: echo attack")
	// ErrNoCommonAuth: no auth method of the peer's list can be sent by us.
	ErrNoCommonAuth = errors.New("aemp handshake: no common auth type")
	// ErrNoCommonFraming: no framing in common (either direction).
	ErrNoCommonFraming = errors.New("aemp handshake: no common framing")
	// ErrAuthFailed: the peer's auth data does not verify.
	ErrAuthFailed = errors.New("aemp handshake: authentication failure")
	// ErrNoTLSNoSecret: neither TLS nor a shared secret is available.
	ErrNoTLSNoSecret = errors.New("aemp handshake: no TLS and no shared secret")
	// ErrTLSRequired: TLS is required but the peer cannot speak it.
	ErrTLSRequired = errors.New("aemp handshake: TLS required")
	// ErrLineTooLong: a handshake line exceeds MaxLineLen bytes.
	ErrLineTooLong = errors.New("aemp handshake: line too long")
	// ErrTimeout: the handshake did not finish in time.
	ErrTimeout = errors.New("aemp handshake: timeout")
	// ErrSelfConnect: the peer announced our own node ID.
	ErrSelfConnect = errors.New("aemp handshake: connection to self")
	// ErrAuthNotOffered: the peer used an auth method we did not accept.
	ErrAuthNotOffered = errors.New("aemp handshake: auth method not offered")
	// ErrTLSFailed: the TLS layer failed to come up.
	ErrTLSFailed = errors.New("aemp handshake: TLS failed")
	// ErrPeerClosed: the peer closed the stream (or it failed) before the end.
	ErrPeerClosed = errors.New("aemp handshake: peer closed")
	// ErrEarlyData: the peer sent more than its two greeting lines before
	// it could have seen ours (DeferGreeting).
	ErrEarlyData = errors.New("aemp handshake: data before greeting")
	// ErrBadConfig: the handshake configuration, arguments or call order
	// are invalid.
	ErrBadConfig = errors.New("aemp handshake: bad configuration")
)

// Error is the error of a failed handshake. Text is the message
// Perl's AnyEvent::MP uses for the same failure where it has one; Rule is
// the sentinel above that names the rule that was broken.
type Error struct {
	Rule error
	Text string
	// Cause is the underlying error reported by the caller (read error,
	// TLS error), if any.
	Cause error
	// Unanswered is set when the peer closed (ErrPeerClosed) before its
	// greeting arrived: it never answered our greeting (an acceptor of
	// this project greets only once it has read the initiator's; a busy
	// listener may drop a connection it has not read yet), so it cannot
	// have acted on the connection, and dialing again is safe.
	Unanswered bool
}

// Error returns the Perl-compatible text.
func (e *Error) Error() string {
	if e.Text == "" && e.Rule != nil {
		return e.Rule.Error()
	}
	return e.Text
}

// Unwrap returns the rule sentinel and, when known, the cause (so a TLS
// certificate failure also matches the TLS layer's sentinels).
func (e *Error) Unwrap() []error {
	if e.Cause == nil {
		return []error{e.Rule}
	}
	return []error{e.Rule, e.Cause}
}

// Timeout reports whether the handshake failed by running out of time
// (the shape of net.Error's Timeout).
func (e *Error) Timeout() bool { return e.Rule == ErrTimeout }

func hsErr(rule error, text string) *Error {
	return &Error{Rule: rule, Text: text}
}
