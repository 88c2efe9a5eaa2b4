package fuzz

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/aemp-go/dataconn/core/handshake"
	"github.com/aemp-go/dataconn/core/wire"
)

// strip removes every byte of cut from s.
func strip(s, cut string) string {
	return strings.Map(func(r rune) rune {
		if strings.ContainsRune(cut, r) {
			return -1
		}
		return r
	}, s)
}

// fuzzList turns a fuzz string into a greeting list: entries split at '|',
// stripped of the list and field separators, empty entries dropped.
func fuzzList(s string) []string {
	var out []string
	for _, e := range strings.Split(s, "|") {
		if e = strip(e, ",;\r\n"); e != "" {
			out = append(out, e)
		}
	}
	return out
}

// fuzzKVs turns a fuzz string into key=value fields: entries split at LF,
// each "key=value" or a bare key (no value); keys lose '=', ';', CR; values
// keep everything but CR and LF (';' and '%' are what escaping is for).
func fuzzKVs(s string) []wire.KV {
	var out []wire.KV
	for _, e := range strings.Split(s, "\n") {
		k, v, found := strings.Cut(e, "=")
		k = strip(k, "=;\r\n")
		if k == "" {
			continue
		}
		out = append(out, wire.KV{Key: k, Value: strip(v, "\r\n"), NoValue: !found})
	}
	return out
}

// FuzzGreetingRoundTrip builds a greeting from arbitrary field values and
// checks the promise of Encode and ParseGreeting: the parse of the encoded
// line gives back every field, with KV values in their escaped form
// (ParseGreeting does not unescape).
func FuzzGreetingRoundTrip(f *testing.F) {
	f.Add("aemp", "1", "A", "tls_sha3_512|hmac_sha3_512", "msgpack|json", "provider=aemp-go/0.1\npeeraddr=127.0.0.1:4040\naempgo=1")
	f.Add("aemp-dataconn", "1", "anon/57Cs", "hmac_sha3_512", "json", "dataconn_id=b@A\nweird=a;b%c%3b\nnovalue")
	f.Add("", "", "", "", "", "")
	f.Fuzz(func(t *testing.T, proto, version, node, auths, framings, kvs string) {
		g := wire.Greeting{
			Protocol: strip(proto, ";\r\n"),
			Version:  strip(version, ";\r\n"),
			NodeID:   strip(node, ";\r\n"),
			Auths:    fuzzList(auths),
			Framings: fuzzList(framings),
			KV:       fuzzKVs(kvs),
		}
		line := g.Encode()
		if strings.ContainsAny(line, "\r\n") {
			t.Fatalf("encoded greeting contains a line break: %q", line)
		}
		p := wire.ParseGreeting(line)
		if p.Protocol != g.Protocol || p.Version != g.Version || p.NodeID != g.NodeID {
			t.Fatalf("fields: got %q/%q/%q, want %q/%q/%q", p.Protocol, p.Version, p.NodeID, g.Protocol, g.Version, g.NodeID)
		}
		if !slices.Equal(p.Auths, g.Auths) || !slices.Equal(p.Framings, g.Framings) {
			t.Fatalf("lists: got %q %q, want %q %q", p.Auths, p.Framings, g.Auths, g.Framings)
		}
		if len(p.KV) != len(g.KV) {
			t.Fatalf("got %d key=value fields, want %d (line %q)", len(p.KV), len(g.KV), line)
		}
		for i, kv := range g.KV {
			want := wire.KV{Key: kv.Key, NoValue: kv.NoValue}
			if !kv.NoValue {
				want.Value = wire.EscapeValue(kv.Value)
			}
			if p.KV[i] != want {
				t.Fatalf("field %d: got %+v, want %+v", i, p.KV[i], want)
			}
		}
		// Get: the last occurrence wins.
		for _, kv := range g.KV {
			v, ok := p.Get(kv.Key)
			var last wire.KV
			for _, x := range p.KV {
				if x.Key == kv.Key {
					last = x
				}
			}
			if ok != !last.NoValue || v != last.Value && ok {
				t.Fatalf("Get(%q) = %q, %v; last field %+v", kv.Key, v, ok, last)
			}
		}
	})
}

