package wire

import (
	"bytes"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
)

func mustCodec(t testing.TB, name string) Codec {
	t.Helper()
	c, ok := CodecByName(name)
	if !ok {
		t.Fatalf("CodecByName(%q) not found", name)
	}
	if c.Name() != name {
		t.Fatalf("CodecByName(%q).Name() = %q", name, c.Name())
	}
	return c
}

// decodeAll feeds data in chunks of the given size (<= 0: all at once),
// collecting every message.
func decodeAll(t testing.TB, d FrameDecoder, data []byte, chunk int) ([]Message, error) {
	t.Helper()
	if chunk <= 0 {
		chunk = len(data) + 1
	}
	var out []Message
	total := len(data)
	drain := func() error {
		for range total + 2 {
			m, ok, err := d.Next()
			if err != nil {
				return err
			}
			if !ok {
				return nil
			}
			out = append(out, m)
		}
		t.Fatalf("decoder returned more messages than bytes")
		return nil
	}
	for len(data) > 0 {
		n := min(chunk, len(data))
		ferr := d.Feed(data[:n])
		data = data[n:]
		if err := drain(); err != nil {
			return out, err
		}
		if ferr != nil {
			return out, ferr
		}
	}
	return out, nil
}

func typicalMessage() Message {
	return Message{"", "AnyEvent::MP::DataConn::_expect", "id", "node#port", 5, "pkg::fn", "data", 42}
}

func TestCodecNames(t *testing.T) {
	if got := CodecNames(); !reflect.DeepEqual(got, []string{"msgpack", "json"}) {
		t.Fatalf("CodecNames() = %q", got)
	}
	for _, n := range CodecNames() {
		mustCodec(t, n)
	}
	for _, n := range []string{"", "cbor", "storable", "JSON"} {
		if c, ok := CodecByName(n); ok || c != nil {
			t.Errorf("CodecByName(%q) = %v, %v; want nil, false", n, c, ok)
		}
	}
}

func TestCodecTypicalMessage(t *testing.T) {
	want := Message{"", "AnyEvent::MP::DataConn::_expect", "id", "node#port", int64(5), "pkg::fn", "data", int64(42)}
	for _, name := range CodecNames() {
		t.Run(name, func(t *testing.T) {
			c := mustCodec(t, name)
			prefix := []byte("keep")
			b, err := c.AppendMessage(prefix, typicalMessage())
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasPrefix(b, []byte("keep")) {
				t.Fatalf("AppendMessage lost dst prefix: %q", b)
			}
			b = b[4:]
			if name == "json" {
				const perl = `["","AnyEvent::MP::DataConn::_expect","id","node#port",5,"pkg::fn","data",42]`
				if string(b) != perl {
					t.Fatalf("json encoding = %s, want %s", b, perl)
				}
			}
			for _, chunk := range []int{0, 1, 2, 7} {
				got, err := decodeAll(t, c.NewDecoder(0), b, chunk)
				if err != nil {
					t.Fatalf("chunk %d: %v", chunk, err)
				}
				if len(got) != 1 || !reflect.DeepEqual(got[0], want) {
					t.Fatalf("chunk %d: decoded %#v, want %#v", chunk, got, want)
				}
			}
			// ExpectMsg with a float timeout produces the same JSON as Perl.
			e, err := c.AppendMessage(nil, ExpectMsg("b@A", "A#uANrxNUKib", 3, "main::receiver", "hello", 42))
			if err != nil {
				t.Fatal(err)
			}
			if name == "json" {
				const perl = `["","AnyEvent::MP::DataConn::_expect","b@A","A#uANrxNUKib",3,"main::receiver","hello",42]`
				if string(e) != perl {
					t.Fatalf("json ExpectMsg = %s, want %s", e, perl)
				}
			}
		})
	}
}

