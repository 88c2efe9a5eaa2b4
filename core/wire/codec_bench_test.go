package wire

import "testing"

// BenchmarkCodec encodes and decodes the typical control message.
func BenchmarkCodec(b *testing.B) {
	for _, name := range CodecNames() {
		b.Run(name, func(b *testing.B) {
			c := mustCodec(b, name)
			msg := typicalMessage()
			d := c.NewDecoder(0)
			var buf []byte
			b.ReportAllocs()
			first, err := c.AppendMessage(nil, msg)
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(first)))
			for b.Loop() {
				buf, err = c.AppendMessage(buf[:0], msg)
				if err != nil {
					b.Fatal(err)
				}
				if err := d.Feed(buf); err != nil {
					b.Fatal(err)
				}
				m, ok, err := d.Next()
				if !ok || err != nil || len(m) != len(msg) {
					b.Fatal(ok, err, m)
				}
			}
		})
	}
}
