package wire

import (
	"bufio"
	"encoding/hex"
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParseNodeMsgTags(t *testing.T) {
	b := func(s string) []byte { return []byte(s) }
	cases := []struct {
		name string
		args []any
		want NodeMsg
	}{
		{"empty", nil, NodeMsgKeepalive{}},
		{"empty tag", []any{""}, NodeMsgKeepalive{}},
		{"null tag", []any{nil, 1}, NodeMsgKeepalive{}},
		{"devnull", []any{"devnull", 1, 2}, NodeMsgKeepalive{}},
		{"devnull bytes", []any{b("devnull")}, NodeMsgKeepalive{}},
		{"snd echo", []any{"snd", "A#p"}, NodeMsgSnd{Port: "A#p", Data: []any{}}},
		{"snd data", []any{b("snd"), b("A#p"), "x", int64(1)}, NodeMsgSnd{Port: "A#p", Data: []any{"x", int64(1)}}},
		{"kil1", []any{"kil1", "p", "AnyEvent::MP::DataConn", "msg"}, NodeMsgKill{Port: "p", Reason: []any{"AnyEvent::MP::DataConn", "msg"}}},
		{"kil", []any{"kil", b("p")}, NodeMsgKill{Port: "p", Reason: []any{}}},
		{"expect", []any{"AnyEvent::MP::DataConn::_expect", "b@A", "A#p", int64(5), "main::receiver", "hello", int64(42)},
			NodeMsgExpect{ID: "b@A", Port: "A#p", Timeout: 5, InitFunc: "main::receiver", InitData: []any{"hello", int64(42)}}},
		{"expect string numbers", []any{b("AnyEvent::MP::DataConn::_expect"), b("b@A"), b("A#p"), b("3"), b("f")},
			NodeMsgExpect{ID: "b@A", Port: "A#p", Timeout: 3, InitFunc: "f", InitData: []any{}}},
		{"expect float string", []any{"AnyEvent::MP::DataConn::_expect", "i", "A#p", " 2.5", "f"},
			NodeMsgExpect{ID: "i", Port: "A#p", Timeout: 2.5, InitFunc: "f", InitData: []any{}}},
		{"expect uint64 timeout", []any{"AnyEvent::MP::DataConn::_expect", "i", "A#p", uint64(7), "f"},
			NodeMsgExpect{ID: "i", Port: "A#p", Timeout: 7, InitFunc: "f", InitData: []any{}}},
		{"connect", []any{"AnyEvent::MP::DataConn::_connect", "b@A", b("A")}, NodeMsgConnect{ID: "b@A", Node: "A"}},
		{"connect extra", []any{"AnyEvent::MP::DataConn::_connect", "b@A", "A", "x"}, NodeMsgConnect{ID: "b@A", Node: "A"}},
		{"g_slave bare", []any{"g_slave"}, NodeMsgGSlave{}},
		{"g_slave", []any{"g_slave", map[string]any{"'l": map[string]any{"A": []any{"127.0.0.1:17002", b("[::1]:4040")}, "B": nil}, "'g": map[string]any{"A": nil}}},
			NodeMsgGSlave{Listeners: map[string][]string{"A": {"127.0.0.1:17002", "[::1]:4040"}, "B": nil}}},
		{"g_slave no listener family", []any{"g_slave", map[string]any{"'g": map[string]any{}}}, NodeMsgGSlave{}},
		{"g_find", []any{"g_find", b("B")}, NodeMsgGFind{Node: "B"}},
		{"g_found", []any{"g_found", "B", []any{b("127.0.0.1:17001")}}, NodeMsgGFound{Node: "B", Addrs: []string{"127.0.0.1:17001"}, Found: true}},
		{"g_found empty", []any{"g_found", "B", []any{}}, NodeMsgGFound{Node: "B", Addrs: []string{}, Found: true}},
		{"g_found null", []any{"g_found", "B", nil}, NodeMsgGFound{Node: "B"}},
		{"g_found missing", []any{"g_found", "B"}, NodeMsgGFound{Node: "B"}},
		{"call", []any{"main::fn", 1, "x"}, NodeMsgCall{Func: "main::fn", Args: []any{1, "x"}}},
		{"call bytes", []any{b("My::Pkg::f")}, NodeMsgCall{Func: "My::Pkg::f", Args: []any{}}},
	}
	for _, tag := range []string{"mon0", "mon1", "kil0", "g_global", "g_set", "g_upd", "g_mon1", "g_chg1", "g_chg2", "g_whatever", "can", "eval", "time", "AnyEvent::MP::_spawn"} {
		cases = append(cases, struct {
			name string
			args []any
			want NodeMsg
		}{"ignored " + tag, []any{[]byte(tag), "x"}, NodeMsgIgnored{Tag: tag}})
	}
	for _, c := range cases {
		got, err := ParseNodeMsg(c.args)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: got %#v\nwant %#v", c.name, got, c.want)
		}
	}
}

