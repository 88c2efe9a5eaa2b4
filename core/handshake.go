package core

import (
	"time"
)

// HandshakeConfig configures one side of an AEMP v1 handshake.
type HandshakeConfig struct {
	// NodeID is our node ID.
	NodeID string
	// Protocol is our protocol; "" means ProtocolMessaging.
	Protocol string
	// Secret is the shared secret; empty means none (hmac impossible).
	Secret []byte
	// AcceptAuths is announced in our greeting (what we accept);
	// nil means [tls_sha3_512, hmac_sha3_512].
	AcceptAuths []string
	// OfferAuths is what we are willing to send; nil means
	// [tls_sha3_512, hmac_sha3_512]. cleartext is never sent.
	OfferAuths []string
	// AcceptFramings is announced (what we accept to receive);
	// nil means ["msgpack", "json"].
	AcceptFramings []string
	// SendFramings is what we can produce; nil means ["msgpack", "json"].
	SendFramings []string
	// TLS: we can speak TLS (have a certificate); announce tls=1.0.
	TLS bool
	// TLSRequired: refuse peers that cannot do TLS.
	TLSRequired bool
	// Extra holds extra greeting keys, in order.
	Extra []KV
	// Timeout bounds the whole handshake; 0 means 30s.
	Timeout time.Duration
	// DeferGreeting: don't send our greeting until SendGreeting is called
	// (after the PeerGreeting action).
	DeferGreeting bool
}

// TLSInfo describes an established TLS layer.
type TLSInfo struct {
	// Exporter is an optional TLS exporter value for channel binding.
	Exporter []byte
}

// Action is an output of the handshake machine, returned by Poll.
type Action interface{ isAction() }

// Write asks the caller to write Data to the peer, in order.
type Write struct{ Data []byte }

// StartTLS asks the caller to flush earlier writes and start TLS in the
// given role. Pending holds bytes already received that belong to the TLS
// stream.
type StartTLS struct {
	Client  bool
	Pending []byte
}

// PeerGreeting (DeferGreeting only) reports the peer's accepted first
// line; Protocol is our protocol after upgrade.
type PeerGreeting struct {
	Greeting Greeting
	Protocol string
}

// Done reports a successful handshake.
type Done struct{ Result *Result }

// Failed reports a failed handshake.
type Failed struct{ Err error }

func (Write) isAction()        {}
func (StartTLS) isAction()     {}
func (PeerGreeting) isAction() {}
func (Done) isAction()         {}
func (Failed) isAction()       {}

// Result is the outcome of a successful handshake.
type Result struct {
	// Protocol is our protocol after upgrade.
	Protocol string
	// Peer is the peer's parsed greeting.
	Peer Greeting
	// PeerNodeID is the peer's node ID.
	PeerNodeID string
	// SendFraming is the framing we send.
	SendFraming string
	// RecvFraming is the framing the peer announced in its auth line.
	RecvFraming string
	// SentAuth and PeerAuth are the auth methods used each way.
	SentAuth, PeerAuth string
	// Untrusted is set when the peer authenticated with tls_anon.
	Untrusted bool
	// TLS reports whether TLS is active.
	TLS bool
	// LocalLines and PeerLines are the greeting lines as sent/received.
	LocalLines, PeerLines [2]string
	// Pending holds bytes that arrived after the peer's auth line.
	Pending []byte
}

// Handshake is the pure state machine of one side of an AEMP v1 handshake.
type Handshake struct {
	cfg      HandshakeConfig
	l1, l2   string
	deadline time.Time
	actions  []Action
	done     bool
}

// NewHandshake creates a machine; nonce is the nonce line to send.
func NewHandshake(cfg HandshakeConfig, nonce string, now time.Time) (*Handshake, error) {
	h := &Handshake{cfg: cfg, l2: nonce, deadline: now.Add(30 * time.Second)}
	return h, nil
}

// Receive feeds bytes from the peer.
func (h *Handshake) Receive(now time.Time, p []byte) {}

// PeerClosed reports EOF or a read error.
func (h *Handshake) PeerClosed(now time.Time, err error) {}

// TLSEstablished reports that TLS is up.
func (h *Handshake) TLSEstablished(now time.Time, info TLSInfo) {}

// TLSFailed reports that TLS failed.
func (h *Handshake) TLSFailed(now time.Time, err error) {}

// SendGreeting sends our greeting (DeferGreeting only).
func (h *Handshake) SendGreeting(now time.Time, extra []KV) {}

// Abort ends the machine with err.
func (h *Handshake) Abort(now time.Time, err error) {}

// Tick lets time pass.
func (h *Handshake) Tick(now time.Time) {}

// Poll returns the next action or nil.
func (h *Handshake) Poll() Action {
	if len(h.actions) == 0 {
		return nil
	}
	a := h.actions[0]
	h.actions = h.actions[1:]
	return a
}

// Deadline returns when Tick must be called next.
func (h *Handshake) Deadline() time.Time { return h.deadline }

// LocalLines returns our two lines.
func (h *Handshake) LocalLines() (l1, l2 string) { return h.l1, h.l2 }
