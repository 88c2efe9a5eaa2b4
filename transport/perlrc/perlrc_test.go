package perlrc

import (
	"bytes"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

func load(t *testing.T, file, profile string) (*Profile, error) {
	t.Helper()
	return Load(filepath.Join("testdata", file), profile)
}

func mustLoad(t *testing.T, file, profile string) *Profile {
	t.Helper()
	p, err := load(t, file, profile)
	if err != nil {
		t.Fatalf("Load(%s, %q): %v", file, profile, err)
	}
	return p
}

func TestAempWrittenFile(t *testing.T) {
	const secret = "p4Fq8KZbxJ2mRvT9cW3nLh7sGd0eYa6uQiNo1zXkBjEtUyMwVr5HlSgCfPIDOA8"
	path := filepath.Join("testdata", "aemp_written.json")

	doomed := mustLoad(t, "aemp_written.json", "doomed")
	if doomed.Name != "doomed" || doomed.Source != path {
		t.Errorf("Name, Source = %q, %q", doomed.Name, doomed.Source)
	}
	if want := []string{"doomed", "server"}; !reflect.DeepEqual(doomed.Chain, want) {
		t.Errorf("Chain = %q, want %q", doomed.Chain, want)
	}
	if doomed.NodeID != "doomed" || doomed.NodeIDNeedsSuffix() {
		t.Errorf("NodeID = %q (needs suffix %v)", doomed.NodeID, doomed.NodeIDNeedsSuffix())
	}
	if want := []string{"doomed.example:4040", "*:*"}; !reflect.DeepEqual(doomed.Binds, want) {
		t.Errorf("Binds = %q, want %q", doomed.Binds, want)
	}
	if want := []string{"10.0.0.1:4040", "10.0.0.2"}; !reflect.DeepEqual(doomed.Seeds, want) {
		t.Errorf("Seeds = %q, want %q (inherited from server)", doomed.Seeds, want)
	}
	if !doomed.HasSecret || string(doomed.Secret) != secret {
		t.Errorf("Secret = %q (has %v), want the global one", doomed.Secret, doomed.HasSecret)
	}
	// The certificate text is key and certificate, usable as a TLS pair.
	if _, err := tls.X509KeyPair(doomed.CertPEM, doomed.CertPEM); err != nil {
		t.Errorf("CertPEM is not a usable key pair: %v", err)
	}
	if doomed.AuthOffer != nil || doomed.AuthAccept != nil || doomed.FramingFormat != nil || doomed.MonitorTimeout != 0 {
		t.Errorf("keys absent from the file are not zero: %+v", doomed)
	}

	server := mustLoad(t, "aemp_written.json", "server")
	if server.NodeID != "server/" || !server.NodeIDNeedsSuffix() {
		t.Errorf("server NodeID = %q, NeedsSuffix = %v", server.NodeID, server.NodeIDNeedsSuffix())
	}
	if want := []string{"*:4040"}; !reflect.DeepEqual(server.Binds, want) {
		t.Errorf("server Binds = %q, want %q", server.Binds, want)
	}

	// null hides the global cert; an explicit empty list is not "absent".
	lonely := mustLoad(t, "aemp_written.json", "lonely")
	if lonely.CertPEM != nil {
		t.Errorf("lonely CertPEM = %d bytes, want nil (null overrides the global cert)", len(lonely.CertPEM))
	}
	if lonely.Seeds == nil || len(lonely.Seeds) != 0 {
		t.Errorf("lonely Seeds = %#v, want an empty non-nil list", lonely.Seeds)
	}
	if lonely.Binds != nil {
		t.Errorf("lonely Binds = %#v, want nil", lonely.Binds)
	}
}

func TestParentChainOverrideOrder(t *testing.T) {
	tests := []struct {
		profile string
		want    Profile
	}{
		{"leaf", Profile{
			Chain:          []string{"leaf", "mid", "base"},
			Secret:         []byte("mid-secret"),
			HasSecret:      true,
			Binds:          []string{"mid:1"},
			Seeds:          []string{"b1:4040", "b2:4040"},
			NodeID:         "leaf/",
			AuthOffer:      []string{"hmac_sha3_512"},
			AuthAccept:     []string{"hmac_sha3_512", "cleartext"},
			FramingFormat:  nil, // mid's null hides the global ["json"]
			MonitorTimeout: 2500 * time.Millisecond,
		}},
		{"mid", Profile{
			Chain:          []string{"mid", "base"},
			Secret:         []byte("mid-secret"),
			HasSecret:      true,
			Binds:          []string{"mid:1"},
			Seeds:          []string{"b1:4040", "b2:4040"},
			NodeID:         "global-id",
			AuthOffer:      []string{"hmac_sha3_512"},
			AuthAccept:     []string{"hmac_sha3_512", "cleartext"},
			MonitorTimeout: 20 * time.Second,
		}},
		{"base", Profile{
			Chain:          []string{"base"},
			Secret:         []byte("base-secret"),
			HasSecret:      true,
			Binds:          []string{"*:4040"},
			Seeds:          []string{"b1:4040", "b2:4040"},
			NodeID:         "global-id",
			AuthOffer:      []string{"hmac_sha3_512"},
			AuthAccept:     []string{"hmac_sha3_512", "cleartext"},
			FramingFormat:  []string{"json"},
			MonitorTimeout: 20 * time.Second,
		}},
		// No entry (or a null entry): the global level only, as in Perl.
		{"no-such-profile", Profile{
			Secret:         []byte("global-secret"),
			HasSecret:      true,
			Binds:          []string{"*:4040"},
			Seeds:          []string{"g1:4040"},
			NodeID:         "global-id",
			AuthOffer:      []string{"hmac_sha3_512"},
			FramingFormat:  []string{"json"},
			MonitorTimeout: 10 * time.Second,
		}},
		{"null-entry", Profile{
			Secret:         []byte("global-secret"),
			HasSecret:      true,
			Binds:          []string{"*:4040"},
			Seeds:          []string{"g1:4040"},
			NodeID:         "global-id",
			AuthOffer:      []string{"hmac_sha3_512"},
			FramingFormat:  []string{"json"},
			MonitorTimeout: 10 * time.Second,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.profile, func(t *testing.T) {
			got := mustLoad(t, "chain.json", tt.profile)
			want := tt.want
			want.Name, want.Source = tt.profile, filepath.Join("testdata", "chain.json")
			if !reflect.DeepEqual(*got, want) {
				t.Errorf("got  %+v\nwant %+v", *got, want)
			}
		})
	}
}

func TestParentErrors(t *testing.T) {
	path := filepath.Join("testdata", "chain.json")
	tests := []struct {
		profile, errProfile string
		sentinel            error
		inText              string
	}{
		{"orphan", "orphan", ErrUnknownProfile, `"nosuch"`},
		{"loop-a", "loop-c", ErrParentLoop, `"loop-a" -> "loop-b" -> "loop-c" -> "loop-a"`},
		{"loop-c", "loop-b", ErrParentLoop, `"loop-c" -> "loop-a" -> "loop-b" -> "loop-c"`},
		{"self", "self", ErrParentLoop, `"self" -> "self"`},
	}
	for _, tt := range tests {
		t.Run(tt.profile, func(t *testing.T) {
			_, err := load(t, "chain.json", tt.profile)
			if !errors.Is(err, tt.sentinel) {
				t.Fatalf("err = %v, want %v", err, tt.sentinel)
			}
			var e *Error
			if !errors.As(err, &e) || e.File != path || e.Key != "parent" || e.Profile != tt.errProfile {
				t.Fatalf("err = %#v, want File %q Key parent Profile %q", e, path, tt.errProfile)
			}
			if !strings.Contains(err.Error(), tt.inText) || !strings.HasPrefix(err.Error(), path+": ") {
				t.Errorf("text %q lacks file prefix or %q", err, tt.inText)
			}
		})
	}
}

func TestSecretLatin1(t *testing.T) {
	// "gëhéim" as Latin-1 bytes: the value recorded from Perl in
	// auth-notes.json (perl_string_probes[0].secret_latin1_hex).
	const recordedHex = "67eb68e9696d"
	for _, profile := range []string{"raw", "escaped"} {
		p := mustLoad(t, "latin1.json", profile)
		if got := hex.EncodeToString(p.Secret); got != recordedHex {
			t.Errorf("%s: secret bytes %s, want %s", profile, got, recordedHex)
		}
	}
	if p := mustLoad(t, "latin1.json", "edges"); !bytes.Equal(p.Secret, []byte{0x00, 0x7f, 0x80, 0xff}) {
		t.Errorf("edges: secret bytes %x, want 007f80ff", p.Secret)
	}
	if p := mustLoad(t, "latin1.json", "empty"); !p.HasSecret || p.Secret == nil || len(p.Secret) != 0 {
		t.Errorf("empty: HasSecret %v, Secret %#v; want a configured empty secret", p.HasSecret, p.Secret)
	}

	for _, tt := range []struct{ profile, char string }{
		{"wide", "character 3 is U+0100"},
		{"emoji", "character 1 is U+1F600"},
	} {
		_, err := load(t, "latin1.json", tt.profile)
		if !errors.Is(err, ErrSecretNotLatin1) {
			t.Fatalf("%s: err = %v, want ErrSecretNotLatin1", tt.profile, err)
		}
		var e *Error
		if !errors.As(err, &e) || e.Key != "secret" || e.Profile != tt.profile || e.File != filepath.Join("testdata", "latin1.json") {
			t.Errorf("%s: err = %#v, want key secret, that profile, the file", tt.profile, e)
		}
		if msg := err.Error(); !strings.Contains(msg, tt.char) || !strings.Contains(msg, `key "secret"`) {
			t.Errorf("%s: text %q lacks %q or the key", tt.profile, msg, tt.char)
		}
		if strings.Contains(err.Error(), "abc") || strings.Contains(err.Error(), "x\U0001F600") {
			t.Errorf("%s: error text leaks the secret: %q", tt.profile, err)
		}
	}
}

func TestRelaxedJSON(t *testing.T) {
	p := mustLoad(t, "relaxed.json", "x")
	if string(p.Secret) != "tab\there" {
		t.Errorf("Secret = %q, want a TAB inside", p.Secret)
	}
	if want := []string{"*:*"}; !reflect.DeepEqual(p.Binds, want) {
		t.Errorf("Binds = %q, want %q", p.Binds, want)
	}
	if want := []string{"#not-a-comment"}; !reflect.DeepEqual(p.Seeds, want) {
		t.Errorf("Seeds = %q, want %q", p.Seeds, want)
	}
	if g := mustLoad(t, "relaxed.json", ""); !reflect.DeepEqual(g.Seeds, []string{"a:1", "b:2"}) {
		t.Errorf("global Seeds = %q", g.Seeds)
	}
}

func TestMalformed(t *testing.T) {
	tests := []struct {
		file      string
		line, col int
	}{
		{"malformed_missing_comma.json", 3, 4},
		{"malformed_after_tab.json", 5, 16}, // after a TAB that relax expands
		{"malformed_array.json", 1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			_, err := load(t, tt.file, "")
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("err = %v, want ErrMalformed", err)
			}
			var e *Error
			if !errors.As(err, &e) || e.Line != tt.line || e.Column != tt.col {
				t.Fatalf("err = %#v, want line %d column %d", e, tt.line, tt.col)
			}
			prefix := filepath.Join("testdata", tt.file) + ":" + strconv.Itoa(tt.line) + ":" + strconv.Itoa(tt.col) + ": "
			if !strings.HasPrefix(err.Error(), prefix) {
				t.Errorf("text %q does not start with %q", err, prefix)
			}
		})
	}

	inline := []struct {
		name, data string
		line, col  int
	}{
		{"empty", "", 1, 1},
		{"null top", "null", 1, 1},
		{"string top", `"x"`, 1, 1},
		{"trailing garbage", "{}\n}", 2, 1},
		{"invalid utf8", "{\n \"secret\": \"a\xffb\"}", 2, 14},
		{"lone comma", "{\"a\":[1,,]}", 1, 9},
		{"comma after colon", "{\"a\":,}", 1, 6},
		{"leading comma", "{,}", 1, 2},
		{"unterminated", "{\"a\":[1,2", 1, 9},
		{"raw newline in string", "{\"a\":\"x\ny\"}", 1, 8},
	}
	for _, tt := range inline {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.data), "mem.json", "")
			var e *Error
			if !errors.Is(err, ErrMalformed) || !errors.As(err, &e) {
				t.Fatalf("err = %v, want ErrMalformed", err)
			}
			if e.File != "mem.json" || e.Line != tt.line || e.Column != tt.col {
				t.Errorf("err = %v (line %d col %d), want line %d col %d", err, e.Line, e.Column, tt.line, tt.col)
			}
		})
	}
}

