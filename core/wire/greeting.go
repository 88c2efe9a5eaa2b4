package wire

import "strings"

// Auth methods, protocols, greeting keys and limits of AEMP v1.
const (
	// AuthHMAC is HMAC-SHA3-512 over the four greeting lines, keyed with the shared secret.
	AuthHMAC = "hmac_sha3_512"
	// AuthTLS is SHA3-512 over the four greeting lines; valid only inside TLS.
	AuthTLS = "tls_sha3_512"
	// AuthTLSAnon sends no auth data; valid only inside TLS; marks the peer untrusted.
	AuthTLSAnon = "tls_anon"
	// AuthCleartext is the hex of the secret; accepted if offered, never sent.
	AuthCleartext = "cleartext"
	// ProtocolMessaging is the protocol name of messaging connections.
	ProtocolMessaging = "aemp"
	// ProtocolDataConn is the protocol name of data connections.
	ProtocolDataConn = "aemp-dataconn"
	// MaxLineLen is the maximum handshake line length including its terminator.
	MaxLineLen = 4096
	// KeyDataConnID is the greeting key carrying a data connection id.
	KeyDataConnID = "dataconn_id"
	// KeyTLS is the greeting key announcing TLS ability ("1.0").
	KeyTLS = "tls"
	// KeyProvider is the greeting key naming the implementation.
	KeyProvider = "provider"
	// KeyPeerAddr is the greeting key carrying the peer's address as seen locally.
	KeyPeerAddr = "peeraddr"
	// KeyGo is present in greetings of nodes of this project; its value is a
	// comma-separated list of extension names (e.g. "1").
	KeyGo = "aempgo"
	// KeyTLSTicket (nodes of this project only, next to KeyGo) says that
	// the sender holds a TLS 1.3 session ticket from the peer: it becomes
	// the TLS client to resume (see StartTLS).
	KeyTLSTicket = "aempgo_tlsticket"
)

// KV is one key=value field of a greeting line.
type KV struct {
	Key, Value string
	// NoValue is set when the field had no '=' (Perl: undef value).
	NoValue bool
}

// Greeting is a parsed first handshake line.
type Greeting struct {
	// Protocol ("aemp", "aemp-NAME"), Version ("1") and NodeID are the
	// first three fields, as sent (not unescaped).
	Protocol, Version, NodeID string
	// Auths and Framings are the comma-separated lists of fields 4 and 5:
	// what the sender accepts, in order of preference.
	Auths, Framings []string
	// KV holds the key=value fields in wire order, duplicates kept.
	KV []KV
}

// Get returns the value of key; the last occurrence wins. ok is false when
// the key is absent or its last occurrence had no value.
func (g Greeting) Get(key string) (value string, ok bool) {
	for i := len(g.KV) - 1; i >= 0; i-- {
		if g.KV[i].Key == key {
			if g.KV[i].NoValue {
				return "", false
			}
			return g.KV[i].Value, true
		}
	}
	return "", false
}

// EscapeValue escapes a greeting field value: '%' becomes "%25" and ';'
// becomes "%3b".
func EscapeValue(s string) string {
	if !strings.ContainsAny(s, "%;") {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '%':
			b.WriteString("%25")
		case ';':
			b.WriteString("%3b")
		default:
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

// Encode returns the greeting as a first handshake line, without
// terminator. Values of KV fields are escaped with EscapeValue.
func (g Greeting) Encode() string {
	var b strings.Builder
	// One allocation: the line's length before any value escaping.
	size := len(g.Protocol) + len(g.Version) + len(g.NodeID) + 4
	for _, l := range [...][]string{g.Auths, g.Framings} {
		for _, s := range l {
			size += len(s) + 1
		}
	}
	for _, kv := range g.KV {
		size += len(kv.Key) + len(kv.Value) + 2
	}
	b.Grow(size)
	b.WriteString(g.Protocol)
	b.WriteByte(';')
	b.WriteString(g.Version)
	b.WriteByte(';')
	b.WriteString(g.NodeID)
	for _, l := range [...][]string{g.Auths, g.Framings} {
		b.WriteByte(';')
		for i, s := range l {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(s)
		}
	}
	for _, kv := range g.KV {
		b.WriteByte(';')
		b.WriteString(kv.Key)
		if !kv.NoValue {
			b.WriteByte('=')
			b.WriteString(EscapeValue(kv.Value))
		}
	}
	return b.String()
}

// ParseGreeting parses a first handshake line (without terminator) the way
// Perl's AnyEvent::MP::Transport does: the line is split on ';' with
// trailing empty fields dropped; fields 1-5 are protocol, version, node ID,
// auth list and framing list; each further field splits at its first '='
// (no '=' gives NoValue, a field starting with '=' is skipped). Values are
// not unescaped. It never fails; missing fields are empty.
func ParseGreeting(line string) Greeting {
	fields := PerlSplit(line, ";")
	var g Greeting
	get := func(i int) string {
		if i < len(fields) {
			return fields[i]
		}
		return ""
	}
	g.Protocol = get(0)
	g.Version = get(1)
	g.NodeID = get(2)
	g.Auths = SplitList(get(3))
	g.Framings = SplitList(get(4))
	if len(fields) > 5 {
		g.KV = make([]KV, 0, len(fields)-5)
	}
	for i := 5; i < len(fields); i++ {
		// Perl: /^([^=]+)(?:=(.*))?/ - a field without a key is skipped.
		k, v, found := strings.Cut(fields[i], "=")
		if k == "" {
			continue
		}
		g.KV = append(g.KV, KV{Key: k, Value: v, NoValue: !found})
	}
	if len(g.KV) == 0 {
		g.KV = nil // no keys: as before any was made room for
	}
	return g
}

// PerlSplit splits s on sep like Perl's split: trailing empty fields are
// dropped (so an empty string gives no fields).
func PerlSplit(s, sep string) []string {
	if s == "" {
		return nil
	}
	l := strings.Split(s, sep)
	for len(l) > 0 && l[len(l)-1] == "" {
		l = l[:len(l)-1]
	}
	return l
}

// SplitList splits a comma-separated list like Perl's split /,/.
func SplitList(s string) []string { return PerlSplit(s, ",") }