func TestParseNodeMsgMalformed(t *testing.T) {
	const ex = "AnyEvent::MP::DataConn::_expect"
	cases := []struct {
		args []any
		tag  string
		rule string
	}{
		{[]any{int64(5)}, "5", "tag"},
		{[]any{[]any{}}, "[]", "tag"},
		{[]any{"snd"}, "snd", "missing port id"},
		{[]any{"snd", int64(1)}, "snd", "port id"},
		{[]any{"kil1"}, "kil1", "missing port name"},
		{[]any{"kil", nil}, "kil", "port name"},
		{[]any{ex, "i", "A#p", "abc", "f"}, ex, "timeout"},
		{[]any{ex, "i", "A#p", "0x10", "f"}, ex, "timeout"},
		{[]any{ex, "i", "A#p", -1.0, "f"}, ex, "timeout"},
		{[]any{ex, "i", "A#p", math.NaN(), "f"}, ex, "timeout"},
		{[]any{ex, "i", "A#p", math.Inf(1), "f"}, ex, "timeout"},
		{[]any{ex, "i", "A#p", 3}, ex, "missing init function"},
		{[]any{ex, "i", "A#p"}, ex, "missing timeout"},
		{[]any{ex, "i"}, ex, "missing port id"},
		{[]any{ex, "i", "A#p", 3, int64(4)}, ex, "init function"},
		{[]any{"AnyEvent::MP::DataConn::_connect", "i"}, "AnyEvent::MP::DataConn::_connect", "missing node id"},
		{[]any{"AnyEvent::MP::DataConn::_connect", true, "A"}, "AnyEvent::MP::DataConn::_connect", "id"},
		{[]any{"g_slave", "x"}, "g_slave", "not a map"},
		{[]any{"g_slave", map[string]any{"'l": []any{}}}, "g_slave", "not a map"},
		{[]any{"g_slave", map[string]any{"'l": map[string]any{"A": "host:1"}}}, "g_slave", "not a list"},
		{[]any{"g_slave", map[string]any{"'l": map[string]any{"A": []any{1}}}}, "g_slave", "not a string"},
		{[]any{"g_find"}, "g_find", "missing node id"},
		{[]any{"g_found", "B", "127.0.0.1:1"}, "g_found", "not a list"},
		{[]any{"g_found", nil, nil}, "g_found", "node id"},
	}
	for _, c := range cases {
		got, err := ParseNodeMsg(c.args)
		if err == nil {
			t.Errorf("%#v: parsed as %#v, want an error", c.args, got)
			continue
		}
		if got != nil {
			t.Errorf("%#v: returned %#v with the error", c.args, got)
		}
		var ne *NodeMsgError
		if !errors.Is(err, ErrNodeMsgMalformed) || !errors.As(err, &ne) {
			t.Errorf("%#v: error %v is not a *NodeMsgError", c.args, err)
			continue
		}
		if ne.Tag != c.tag || !strings.Contains(ne.Rule, c.rule) {
			t.Errorf("%#v: error %+v, want tag %q and rule mentioning %q", c.args, ne, c.tag, c.rule)
		}
		if !strings.Contains(err.Error(), ErrNodeMsgMalformed.Error()) || !strings.Contains(err.Error(), ne.Rule) {
			t.Errorf("error text %q does not name the rule", err)
		}
	}
}

