package wire

import (
	"errors"
	"math"
	"reflect"
	"testing"

	"pgregory.net/rapid"
)

// genValue draws a normalised value nested at most depth levels.
func genValue(t *rapid.T, depth int) any {
	kinds := 9
	if depth <= 0 {
		kinds = 7
	}
	switch rapid.IntRange(0, kinds-1).Draw(t, "kind") {
	case 0:
		return nil
	case 1:
		return rapid.Bool().Draw(t, "bool")
	case 2:
		return rapid.Int64().Draw(t, "int")
	case 3:
		if rapid.Bool().Draw(t, "big") {
			return rapid.Uint64Min(1<<63).Draw(t, "uint")
		}
		return rapid.Float64().Draw(t, "float")
	case 4:
		return rapid.String().Draw(t, "string")
	case 5:
		return rapid.SliceOfN(rapid.Byte(), 0, 40).Draw(t, "bytes")
	case 6:
		return rapid.SampledFrom([]string{"", "snd", "kil1", "AnyEvent::MP::DataConn::_expect", "A#p"}).Draw(t, "tag")
	case 7:
		n := rapid.IntRange(0, 5).Draw(t, "len")
		l := make([]any, n)
		for i := range l {
			l[i] = genValue(t, depth-1)
		}
		return l
	default:
		n := rapid.IntRange(0, 4).Draw(t, "len")
		m := make(map[string]any, n)
		for range n {
			m[rapid.String().Draw(t, "key")] = genValue(t, depth-1)
		}
		return m
	}
}

// jsonModel is what a value becomes after a JSON round trip.
func jsonModel(v any) any {
	switch x := v.(type) {
	case []byte:
		r := make([]rune, len(x))
		for i, c := range x {
			r[i] = rune(c)
		}
		return string(r)
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1<<53 {
			return int64(x)
		}
		return x
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = jsonModel(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = jsonModel(e)
		}
		return out
	}
	return v
}

func TestCodecPropertyRoundTrip(t *testing.T) {
	for _, name := range CodecNames() {
		t.Run(name, func(t *testing.T) {
			c := mustCodec(t, name)
			rapid.Check(t, func(rt *rapid.T) {
				n := rapid.IntRange(1, 4).Draw(rt, "messages")
				var want []Message
				var stream []byte
				for range n {
					m := Message{rapid.String().Draw(rt, "port")}
					for range rapid.IntRange(0, 4).Draw(rt, "args") {
						m = append(m, genValue(rt, 3))
					}
					var err error
					if stream, err = c.AppendMessage(stream, m); err != nil {
						rt.Fatalf("encode %#v: %v", m, err)
					}
					if name == "json" {
						stream = append(stream, rapid.SampledFrom([]string{"", " ", "\n", "\r\n", "\t "}).Draw(rt, "ws")...)
						m = jsonModel(m).([]any)
					}
					want = append(want, m)
				}
				d := c.NewDecoder(0)
				var got []Message
				rest := stream
				for steps := 0; len(rest) > 0 && steps <= len(stream); steps++ {
					k := min(len(rest), rapid.IntRange(1, 17).Draw(rt, "chunk"))
					if err := d.Feed(rest[:k]); err != nil {
						rt.Fatalf("feed: %v", err)
					}
					rest = rest[k:]
					for range n + 1 {
						m, ok, err := d.Next()
						if err != nil {
							rt.Fatalf("next: %v", err)
						}
						if !ok {
							break
						}
						got = append(got, m)
					}
				}
				if !reflect.DeepEqual(got, want) {
					rt.Fatalf("round trip\n got %#v\nwant %#v", got, want)
				}
			})
		})
	}
}

// TestCodecPropertyGarbage feeds random bytes (sometimes a valid prefix)
// and checks that decoders never panic, only return typed errors, and
// keep their buffers bounded.
func TestCodecPropertyGarbage(t *testing.T) {
	for _, name := range CodecNames() {
		t.Run(name, func(t *testing.T) {
			c := mustCodec(t, name)
			rapid.Check(t, func(rt *rapid.T) {
				const limit = 256
				var data []byte
				if rapid.Bool().Draw(rt, "valid prefix") {
					data, _ = c.AppendMessage(nil, Message{"p", int64(1), "x"})
				}
				if name == "json" && rapid.Bool().Draw(rt, "jsonish") {
					data = append(data, rapid.SliceOfN(rapid.SampledFrom([]byte(`[]{}",:\ 0123456789.-+eEtrufalsn`)), 0, 400).Draw(rt, "tokens")...)
				} else {
					data = append(data, rapid.SliceOfN(rapid.Byte(), 0, 400).Draw(rt, "bytes")...)
				}
				d := c.NewDecoder(limit)
				var sticky error
				for len(data) > 0 {
					k := min(len(data), rapid.IntRange(1, 64).Draw(rt, "chunk"))
					err := d.Feed(data[:k])
					data = data[k:]
					for range 400 {
						_, ok, nerr := d.Next()
						if nerr != nil {
							err = nerr
						}
						if !ok {
							break
						}
					}
					if err != nil {
						if !errors.Is(err, ErrFrameMalformed) && !errors.Is(err, ErrFrameTooLarge) {
							rt.Fatalf("untyped error %v", err)
						}
						var fe *FrameError
						if !errors.As(err, &fe) || fe.Codec != name {
							rt.Fatalf("error %v is not a *FrameError of %s", err, name)
						}
						sticky = err
						break
					}
				}
				if sticky != nil {
					if err := d.Feed([]byte("[]")); err == nil {
						rt.Fatalf("error %v was not sticky", sticky)
					}
				}
			})
		})
	}
}
