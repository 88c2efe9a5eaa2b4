package fuzz

import (
	"errors"
	"testing"

	"github.com/aemp-go/dataconn/core/wire"
)

// decodeAll feeds data to a fresh decoder of codec in chunks and returns
// the messages and the first error. It checks the decoder contract: errors
// are *wire.FrameError naming ErrFrameTooLarge or ErrFrameMalformed, and
// they are sticky.
func decodeAll(t *testing.T, codec wire.Codec, limit int, data []byte, ch *chunker) ([]wire.Message, error) {
	t.Helper()
	dec := codec.NewDecoder(limit)
	var msgs []wire.Message
	var first error
	check := func(err error) {
		var fe *wire.FrameError
		if !errors.As(err, &fe) || !(errors.Is(err, wire.ErrFrameTooLarge) || errors.Is(err, wire.ErrFrameMalformed)) {
			t.Fatalf("%s decoder: untyped or unexpected error %T %v", codec.Name(), err, err)
		}
		if fe.Codec != codec.Name() || fe.Error() == "" {
			t.Fatalf("%s decoder: error %q names codec %q", codec.Name(), fe.Error(), fe.Codec)
		}
		if first == nil {
			first = err
		}
	}
	for len(data) > 0 {
		n := ch.next(len(data))
		if err := dec.Feed(data[:n]); err != nil {
			check(err)
		}
		data = data[n:]
		// Messages complete before an error are still returned.
		for guard := 0; ; guard++ {
			if guard > len(data)+n+1 {
				t.Fatalf("%s decoder: Next returned more messages than bytes", codec.Name())
			}
			msg, ok, err := dec.Next()
			if err != nil {
				check(err)
				break
			}
			if !ok {
				break
			}
			msgs = append(msgs, msg)
		}
		if first != nil {
			break
		}
	}
	if first != nil {
		// Sticky: later Feeds fail with the same rule.
		err := dec.Feed([]byte{0x91, 0xc0, '[', ']'})
		if err == nil || err.Error() != first.Error() {
			// Feed may report the error of the frame Next rejected.
			if err == nil || !(errors.Is(err, wire.ErrFrameTooLarge) || errors.Is(err, wire.ErrFrameMalformed)) {
				t.Fatalf("%s decoder: error not sticky: first %v, then %v", codec.Name(), first, err)
			}
		}
		if _, ok, _ := dec.Next(); ok {
			t.Fatalf("%s decoder: message after a sticky error", codec.Name())
		}
	}
	return msgs, first
}

// fuzzCodec checks one framing decoder: arbitrary frames in arbitrary
// chunks give typed errors only; every decoded message re-encodes, and the
// encoding decodes to the same value; chunking never changes the result.
func fuzzCodec(t *testing.T, name string, data, chunks []byte, limitIn uint16) {
	codec, ok := wire.CodecByName(name)
	if !ok {
		t.Fatalf("no codec %q", name)
	}
	limit := int(limitIn)
	if limit == 0 {
		limit = 1 << 20
	}
	msgs, err := decodeAll(t, codec, limit, data, &chunker{sizes: chunks})
	whole, werr := decodeAll(t, codec, limit, data, &chunker{})
	if (err == nil) != (werr == nil) || len(msgs) != len(whole) {
		t.Fatalf("%s: chunked gives %d messages, err %v; whole gives %d, err %v", name, len(msgs), err, len(whole), werr)
	}
	for i := range msgs {
		if !valueEqual(msgs[i], whole[i]) {
			t.Fatalf("%s: message %d differs with chunking: %#v vs %#v", name, i, msgs[i], whole[i])
		}
	}
	for _, m := range msgs {
		enc, err := codec.AppendMessage(nil, m)
		if err != nil {
			t.Fatalf("%s: decoded message %#v does not re-encode: %v", name, m, err)
		}
		again, derr := decodeAll(t, codec, 0, enc, &chunker{sizes: chunks})
		if derr != nil || len(again) != 1 {
			t.Fatalf("%s: re-encoded message %#v decodes to %d messages, err %v", name, m, len(again), derr)
		}
		if !jsonEqual(m, again[0]) || name == "msgpack" && !valueEqual(m, again[0]) {
			t.Fatalf("%s: round trip changed %#v into %#v", name, m, again[0])
		}
		// What came back is a fixed point.
		enc2, err := codec.AppendMessage(nil, again[0])
		if err != nil {
			t.Fatalf("%s: %#v does not re-encode: %v", name, again[0], err)
		}
		third, derr := decodeAll(t, codec, 0, enc2, &chunker{})
		if derr != nil || len(third) != 1 || !valueEqual(third[0], again[0]) {
			t.Fatalf("%s: second round trip changed %#v into %#v (err %v)", name, again[0], third, derr)
		}
	}
}

// FuzzMsgpackDecoder fuzzes the msgpack framing decoder.
func FuzzMsgpackDecoder(f *testing.F) {
	codec, _ := wire.CodecByName("msgpack")
	for _, m := range seedMessages() {
		b, err := codec.AppendMessage(nil, m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, []byte{}, uint16(0))
		f.Add(append(b, b...), []byte{1, 2, 3}, uint16(8))
	}
	f.Add([]byte{0xdd, 0xff, 0xff, 0xff, 0xff}, []byte{0}, uint16(100))
	f.Fuzz(func(t *testing.T, data, chunks []byte, limit uint16) {
		fuzzCodec(t, "msgpack", data, chunks, limit)
	})
}

// FuzzJSONDecoder fuzzes the json framing decoder.
func FuzzJSONDecoder(f *testing.F) {
	codec, _ := wire.CodecByName("json")
	for _, m := range seedMessages() {
		b, err := codec.AppendMessage(nil, m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, []byte{}, uint16(0))
		f.Add(append(b, b...), []byte{1, 2, 3}, uint16(8))
	}
	f.Add([]byte(`["",1e999]["\ud800"] [[[[`), []byte{0}, uint16(100))
	f.Fuzz(func(t *testing.T, data, chunks []byte, limit uint16) {
		fuzzCodec(t, "json", data, chunks, limit)
	})
}

// seedMessages are typical node-port and data messages.
func seedMessages() []wire.Message {
	return []wire.Message{
		wire.ExpectMsg("b@A", "A#wS2gCZFTCb", 4, "main::receiver", "hello", int64(42)),
		wire.SndMsg("A#tmp"),
		wire.KillMsg("p", wire.KillReasonDataConn, "B: unable to establish connection within 5 seconds"),
		wire.ConnectMsg("x@A", "A"),
		wire.GSlaveMsg("G", []string{"127.0.0.1:17003"}),
		wire.GFoundMsg("B", nil),
		{"port", 1.5, -7, true, nil, []byte{0, 0xff}, map[string]any{"k": []any{"v", int64(1)}}},
	}
}