func TestNodeMsgBuildersRoundTrip(t *testing.T) {
	cases := []struct {
		msg  Message
		want NodeMsg
	}{
		{SndMsg("A#p"), NodeMsgSnd{Port: "A#p", Data: []any{}}},
		{SndMsg("A#p", "x", int64(2)), NodeMsgSnd{Port: "A#p", Data: []any{"x", int64(2)}}},
		{KillMsg("p", "AnyEvent::MP::DataConn", "B: no listeners found"), NodeMsgKill{Port: "p", Reason: []any{"AnyEvent::MP::DataConn", "B: no listeners found"}}},
		{ExpectMsg("id", "A#p", 5, "pkg::fn", "data", int64(42)), NodeMsgExpect{ID: "id", Port: "A#p", Timeout: 5, InitFunc: "pkg::fn", InitData: []any{"data", int64(42)}}},
		{ExpectMsg("id", "A#p", 0.25, "pkg::fn"), NodeMsgExpect{ID: "id", Port: "A#p", Timeout: 0.25, InitFunc: "pkg::fn", InitData: []any{}}},
		{ConnectMsg("b@A", "A"), NodeMsgConnect{ID: "b@A", Node: "A"}},
		{GSlaveMsg("A", []string{"127.0.0.1:1", "[::1]:2"}), NodeMsgGSlave{Listeners: map[string][]string{"A": {"127.0.0.1:1", "[::1]:2"}}}},
		{GSlaveMsg("A", []string{}), NodeMsgGSlave{Listeners: map[string][]string{"A": {}}}},
		{GFindMsg("B"), NodeMsgGFind{Node: "B"}},
		{GFoundMsg("B", []string{"h:1"}), NodeMsgGFound{Node: "B", Addrs: []string{"h:1"}, Found: true}},
		{GFoundMsg("B", nil), NodeMsgGFound{Node: "B"}},
	}
	for _, c := range cases {
		if c.msg[0] != "" {
			t.Fatalf("%#v: not addressed to the node port", c.msg)
		}
		for _, name := range CodecNames() {
			codec := mustCodec(t, name)
			b, err := codec.AppendMessage(nil, c.msg)
			if err != nil {
				t.Fatalf("%s %#v: %v", name, c.msg, err)
			}
			got, err := decodeAll(t, codec.NewDecoder(0), b, 0)
			if err != nil || len(got) != 1 {
				t.Fatalf("%s %#v: %v", name, c.msg, err)
			}
			nm, err := ParseNodeMsg(got[0][1:])
			if err != nil {
				t.Fatalf("%s %#v: %v", name, c.msg, err)
			}
			if !reflect.DeepEqual(nm, c.want) {
				t.Errorf("%s: %#v parsed as %#v, want %#v", name, c.msg, nm, c.want)
			}
		}
	}
	// Byte for byte what the Perl node wrote in json_only.txt.
	for _, c := range []struct {
		msg  Message
		perl string
	}{
		{GFoundMsg("B", nil), `["","g_found","B",null]`},
		{GFoundMsg("B", []string{"127.0.0.1:17001"}), `["","g_found","B",["127.0.0.1:17001"]]`},
		{GFindMsg("B"), `["","g_find","B"]`},
		{SndMsg("A#uANrxNUKic"), `["","snd","A#uANrxNUKic"]`},
	} {
		if b, err := mustCodec(t, "json").AppendMessage(nil, c.msg); err != nil || string(b) != c.perl {
			t.Errorf("json %s, %v; want %s", b, err, c.perl)
		}
	}
	if b, _ := mustCodec(t, "json").AppendMessage(nil, GSlaveMsg("A", []string{"127.0.0.1:17002"})); string(b) != `["","g_slave",{"'l":{"A":["127.0.0.1:17002"]}}]` {
		t.Errorf("GSlaveMsg json = %s", b)
	}
}

