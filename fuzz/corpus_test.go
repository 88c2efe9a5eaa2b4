package fuzz

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/aemp-go/dataconn/core/wire"
)

var updateCorpus = flag.Bool("update-corpus", false, "rewrite the seed corpus files in testdata/fuzz from ../testdata")

// corpusFile renders values in the go test fuzz v1 corpus format.
func corpusFile(vals ...any) []byte {
	var b bytes.Buffer
	b.WriteString("go test fuzz v1\n")
	for _, v := range vals {
		switch x := v.(type) {
		case []byte:
			fmt.Fprintf(&b, "[]byte(%q)\n", x)
		case string:
			fmt.Fprintf(&b, "string(%q)\n", x)
		case uint8:
			fmt.Fprintf(&b, "uint8(%d)\n", x)
		case uint16:
			fmt.Fprintf(&b, "uint16(%d)\n", x)
		}
	}
	return b.Bytes()
}

// transcriptLine is one line of a Perl wire transcript.
type transcriptLine struct{ kind, payload string }

// readTranscripts returns the lines of every transcript, grouped by file
// and direction ("file A(1)->B(2)"), in order.
func readTranscripts(t *testing.T) (map[string][]transcriptLine, []string) {
	t.Helper()
	files, err := filepath.Glob("../testdata/transcripts/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no transcripts: %v", err)
	}
	out := map[string][]transcriptLine{}
	var keys []string
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(bytes.NewReader(data))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			_, rest, ok := strings.Cut(sc.Text(), "] ")
			if !ok || !strings.HasPrefix(sc.Text(), "[") {
				continue
			}
			f := strings.Fields(rest)
			if len(f) < 3 {
				continue
			}
			_, payload, _ := strings.Cut(strings.TrimPrefix(strings.TrimLeft(rest, " "), f[0]), f[1])
			key := filepath.Base(file) + " " + f[0]
			if _, seen := out[key]; !seen {
				keys = append(keys, key)
			}
			out[key] = append(out[key], transcriptLine{kind: f[1], payload: strings.TrimLeft(payload, " ")})
		}
	}
	return out, keys
}

type seedVectors struct {
	Parsed []struct {
		Raw        string `json:"raw"`
		RGreeting1 string `json:"rgreeting1"`
		RGreeting2 string `json:"rgreeting2"`
	} `json:"parsed"`
	Produced []struct {
		LGreeting1 string `json:"lgreeting1"`
	} `json:"produced"`
}