func TestCodecSeveralMessagesOneChunk(t *testing.T) {
	msgs := []Message{
		{"", "g_slave", map[string]any{"'l": map[string]any{"A": []any{"127.0.0.1:17002"}}}},
		{"p"},
		{},
		{"port", nil, true, false, int64(-1), 1.25, []any{}, map[string]any{}},
	}
	for _, name := range CodecNames() {
		t.Run(name, func(t *testing.T) {
			c := mustCodec(t, name)
			var b []byte
			for i, m := range msgs {
				var err error
				if b, err = c.AppendMessage(b, m); err != nil {
					t.Fatal(err)
				}
				if name == "json" && i%2 == 0 {
					b = append(b, " \r\n\t"...)
				}
			}
			for _, chunk := range []int{0, 1, 3, 64} {
				got, err := decodeAll(t, c.NewDecoder(0), b, chunk)
				if err != nil {
					t.Fatalf("chunk %d: %v", chunk, err)
				}
				if !reflect.DeepEqual(got, msgs) {
					t.Fatalf("chunk %d: got %#v\nwant %#v", chunk, got, msgs)
				}
			}
		})
	}
}

func TestCodecNilMessageEncodesEmptyArray(t *testing.T) {
	for _, name := range CodecNames() {
		b, err := mustCodec(t, name).AppendMessage(nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeAll(t, mustCodec(t, name).NewDecoder(0), b, 0)
		if err != nil || len(got) != 1 || got[0] == nil || len(got[0]) != 0 {
			t.Fatalf("%s: nil message decoded as %#v, %v", name, got, err)
		}
	}
}

func frameErrOf(t *testing.T, err error, rule error, codec string) {
	t.Helper()
	if !errors.Is(err, rule) {
		t.Fatalf("error %v is not %v", err, rule)
	}
	var fe *FrameError
	if !errors.As(err, &fe) || fe.Codec != codec || fe.Rule != rule {
		t.Fatalf("error %v is not a *FrameError{%v, %s}", err, rule, codec)
	}
	if !strings.Contains(err.Error(), rule.Error()) {
		t.Fatalf("error text %q does not name the rule %q", err, rule)
	}
}

func TestMsgpackHugeHeaderFailsAtOnce(t *testing.T) {
	cases := map[string][]byte{
		"str32 1GiB":    {0x92, 0xa0, 0xdb, 0x40, 0x00, 0x00, 0x00},
		"bin32 4GiB":    {0x91, 0xc6, 0xff, 0xff, 0xff, 0xff},
		"array32 4G":    {0xdd, 0xff, 0xff, 0xff, 0xff},
		"map32 nested":  {0x91, 0xdf, 0x7f, 0xff, 0xff, 0xff},
		"array16 > max": {0x91, 0xdc, 0x04, 0x01},
	}
	for name, b := range cases {
		t.Run(name, func(t *testing.T) {
			d := mustCodec(t, "msgpack").NewDecoder(1024)
			_, err := decodeAll(t, d, b, 1)
			frameErrOf(t, err, ErrFrameTooLarge, "msgpack")
			if c := cap(d.(*msgpackDecoder).buf); c > 64 {
				t.Fatalf("decoder buffered %d bytes for a rejected header", c)
			}
			// Sticky.
			if err2 := d.Feed([]byte{0x90}); !errors.Is(err2, ErrFrameTooLarge) {
				t.Fatalf("second Feed: %v", err2)
			}
			if _, ok, err2 := d.Next(); ok || !errors.Is(err2, ErrFrameTooLarge) {
				t.Fatalf("Next after error: %v %v", ok, err2)
			}
		})
	}
}

func TestCodecMaxFrameBoundary(t *testing.T) {
	for _, name := range CodecNames() {
		t.Run(name, func(t *testing.T) {
			c := mustCodec(t, name)
			small, err := c.AppendMessage(nil, Message{"p", strings.Repeat("x", 300)})
			if err != nil {
				t.Fatal(err)
			}
			limit := len(small)
			got, err := decodeAll(t, c.NewDecoder(limit), append(append([]byte{}, small...), small...), 5)
			if err != nil || len(got) != 2 {
				t.Fatalf("message of exactly maxFrame bytes: %d messages, %v", len(got), err)
			}
			big, err := c.AppendMessage(nil, Message{"p", strings.Repeat("x", 301)})
			if err != nil {
				t.Fatal(err)
			}
			got, err = decodeAll(t, c.NewDecoder(limit), append(append([]byte{}, small...), big...), 5)
			frameErrOf(t, err, ErrFrameTooLarge, name)
			if len(got) != 1 {
				t.Fatalf("the message before the oversized one was not delivered: %d", len(got))
			}
		})
	}
}

func TestJSONUnterminatedTooLarge(t *testing.T) {
	const limit = 4096
	d := mustCodec(t, "json").NewDecoder(limit)
	chunk := []byte(strings.Repeat("ab", 256))
	fed := 0
	var err error
	for i := 0; i < 64 && err == nil; i++ {
		if i == 0 {
			err = d.Feed([]byte(`["`))
			fed += 2
		}
		if err == nil {
			err = d.Feed(chunk)
			fed += len(chunk)
		}
		if c := cap(d.(*jsonDecoder).buf); c > 2*limit+len(chunk) {
			t.Fatalf("buffered %d bytes with a %d limit", c, limit)
		}
	}
	frameErrOf(t, err, ErrFrameTooLarge, "json")
	if fed > limit+len(chunk) {
		t.Fatalf("error only after %d bytes", fed)
	}
}

func TestDefaultMaxFrame(t *testing.T) {
	d := mustCodec(t, "msgpack").NewDecoder(0).(*msgpackDecoder)
	if d.maxFrame != DefaultMaxFrame {
		t.Fatalf("maxFrame %d", d.maxFrame)
	}
	// One byte over the default limit is refused from the header.
	n := DefaultMaxFrame
	err := d.Feed([]byte{0x91, 0xc6, byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)})
	frameErrOf(t, err, ErrFrameTooLarge, "msgpack")
	j := mustCodec(t, "json").NewDecoder(-5).(*jsonDecoder)
	if j.maxFrame != DefaultMaxFrame {
		t.Fatalf("json maxFrame %d", j.maxFrame)
	}
}

