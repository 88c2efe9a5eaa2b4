package wire

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestDataStreamHeaderRoundTrip(t *testing.T) {
	h := DataStreamHeader{From: "a", To: "b", InitFunc: "f", InitData: []any{int64(-3), "x", []any{true}}}
	b, err := AppendDataStreamHeader([]byte("keep"), h)
	if err != nil {
		t.Fatal(err)
	}
	if string(b[:4]) != "keep" || b[4] != DataStreamMagic || b[5] != DataStreamVersion {
		t.Fatalf("encoded %x", b)
	}
	got, n, err := ParseDataStreamHeader(b[4:])
	if err != nil || n != len(b)-4 {
		t.Fatalf("parse: %v, %d of %d", err, n, len(b)-4)
	}
	if got.From != "a" || got.To != "b" || got.InitFunc != "f" || len(got.InitData) != 3 || got.InitData[0] != int64(-3) {
		t.Fatalf("got %+v", got)
	}
	// Too large: the caller takes the handshake path.
	if _, err := AppendDataStreamHeader(nil, DataStreamHeader{From: "a", To: "b", InitFunc: "f", InitData: []any{strings.Repeat("x", MaxDataStreamHeader)}}); !errors.Is(err, ErrDataStreamHeader) {
		t.Fatalf("oversized header: %v", err)
	}
	if _, err := AppendDataStreamHeader(nil, DataStreamHeader{From: "", To: "b", InitFunc: "f"}); !errors.Is(err, ErrDataStreamHeader) {
		t.Fatalf("empty from: %v", err)
	}
	// Trailing bytes inside the declared body.
	bad := append([]byte(nil), b[4:]...)
	bad = append(bad, 0x01)
	bad[3]++
	if _, _, err := ParseDataStreamHeader(bad); !errors.Is(err, ErrDataStreamHeader) {
		t.Fatalf("trailing data: %v", err)
	}
}

func TestDataStreamRefusal(t *testing.T) {
	msg := strings.Repeat("é", MaxDataStreamReason) // 2 bytes a rune
	b := AppendDataStreamRefusal(nil, msg)
	n, err := ParseDataStreamRefusalLen(b[1:3])
	if err != nil || n != len(b)-3 || n > MaxDataStreamReason {
		t.Fatalf("length %d, %v", n, err)
	}
	if !utf8.Valid(b[3:]) {
		t.Fatal("truncation split a rune")
	}
	if _, err := ParseDataStreamRefusalLen([]byte{0xff, 0xff}); !errors.Is(err, ErrDataStreamHeader) {
		t.Fatalf("oversized refusal: %v", err)
	}
}