type authVector struct {
	Secret     string `json:"secret"`
	SecretHex  string `json:"secret_hex"`
	L1         string `json:"lgreeting1"`
	L2         string `json:"lgreeting2"`
	R1         string `json:"rgreeting1"`
	R2         string `json:"rgreeting2"`
	RAuthHMAC  string `json:"rauth_hmac_sha3_512"`
	RAuthTLS   string `json:"rauth_tls_sha3_512"`
	Cleartext  string `json:"cleartext_auth"`
	LAuthLineH string `json:"auth_line_hmac"`
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// seedCorpus builds the seed corpus of every target from the Perl vectors
// and transcripts in ../testdata: target -> file name -> contents.
func seedCorpus(t *testing.T) map[string]map[string][]byte {
	out := map[string]map[string][]byte{}
	add := func(target string, vals ...any) {
		if out[target] == nil {
			out[target] = map[string][]byte{}
		}
		body := corpusFile(vals...)
		sum := sha256.Sum256(body)
		out[target][fmt.Sprintf("seed-%x", sum[:8])] = body
	}

	var gv seedVectors
	readJSON(t, "../testdata/vectors/greetings.json", &gv)
	var lines []string
	for _, p := range gv.Parsed {
		lines = append(lines, strings.TrimRight(p.Raw, "\r\n"), p.RGreeting1)
	}
	for _, p := range gv.Produced {
		lines = append(lines, p.LGreeting1)
	}
	tr, keys := readTranscripts(t)
	for _, k := range keys {
		for _, l := range tr[k] {
			if l.kind == "GREETING1" {
				lines = append(lines, l.payload)
			}
		}
	}
	for _, l := range lines {
		if l == "" {
			continue
		}
		add("FuzzParseGreeting", l)
		g := wire.ParseGreeting(l)
		var kvs []string
		for _, kv := range g.KV {
			if kv.NoValue {
				kvs = append(kvs, kv.Key)
			} else {
				kvs = append(kvs, kv.Key+"="+kv.Value)
			}
		}
		add("FuzzGreetingRoundTrip", g.Protocol, g.Version, g.NodeID,
			strings.Join(g.Auths, "|"), strings.Join(g.Framings, "|"), strings.Join(kvs, "\n"))
	}

	var av []authVector
	readJSON(t, "../testdata/vectors/auth.json", &av)
	for _, a := range av {
		sec := []byte(a.Secret)
		// mode 0: the method comes from the input; 0x20: TLS active.
		add("FuzzVerifyAuth", uint8(0), wire.AuthHMAC, a.RAuthHMAC, sec, a.L1, a.L2, a.R1, a.R2, uint16(0))
		add("FuzzVerifyAuth", uint8(0x20), wire.AuthTLS, a.RAuthTLS, sec, a.L1, a.L2, a.R1, a.R2, uint16(0))
		add("FuzzVerifyAuth", uint8(0), wire.AuthCleartext, a.Cleartext, sec, a.L1, a.L2, a.R1, a.R2, uint16(0))
		add("FuzzVerifyAuth", uint8(0x51), "", "", sec, a.L1, a.L2, a.R1, a.R2, uint16(0x2a07))
		// The local side's view of a Perl peer's handshake lines.
		peer := a.R1 + "\n" + a.R2 + "\n" + strings.Replace(a.LAuthLineH, ";cbor", ";json", 1) + "\n"
		add("FuzzHandshake", uint8(0), sec, []byte(peer), []byte{}, uint16(0), uint8(0), uint8(0))
		add("FuzzHandshake", uint8(0), sec, []byte(peer), []byte{9, 40, 0}, uint16(0), uint8(0), uint8(1))
	}

	jsonCodec, _ := wire.CodecByName("json")
	mpCodec, _ := wire.CodecByName("msgpack")
	for _, k := range keys {
		var hs, js, mp []byte
		for _, l := range tr[k] {
			switch l.kind {
			case "GREETING1", "NONCE", "AUTH":
				hs = append(hs, l.payload+"\n"...)
			case "JSON":
				dec := jsonCodec.NewDecoder(0)
				if dec.Feed([]byte(l.payload)) != nil {
					continue
				}
				msg, ok, err := dec.Next()
				if !ok || err != nil {
					continue
				}
				js = append(js, l.payload...)
				if b, err := mpCodec.AppendMessage(nil, msg); err == nil {
					mp = append(mp, b...)
					add("FuzzParseNodeMsg", b)
				}
			}
		}
		if len(hs) > 0 {
			add("FuzzHandshake", uint8(0), []byte("s3cr3t"), hs, []byte{}, uint16(0), uint8(0), uint8(0))
			add("FuzzHandshake", uint8(0x08), []byte("s3cr3t"), hs, []byte{0, 7, 255}, uint16(0), uint8(0), uint8(2))
		}
		if len(js) > 0 {
			add("FuzzJSONDecoder", js, []byte{}, uint16(0))
			add("FuzzJSONDecoder", js, []byte{0, 1, 2, 3}, uint16(64))
		}
		if len(mp) > 0 {
			add("FuzzMsgpackDecoder", mp, []byte{}, uint16(0))
			add("FuzzMsgpackDecoder", mp, []byte{0, 1, 2, 3}, uint16(64))
			add("FuzzParseNodeMsg", mp)
		}
	}
	// The rendezvous target reads rapid's choices from its input:
	// deterministic pseudo-random seeds of a few lengths.
	h := sha256.Sum256([]byte("rendezvous"))
	for i := range 8 {
		var b []byte
		for len(b) < 64<<(i%4) {
			h = sha256.Sum256(h[:])
			b = append(b, h[:]...)
		}
		add("FuzzRendezvous", b)
	}
	return out
}

// TestSeedCorpus checks that testdata/fuzz holds the seed corpus derived
// from the Perl vectors and transcripts (run with -update-corpus to
// rewrite it after they change). Crashers found by fuzzing live beside
// the seed-* files and are left alone.
func TestSeedCorpus(t *testing.T) {
	corpus := seedCorpus(t)
	targets := make([]string, 0, len(corpus))
	for tg := range corpus {
		targets = append(targets, tg)
	}
	sort.Strings(targets)
	for _, tg := range targets {
		dir := filepath.Join("testdata", "fuzz", tg)
		if *updateCorpus {
			old, _ := filepath.Glob(filepath.Join(dir, "seed-*"))
			for _, f := range old {
				os.Remove(f)
			}
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		for name, body := range corpus[tg] {
			p := filepath.Join(dir, name)
			if *updateCorpus {
				if err := os.WriteFile(p, body, 0o644); err != nil {
					t.Fatal(err)
				}
				continue
			}
			got, err := os.ReadFile(p)
			if err != nil || !bytes.Equal(got, body) {
				t.Errorf("%s missing or stale (run go test ./fuzz -run TestSeedCorpus -update-corpus)", p)
			}
		}
		t.Logf("%s: %d seeds", tg, len(corpus[tg]))
	}
	if len(corpus) < 8 {
		t.Errorf("seed corpus covers %d targets, want all 8", len(corpus))
	}
}
