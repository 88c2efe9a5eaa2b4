package fuzz

import (
	"errors"
	"testing"

	"github.com/aemp-go/dataconn/core/wire"
)

// TestDecoderNextErrorIsSticky pins a bug found by FuzzJSONDecoder (seed
// `["",1e999]["\ud800"]`): when Next fails to decode a complete frame
// (here a number out of range, or a msgpack map key of a bad type), the
// frames queued after it are still returned by later Next calls, although
// wire.FrameDecoder promises that errors are sticky ("after them Next
// returns the sticky error"). A reader that logs and continues instead of
// dropping the connection would go on dispatching messages from a stream
// it already declared malformed.
func TestDecoderNextErrorIsSticky(t *testing.T) {
	cases := []struct {
		codec string
		data  []byte
	}{
		{"json", []byte(`[1e999][1]`)},
		// fixarray(1){ fixmap(1){ fixmap(0): nil } } then fixarray(1){1}
		{"msgpack", []byte{0x91, 0x81, 0x80, 0xc0, 0x91, 0x01}},
	}
	for _, c := range cases {
		t.Run(c.codec, func(t *testing.T) {
			codec, _ := wire.CodecByName(c.codec)
			dec := codec.NewDecoder(0)
			if err := dec.Feed(c.data); err != nil {
				t.Fatalf("Feed: %v (the frames are well delimited)", err)
			}
			_, ok, err := dec.Next()
			if ok || !errors.Is(err, wire.ErrFrameMalformed) {
				t.Fatalf("first Next: ok=%v err=%v, want ErrFrameMalformed", ok, err)
			}
			msg, ok, err2 := dec.Next()
			if ok || err2 == nil {
				t.Fatalf("second Next returned ok=%v msg=%v err=%v after the error %v; want the sticky error", ok, msg, err2, err)
			}
			if err := dec.Feed([]byte("[]")); err == nil {
				t.Fatalf("Feed after the error succeeded; want the sticky error")
			}
		})
	}
}
