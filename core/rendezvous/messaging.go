package rendezvous

import (
	"strings"
	"time"

	"github.com/aemp-go/dataconn/core/wire"
)

// NotConnected is why the messaging connection to a set-up's target could
// not be made before the set-up started (the transport brings it up
// first, within the set-up's timeout).
type NotConnected uint8

const (
	// NoRoute: no address is known for the target (peer.ErrNoRoute).
	NoRoute NotConnected = iota + 1
	// ConnectCancelled: the caller gave up first.
	ConnectCancelled
	// ConnectExpired: the timeout, or the caller's own deadline, passed.
	ConnectExpired
	// ConnectFailed: any other failure (a refused dial, a handshake).
	ConnectFailed
)

// MessagingFailed is the failure of a set-up to target whose messaging
// connection could not be made: its kill reason as Perl words it and its
// *Error. No route to the target is Perl's "no listeners found"
// (ErrNoListeners); a cancellation is ErrCancelled with the caller's
// reason; the timeout ErrTimeout; any other failure ErrDialFailed with
// err underneath, its text prefixed with the target.
func MessagingFailed(target string, timeout time.Duration, why NotConnected, cancel *wire.KillReason, err error) (*wire.KillReason, *Error) {
	switch why {
	case NoRoute:
		text := noListenersText(target)
		return wire.DataConnReason("%s", text), rvErr(ErrNoListeners, target, text)
	case ConnectCancelled:
		text := ""
		if cancel != nil {
			text = cancel.Message
		}
		return wire.DataConnReason("%s", text), rvErr(ErrCancelled, target, text)
	case ConnectExpired:
		text := rvTimeoutText(target, timeout)
		return wire.DataConnReason("%s", text), rvErr(ErrTimeout, target, text)
	}
	text := target + ": messaging connection failed"
	if err != nil {
		text = err.Error()
		if !strings.HasPrefix(text, target+": ") {
			text = target + ": " + text
		}
	}
	e := rvErr(ErrDialFailed, target, text)
	e.Cause = err
	return wire.DataConnReason("%s", text), e
}
