package quic

import (
	"errors"
	"fmt"
	"net"
)

// ErrorCode is a QUIC application error code that this package puts on the
// wire, in CONNECTION_CLOSE, STOP_SENDING and RESET_STREAM frames. A peer
// sees it in the Code field of the *Error its Read or Write returns.
type ErrorCode uint64

// The error codes this package sends.
const (
	// CodeNoError closes a QUIC connection when the Network is closed
	// (CONNECTION_CLOSE, reason "aemp: network closed").
	CodeNoError ErrorCode = 0x0
	// CodeStreamClosed is sent in STOP_SENDING by Stream.Close: the local
	// side no longer reads, so the peer's further writes fail. The send side
	// is finished with a FIN, not reset, so data written before Close is
	// still delivered.
	CodeStreamClosed ErrorCode = 0x1
	// CodeRefused resets (RESET_STREAM and STOP_SENDING) a stream that
	// arrives while no listener accepts streams: the Listener was closed.
	CodeRefused ErrorCode = 0x2
)

// Sentinel errors. Every error returned by this package other than io.EOF
// and deadline errors (which satisfy errors.Is(err, os.ErrDeadlineExceeded)
// and net.Error.Timeout) is an *Error whose Err is one of these.
var (
	// ErrClosed: the Network, Listener or Stream was closed locally.
	// errors.Is(err, net.ErrClosed) holds too.
	ErrClosed error = closedError{}
	// ErrAddress: an address must be "host:port" with a numeric port and a
	// host that resolves to an IP address.
	ErrAddress = errors.New("quic: address must be host:port with a resolvable host and a numeric port")
	// ErrHandshake: the QUIC connection could not be established (no
	// answer within the handshake timeout, TLS failure such as an
	// untrusted certificate, ALPN mismatch, refused).
	ErrHandshake = errors.New("quic: connection handshake failed")
	// ErrConnectionLost: the QUIC connection carrying the stream ended
	// while the stream was in use: the peer closed it, the idle timeout
	// expired (the peer vanished), or it was reset.
	ErrConnectionLost = errors.New("quic: connection to peer lost")
	// ErrStreamReset: the peer aborted its direction of the stream
	// (RESET_STREAM) or asked this side to stop sending (STOP_SENDING).
	ErrStreamReset = errors.New("quic: stream aborted by peer")
	// ErrTLSConfig: the TLS configuration is unusable (no certificate, no
	// CA, or the ephemeral certificate could not be made).
	ErrTLSConfig = errors.New("quic: unusable TLS configuration")
)

// closedError is ErrClosed; it also matches net.ErrClosed.
type closedError struct{}

func (closedError) Error() string        { return "quic: use of closed network, listener or stream" }
func (closedError) Is(target error) bool { return target == net.ErrClosed }

// Error describes a failed operation. Err is one of the sentinel errors of
// this package (the rule or condition that failed); Cause, if not nil, is
// the underlying error, typically from quic-go or crypto/tls.
type Error struct {
	// Op is the operation: "listen", "dial", "accept", "read", "write",
	// "close".
	Op string
	// Addr is the address involved, if any.
	Addr string
	// Err is the sentinel error: ErrClosed, ErrAddress, ErrHandshake,
	// ErrConnectionLost, ErrStreamReset or ErrTLSConfig.
	Err error
	// Code is the application error code received from the peer, if the
	// peer closed the connection or aborted the stream with one.
	Code ErrorCode
	// Remote reports whether Code was received from the peer.
	Remote bool
	// Cause is the underlying error, if any.
	Cause error
}

// Error returns "quic OP ADDR: RULE: CAUSE".
func (e *Error) Error() string {
	s := "quic " + e.Op
	if e.Addr != "" {
		s += " " + e.Addr
	}
	s += ": " + e.Err.Error()
	if e.Remote {
		s += fmt.Sprintf(" (peer code %#x)", uint64(e.Code))
	}
	if e.Cause != nil {
		s += ": " + e.Cause.Error()
	}
	return s
}

// Unwrap returns Err and Cause, so errors.Is and errors.As see both, with
// one exception: quic-go's connection errors all match net.ErrClosed, even
// when the peer vanished, so a Cause that matches net.ErrClosed is only
// unwrapped when Err is ErrClosed. errors.Is(err, net.ErrClosed) thus means
// "closed on this side", as with TCP; the Cause field still holds the
// quic-go error.
func (e *Error) Unwrap() []error {
	if e.Cause == nil || (e.Err != ErrClosed && errors.Is(e.Cause, net.ErrClosed)) {
		return []error{e.Err}
	}
	return []error{e.Err, e.Cause}
}

// Timeout reports whether the error is a timeout (the idle timeout or
// handshake timeout expired), as net.Error requires.
func (e *Error) Timeout() bool {
	var ne net.Error
	return errors.As(e.Cause, &ne) && ne.Timeout()
}

// Temporary is false: none of these errors goes away by retrying the same
// stream. It exists to satisfy net.Error.
func (e *Error) Temporary() bool { return false }

var _ net.Error = (*Error)(nil)