func TestBadValues(t *testing.T) {
	tests := []struct {
		name, data, profile string
		key, errProfile     string
	}{
		{"binds is a string", `{"binds": "host:4040"}`, "", "binds", ""},
		{"seeds element not a string", `{"seeds": ["a:1", 4040]}`, "", "seeds", ""},
		{"secret is a number", `{"profile": {"p": {"secret": 1234}}}`, "p", "secret", "p"},
		{"cert not PEM", `{"cert": "hello"}`, "", "cert", ""},
		{"cert is an array", `{"cert": ["x"]}`, "", "cert", ""},
		{"nodeid empty", `{"nodeid": ""}`, "", "nodeid", ""},
		{"nodeid with semicolon", `{"nodeid": "a;b"}`, "", "nodeid", ""},
		{"nodeid with hash", `{"profile": {"n": {"nodeid": "a#b"}}}`, "n", "nodeid", "n"},
		{"nodeid with newline", `{"nodeid": "a\nb"}`, "", "nodeid", ""},
		{"auth_offer object", `{"auth_offer": {}}`, "", "auth_offer", ""},
		{"auth_accept bool", `{"auth_accept": true}`, "", "auth_accept", ""},
		{"framing_format nested", `{"framing_format": [["json"]]}`, "", "framing_format", ""},
		{"monitor_timeout negative", `{"monitor_timeout": -1}`, "", "monitor_timeout", ""},
		{"monitor_timeout zero", `{"monitor_timeout": 0}`, "", "monitor_timeout", ""},
		{"monitor_timeout huge", `{"monitor_timeout": 1e300}`, "", "monitor_timeout", ""},
		{"monitor_timeout tiny", `{"monitor_timeout": 1e-12}`, "", "monitor_timeout", ""},
		{"monitor_timeout word", `{"monitor_timeout": "soon"}`, "", "monitor_timeout", ""},
		{"monitor_timeout inf string", `{"monitor_timeout": "inf"}`, "", "monitor_timeout", ""},
		{"monitor_timeout bool", `{"monitor_timeout": true}`, "", "monitor_timeout", ""},
		{"parent not a string", `{"profile": {"p": {"parent": 3}}}`, "p", "parent", "p"},
		{"profile not an object", `{"profile": ["p"]}`, "p", "profile", ""},
		// The bad value comes from the parent: the error names it.
		{"inherited bad value", `{"profile": {"c": {"parent": "b"}, "b": {"binds": "x"}}}`, "c", "binds", "b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.data), "rc.json", tt.profile)
			if !errors.Is(err, ErrBadValue) {
				t.Fatalf("err = %v, want ErrBadValue", err)
			}
			var e *Error
			if !errors.As(err, &e) || e.File != "rc.json" || e.Key != tt.key || e.Profile != tt.errProfile {
				t.Fatalf("err = %#v, want key %q profile %q", e, tt.key, tt.errProfile)
			}
			if msg := err.Error(); !strings.HasPrefix(msg, "rc.json: key \""+tt.key+"\"") {
				t.Errorf("text %q does not name the file and key", msg)
			}
		})
	}

	// A bad profile entry (not an object) is reported for that profile.
	_, err := Parse([]byte(`{"profile": {"p": "x"}}`), "rc.json", "p")
	var e *Error
	if !errors.Is(err, ErrBadValue) || !errors.As(err, &e) || e.Profile != "p" {
		t.Errorf("non-object profile entry: err = %v", err)
	}
}