func nested(open, close string, n int) string {
	return strings.Repeat(open, n) + strings.Repeat(close, n)
}

func TestJSONMalformed(t *testing.T) {
	cases := []string{
		`{"a":1}`, `5`, `"x"`, `null`, `[1,,2]`, `[1}`, `[tru]`, `[1 2]`,
		"[\"a\x01\"]", `[@]`, `[1e999]`, `["\x"]`, `[1]x`, `[-]`, `[01]`,
		nested("[", "]", CodecMaxDepth+1), `[` + nested("{\"a\":", "}", CodecMaxDepth) + `]`,
		"\xef\xbb\xbf[1]",
	}
	for _, in := range cases {
		for _, chunk := range []int{0, 1} {
			got, err := decodeAll(t, mustCodec(t, "json").NewDecoder(0), []byte(in), chunk)
			if err == nil {
				t.Fatalf("%q (chunk %d): decoded %#v, want an error", in, chunk, got)
			}
			frameErrOf(t, err, ErrFrameMalformed, "json")
		}
	}
	// Deep but allowed.
	ok := nested("[", "]", CodecMaxDepth)
	if got, err := decodeAll(t, mustCodec(t, "json").NewDecoder(0), []byte(ok), 1); err != nil || len(got) != 1 {
		t.Fatalf("depth %d: %v", CodecMaxDepth, err)
	}
}

func TestMalformedAfterGoodMessages(t *testing.T) {
	for name, in := range map[string][]byte{
		"json":    []byte(`[1] [2]}`),
		"msgpack": {0x91, 0x01, 0x91, 0x02, 0x01},
	} {
		d := mustCodec(t, name).NewDecoder(0)
		got, err := decodeAll(t, d, in, 0)
		frameErrOf(t, err, ErrFrameMalformed, name)
		want := []Message{{int64(1)}, {int64(2)}}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: messages before the error: %#v", name, got)
		}
		if err2 := d.Feed([]byte("[3]")); !errors.Is(err2, ErrFrameMalformed) {
			t.Fatalf("%s: error not sticky: %v", name, err2)
		}
	}
}

