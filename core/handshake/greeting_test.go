package handshake

import (
	"encoding/json"
	"errors"
	"math"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/aemp-go/dataconn/core/wire"
)

type greetingVectors struct {
	Local struct {
		AuthOffer     []string `json:"auth_offer"`
		FramingFormat []string `json:"framing_format"`
		Protocol      string   `json:"protocol"`
	} `json:"local_side_assumed"`
	Parsed []struct {
		Description string `json:"description"`
		Raw         string `json:"raw"`
		R1          string `json:"rgreeting1"`
		R2          string `json:"rgreeting2"`
		Parsed      struct {
			Auth          *string            `json:"chosen_auth_by_default_perl_node"`
			Framing       *string            `json:"chosen_framing_by_default_perl_node"`
			Fields        []*string          `json:"fields"`
			Error         *string            `json:"greeting_error"`
			KV            map[string]*string `json:"kv"`
			KVFields      []string           `json:"kv_fields"`
			TLS           bool               `json:"tls_would_be_used_if_local_has_cert"`
			Upgraded      *string            `json:"upgraded_protocol"`
			VersionNumber float64            `json:"version_numeric"`
		} `json:"parsed"`
	} `json:"parsed"`
	Produced []struct {
		Description string `json:"description"`
		L1          string `json:"lgreeting1"`
		L2          string `json:"lgreeting2_example"`
	} `json:"produced"`
}

func loadGreetingVectors(t testing.TB) *greetingVectors {
	t.Helper()
	data, err := os.ReadFile("../../testdata/vectors/greetings.json")
	if err != nil {
		t.Fatal(err)
	}
	var v greetingVectors
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatal(err)
	}
	if len(v.Parsed) != 23 {
		t.Fatalf("greetings.json: %d cases, want 23", len(v.Parsed))
	}
	return &v
}

