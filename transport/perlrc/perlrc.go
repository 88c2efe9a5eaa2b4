package perlrc

import (
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"time"
)

// MaxFileSize is the largest configuration file Load and Parse accept, in
// bytes. Real files hold a few profiles and certificates: some kilobytes.
const MaxFileSize = 1 << 20

// maxTimeoutSeconds bounds monitor_timeout (about 31 years), far below
// time.Duration's limit so the conversion cannot overflow.
const maxTimeoutSeconds = 1e9

// Profile is the effective configuration of one profile: its own keys, its
// parent chain's and the global ones, merged in Perl's order.
type Profile struct {
	// Name is the profile name that was asked for.
	Name string
	// Chain lists the profiles whose entries contributed, most specific
	// first (Name, its parent, ...). It is empty when Name has no entry, in
	// which case only the global settings apply.
	Chain []string

	// Secret is the shared secret as the bytes Perl hashes (Latin-1);
	// HasSecret tells a configured empty secret from none.
	Secret    []byte
	HasSecret bool
	// CertPEM is the PEM text of the "cert" key (key, certificate, CA); nil
	// when absent.
	CertPEM []byte
	// Binds and Seeds are the "binds" and "seeds" addresses as written; nil
	// when absent, empty (non-nil) when configured as an empty list.
	Binds, Seeds []string
	// NodeID is the "nodeid" key, empty when absent. See NodeIDNeedsSuffix.
	NodeID string
	// AuthOffer, AuthAccept and FramingFormat are the "auth_offer",
	// "auth_accept" and "framing_format" lists; nil when absent.
	AuthOffer, AuthAccept, FramingFormat []string
	// MonitorTimeout is "monitor_timeout"; zero when absent.
	MonitorTimeout time.Duration
	// Source is the file the profile came from.
	Source string
}

// NodeIDNeedsSuffix reports whether the node ID ends in "/" (as in "anon/"),
// which in Perl means "append a random unique string". Generating and
// appending it is the caller's job.
func (p Profile) NodeIDNeedsSuffix() bool {
	return strings.HasSuffix(p.NodeID, "/")
}

// WithPerlDefaults returns a copy of p in which the keys that are absent
// have the defaults Perl's AnyEvent::MP::Config::find_profile (2.x) uses:
// monitor_timeout 30 s, framing_format [cbor json storable], auth_offer
// [tls_sha3_512 hmac_sha3_512] and auth_accept [tls_sha3_512 hmac_sha3_512
// tls_anon cleartext]. Lists configured as empty stay empty.
func (p Profile) WithPerlDefaults() Profile {
	if p.MonitorTimeout == 0 {
		p.MonitorTimeout = 30 * time.Second
	}
	if p.FramingFormat == nil {
		p.FramingFormat = []string{"cbor", "json", "storable"}
	}
	if p.AuthOffer == nil {
		p.AuthOffer = []string{"tls_sha3_512", "hmac_sha3_512"}
	}
	if p.AuthAccept == nil {
		p.AuthAccept = []string{"tls_sha3_512", "hmac_sha3_512", "tls_anon", "cleartext"}
	}
	return p
}

// DefaultPath returns the configuration file a Perl node would read, from
// the process environment. See DefaultPathFrom.
func DefaultPath() (string, error) {
	return DefaultPathFrom(os.LookupEnv)
}

// DefaultPathFrom returns the configuration file a Perl node would read,
// looking variables up with lookupEnv (os.LookupEnv for the real
// environment): $PERL_ANYEVENT_MP_RC if it exists, else
// $HOME/.perl-anyevent-mp, else $APPDATA/perl-anyevent-mp. With none of
// the three set it returns ErrNoPath.
func DefaultPathFrom(lookupEnv func(string) (string, bool)) (string, error) {
	if v, ok := lookupEnv("PERL_ANYEVENT_MP_RC"); ok {
		return v, nil
	}
	if v, ok := lookupEnv("HOME"); ok {
		return v + "/.perl-anyevent-mp", nil
	}
	if v, ok := lookupEnv("APPDATA"); ok {
		return v + "/perl-anyevent-mp", nil
	}
	return "", ErrNoPath
}

// Load reads the configuration file at path and returns the effective
// settings of the named profile. A missing file is an *Error wrapping
// fs.ErrNotExist.
func Load(path, profile string) (*Profile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, &Error{File: path, Err: err}
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, &Error{File: path, Err: err}
	}
	return Parse(data, path, profile)
}

