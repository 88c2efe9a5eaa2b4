package transport

import "github.com/aemp-go/dataconn/core/peer"

// ErrUntrustedPeer is the rule a request from an untrusted peer breaks:
// one that authenticated with tls_anon (accepted only with
// Config.AllowTLSAnon). Such a peer proved nothing about its node ID, so
// it may send to ports, but it may not call functions (RegisterFunc), ask
// for or accept data connections (init functions never run for it), and
// a data connection is never handed over on a stream it authenticated.
// The peer machine decides it for messages (peer.ErrUntrustedRequest, the
// same error), the rendezvous machine for the data connections themselves
// (rendezvous.ErrUntrusted, the same error: wire.ErrUntrustedRequest).
var ErrUntrustedPeer = peer.ErrUntrustedRequest
