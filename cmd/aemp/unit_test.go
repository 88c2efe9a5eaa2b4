package main

import (
	"errors"
	"io"
	"net"
	"reflect"
	"testing"
)

func netListen() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") }

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"8MiB", 8 << 20, true},
		{"256MiB", 256 << 20, true},
		{"1GiB", 1 << 30, true},
		{"1gib", 1 << 30, true},
		{"12345", 12345, true},
		{"100B", 100, true},
		{"1.5KiB", 1536, true},
		{"2M", 2 << 20, true},
		{"3MB", 3_000_000, true},
		{"1kB", 1000, true},
		{"0", 0, true},
		{"", 0, false},
		{"MiB", 0, false},
		{"12XB", 0, false},
		{"1.1B", 0, false},
		{"-5", 0, false},
		{"1e3", 0, false},
		{"99999999TiB", 0, false},
	} {
		got, err := parseSize(tc.in)
		if tc.ok && (err != nil || got != tc.want) {
			t.Errorf("parseSize(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
		if !tc.ok && err == nil {
			t.Errorf("parseSize(%q) = %d, want an error", tc.in, got)
		}
	}
}

func TestCheckName(t *testing.T) {
	for _, good := range []string{"a", "file.bin", "..hidden", "a..b", "x y", "ünïcode"} {
		if got, err := checkName([]any{good}); err != nil || got != good {
			t.Errorf("checkName(%q) = %q, %v", good, got, err)
		}
	}
	if got, err := checkName([]any{[]byte("raw")}); err != nil || got != "raw" {
		t.Errorf("byte-string name: %q, %v", got, err)
	}
	for _, bad := range [][]any{
		nil, {""}, {".."}, {"."}, {"../x"}, {"/etc/x"}, {"a/b"}, {`a\b`}, {`..\x`}, {"a\x00b"},
		{"line\nbreak"}, {42}, {nil}, {".aemp-part-x"}, {string(make([]byte, 300))},
	} {
		if got, err := checkName(bad); err == nil || !errors.Is(err, errBadName) {
			t.Errorf("checkName(%q) = %q, %v; want errBadName", bad, got, err)
		}
	}
}

func TestNormalizeAddr(t *testing.T) {
	for _, tc := range []struct {
		in   string
		bind bool
		want string
	}{
		{"127.0.0.1:4040", false, "127.0.0.1:4040"},
		{"tcp://127.0.0.1:4040", false, "127.0.0.1:4040"},
		{"quic://127.0.0.1:4040", false, "quic://127.0.0.1:4040"},
		{"example.org", false, "example.org:4040"},
		{"[::1]:5", false, "[::1]:5"},
		{"::1", false, "[::1]:4040"},
		{"*:*", true, ":0"},
		{"127.0.0.1:*", true, "127.0.0.1:0"},
		{"quic://127.0.0.1:0", true, "quic://127.0.0.1:0"},
	} {
		got, err := normalizeAddr(tc.in, tc.bind)
		if err != nil || got != tc.want {
			t.Errorf("normalizeAddr(%q, %v) = %q, %v; want %q", tc.in, tc.bind, got, err, tc.want)
		}
	}
	for _, tc := range []struct {
		in   string
		bind bool
	}{
		{"udp://1.2.3.4:5", false}, {"", false}, {"tcp://", false}, {"host:", false},
		{"host:99999", false}, {"127.0.0.1:0", false}, {":5", false}, {"*:*", false},
	} {
		if got, err := normalizeAddr(tc.in, tc.bind); err == nil {
			t.Errorf("normalizeAddr(%q, %v) = %q, want an error", tc.in, tc.bind, got)
		}
	}
}

func TestSplitTarget(t *testing.T) {
	for _, tc := range []struct{ in, node, addr string }{
		{"n1", "n1", ""},
		{"n1@127.0.0.1:4040", "n1", "127.0.0.1:4040"},
		{"user@host", "user@host", ""},
		{"a@b@quic://127.0.0.1:9", "a@b", "quic://127.0.0.1:9"},
		{"@127.0.0.1:1", "", "127.0.0.1:1"},
	} {
		n, a, err := splitTarget(tc.in)
		if err != nil || n != tc.node || a != tc.addr {
			t.Errorf("splitTarget(%q) = %q, %q, %v; want %q, %q", tc.in, n, a, err, tc.node, tc.addr)
		}
	}
}

func TestParseInitData(t *testing.T) {
	got, err := parseInitData(`["f", 1, 2.5, [3], {"k": 4}, null, true]`)
	want := []any{"f", int64(1), 2.5, []any{int64(3)}, map[string]any{"k": int64(4)}, nil, true}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("parseInitData = %#v, %v; want %#v", got, err, want)
	}
	for _, bad := range []string{`{}`, `"x"`, `null`, `[1] [2]`, `[`} {
		if v, err := parseInitData(bad); err == nil {
			t.Errorf("parseInitData(%q) = %v, want an error", bad, v)
		}
	}
}

func TestTidyError(t *testing.T) {
	for in, want := range map[string]string{
		"n: n: refused":      "n: refused",
		"n: n: n: x":         "n: x",
		"n: m: x":            "n: m: x",
		"plain":              "plain",
		"a: b":               "a: b",
		"ghost: ghost: dial": "ghost: dial",
	} {
		if got := tidyError(errors.New(in)); got != want {
			t.Errorf("tidyError(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestDemoDataStampsBlocks(t *testing.T) {
	g, err := newDemoData(3*demoBlock + 7)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(g)
	if err != nil || len(b) != 3*demoBlock+7 {
		t.Fatalf("read %d bytes, %v", len(b), err)
	}
	for i := 0; i < 4; i++ {
		if b[i*demoBlock] != byte(i) {
			t.Errorf("block %d starts with %d", i, b[i*demoBlock])
		}
	}
	if string(b[8:demoBlock]) != string(b[demoBlock+8:2*demoBlock]) {
		t.Error("blocks differ beyond their stamp")
	}
}