func TestValueHelpers(t *testing.T) {
	strs := []struct {
		v  any
		s  string
		ok bool
	}{{"a", "a", true}, {[]byte("b"), "b", true}, {nil, "", false}, {1, "", false}, {[]any{"a"}, "", false}}
	for _, c := range strs {
		if s, ok := AsString(c.v); s != c.s || ok != c.ok {
			t.Errorf("AsString(%#v) = %q, %v", c.v, s, ok)
		}
	}
	floats := []struct {
		v  any
		f  float64
		ok bool
	}{
		{int64(-3), -3, true}, {uint64(3), 3, true}, {int(1), 1, true}, {int8(-1), -1, true}, {int16(2), 2, true},
		{int32(4), 4, true}, {uint(5), 5, true}, {uint8(6), 6, true}, {uint16(7), 7, true}, {uint32(8), 8, true},
		{float32(0.5), 0.5, true}, {1.25, 1.25, true}, {"3", 3, true}, {[]byte("-2.5e1"), -25, true}, {" 4\n", 4, true},
		{"", 0, false}, {"abc", 0, false}, {"0x10", 0, false}, {"1_0", 0, false}, {"inf", 0, false}, {"NaN", 0, false},
		{nil, 0, false}, {true, 0, false}, {strings.Repeat("1", 65), 0, false},
	}
	for _, c := range floats {
		if f, ok := AsFloat(c.v); f != c.f || ok != c.ok {
			t.Errorf("AsFloat(%#v) = %v, %v", c.v, f, ok)
		}
	}
	ints := []struct {
		v  any
		i  int64
		ok bool
	}{
		{int64(-3), -3, true}, {uint64(math.MaxInt64), math.MaxInt64, true}, {uint64(math.MaxInt64 + 1), 0, false},
		{uint(9), 9, true}, {int8(-1), -1, true}, {int16(2), 2, true}, {int32(4), 4, true}, {int(1), 1, true},
		{uint8(6), 6, true}, {uint16(7), 7, true}, {uint32(8), 8, true},
		{3.0, 3, true}, {3.5, 0, false}, {float32(2), 2, true}, {1e19, 0, false}, {math.NaN(), 0, false},
		{"42", 42, true}, {[]byte("-7"), -7, true}, {"5.0", 5, true}, {"5.5", 0, false}, {"9223372036854775807", math.MaxInt64, true},
		{"x", 0, false}, {nil, 0, false},
	}
	for _, c := range ints {
		if i, ok := AsInt(c.v); i != c.i || ok != c.ok {
			t.Errorf("AsInt(%#v) = %v, %v", c.v, i, ok)
		}
	}
}

// cborDecode is a minimal CBOR decoder for the definite-length messages in
// the Perl transcripts (test only).
func cborDecode(t *testing.T, b []byte) (any, []byte) {
	t.Helper()
	if len(b) == 0 {
		t.Fatal("cbor: truncated")
	}
	major, info := b[0]>>5, b[0]&0x1f
	b = b[1:]
	var arg uint64
	switch {
	case info < 24:
		arg = uint64(info)
	case info <= 27:
		n := 1 << (info - 24)
		if len(b) < n {
			t.Fatal("cbor: truncated argument")
		}
		for _, c := range b[:n] {
			arg = arg<<8 | uint64(c)
		}
		b = b[n:]
	default:
		t.Fatalf("cbor: unsupported additional info %d", info)
	}
	switch major {
	case 0:
		return int64(arg), b
	case 1:
		return -1 - int64(arg), b
	case 2, 3:
		if uint64(len(b)) < arg {
			t.Fatal("cbor: truncated string")
		}
		s := append([]byte(nil), b[:arg]...)
		if major == 3 {
			return string(s), b[arg:]
		}
		return s, b[arg:]
	case 4:
		l := make([]any, 0, arg)
		for range arg {
			var v any
			v, b = cborDecode(t, b)
			l = append(l, v)
		}
		return l, b
	case 5:
		m := make(map[string]any, arg)
		for range arg {
			var k, v any
			k, b = cborDecode(t, b)
			v, b = cborDecode(t, b)
			ks, ok := AsString(k)
			if !ok {
				t.Fatalf("cbor: map key %#v", k)
			}
			m[ks] = v
		}
		return m, b
	case 7:
		switch {
		case info == 20:
			return false, b
		case info == 21:
			return true, b
		case info == 22 || info == 23:
			return nil, b
		case info == 26:
			return float64(math.Float32frombits(uint32(arg))), b
		case info == 27:
			return math.Float64frombits(arg), b
		}
	}
	t.Fatalf("cbor: unsupported major %d info %d", major, info)
	return nil, nil
}