func TestMsgpackMalformed(t *testing.T) {
	deep := append(bytes.Repeat([]byte{0x91}, CodecMaxDepth+1), 0x90)
	cases := map[string][]byte{
		"top-level int": {0x01},
		"top-level map": {0x80},
		"top-level nil": {0xc0},
		"0xc1":          {0x91, 0xc1},
		"fixext":        {0x91, 0xd4, 0x01, 0x02},
		"ext8":          {0x91, 0xc7, 0x01, 0x05, 0x00},
		"timestamp":     {0x91, 0xd6, 0xff, 0, 0, 0, 0},
		"deep":          deep,
		"array map key": {0x91, 0x81, 0x90, 0x01},
		"float map key": {0x91, 0x81, 0xcb, 0, 0, 0, 0, 0, 0, 0, 0, 0x01},
	}
	for name, in := range cases {
		for _, chunk := range []int{0, 1} {
			got, err := decodeAll(t, mustCodec(t, "msgpack").NewDecoder(0), in, chunk)
			if err == nil {
				t.Fatalf("%s (chunk %d): decoded %#v, want an error", name, chunk, got)
			}
			frameErrOf(t, err, ErrFrameMalformed, "msgpack")
		}
	}
	okDeep := append(bytes.Repeat([]byte{0x91}, CodecMaxDepth-1), 0x90)
	if got, err := decodeAll(t, mustCodec(t, "msgpack").NewDecoder(0), okDeep, 1); err != nil || len(got) != 1 {
		t.Fatalf("depth %d: %v", CodecMaxDepth, err)
	}
}

func TestCodecUnencodable(t *testing.T) {
	type S struct{ A int }
	deep := any("x")
	for range CodecMaxDepth {
		deep = []any{deep}
	}
	common := []any{S{1}, make(chan int), &S{}, func() {}, deep, map[int]any{1: 2}}
	for _, name := range CodecNames() {
		c := mustCodec(t, name)
		bad := common
		if name == "json" {
			bad = append(append([]any{}, common...), math.NaN(), math.Inf(-1), "\xff", map[string]any{"\xfe": 1}, float32(math.Inf(1)))
		}
		for _, v := range bad {
			dst := []byte("pre")
			out, err := c.AppendMessage(dst, Message{"p", v})
			frameErrOf(t, err, ErrFrameUnencodable, name)
			if string(out) != "pre" {
				t.Fatalf("%s: failed AppendMessage returned %q, want dst unchanged", name, out)
			}
		}
	}
}

func TestJSONBytesAreLatin1(t *testing.T) {
	c := mustCodec(t, "json")
	b, err := c.AppendMessage(nil, Message{"p", []byte{0x00, '"', '\\', '\n', 0x7f, 0x80, 0xe9, 0xff}, "é\u2028"})
	if err != nil {
		t.Fatal(err)
	}
	const want = "[\"p\",\"\\u0000\\\"\\\\\\n\x7f\u0080\u00e9\u00ff\",\"é\u2028\"]"
	if string(b) != want {
		t.Fatalf("got %q\nwant %q", b, want)
	}
	got, err := decodeAll(t, c.NewDecoder(0), b, 1)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, []Message{{"p", "\x00\"\\\n\x7f\u0080\u00e9\u00ff", "é\u2028"}}) {
		t.Fatalf("decoded %#v", got)
	}
}

func TestJSONNumbers(t *testing.T) {
	in := `[9223372036854775807,9223372036854775808,-9223372036854775808,18446744073709551616,1.5,1e3,-0,"3",-17]`
	got, err := decodeAll(t, mustCodec(t, "json").NewDecoder(0), []byte(in), 0)
	if err != nil {
		t.Fatal(err)
	}
	want := Message{int64(math.MaxInt64), uint64(1 << 63), int64(math.MinInt64), float64(1 << 64), 1.5, 1000.0, int64(0), "3", int64(-17)}
	if len(got) != 1 || !reflect.DeepEqual(got[0], want) {
		t.Fatalf("got %#v\nwant %#v", got, want)
	}
	// Encoding: integral floats as integers, others shortest.
	b, err := mustCodec(t, "json").AppendMessage(nil, Message{5.0, -2.0, 0.1, 1e21, float32(0.5), uint64(math.MaxUint64), int8(-3)})
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != `[5,-2,0.1,1e+21,0.5,18446744073709551615,-3]` {
		t.Fatalf("json numbers encoded as %s", b)
	}
}

