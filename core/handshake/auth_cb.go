package handshake

import (
	"crypto/subtle"
	"encoding/hex"
)

// AuthHMACCB is the channel-binding auth method that nodes of this project
// offer first to each other. Perl nodes do not know it and fall back to
// hmac_sha3_512.
//
// Its MAC, keyed with the shared secret like hmac_sha3_512, covers more
// than the four greeting lines:
//
//	"aemp-cb1" LF ROLE LF SENDER-ID LF RECEIVER-ID LF hex(EXPORTER) LF S(L1,L2,R1,R2)
//
// ROLE is "lo" when the sender's nonce line is byte-wise lower than the
// receiver's and "hi" otherwise, so an auth line cannot be reflected to its
// author; the two node IDs name both ends; EXPORTER is the RFC 9266
// tls-exporter value of the TLS session the line travels in (empty without
// TLS). A relay that terminates two TLS sessions and passes the lines
// between them gets two different exporter values, so neither end accepts
// the other's MAC. hmac_sha3_512 covers only the lines, so the same relay
// succeeds with it: it then reads and writes the stream in clear.
const AuthHMACCB = "hmac_sha3_512_cb"

// cbHex returns the hmac_sha3_512_cb MAC, in hex, made by m.
func cbHex(m *macer, role, sender, receiver string, exporter []byte, x1, x2, x3, x4 string) string {
	b := m.msg[:0]
	for _, s := range [...]string{"aemp-cb1", role, sender, receiver} {
		b = append(b, s...)
		b = append(b, '\n')
	}
	b = hex.AppendEncode(b, exporter)
	b = append(b, '\n')
	m.msg = appendAuthMessage(b, x1, x2, x3, x4)
	return m.hexMAC()
}

func cbRole(ownNonce, otherNonce string) string {
	if ownNonce < otherNonce {
		return "lo"
	}
	return "hi"
}

// AuthDataCB computes the hmac_sha3_512_cb auth data that the sender
// (self, with lines l1, l2) sends to peer (lines r1, r2) inside a TLS
// session with the given exporter value (nil without TLS).
func AuthDataCB(secret []byte, self, peer string, exporter []byte, l1, l2, r1, r2 string) string {
	return authDataCB(newMacer(NewMACKey(secret)), self, peer, exporter, l1, l2, r1, r2)
}

// authDataCB is AuthDataCB with the MACs of m (whose key is the
// secret's).
func authDataCB(m *macer, self, peer string, exporter []byte, l1, l2, r1, r2 string) string {
	return cbHex(m, cbRole(l2, r2), self, peer, exporter, l1, l2, r1, r2)
}

// VerifyAuthCB checks, from the receiver's point of view (self with lines
// l1, l2; the sender is peer with lines r1, r2), hmac_sha3_512_cb auth
// data. The comparison is constant time.
func VerifyAuthCB(data string, secret []byte, self, peer string, exporter []byte, l1, l2, r1, r2 string) error {
	return verifyAuthCB(nil, data, secret, self, peer, exporter, l1, l2, r1, r2)
}

// verifyAuthCB is VerifyAuthCB with the MACs of m, if its key is for
// secret (a key is prepared otherwise).
func verifyAuthCB(m *macer, data string, secret []byte, self, peer string, exporter []byte, l1, l2, r1, r2 string) error {
	if len(secret) == 0 {
		return hsErr(ErrAuthFailed, "authentication failure/shared secret mismatch")
	}
	want := expectedAuthCB(m.macerFor(secret), self, peer, exporter, l1, l2, r1, r2)
	if subtle.ConstantTimeCompare([]byte(want), []byte(data)) != 1 {
		return hsErr(ErrAuthFailed, "authentication failure/shared secret mismatch")
	}
	return nil
}

// expectedAuthCB is the auth data peer must send to self (VerifyAuthCB).
func expectedAuthCB(m *macer, self, peer string, exporter []byte, l1, l2, r1, r2 string) string {
	return cbHex(m, cbRole(r2, l2), peer, self, exporter, r1, r2, l1, l2)
}
