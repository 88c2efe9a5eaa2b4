package handshake

import (
	"crypto/sha3"
	"crypto/subtle"
	"encoding/hex"
	"slices"
	"strings"

	"github.com/aemp-go/dataconn/core/wire"
)

// TLS binding between nodes of this project (extension ExtTLSBind).
//
// With TLS and no shared secret, AEMP's authentication is tls_sha3_512:
// after the TLS handshake each side sends, inside TLS, the SHA3-512 of the
// four greeting lines, which proves to the other (whose certificate TLS
// verified) that both saw the same lines in clear before TLS. That costs a
// one-way hop after the TLS handshake: the TLS server can send its line
// only once it has read the client's Finished.
//
// When both greetings list ExtTLSBind in their KeyGo value, the same proof
// travels inside the TLS handshake instead, and no auth line is sent: the
// TLS client offers one ALPN protocol, TLSBindPrefix + hex(SHA3-256 over
// "aemp-tlsbind1" LF S(C1,C2,S1,S2)) (C: the client's greeting and nonce
// lines, S: the server's, as each sent them), the TLS server has only its
// own computation of that value as its protocol list (a client offering
// another is refused by the TLS stack), and both sides check that the
// protocol TLS negotiated is that value (TLSInfo.Bound). The ClientHello
// is covered by the client's CertificateVerify and Finished, the server's
// selection by its own, so each side knows that the peer whose certificate
// it verified saw the same four lines: what tls_sha3_512 proves, in the
// handshake's own flights. The value is no secret (the lines travel in
// clear anyway).
//
// A greeting may list ExtTLSBind only when its sender would authenticate
// with tls_sha3_512 and nothing stronger (TLS, no shared secret, accepting
// tls_sha3_512) and sends exactly the framings it accepts; New and
// SendGreeting refuse other configurations (ErrBadConfig). Both sides
// decide from the two greetings alone, so they agree. Without an auth
// line the framings are chosen without one too: each side sends the first
// framing of the peer's list that it accepts itself, so it receives the
// first of its own list that the peer accepts. Perl peers never list the
// extension and keep the auth lines.
//
// The TLS role follows too, unless a session ticket decides it (see
// StartTLS): the acceptor, whose greeting answers the initiator's, is the
// TLS client, so that its greeting and its ClientHello leave in one
// flight and the TLS handshake starts half a round trip earlier than when
// the initiator, which learns its role only from the acceptor's lines,
// is the client.
//
// The binding applies to messaging connections only. A data connection
// is handed to the user as it is, and its TLS server may send session
// tickets after the handshake: the TLS client reads them on its way to
// the server's auth line, but without that line they could stay unread
// in the socket of a user who writes and closes without reading, and a
// close with unread data resets the connection (which can drop what was
// just written). A messaging connection is always read.
const (
	ExtTLSBind = "tlsbind"
	// TLSBindPrefix starts the ALPN protocol that carries the binding.
	TLSBindPrefix = "aemp-tlsbind1:"
	// AuthTLSBind is Result.SentAuth and PeerAuth of a handshake
	// authenticated by the binding (not a method of the AUTHS lists).
	AuthTLSBind = "tls_bind"
)

// goExt reports whether the KeyGo value of g lists ext.
func goExt(g wire.Greeting, ext string) bool {
	v, ok := g.Get(wire.KeyGo)
	return ok && slices.Contains(strings.Split(v, ","), ext)
}

// checkBindConfig refuses a greeting that lists ExtTLSBind with a
// configuration that would authenticate otherwise.
func (h *Machine) checkBindConfig() error {
	if !h.ourBind {
		return nil
	}
	switch {
	case !h.cfg.TLS || len(h.cfg.Secret) > 0 || !slices.Contains(h.accAuths, wire.AuthTLS) || !slices.Contains(h.offAuths, wire.AuthTLS):
		return badConfig("the " + ExtTLSBind + " extension needs TLS, no shared secret and tls_sha3_512 accepted and offered")
	}
	if !h.sameFramings() {
		return badConfig("the " + ExtTLSBind + " extension needs the same framings accepted and sendable")
	}
	return nil
}

// bindValue returns the ALPN protocol both sides expect, or "" when the
// binding does not apply (see above).
func (h *Machine) bindValue(client bool) string {
	if !h.ourBind || !goExt(h.peer, ExtTLSBind) || h.sendAuth != wire.AuthTLS || h.proto != wire.ProtocolMessaging {
		return ""
	}
	c1, c2, s1, s2 := h.l1, h.l2, h.r1, h.r2
	if !client {
		c1, c2, s1, s2 = h.r1, h.r2, h.l1, h.l2
	}
	d := sha3.New256()
	d.Write([]byte("aemp-tlsbind1\n"))
	authMessage(d, c1, c2, s1, s2)
	return TLSBindPrefix + hex.EncodeToString(d.Sum(nil))
}

// finishBound ends a handshake whose TLS layer carried the binding.
func (h *Machine) finishBound(info TLSInfo) {
	if subtle.ConstantTimeCompare([]byte(info.Bound), []byte(h.bind)) != 1 {
		h.fail(hsErr(ErrAuthFailed, "authentication failure/TLS binding mismatch"))
		return
	}
	h.finishWithoutAuthLines(AuthTLSBind)
}