func TestMsgpackNormalisation(t *testing.T) {
	c := mustCodec(t, "msgpack")
	b, err := c.AppendMessage(nil, Message{
		int8(-5), int16(300), int32(-70000), uint8(200), uint16(60000), uint32(1 << 31), uint64(1 << 63), uint64(7),
		float32(1.5), 2.0, []byte{1, 2}, []string{"a"}, map[string]string{"k": "v"}, map[string][]string{"l": {"x"}}, int(9),
	})
	if err != nil {
		t.Fatal(err)
	}
	want := Message{
		int64(-5), int64(300), int64(-70000), int64(200), int64(60000), int64(1 << 31), uint64(1 << 63), int64(7),
		1.5, 2.0, []byte{1, 2}, []any{"a"}, map[string]any{"k": "v"}, map[string]any{"l": []any{"x"}}, int64(9),
	}
	got, err := decodeAll(t, c.NewDecoder(0), b, 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || !reflect.DeepEqual(got[0], want) {
		t.Fatalf("got %#v\nwant %#v", got, want)
	}
	// Foreign maps: integer and bin keys become strings; nil map is nil.
	foreign := []byte{0x93, 0x82, 0x05, 0xa1, 'a', 0xc4, 0x01, 'b', 0x02, 0xc0, 0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	got, err = decodeAll(t, c.NewDecoder(0), foreign, 1)
	if err != nil {
		t.Fatal(err)
	}
	want = Message{map[string]any{"5": "a", "b": int64(2)}, nil, uint64(math.MaxUint64)}
	if len(got) != 1 || !reflect.DeepEqual(got[0], want) {
		t.Fatalf("got %#v\nwant %#v", got, want)
	}
}

func TestDecodedValuesDoNotAliasBuffer(t *testing.T) {
	for _, name := range CodecNames() {
		c := mustCodec(t, name)
		d := c.NewDecoder(0)
		first, _ := c.AppendMessage(nil, Message{"p", []byte("AAAAAAAA"), "BBBBBBBB"})
		if err := d.Feed(first); err != nil {
			t.Fatal(err)
		}
		m1, ok, err := d.Next()
		if !ok || err != nil {
			t.Fatal(ok, err)
		}
		// What the message decodes to from a buffer nobody touches: a
		// decoded string aliasing the buffer would change with it, so
		// comparing with a copy of m1's own values could not fail.
		want := decodeOne(t, c, bytes.Clone(first))
		second, _ := c.AppendMessage(nil, Message{"q", []byte("ZZZZZZZZZZZZ"), "YYYYYYYYYYYY"})
		for i := range first { // the caller reuses its read buffer
			first[i] = 'X'
		}
		for i := range second {
			if err := d.Feed(second[i : i+1]); err != nil {
				t.Fatal(err)
			}
			if _, _, err := d.Next(); err != nil {
				t.Fatal(err)
			}
		}
		if !reflect.DeepEqual(m1, want) {
			t.Fatalf("%s: first message changed to %#v, want %#v", name, m1, want)
		}
	}
}

// decodeOne decodes the single message in b with a fresh decoder.
func decodeOne(t *testing.T, c Codec, b []byte) Message {
	t.Helper()
	d := c.NewDecoder(0)
	if err := d.Feed(b); err != nil {
		t.Fatal(err)
	}
	m, ok, err := d.Next()
	if !ok || err != nil {
		t.Fatal(ok, err)
	}
	return m
}

func TestDecoderMemoryReleased(t *testing.T) {
	for _, name := range CodecNames() {
		c := mustCodec(t, name)
		d := c.NewDecoder(0)
		big, _ := c.AppendMessage(nil, Message{"p", strings.Repeat("x", 3<<20)})
		got, err := decodeAll(t, d, big, 64<<10)
		if err != nil || len(got) != 1 {
			t.Fatal(len(got), err)
		}
		small, _ := c.AppendMessage(nil, Message{"p"})
		got, err = decodeAll(t, d, small, 0)
		if err != nil || len(got) != 1 {
			t.Fatal(len(got), err)
		}
		var capNow int
		switch dd := d.(type) {
		case *jsonDecoder:
			capNow = cap(dd.buf)
		case *msgpackDecoder:
			capNow = cap(dd.buf)
		}
		if capNow > frameShrinkCap {
			t.Fatalf("%s: idle decoder keeps a %d-byte buffer", name, capNow)
		}
	}
}

func TestFrameErrorText(t *testing.T) {
	e := &FrameError{Rule: ErrFrameMalformed, Codec: "json"}
	if e.Error() != "json: malformed frame" {
		t.Fatalf("%q", e.Error())
	}
	e.Detail = "x"
	if e.Error() != "json: malformed frame: x" {
		t.Fatalf("%q", e.Error())
	}
}
