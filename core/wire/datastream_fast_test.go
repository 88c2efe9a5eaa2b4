package wire

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
)

// TestDataStreamFastPath: for headers whose values are all strings, the
// fast encoder writes exactly the msgpack codec's bytes (at every length
// boundary of the str and array headers), and the parser gives what the
// codec gives, value for value and error for error, on those encodings
// and on truncated or corrupted copies of them; other values take the
// codec.
func TestDataStreamFastPath(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 1))
	lengths := []int{1, 2, 31, 32, 33, 255, 256, 257, 4096}
	str := func(l int) string {
		if r.IntN(4) == 0 {
			return strings.Repeat("é", l/2) + strings.Repeat("x", l%2)
		}
		b := make([]byte, l)
		for i := range b {
			b[i] = byte('a' + r.IntN(26))
		}
		return string(b)
	}
	var headers []DataStreamHeader
	for _, l := range lengths {
		headers = append(headers, DataStreamHeader{From: str(l), To: "b", InitFunc: "f"})
	}
	for _, n := range []int{0, 1, 12, 13, 14, 200} {
		h := DataStreamHeader{From: "a", To: "b", InitFunc: "f"}
		for range n {
			h.InitData = append(h.InitData, str(lengths[r.IntN(len(lengths)-1)]))
		}
		headers = append(headers, h)
	}
	headers = append(headers, DataStreamHeader{From: "a", To: "b", InitFunc: "f", InitData: []any{strings.Repeat("y", 0x10000)}})
	compare := func(what string, body []byte) {
		t.Helper()
		got, gerr := ParseDataStreamBody(body)
		want, werr := parseDataStreamBodyCodec(body)
		if (gerr == nil) != (werr == nil) || (gerr != nil && gerr.Error() != werr.Error()) || !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: parsed %+v, %v; the codec parsed %+v, %v", what, got, gerr, want, werr)
		}
	}
	for i, h := range headers {
		fast, ok := appendStringArray(nil, h)
		if !ok {
			t.Fatalf("header %d: no fast path for strings", i)
		}
		msg := append(Message{h.From, h.To, h.InitFunc}, h.InitData...)
		codec, err := msgpackCodec{}.AppendMessage(nil, msg)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(fast, codec) {
			t.Fatalf("header %d: fast encoding %x, codec %x", i, fast[:min(len(fast), 16)], codec[:min(len(codec), 16)])
		}
		compare(fmt.Sprintf("header %d", i), codec)
		for range 50 {
			bad := bytes.Clone(codec)
			switch r.IntN(3) {
			case 0:
				bad = bad[:r.IntN(len(bad))]
			case 1:
				bad[r.IntN(len(bad))] = byte(r.IntN(256))
			default:
				bad = append(bad, byte(r.IntN(256)))
			}
			compare(fmt.Sprintf("header %d corrupted", i), bad)
		}
	}
	// Empty fields are the codec's error too.
	for _, h := range []DataStreamHeader{{From: "", To: "b", InitFunc: "f"}, {From: "a", To: "", InitFunc: "f"}, {From: "a", To: "b", InitFunc: "\xff"}} {
		body, _ := appendStringArray(nil, h)
		compare(fmt.Sprintf("%q", h), body)
	}
	// Other values take the codec.
	if _, ok := appendStringArray(nil, DataStreamHeader{From: "a", To: "b", InitFunc: "f", InitData: []any{int64(1)}}); ok {
		t.Fatal("fast path took an integer")
	}
}