type transcriptMsg struct {
	file, line string
	msg        Message
}

// readTranscripts returns every message recorded in testdata/transcripts:
// JSON lines are decoded through the json codec as one back-to-back
// stream per file, CBOR lines from their hex dump.
func readTranscripts(t *testing.T) []transcriptMsg {
	t.Helper()
	files, err := filepath.Glob("../../testdata/transcripts/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no transcripts: %v", err)
	}
	var out []transcriptMsg
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		var jsonStream []byte
		var jsonLines []string
		sc := bufio.NewScanner(fh)
		sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			fields := strings.Fields(line)
			if len(fields) < 5 || !strings.HasPrefix(line, "[") {
				continue
			}
			kind := fields[3]
			switch kind {
			case "JSON":
				jsonStream = append(jsonStream, strings.TrimSpace(line[strings.Index(line, " JSON ")+6:])...)
				jsonLines = append(jsonLines, line)
			case "CBOR":
				i := strings.LastIndex(line, "; hex ")
				if i < 0 {
					t.Fatalf("%s: CBOR line without hex: %s", f, line)
				}
				raw, err := hex.DecodeString(strings.TrimSpace(line[i+6:]))
				if err != nil {
					t.Fatal(err)
				}
				v, rest := cborDecode(t, raw)
				if len(rest) != 0 {
					t.Fatalf("%s: trailing CBOR bytes: %s", f, line)
				}
				out = append(out, transcriptMsg{filepath.Base(f), line, v.([]any)})
			}
		}
		fh.Close()
		if err := sc.Err(); err != nil {
			t.Fatal(err)
		}
		msgs, err := decodeAll(t, mustCodec(t, "json").NewDecoder(0), jsonStream, 0)
		if err != nil {
			t.Fatalf("%s: json stream: %v", f, err)
		}
		if len(msgs) != len(jsonLines) {
			t.Fatalf("%s: %d JSON lines gave %d messages", f, len(jsonLines), len(msgs))
		}
		for i, m := range msgs {
			out = append(out, transcriptMsg{filepath.Base(f), jsonLines[i], m})
		}
	}
	return out
}