// FuzzParseGreeting feeds arbitrary lines to ParseGreeting: it must never
// panic, and what it returns must be well formed (no field contains the
// separator, keys are non-empty and without '=').
func FuzzParseGreeting(f *testing.F) {
	for _, s := range seedGreetingLines() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		g := wire.ParseGreeting(line)
		for _, s := range []string{g.Protocol, g.Version, g.NodeID} {
			if strings.Contains(s, ";") {
				t.Fatalf("field %q contains ';'", s)
			}
		}
		for _, l := range [][]string{g.Auths, g.Framings} {
			for _, e := range l {
				if strings.ContainsAny(e, ",;") {
					t.Fatalf("list entry %q contains a separator", e)
				}
			}
		}
		for _, kv := range g.KV {
			if kv.Key == "" || strings.ContainsAny(kv.Key, "=;") || strings.Contains(kv.Value, ";") {
				t.Fatalf("bad field %+v", kv)
			}
			if kv.NoValue && kv.Value != "" {
				t.Fatalf("field without '=' has value %+v", kv)
			}
		}
		// The parse is stable: the first five fields re-encode to a line
		// that parses to the same fields.
		h := wire.Greeting{Protocol: g.Protocol, Version: g.Version, NodeID: g.NodeID, Auths: g.Auths, Framings: g.Framings}
		q := wire.ParseGreeting(h.Encode())
		if q.Protocol != g.Protocol || q.Version != g.Version || q.NodeID != g.NodeID ||
			!slices.Equal(q.Auths, g.Auths) || !slices.Equal(q.Framings, g.Framings) {
			t.Fatalf("re-parse differs: %+v vs %+v", q, g)
		}
	})
}

// seedGreetingLines returns a few greeting lines of the Perl vectors that
// do not depend on testdata files (the files feed the committed corpus).
func seedGreetingLines() []string {
	return []string{
		"aemp;1;A;tls_sha3_512,hmac_sha3_512,tls_anon,cleartext;cbor,json,storable;gproto=1;mproto=1;provider=AE-2.02;peeraddr=127.0.0.1:17001",
		"aemp-dataconn;1;A;hmac_sha3_512;json;provider=AE-2.02;dataconn_id=b@A",
		";;;;;",
		"aemp;1abc;x;,,a,;;=v;k;k=;k=1=2",
	}
}

// authIsValid is the specification VerifyAuth must meet: data verifies
// exactly when it is what the peer (whose lines r1, r2 are the sender's
// own) must have sent with method.
func authIsValid(method, data string, secret []byte, l1, l2, r1, r2 string, tlsOn bool) bool {
	switch method {
	case wire.AuthHMAC:
		want, err := handshake.AuthData(method, secret, r1, r2, l1, l2)
		return err == nil && len(secret) > 0 && data == want
	case wire.AuthTLS:
		want, err := handshake.AuthData(method, nil, r1, r2, l1, l2)
		return err == nil && tlsOn && data == want
	case wire.AuthTLSAnon:
		return tlsOn && data == ""
	case wire.AuthCleartext:
		return len(secret) > 0 && data == hexString(secret)
	}
	return false
}

func hexString(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return string(out)
}

// FuzzVerifyAuth calls VerifyAuth with arbitrary methods, data, secrets
// and lines. It must not panic, must succeed exactly when the data is the
// correct auth string, and must fail with a *handshake.Error naming
// ErrAuthFailed or ErrAuthNotOffered. mode selects the method among the
// known ones (or keeps the fuzzed one) and whether data is replaced by the
// correct value before flipping the byte at flip (so that successes and
// one-byte forgeries are both explored).
func FuzzVerifyAuth(f *testing.F) {
	f.Add(uint8(0x11), "", "", []byte("s3cr3t"), "aemp;1;A;hmac_sha3_512;json", "nonceA", "aemp;1;B;hmac_sha3_512;json", "nonceB", uint16(0))
	f.Add(uint8(0x12), "", "", []byte{}, "l1", "l2", "r1", "r2", uint16(7))
	f.Add(uint8(0x04), "cleartext", "733363723374", []byte("s3cr3t"), "", "", "", "", uint16(0xffff))
	f.Fuzz(func(t *testing.T, mode uint8, method, data string, secret []byte, l1, l2, r1, r2 string, flip uint16) {
		methods := []string{method, wire.AuthHMAC, wire.AuthTLS, wire.AuthTLSAnon, wire.AuthCleartext}
		method = methods[int(mode&7)%len(methods)]
		tlsOn := mode&0x20 != 0
		if mode&0x10 != 0 {
			switch method {
			case wire.AuthHMAC, wire.AuthTLS:
				if d, err := handshake.AuthData(method, secret, r1, r2, l1, l2); err == nil {
					data = d
				}
			case wire.AuthCleartext:
				data = hexString(secret)
			}
			if mode&0x40 != 0 && len(data) > 0 {
				b := []byte(data)
				b[int(flip)%len(b)] ^= byte(flip>>8) | 1
				data = string(b)
			}
		}
		err := handshake.VerifyAuth(method, data, secret, l1, l2, r1, r2, tlsOn)
		valid := authIsValid(method, data, secret, l1, l2, r1, r2, tlsOn)
		if valid != (err == nil) {
			t.Fatalf("VerifyAuth(%q, %q, tls=%v) = %v, valid=%v", method, data, tlsOn, err, valid)
		}
		if err != nil {
			var he *handshake.Error
			if !errors.As(err, &he) || !(errors.Is(err, handshake.ErrAuthFailed) || errors.Is(err, handshake.ErrAuthNotOffered)) {
				t.Fatalf("untyped error %T %v", err, err)
			}
		}
	})
}
