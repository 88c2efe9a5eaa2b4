package handshake

import (
	"bytes"
	"slices"

	"github.com/aemp-go/dataconn/core/wire"
)

// Channel authentication between nodes of this project (extension
// ExtChannelAuth).
//
// Over a transport that is itself mutually authenticated with
// certificates (QUIC with certificates on both ends: each end verified
// the other's chain against its CAs before the first stream byte, and
// every byte of every stream is encrypted and integrity-protected with
// that connection's keys), the greetings already travel inside the
// authenticated channel. Without a shared secret the auth method is
// tls_sha3_512, whose auth line is only a SHA3-512 over the four greeting
// lines: no key goes into it, so whoever can put bytes on the stream can
// compute it, and on such a channel only the two ends can. Over TCP it
// proves that the lines exchanged in clear before TLS are the ones both
// ends saw; here no line was ever in clear, so the auth lines prove
// nothing the channel does not, and cost the acceptor half a round trip
// (it waits for the initiator's line).
//
// So when both greetings list ExtChannelAuth in their KeyGo value and the
// protocol is messaging, neither side sends an auth line: each ends its
// handshake on the peer's nonce line (the acceptor as soon as it has sent
// its own lines, the initiator when the acceptor's arrive), with
// Result.SentAuth and PeerAuth AuthChannel and TLS active. The framings
// are chosen without the auth line as with ExtTLSBind: each side sends
// the first framing of the peer's list that it can send, and receives the
// first of its own list that the peer accepts; a greeting lists the
// extension only when its sender accepts exactly the framings it can send
// (as sets), so both computations agree. Every check before the auth
// lines still runs: the protocol and version, a greeting carrying our own
// node ID, echoed lines, identical nonces.
//
// A greeting may list ExtChannelAuth only when its sender would
// authenticate with tls_sha3_512 and nothing stronger, inside such a
// channel: Config.VerifiedChannel (the caller verified the peer's
// certificate and presented its own, which the peer required), no shared
// secret, tls_sha3_512 accepted and offered; New and SendGreeting refuse
// other configurations (ErrBadConfig). Both sides decide from the two
// greetings alone, so they agree.
//
// Why nothing is lost, and no downgrade:
//
//   - Listing is a claim only a verified peer can make to us: our own
//     listing needs VerifiedChannel, so the peer's greeting reached us on a
//     channel whose other end holds a certificate our CAs issued, and
//     nobody else can insert, alter or replay a byte of it (QUIC
//     authenticates every packet; there is no 0-RTT early data, so no
//     stream byte is replayable). A peer that lies about having verified
//     our certificate could as well send the tls_sha3_512 line, which
//     needs no key.
//   - With a shared secret a side never lists the extension, so
//     hmac_sha3_512(_cb), whose MAC is the authentication, always runs
//     when either side has a secret; and a side that did not verify the
//     peer's certificate (QUIC with throw-away certificates, TCP) never
//     lists it. The only other outcome is the auth lines as before.
//   - Freshness: the nonces and auth lines prove to each end that the
//     other is live in this handshake. The channel proves it already: its
//     TLS 1.3 handshake ran with fresh randomness and key shares from both
//     ends and ended with each end's Finished, before any stream existed.
//   - Identity is unchanged: as with tls_sha3_512, the certificate is
//     checked against the CAs and not against the node ID, and the node ID
//     is the one the greeting names; what a transport binds to the channel
//     after the handshake (the quic package's data streams) is the node of
//     the handshake that succeeded on it, as before.
//
// So a machine that ends by the channel does not itself detect an altered
// greeting byte (no line covers the greetings): that is the channel's
// job, which is why VerifiedChannel may be set only for a channel that
// guarantees it. (fuzz.FuzzHandshake's rule that a tampered byte never
// yields Done is checked without VerifiedChannel.)
//
// Perl peers never list the extension and keep the auth lines; so do
// older nodes of this project.
const (
	ExtChannelAuth = "chanauth"
	// AuthChannel is Result.SentAuth and PeerAuth of a handshake
	// authenticated by the channel (not a method of the AUTHS lists).
	AuthChannel = "tls_channel"
)

// checkChannelConfig refuses a greeting that lists ExtChannelAuth with a
// configuration that would authenticate otherwise.
func (h *Machine) checkChannelConfig() error {
	if !h.ourChan {
		return nil
	}
	if !h.cfg.VerifiedChannel || len(h.cfg.Secret) > 0 || !slices.Contains(h.accAuths, wire.AuthTLS) || !slices.Contains(h.offAuths, wire.AuthTLS) {
		return badConfig("the " + ExtChannelAuth + " extension needs a verified channel, no shared secret and tls_sha3_512 accepted and offered")
	}
	if !h.sameFramings() {
		return badConfig("the " + ExtChannelAuth + " extension needs the same framings accepted and sendable")
	}
	return nil
}

// channelAuth reports whether the handshake ends without auth lines (both
// greetings list ExtChannelAuth, messaging protocol). It depends on the
// two greetings only.
func (h *Machine) channelAuth() bool {
	return h.ourChan && goExt(h.peer, ExtChannelAuth) && h.proto == wire.ProtocolMessaging
}

// finishChannel ends a handshake authenticated by the channel, on the
// peer's nonce line, with the framings chosen from the greetings.
func (h *Machine) finishChannel() {
	if !h.chooseFraming() {
		return
	}
	h.finishWithoutAuthLines(AuthChannel)
}

// setPending hands rest, the bytes after the line that ended the
// handshake, to the result of a Done queued last.
func (h *Machine) setPending(rest []byte) {
	if len(rest) == 0 || len(h.actions) == 0 {
		return
	}
	if d, ok := h.actions[len(h.actions)-1].(Done); ok {
		d.Result.Pending = bytes.Clone(rest)
	}
}
