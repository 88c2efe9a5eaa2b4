package perlrc

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode"

	"pgregory.net/rapid"
)

// FuzzParse checks that Parse never panics, that every failure is an *Error
// for the given source wrapping a sentinel, and that relax leaves strict
// JSON untouched.
func FuzzParse(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no seed files: %v", err)
	}
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		for _, profile := range []string{"", "doomed", "leaf", "loop-a", "x", "wide"} {
			f.Add(data, profile)
		}
	}
	f.Add([]byte(`{"a":[1,],#c`+"\n"+`}`), "")
	f.Add([]byte("{\"s\":\"\t\"\t,}"), "")
	sentinels := []error{ErrMalformed, ErrBadValue, ErrUnknownProfile, ErrParentLoop, ErrSecretNotLatin1, ErrTooLarge}
	f.Fuzz(func(t *testing.T, data []byte, profile string) {
		if json.Valid(data) {
			if out, ins := relax(data); !bytes.Equal(out, data) || len(ins) != 0 {
				t.Fatalf("relax changed strict JSON %q into %q", data, out)
			}
		}
		p, err := Parse(data, "fuzz.json", profile)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.File != "fuzz.json" {
				t.Fatalf("error %v is not an *Error for the source", err)
			}
			for _, s := range sentinels {
				if errors.Is(err, s) {
					return
				}
			}
			t.Fatalf("error %v wraps no sentinel", err)
		}
		if p.Name != profile || p.Source != "fuzz.json" {
			t.Fatalf("Name, Source = %q, %q", p.Name, p.Source)
		}
		seen := map[string]bool{}
		for _, n := range p.Chain {
			if seen[n] {
				t.Fatalf("Chain %q repeats %q", p.Chain, n)
			}
			seen[n] = true
		}
		if len(p.Chain) > 0 && p.Chain[0] != profile {
			t.Fatalf("Chain %q does not start with %q", p.Chain, profile)
		}
		if len(p.Secret) > len(data) || p.MonitorTimeout < 0 {
			t.Fatalf("implausible result %+v", p)
		}
	})
}

// rcModel is a generated configuration: one level per profile plus the
// global level, each mapping keys to values (nil meaning JSON null).
type rcModel struct {
	global   map[string]any
	profiles map[string]map[string]any
}

var modelKeys = []string{"secret", "nodeid", "binds", "seeds", "monitor_timeout", "auth_offer"}

func genValue(t *rapid.T, key string) any {
	if rapid.IntRange(0, 5).Draw(t, "null") == 0 {
		return nil
	}
	switch key {
	case "secret":
		// Any character Perl can hash as a byte.
		latin1 := &unicode.RangeTable{R16: []unicode.Range16{{Lo: 0, Hi: 0xFF, Stride: 1}}}
		runes := rapid.SliceOfN(rapid.RuneFrom(nil, latin1), 0, 12).Draw(t, "secret")
		return string(runes)
	case "nodeid":
		return rapid.StringMatching(`[a-z0-9/._-]{1,10}`).Draw(t, "nodeid")
	case "monitor_timeout":
		return float64(rapid.IntRange(1, 100000).Draw(t, "ms")) / 1000
	default:
		return rapid.SliceOfN(rapid.StringMatching(`[a-z*0-9.:]{0,8}`), 0, 4).Draw(t, key)
	}
}