func strOr(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

var t0 = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

// drain polls h until nil.
func drain(h *Machine) []Action {
	var out []Action
	for a := h.Poll(); a != nil; a = h.Poll() {
		out = append(out, a)
	}
	return out
}

func lastFailed(acts []Action) error {
	for _, a := range acts {
		if f, ok := a.(Failed); ok {
			return f.Err
		}
	}
	return nil
}

func TestGreetingVectors(t *testing.T) {
	v := loadGreetingVectors(t)
	for _, c := range v.Parsed {
		t.Run(c.Description, func(t *testing.T) {
			p := c.Parsed
			g := wire.ParseGreeting(c.R1)
			got := []string{g.Protocol, g.Version, g.NodeID}
			for i := 0; i < 3; i++ {
				if got[i] != strOr(p.Fields[i]) {
					t.Errorf("field %d = %q, want %q", i, got[i], strOr(p.Fields[i]))
				}
			}
			if want := wire.SplitList(strOr(p.Fields[3])); !slices.Equal(g.Auths, want) {
				t.Errorf("auths = %q, want %q", g.Auths, want)
			}
			if want := wire.SplitList(strOr(p.Fields[4])); !slices.Equal(g.Framings, want) {
				t.Errorf("framings = %q, want %q", g.Framings, want)
			}
			// KV: wire order kept, keyless fields skipped, last one wins.
			var keys []string
			for _, kv := range g.KV {
				keys = append(keys, kv.Key)
			}
			var wantKeys []string
			for _, f := range p.KVFields {
				k, _, _ := cut(f, '=')
				if k != "" {
					wantKeys = append(wantKeys, k)
				}
			}
			if !slices.Equal(keys, wantKeys) {
				t.Errorf("kv keys = %q, want %q", keys, wantKeys)
			}
			for k, want := range p.KV {
				val, ok := g.Get(k)
				if want == nil {
					if ok {
						t.Errorf("Get(%q) = %q, want undefined", k, val)
					}
				} else if !ok || val != *want {
					t.Errorf("Get(%q) = %q, %v; want %q", k, val, ok, *want)
				}
			}
			if n := perlNum(g.Version); n != p.VersionNumber {
				t.Errorf("version numeric = %v, want %v", n, p.VersionNumber)
			}

			// Run the machine as the assumed local Perl side.
			for _, tls := range []bool{false, true} {
				cfg := Config{
					NodeID:         "L",
					Protocol:       v.Local.Protocol,
					Secret:         []byte("secret"),
					OfferAuths:     v.Local.AuthOffer,
					AcceptFramings: v.Local.FramingFormat,
					SendFramings:   v.Local.FramingFormat,
					TLS:            tls,
				}
				h, err := New(cfg, "local-nonce", t0)
				if err != nil {
					t.Fatal(err)
				}
				drain(h)
				h.Receive(t0, []byte(c.Raw))
				acts := drain(h)
				ferr := lastFailed(acts)
				switch {
				case p.Error != nil:
					if ferr == nil || ferr.Error() != *p.Error {
						t.Errorf("tls=%v: error = %v, want %q", tls, ferr, *p.Error)
					}
					continue
				case p.Auth == nil:
					if !errors.Is(ferr, ErrNoCommonAuth) || ferr.Error() != strOr(p.Fields[3])+": no common auth type supported" {
						t.Errorf("tls=%v: error = %v, want no common auth", tls, ferr)
					}
					continue
				case p.Framing == nil:
					if !errors.Is(ferr, ErrNoCommonFraming) || ferr.Error() != strOr(p.Fields[4])+": no common framing method supported" {
						t.Errorf("tls=%v: error = %v, want no common framing", tls, ferr)
					}
					continue
				case ferr != nil:
					t.Errorf("tls=%v: unexpected failure %v", tls, ferr)
					continue
				}
				if tls && p.TLS {
					if len(acts) != 1 {
						t.Fatalf("tls: actions %#v, want StartTLS", acts)
					}
					st, ok := acts[0].(StartTLS)
					if !ok || st.Client != ("local-nonce" < c.R2) {
						t.Errorf("tls: action %#v", acts[0])
					}
					continue
				}
				if len(acts) != 1 {
					t.Fatalf("tls=%v: actions %#v, want auth line", tls, acts)
				}
				w, ok := acts[0].(Write)
				l1, l2 := h.LocalLines()
				data, _ := AuthData(*p.Auth, cfg.Secret, l1, l2, c.R1, c.R2)
				if want := *p.Auth + ";" + data + ";" + *p.Framing + "\n"; !ok || string(w.Data) != want {
					t.Errorf("tls=%v: auth line %q, want %q", tls, w.Data, want)
				}
				if h.proto != orStr(p.Upgraded, "aemp") {
					t.Errorf("protocol = %q, want %q", h.proto, orStr(p.Upgraded, "aemp"))
				}
			}
		})
	}
}

func orStr(p *string, def string) string {
	if p == nil {
		return def
	}
	return *p
}

func cut(s string, c byte) (string, string, bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

func TestGreetingProduced(t *testing.T) {
	v := loadGreetingVectors(t)
	for _, p := range v.Produced {
		if p.L1 == "" {
			if len(p.L2) != 88 {
				t.Errorf("nonce example length %d", len(p.L2))
			}
			continue
		}
		// Perl lines carry no escapes, so parse+encode is the identity.
		if got := wire.ParseGreeting(p.L1).Encode(); got != p.L1 {
			t.Errorf("round trip:\n got %q\nwant %q", got, p.L1)
		}
	}
}

func TestGreetingEncodeEscapes(t *testing.T) {
	g := wire.Greeting{
		Protocol: "aemp-dataconn", Version: "1", NodeID: "n",
		Auths: []string{wire.AuthHMAC}, Framings: []string{"json"},
		KV: []wire.KV{{Key: "a", Value: "x;y%z"}, {Key: "flag", NoValue: true}, {Key: "e"}},
	}
	line := g.Encode()
	if want := "aemp-dataconn;1;n;hmac_sha3_512;json;a=x%3by%25z;flag;e="; line != want {
		t.Fatalf("Encode = %q, want %q", line, want)
	}
	back := wire.ParseGreeting(line)
	if v, ok := back.Get("a"); !ok || v != "x%3by%25z" {
		t.Errorf("a = %q (Perl does not unescape)", v)
	}
	if _, ok := back.Get("flag"); ok {
		t.Errorf("flag must be undefined")
	}
	if v, ok := back.Get("e"); !ok || v != "" {
		t.Errorf("e = %q, %v", v, ok)
	}
	if wire.EscapeValue("plain") != "plain" || wire.EscapeValue("%;") != "%25%3b" {
		t.Errorf("EscapeValue")
	}
}

func TestPerlNum(t *testing.T) {
	for _, c := range []struct {
		in   string
		want float64
	}{
		{"1", 1}, {"01", 1}, {"1abc", 1}, {"1.5", 1.5}, {"", 0}, {"abc", 0},
		{" 1", 1}, {"+1", 1}, {"-1", -1}, {"1e0", 1}, {"1e", 1}, {"1.", 1},
		{".5", 0.5}, {".", 0}, {"0x1", 0}, {"1.0", 1}, {"1E+1x", 10},
		{"inf", math.Inf(1)}, {"-Infinity", math.Inf(-1)},
	} {
		if got := perlNum(c.in); got != c.want {
			t.Errorf("perlNum(%q) = %v, want %v", c.in, got, c.want)
		}
	}
	if !math.IsNaN(perlNum("nan")) {
		t.Errorf("nan")
	}
	if perlInt("1.9") != 1 || perlInt("2.0") != 2 || perlInt("-0.5") != 0 {
		t.Errorf("perlInt")
	}
	for p, want := range map[string]bool{
		"aemp-dataconn": true, "aemp-foo_1": true, "aemp-": false, "aemp": false,
		"aemp-a b": false, "aemp-a-b": false, "xaemp-a": false,
	} {
		if isUpgradeProtocol(p) != want {
			t.Errorf("isUpgradeProtocol(%q) != %v", p, want)
		}
	}
}