func TestValuesPerlAccepts(t *testing.T) {
	p, err := Parse([]byte(`{"monitor_timeout": "3", "unknown": {"x": [1, 2]}, "services": ["AnyEvent::MP::Global::"],
		"profile": {"a": {"parent": null, "monitor_timeout": 0.25}}}`), "rc.json", "a")
	if err != nil {
		t.Fatal(err)
	}
	if p.MonitorTimeout != 250*time.Millisecond {
		t.Errorf("MonitorTimeout = %v, want 250ms", p.MonitorTimeout)
	}
	g, err := Parse([]byte(`{"monitor_timeout": "3"}`), "rc.json", "")
	if err != nil || g.MonitorTimeout != 3*time.Second {
		t.Errorf("numeric string: %v, %v; want 3s", g, err)
	}
	// Bad values in keys the lookup does not reach are not reported (Perl
	// never looks at them either).
	if _, err := Parse([]byte(`{"binds": ["*:4040"], "profile": {"a": {"binds": 1}, "b": {}}}`), "rc.json", "b"); err != nil {
		t.Errorf("unrelated profile's bad value reported: %v", err)
	}
	if _, err := Parse([]byte(`{"binds": 1, "profile": {"b": {"binds": ["x"]}}}`), "rc.json", "b"); err != nil {
		t.Errorf("overridden bad global value reported: %v", err)
	}
	// Duplicate keys: the last one wins, as in JSON::XS.
	if d, err := Parse([]byte(`{"nodeid": "first", "nodeid": "second"}`), "rc.json", ""); err != nil || d.NodeID != "second" {
		t.Errorf("duplicate key: %v, %v", d, err)
	}
}

