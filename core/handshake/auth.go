package handshake

import (
	"bytes"
	"crypto/sha3"
	"crypto/subtle"
	"encoding/hex"
	"hash"

	"github.com/aemp-go/dataconn/core/wire"
)

// MACKey is a shared secret prepared for the HMAC-SHA3-512 (RFC 2104) of
// hmac_sha3_512 and hmac_sha3_512_cb: the SHA3-512 states after the key's
// inner and outer pad blocks, from which every MAC with that key starts.
// Preparing costs the two Keccak permutations of those blocks, which each
// MAC made from the key then saves, and such a MAC allocates nothing.
//
// A MACKey is never modified after NewMACKey, so any number of machines
// and goroutines may share one: a node makes one for its secret and passes
// it to every handshake in Config.MACKey.
type MACKey struct {
	secret       []byte // a copy, to tell whether it is Config.Secret's
	inner, outer sha3.SHA3
}

// sha3Rate is the block size of SHA3-512 (its rate in bytes), the HMAC
// block size.
const sha3Rate = 72

// NewMACKey prepares secret (which may be empty) for HMAC-SHA3-512.
func NewMACKey(secret []byte) *MACKey {
	k := &MACKey{secret: bytes.Clone(secret), inner: *sha3.New512(), outer: *sha3.New512()}
	var pad [sha3Rate]byte
	if len(secret) > len(pad) {
		sum := sha3.Sum512(secret)
		copy(pad[:], sum[:])
	} else {
		copy(pad[:], secret)
	}
	for i := range pad {
		pad[i] ^= 0x36
	}
	k.inner.Write(pad[:])
	for i := range pad {
		pad[i] ^= 0x36 ^ 0x5c
	}
	k.outer.Write(pad[:])
	clear(pad[:])
	return k
}

// keyFor returns k when it was prepared for secret, else a key prepared
// now.
func (k *MACKey) keyFor(secret []byte) *MACKey {
	if k.isFor(secret) {
		return k
	}
	return NewMACKey(secret)
}

// isFor reports whether k was prepared for secret.
func (k *MACKey) isFor(secret []byte) bool {
	return k != nil && subtle.ConstantTimeCompare(k.secret, secret) == 1
}

// macer makes MACs with a prepared key, in room of its own: the hash
// state and the message live with it (a machine's, on the heap), not on
// the stack of the handshake's goroutine, which would have to grow for
// them (goroutines serving new connections start with a small stack).
type macer struct {
	key *MACKey
	d   sha3.SHA3
	msg []byte
	ih  [64]byte
}

// macerFor returns m when its key was prepared for secret, else a macer
// with a key prepared now.
func (m *macer) macerFor(secret []byte) *macer {
	if m != nil && m.key.isFor(secret) {
		return m
	}
	return newMacer(NewMACKey(secret))
}

// authMsgSize is the room a macer starts with for a message: the four
// lines of a greeting exchange and the prefix of hmac_sha3_512_cb.
const authMsgSize = 640

func newMacer(k *MACKey) *macer {
	return &macer{key: k, msg: make([]byte, 0, authMsgSize)}
}

// hexMAC returns HMAC-SHA3-512(key, m.msg) in lower-case hex. The key's
// states are copied, so the key stays as it is.
func (m *macer) hexMAC() string {
	m.d = m.key.inner
	m.d.Write(m.msg)
	m.d.Sum(m.ih[:0])
	m.d = m.key.outer
	m.d.Write(m.ih[:])
	var sum [64]byte
	var out [128]byte
	hex.Encode(out[:], m.d.Sum(sum[:0]))
	return string(out[:])
}

// authMessage writes S(x1,x2,x3,x4) into h (see appendAuthMessage).
func authMessage(h hash.Hash, x1, x2, x3, x4 string) {
	h.Write(appendAuthMessage(nil, x1, x2, x3, x4))
}

// appendAuthMessage appends S(x1,x2,x3,x4) = x1 LF x2 LF x3 LF x4 LF to b.
func appendAuthMessage(b []byte, x1, x2, x3, x4 string) []byte {
	for _, x := range [...]string{x1, x2, x3, x4} {
		b = append(b, x...)
		b = append(b, '\n')
	}
	return b
}

func hmacHex(m *macer, x1, x2, x3, x4 string) string {
	m.msg = appendAuthMessage(m.msg[:0], x1, x2, x3, x4)
	return m.hexMAC()
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
	return authData(nil, method, secret, l1, l2, r1, r2)
}

// authData is AuthData with the MACs of m, if its key is for secret (a
// key is prepared otherwise).
func authData(m *macer, method string, secret []byte, l1, l2, r1, r2 string) (string, error) {
	switch method {
	case wire.AuthHMAC:
		return hmacHex(m.macerFor(secret), l1, l2, r1, r2), nil
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
	return verifyAuth(nil, method, data, secret, l1, l2, r1, r2, tlsActive)
}

// verifyAuth is VerifyAuth with the MACs of m, if its key is for secret
// (a key is prepared otherwise).
func verifyAuth(m *macer, method, data string, secret []byte, l1, l2, r1, r2 string, tlsActive bool) error {
	var want string
	switch method {
	case wire.AuthHMAC:
		if len(secret) == 0 {
			return hsErr(ErrAuthFailed, "authentication failure/shared secret mismatch")
		}
		want = hmacHex(m.macerFor(secret), r1, r2, l1, l2)
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