// writeRelaxed encodes v as JSON, sprinkling in what JSON::XS's relaxed
// mode allows: comments, trailing commas and literal TABs in strings.
func writeRelaxed(t *rapid.T, b *strings.Builder, v any) {
	comment := func() {
		if rapid.IntRange(0, 4).Draw(t, "comment") == 0 {
			b.WriteString(" # c, ] } \" x\n")
		}
	}
	trailing := func() {
		if rapid.Bool().Draw(t, "trailing") {
			b.WriteString(",")
			comment()
		}
	}
	switch v := v.(type) {
	case nil:
		b.WriteString("null")
	case float64:
		fmt.Fprintf(b, "%v", v)
	case string:
		b.WriteByte('"')
		for _, r := range v {
			switch {
			case r == '"' || r == '\\':
				b.WriteByte('\\')
				b.WriteRune(r)
			case r == '\t' && rapid.Bool().Draw(t, "rawtab"):
				b.WriteByte('\t')
			case r < 0x20:
				fmt.Fprintf(b, `\u%04x`, r)
			case r >= 0x80 && rapid.Bool().Draw(t, "escape"):
				fmt.Fprintf(b, `\u%04x`, r)
			default:
				b.WriteRune(r)
			}
		}
		b.WriteByte('"')
	case []string:
		b.WriteString("[")
		for i, s := range v {
			if i > 0 {
				b.WriteString(",")
			}
			comment()
			writeRelaxed(t, b, s)
		}
		if len(v) > 0 {
			trailing()
		}
		b.WriteString("]")
	case map[string]any:
		b.WriteString("{")
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		keys = rapid.Permutation(sortedStrings(keys)).Draw(t, "order")
		for i, k := range keys {
			if i > 0 {
				b.WriteString(",")
			}
			comment()
			writeRelaxed(t, b, k)
			b.WriteString(" : ")
			writeRelaxed(t, b, v[k])
		}
		if len(keys) > 0 {
			trailing()
		}
		b.WriteString("}")
	default:
		t.Fatalf("cannot encode %T", v)
	}
}

func sortedStrings(s []string) []string {
	out := append([]string(nil), s...)
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j] < out[j-1]; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

// TestParseMatchesModel generates acyclic profile trees with random
// settings, writes them in relaxed JSON and checks Parse against a direct
// implementation of Perl's lookup.
func TestParseMatchesModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		m := rcModel{global: map[string]any{}, profiles: map[string]map[string]any{}}
		genLevel := func(level map[string]any) {
			for _, k := range modelKeys {
				if rapid.Bool().Draw(t, "has_"+k) {
					level[k] = genValue(t, k)
				}
			}
		}
		genLevel(m.global)
		n := rapid.IntRange(0, 5).Draw(t, "profiles")
		for i := 0; i < n; i++ {
			name := fmt.Sprintf("p%d", i)
			level := map[string]any{}
			genLevel(level)
			// Parents only point to earlier profiles: no loops.
			if i > 0 && rapid.Bool().Draw(t, "has_parent") {
				level["parent"] = fmt.Sprintf("p%d", rapid.IntRange(0, i-1).Draw(t, "parent"))
			}
			m.profiles[name] = level
		}
		top := map[string]any{}
		for k, v := range m.global {
			top[k] = v
		}
		profObj := map[string]any{}
		for k, v := range m.profiles {
			profObj[k] = v
		}
		top["profile"] = profObj
		var b strings.Builder
		writeRelaxed(t, &b, top)

		want := fmt.Sprintf("p%d", rapid.IntRange(0, n).Draw(t, "lookup")) // p<n> has no entry
		got, err := Parse([]byte(b.String()), "gen.json", want)
		if err != nil {
			t.Fatalf("Parse: %v\n%s", err, b.String())
		}

		// Reference lookup: the first level in the chain that has the key.
		var chain []map[string]any
		var chainNames []string
		for name, ok := want, true; ok; {
			level, found := m.profiles[name]
			if !found {
				break
			}
			chain = append(chain, level)
			chainNames = append(chainNames, name)
			name, ok = level["parent"].(string)
		}
		chain = append(chain, m.global)
		lookup := func(key string) any {
			for _, level := range chain {
				if v, ok := level[key]; ok {
					return v
				}
			}
			return nil
		}
		exp := Profile{Name: want, Source: "gen.json", Chain: chainNames}
		if v, ok := lookup("secret").(string); ok {
			exp.HasSecret = true
			exp.Secret = []byte{}
			for _, r := range v {
				exp.Secret = append(exp.Secret, byte(r))
			}
		}
		if v, ok := lookup("nodeid").(string); ok {
			exp.NodeID = v
		}
		if v, ok := lookup("binds").([]string); ok {
			exp.Binds = v
		}
		if v, ok := lookup("seeds").([]string); ok {
			exp.Seeds = v
		}
		if v, ok := lookup("auth_offer").([]string); ok {
			exp.AuthOffer = v
		}
		if v, ok := lookup("monitor_timeout").(float64); ok {
			exp.MonitorTimeout = time.Duration(v*1000+0.5) * time.Millisecond
		}
		if !reflect.DeepEqual(*got, exp) {
			t.Fatalf("got  %+v\nwant %+v\nfile:\n%s", *got, exp, b.String())
		}
	})
}