// Parse decodes a configuration file's contents (source names it in errors
// and in Profile.Source) and returns the effective settings of the named
// profile. A profile without an entry yields the global settings only.
func Parse(data []byte, source, profile string) (*Profile, error) {
	if len(data) > MaxFileSize {
		return nil, &Error{File: source, Err: fmt.Errorf("%w (%d bytes)", ErrTooLarge, MaxFileSize)}
	}
	top, err := decodeTop(data, source)
	if err != nil {
		return nil, err
	}
	levels, err := resolveChain(top, source, profile)
	if err != nil {
		return nil, err
	}
	// Merge from the lowest priority (global) up, as Perl's hash list does.
	merged := make(map[string]setting)
	for i := len(levels) - 1; i >= 0; i-- {
		for k, v := range levels[i].keys {
			merged[k] = setting{raw: v, profile: levels[i].name}
		}
	}
	p := &Profile{Name: profile, Source: source}
	for _, l := range levels[:len(levels)-1] {
		p.Chain = append(p.Chain, l.name)
	}
	if err := p.fill(merged, source); err != nil {
		return nil, err
	}
	return p, nil
}

// setting is one merged key: its raw JSON value and the profile it came
// from ("" for the global level).
type setting struct {
	raw     json.RawMessage
	profile string
}

// level is one level of the lookup: a profile's keys or the global ones.
type level struct {
	name string // "" for the global level
	keys map[string]json.RawMessage
}

// decodeTop parses the file's text into its top-level object.
func decodeTop(data []byte, source string) (map[string]json.RawMessage, error) {
	if off := firstInvalidUTF8(data); off >= 0 {
		line, col := lineColumn(data, off)
		return nil, &Error{File: source, Line: line, Column: col,
			Err: fmt.Errorf("%w: invalid UTF-8", ErrMalformed)}
	}
	strict, inserted := relax(data)
	var top map[string]json.RawMessage
	err := json.Unmarshal(strict, &top)
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		off := inputOffset(int(syn.Offset), inserted)
		if off > 0 {
			off-- // Offset counts the bytes read, the culprit included
		}
		line, col := lineColumn(data, off)
		return nil, &Error{File: source, Line: line, Column: col,
			Err: fmt.Errorf("%w: %s", ErrMalformed, syn.Error())}
	case errors.As(err, &typ) || (err == nil && top == nil):
		return nil, &Error{File: source, Line: 1, Column: 1,
			Err: fmt.Errorf("%w: the top level is not an object", ErrMalformed)}
	case err != nil:
		return nil, &Error{File: source, Err: fmt.Errorf("%w: %v", ErrMalformed, err)}
	}
	return top, nil
}

// resolveChain returns the levels to merge, most specific first and the
// global level last.
func resolveChain(top map[string]json.RawMessage, source, name string) ([]level, error) {
	var profiles map[string]json.RawMessage
	if raw, ok := top["profile"]; ok && !isNull(raw) {
		if err := json.Unmarshal(raw, &profiles); err != nil || profiles == nil {
			return nil, badValue(source, "", "profile", "want an object of profiles, got %s", kind(raw))
		}
	}
	var levels []level
	visited := make(map[string]bool)
	child := ""
	for first := true; ; first = false {
		raw, ok := profiles[name]
		if !ok || isNull(raw) {
			if first {
				break // no entry: global settings only, as in Perl
			}
			return nil, &Error{File: source, Profile: child, Key: "parent",
				Err: fmt.Errorf("%w: %q", ErrUnknownProfile, name)}
		}
		var keys map[string]json.RawMessage
		if err := json.Unmarshal(raw, &keys); err != nil || keys == nil {
			return nil, &Error{File: source, Profile: name,
				Err: fmt.Errorf("%w: profile entry: want an object, got %s", ErrBadValue, kind(raw))}
		}
		visited[name] = true
		levels = append(levels, level{name: name, keys: keys})
		praw, ok := keys["parent"]
		if !ok || isNull(praw) {
			break
		}
		var parent string
		if err := json.Unmarshal(praw, &parent); err != nil {
			return nil, badValue(source, name, "parent", "want a string, got %s", kind(praw))
		}
		if visited[parent] {
			names := make([]string, 0, len(levels)+1)
			for _, l := range levels {
				names = append(names, strconv.Quote(l.name))
			}
			names = append(names, strconv.Quote(parent))
			return nil, &Error{File: source, Profile: name, Key: "parent",
				Err: fmt.Errorf("%w: %s", ErrParentLoop, strings.Join(names, " -> "))}
		}
		child, name = name, parent
	}
	return append(levels, level{keys: top}), nil
}

