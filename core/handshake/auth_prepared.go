package handshake

import (
	"crypto/subtle"

	"github.com/aemp-go/dataconn/core/wire"
)

// Preparing the verification of the peer's auth line.
//
// Once our auth line is out, the machine knows all four greeting lines and
// only waits for the peer's auth line. Machine.Prepare computes then,
// while the caller would otherwise sit idle waiting for the peer, what the
// peer must send if it picks the method we send (which two nodes of this
// project, with the same lists, always do), so that the line, when it
// arrives, is checked by one constant-time comparison instead of a MAC:
// one HMAC-SHA3-512 less between the peer's last line and the end of the
// handshake. A peer that picks another method is verified as before.

// expectedAuth returns the auth data a peer sending method must send, or
// ok false when method is not one that Prepare computes in advance or its
// preconditions (a secret, active TLS) do not hold: the general check then
// decides, with its own error.
func expectedAuth(method string, m *macer, secret []byte, self, peer string, exporter []byte, l1, l2, r1, r2 string, tlsActive bool) (want string, ok bool) {
	switch method {
	case AuthHMACCB:
		if len(secret) == 0 {
			return "", false
		}
		return expectedAuthCB(m.macerFor(secret), self, peer, exporter, l1, l2, r1, r2), true
	case wire.AuthHMAC:
		if len(secret) == 0 {
			return "", false
		}
		return hmacHex(m.macerFor(secret), r1, r2, l1, l2), true
	case wire.AuthTLS:
		if !tlsActive {
			return "", false
		}
		return sha3Hex(r1, r2, l1, l2), true
	}
	return "", false
}

// verifyExpected compares the received auth data with the prepared value
// in constant time.
func verifyExpected(want, data string) error {
	if subtle.ConstantTimeCompare([]byte(want), []byte(data)) != 1 {
		return hsErr(ErrAuthFailed, "authentication failure/shared secret mismatch")
	}
	return nil
}

// Prepare computes in advance the check of the peer's auth line (see
// above) when the machine waits for that line and has not done so yet;
// otherwise it does nothing. It changes no outcome: only where the work is
// done. A caller calls it before it blocks waiting for the peer.
func (h *Machine) Prepare() {
	if h.state != stAuth || h.prepared {
		return
	}
	h.prepared = true
	h.prepWant, h.prepOK = expectedAuth(h.sendAuth, h.macer(), h.cfg.Secret, h.cfg.NodeID, h.peer.NodeID, h.binding(), h.l1, h.l2, h.r1, h.r2, h.tls)
}