func TestWithPerlDefaults(t *testing.T) {
	p, err := Parse([]byte(`{"auth_accept": [], "framing_format": ["json"]}`), "rc.json", "")
	if err != nil {
		t.Fatal(err)
	}
	d := p.WithPerlDefaults()
	if d.MonitorTimeout != 30*time.Second ||
		!reflect.DeepEqual(d.AuthOffer, []string{"tls_sha3_512", "hmac_sha3_512"}) ||
		len(d.AuthAccept) != 0 || d.AuthAccept == nil ||
		!reflect.DeepEqual(d.FramingFormat, []string{"json"}) {
		t.Errorf("WithPerlDefaults = %+v", d)
	}
	if e := (Profile{}).WithPerlDefaults(); !reflect.DeepEqual(e.FramingFormat, []string{"cbor", "json", "storable"}) ||
		!reflect.DeepEqual(e.AuthAccept, []string{"tls_sha3_512", "hmac_sha3_512", "tls_anon", "cleartext"}) {
		t.Errorf("defaults of the zero Profile = %+v", e)
	}
	if p.MonitorTimeout != 0 || p.AuthOffer != nil {
		t.Errorf("WithPerlDefaults modified its receiver: %+v", p)
	}
}

func envFrom(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

func TestDefaultPathFrom(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want string
		err  error
	}{
		{"rc variable wins", map[string]string{"PERL_ANYEVENT_MP_RC": "/etc/aemp.json", "HOME": "/home/u", "APPDATA": "C:/x"}, "/etc/aemp.json", nil},
		{"empty rc variable still wins", map[string]string{"PERL_ANYEVENT_MP_RC": "", "HOME": "/home/u"}, "", nil},
		{"home", map[string]string{"HOME": "/home/u", "APPDATA": "C:/x"}, "/home/u/.perl-anyevent-mp", nil},
		{"appdata", map[string]string{"APPDATA": "C:/Users/u/AppData"}, "C:/Users/u/AppData/perl-anyevent-mp", nil},
		{"nothing", map[string]string{}, "", ErrNoPath},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DefaultPathFrom(envFrom(tt.env))
			if got != tt.want || !errors.Is(err, tt.err) || (tt.err == nil && err != nil) {
				t.Errorf("= %q, %v; want %q, %v", got, err, tt.want, tt.err)
			}
		})
	}

	// The variable selects the file that Load then reads.
	abs, err := filepath.Abs(filepath.Join("testdata", "chain.json"))
	if err != nil {
		t.Fatal(err)
	}
	path, err := DefaultPathFrom(envFrom(map[string]string{"PERL_ANYEVENT_MP_RC": abs, "HOME": t.TempDir()}))
	if err != nil {
		t.Fatal(err)
	}
	p, err := Load(path, "base")
	if err != nil || string(p.Secret) != "base-secret" || p.Source != abs {
		t.Errorf("Load via PERL_ANYEVENT_MP_RC: %+v, %v", p, err)
	}
	// Without it, $HOME/.perl-anyevent-mp is read.
	home := t.TempDir()
	if err := os.WriteFile(filepath.Join(home, ".perl-anyevent-mp"), []byte(`{"secret":"from-home"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	path, err = DefaultPathFrom(envFrom(map[string]string{"HOME": home}))
	if err != nil {
		t.Fatal(err)
	}
	if p, err := Load(path, "any"); err != nil || string(p.Secret) != "from-home" {
		t.Errorf("Load via HOME: %+v, %v", p, err)
	}
}

func TestDefaultPathUsesProcessEnv(t *testing.T) {
	got, err := DefaultPath()
	want, werr := DefaultPathFrom(os.LookupEnv)
	if got != want || !errors.Is(err, werr) {
		t.Errorf("DefaultPath = %q, %v; DefaultPathFrom(os.LookupEnv) = %q, %v", got, err, want, werr)
	}
}

func TestLoadFileErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope")
	_, err := Load(missing, "")
	var e *Error
	if !errors.Is(err, fs.ErrNotExist) || !errors.As(err, &e) || e.File != missing {
		t.Errorf("missing file: err = %v", err)
	}

	big := filepath.Join(t.TempDir(), "big.json")
	data := append([]byte(`{"x":"`), bytes.Repeat([]byte("a"), MaxFileSize)...)
	data = append(data, `"}`...)
	if err := os.WriteFile(big, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(big, ""); !errors.Is(err, ErrTooLarge) || !errors.As(err, &e) || e.File != big {
		t.Errorf("big file: err = %v, want ErrTooLarge", err)
	}
	if _, err := Parse(data, "big", ""); !errors.Is(err, ErrTooLarge) {
		t.Errorf("big data: err = %v, want ErrTooLarge", err)
	}
	// Exactly at the limit is fine.
	ok := append([]byte(`{"x":"`), bytes.Repeat([]byte("a"), MaxFileSize-8)...)
	ok = append(ok, `"}`...)
	if _, err := Parse(ok, "limit", ""); err != nil || len(ok) != MaxFileSize {
		t.Errorf("data of %d bytes: %v", len(ok), err)
	}
}

func TestErrorText(t *testing.T) {
	tests := []struct {
		e    Error
		want string
	}{
		{Error{File: "f", Key: "secret", Profile: "p", Err: ErrSecretNotLatin1}, `f: key "secret" (profile "p"): ` + ErrSecretNotLatin1.Error()},
		{Error{File: "f", Key: "binds", Err: ErrBadValue}, `f: key "binds" (global level): ` + ErrBadValue.Error()},
		{Error{File: "f", Line: 2, Column: 5, Err: ErrMalformed}, `f:2:5: ` + ErrMalformed.Error()},
		{Error{File: "f", Profile: "p", Err: ErrBadValue}, `f: profile "p": ` + ErrBadValue.Error()},
	}
	for _, tt := range tests {
		if got := tt.e.Error(); got != tt.want {
			t.Errorf("got %q, want %q", got, tt.want)
		}
	}
}

func BenchmarkParseAempFile(b *testing.B) {
	data, err := os.ReadFile(filepath.Join("testdata", "aemp_written.json"))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(data, "aemp_written.json", "doomed"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRelax(b *testing.B) {
	data, err := os.ReadFile(filepath.Join("testdata", "relaxed.json"))
	if err != nil {
		b.Fatal(err)
	}
	data = bytes.Repeat(data, 100)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		relax(data)
	}
}