// fill decodes the merged settings this package knows into p.
func (p *Profile) fill(merged map[string]setting, source string) error {
	str := func(key string) (string, bool, error) {
		s, ok := merged[key]
		if !ok || isNull(s.raw) {
			return "", false, nil
		}
		var v string
		if err := json.Unmarshal(s.raw, &v); err != nil {
			return "", false, badValue(source, s.profile, key, "want a string, got %s", kind(s.raw))
		}
		return v, true, nil
	}
	list := func(key string) ([]string, error) {
		s, ok := merged[key]
		if !ok || isNull(s.raw) {
			return nil, nil
		}
		var items []json.RawMessage
		if err := json.Unmarshal(s.raw, &items); err != nil {
			return nil, badValue(source, s.profile, key, "want an array of strings, got %s", kind(s.raw))
		}
		out := make([]string, 0, len(items))
		for i, item := range items {
			var v string
			if err := json.Unmarshal(item, &v); err != nil {
				return nil, badValue(source, s.profile, key, "element %d: want a string, got %s", i, kind(item))
			}
			out = append(out, v)
		}
		return out, nil
	}

	secret, ok, err := str("secret")
	if err != nil {
		return err
	}
	if ok {
		b, err := latin1(secret)
		if err != nil {
			return &Error{File: source, Profile: merged["secret"].profile, Key: "secret", Err: err}
		}
		p.Secret, p.HasSecret = b, true
	}

	cert, ok, err := str("cert")
	if err != nil {
		return err
	}
	if ok {
		if block, _ := pem.Decode([]byte(cert)); block == nil {
			return badValue(source, merged["cert"].profile, "cert", "no PEM block in the text")
		}
		p.CertPEM = []byte(cert)
	}

	nodeID, ok, err := str("nodeid")
	if err != nil {
		return err
	}
	if ok {
		if nodeID == "" {
			return badValue(source, merged["nodeid"].profile, "nodeid", "a node ID must not be empty")
		}
		if i := strings.IndexAny(nodeID, ";#\r\n"); i >= 0 {
			return badValue(source, merged["nodeid"].profile, "nodeid",
				"a node ID must not contain %q (found at byte %d)", nodeID[i], i)
		}
		p.NodeID = nodeID
	}

	for _, f := range []struct {
		key string
		dst *[]string
	}{
		{"binds", &p.Binds},
		{"seeds", &p.Seeds},
		{"auth_offer", &p.AuthOffer},
		{"auth_accept", &p.AuthAccept},
		{"framing_format", &p.FramingFormat},
	} {
		v, err := list(f.key)
		if err != nil {
			return err
		}
		*f.dst = v
	}

	if s, ok := merged["monitor_timeout"]; ok && !isNull(s.raw) {
		d, err := seconds(s.raw)
		if err != nil {
			return &Error{File: source, Profile: s.profile, Key: "monitor_timeout", Err: err}
		}
		p.MonitorTimeout = d
	}
	return nil
}

// latin1 converts a secret to the bytes Perl hashes: one byte per
// character, which must be at most U+00FF.
func latin1(s string) ([]byte, error) {
	out := make([]byte, 0, len(s))
	n := 0
	for _, r := range s {
		if r > 0xFF {
			return nil, fmt.Errorf("%w: character %d is %U", ErrSecretNotLatin1, n, r)
		}
		out = append(out, byte(r))
		n++
	}
	return out, nil
}

// seconds decodes a positive number of seconds, given as a JSON number or
// as a string holding a decimal number (Perl numifies such strings).
func seconds(raw json.RawMessage) (time.Duration, error) {
	text := string(raw)
	if len(raw) > 0 && raw[0] == '"' {
		if err := json.Unmarshal(raw, &text); err != nil {
			return 0, fmt.Errorf("%w: %v", ErrBadValue, err)
		}
		if text == "" || strings.Trim(text, "0123456789.eE+-") != "" {
			return 0, fmt.Errorf("%w: want a number of seconds, got a string that is not a decimal number", ErrBadValue)
		}
	} else if len(raw) == 0 || !(raw[0] == '-' || raw[0] >= '0' && raw[0] <= '9') {
		return 0, fmt.Errorf("%w: want a number of seconds, got %s", ErrBadValue, kind(raw))
	}
	secs, err := strconv.ParseFloat(text, 64)
	if err != nil || math.IsNaN(secs) || math.IsInf(secs, 0) {
		return 0, fmt.Errorf("%w: want a number of seconds, got %q", ErrBadValue, text)
	}
	if secs <= 0 || secs > maxTimeoutSeconds {
		return 0, fmt.Errorf("%w: %v seconds is not in (0, %g]", ErrBadValue, secs, float64(maxTimeoutSeconds))
	}
	d := time.Duration(math.Round(secs * float64(time.Second)))
	if d <= 0 {
		return 0, fmt.Errorf("%w: %v seconds is below one nanosecond", ErrBadValue, secs)
	}
	return d, nil
}

func badValue(source, profile, key, format string, args ...any) error {
	return &Error{File: source, Profile: profile, Key: key,
		Err: fmt.Errorf("%w: "+format, append([]any{ErrBadValue}, args...)...)}
}

func isNull(raw json.RawMessage) bool {
	return string(raw) == "null"
}

// kind names the JSON type of a raw value, for error messages (values are
// never quoted: they may be secrets).
func kind(raw json.RawMessage) string {
	if len(raw) == 0 {
		return "nothing"
	}
	switch raw[0] {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	default:
		return "a number"
	}
}
