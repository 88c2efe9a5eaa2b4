package handshake

import (
	"crypto/hmac"
	"crypto/sha3"
	"crypto/subtle"
	"encoding/hex"
	"hash"

	"github.com/aemp-go/dataconn/core/wire"
)

// authMessage writes S(x1,x2,x3,x4) = x1 LF x2 LF x3 LF x4 LF into h.
func authMessage(h hash.Hash, x1, x2, x3, x4 string) {
	for _, x := range [...]string{x1, x2, x3, x4} {
		h.Write([]byte(x))
		h.Write([]byte{'\n'})
	}
}

func hmacHex(secret []byte, x1, x2, x3, x4 string) string {
	m := hmac.New(func() hash.Hash { return sha3.New512() }, secret)
	authMessage(m, x1, x2, x3, x4)
	return hex.EncodeToString(m.Sum(nil))
}

func sha3Hex(x1, x2, x3, x4 string) string {
	h := sha3.New512()
	authMessage(h, x1, x2, x3, x4)
	return hex.EncodeToString(h.Sum(nil))
}

// AuthData computes the auth data the sender of method sends, from the
// sender's point of view: l1, l2 are the sender's own greeting lines and
// r1, r2 the lines it received (all without terminators). It fails with
// ErrAuthNotOffered for methods this implementation never sends
// (cleartext) or does not know. For AuthHMAC the secret is used as given,
// even when empty (the handshake machine refuses that case itself).
func AuthData(method string, secret []byte, l1, l2, r1, r2 string) (string, error) {
	switch method {
	case wire.AuthHMAC:
		return hmacHex(secret, l1, l2, r1, r2), nil
	case wire.AuthTLS:
		return sha3Hex(l1, l2, r1, r2), nil
	case wire.AuthTLSAnon:
		return "", nil
	case wire.AuthCleartext:
		return "", hsErr(ErrAuthNotOffered, "cleartext authentication is never sent")
	}
	return "", hsErr(ErrAuthNotOffered, "unknown auth method '"+method+"'")
}

// VerifyAuth checks, from the receiver's point of view (l1, l2 are the
// receiver's own lines, r1, r2 the received ones), the auth data the peer
// sent with method. tls_* methods are valid only when tlsActive. The
// comparison is constant time. Failures are *Error wrapping
// ErrAuthFailed or ErrAuthNotOffered.
func VerifyAuth(method, data string, secret []byte, l1, l2, r1, r2 string, tlsActive bool) error {
	var want string
	switch method {
	case wire.AuthHMAC:
		if len(secret) == 0 {
			return hsErr(ErrAuthFailed, "authentication failure/shared secret mismatch")
		}
		want = hmacHex(secret, r1, r2, l1, l2)
	case wire.AuthTLS:
		if !tlsActive {
			return hsErr(ErrAuthNotOffered, "tls_sha3_512 authentication without TLS")
		}
		want = sha3Hex(r1, r2, l1, l2)
	case wire.AuthTLSAnon:
		if !tlsActive {
			return hsErr(ErrAuthNotOffered, "tls_anon authentication without TLS")
		}
		want = ""
	case wire.AuthCleartext:
		if len(secret) == 0 {
			return hsErr(ErrAuthFailed, "authentication failure/shared secret mismatch")
		}
		want = hex.EncodeToString(secret)
	default:
		return hsErr(ErrAuthNotOffered, "unknown auth method '"+method+"'")
	}
	if subtle.ConstantTimeCompare([]byte(want), []byte(data)) != 1 {
		return hsErr(ErrAuthFailed, "authentication failure/shared secret mismatch")
	}
	return nil
}
