package wire

import "errors"

// ErrUntrustedRequest is the rule a request from an untrusted peer breaks:
// a peer that authenticated with tls_anon (no shared secret, no verified
// certificate) proved nothing about its node ID, so its function calls and
// data-connection requests are refused; it may still send to ports. Two
// machines decide it, so it is defined here once: the peer machine
// (peer.ErrUntrustedRequest: function calls, _expect, _connect) and the
// rendezvous machine (rendezvous.ErrUntrusted: the data connections
// themselves, dialed or accepted).
var ErrUntrustedRequest = errors.New("aemp: request from an untrusted (tls_anon) peer refused")