func TestParseNodeMsgPerlTranscripts(t *testing.T) {
	msgs := readTranscripts(t)
	counts := map[string]int{}
	var expects []NodeMsgExpect
	var kills []NodeMsgKill
	var connects []NodeMsgConnect
	var founds []NodeMsgGFound
	var slaves []NodeMsgGSlave
	for _, tm := range msgs {
		if len(tm.msg) == 0 {
			t.Fatalf("%s: empty message: %s", tm.file, tm.line)
		}
		port, ok := AsString(tm.msg[0])
		if !ok {
			t.Fatalf("%s: port %#v", tm.file, tm.msg[0])
		}
		if port != "" {
			counts["port message"]++
			continue
		}
		nm, err := ParseNodeMsg(tm.msg[1:])
		if err != nil {
			t.Fatalf("%s: %v\n%s", tm.file, err, tm.line)
		}
		counts[reflect.TypeOf(nm).Name()]++
		switch m := nm.(type) {
		case NodeMsgExpect:
			expects = append(expects, m)
		case NodeMsgKill:
			kills = append(kills, m)
		case NodeMsgConnect:
			connects = append(connects, m)
		case NodeMsgGFound:
			founds = append(founds, m)
		case NodeMsgGSlave:
			slaves = append(slaves, m)
		case NodeMsgSnd:
			if !strings.Contains(m.Port, "#") || len(m.Data) != 0 {
				t.Errorf("%s: snd %+v is not an echo to a port id", tm.file, m)
			}
		case NodeMsgCall:
			t.Errorf("%s: unexpected function call %+v", tm.file, m)
		}
	}
	// Counted independently with grep: 36 CBOR and 12 JSON g_global/g_set/
	// g_upd, 4 CBOR and 3 JSON messages to ordinary ports.
	want := map[string]int{
		"NodeMsgExpect": 8, "NodeMsgSnd": 7, "NodeMsgKill": 2, "NodeMsgConnect": 1,
		"NodeMsgGFind": 5, "NodeMsgGFound": 5, "NodeMsgGSlave": 17, "NodeMsgIgnored": 48, "port message": 7,
	}
	if !reflect.DeepEqual(counts, want) {
		t.Errorf("message kinds %v\nwant %v", counts, want)
	}
	// The json_only transcript's _expect, numbers as JSON numbers; the CBOR
	// ones carry the timeout as a byte string "3".
	jsonExpect := NodeMsgExpect{ID: "b@A", Port: "A#uANrxNUKib", Timeout: 3, InitFunc: "main::receiver", InitData: []any{"hello", int64(42)}}
	cborExpect := NodeMsgExpect{ID: "b@A", Port: "A#pmm2T4pdCb", Timeout: 3, InitFunc: "main::receiver", InitData: []any{[]byte("hello"), int64(42)}}
	var sawJSON, sawCBOR bool
	for _, e := range expects {
		sawJSON = sawJSON || reflect.DeepEqual(e, jsonExpect)
		sawCBOR = sawCBOR || reflect.DeepEqual(e, cborExpect)
		if e.Timeout <= 0 || e.InitFunc == "" || !strings.Contains(e.ID, "@") {
			t.Errorf("odd expect %+v", e)
		}
	}
	if !sawJSON || !sawCBOR {
		t.Errorf("expects %+v lack %+v or %+v", expects, jsonExpect, cborExpect)
	}
	for _, k := range kills {
		r := KillReasonFromValues(k.Reason)
		if k.Port == "" || strings.Contains(k.Port, "#") || r.Family != KillReasonDataConn || r.Message != "" || len(r.Extra) != 0 {
			t.Errorf("kill %+v reason %+v", k, r)
		}
		if r.Error() != "AnyEvent::MP::DataConn: killed without a reason" {
			t.Errorf("kill reason text %q", r.Error())
		}
	}
	if len(connects) != 1 || connects[0] != (NodeMsgConnect{ID: "b@A", Node: "A"}) {
		t.Errorf("connects %+v", connects)
	}
	foundB := NodeMsgGFound{Node: "B", Addrs: []string{"127.0.0.1:17001"}, Found: true}
	n := 0
	for _, f := range founds {
		if reflect.DeepEqual(f, foundB) {
			n++
		}
		if !f.Found || len(f.Addrs) != 1 {
			t.Errorf("g_found %+v", f)
		}
	}
	if n == 0 {
		t.Errorf("g_found %+v lacks %+v", founds, foundB)
	}
	withListeners := 0
	for _, s := range slaves {
		if len(s.Listeners) == 0 {
			continue
		}
		withListeners++
		for node, addrs := range s.Listeners {
			if node == "" || len(addrs) > 0 && !strings.HasPrefix(addrs[0], "127.0.0.1:") {
				t.Errorf("g_slave listeners %+v", s.Listeners)
			}
		}
	}
	if withListeners == 0 {
		t.Error("no g_slave with listeners in the transcripts")
	}
}

// Compile-time check that every variant implements NodeMsg.
var _ = []NodeMsg{NodeMsgSnd{}, NodeMsgKill{}, NodeMsgKeepalive{}, NodeMsgExpect{}, NodeMsgConnect{},
	NodeMsgGSlave{}, NodeMsgGFind{}, NodeMsgGFound{}, NodeMsgCall{}, NodeMsgIgnored{}}
