package memnet

import (
	"io"
	"testing"
	"time"
)

// benchStream measures one-way throughput of a stream: b.N writes of size
// bytes from one end, read by the other.
func benchStream(b *testing.B, size int, opts ...Option) {
	w := New(1, opts...)
	defer w.Close()
	c, s, l := pair(b, w.Host("a"), w.Host("b"), "1")
	defer l.Close()
	defer c.Close()
	defer s.Close()
	b.SetBytes(int64(size))
	b.ReportAllocs()
	done := make(chan error, 1)
	go func() {
		n, err := io.CopyBuffer(io.Discard, io.LimitReader(s, int64(b.N)*int64(size)), make([]byte, 64<<10))
		if err == nil && n != int64(b.N)*int64(size) {
			err = io.ErrUnexpectedEOF
		}
		done <- err
	}()
	buf := make([]byte, size)
	b.ResetTimer()
	for range b.N {
		if _, err := c.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
}

// BenchmarkStream is the zero-latency throughput with tracing off.
func BenchmarkStream(b *testing.B) {
	b.Run("32KiB", func(b *testing.B) { benchStream(b, 32<<10, WithTrace(0)) })
	b.Run("1KiB", func(b *testing.B) { benchStream(b, 1<<10, WithTrace(0)) })
	b.Run("32KiB-traced", func(b *testing.B) { benchStream(b, 32<<10) })
	b.Run("32KiB-latency100us", func(b *testing.B) {
		benchStream(b, 32<<10, WithTrace(0), WithDefaultLink(LinkConfig{Latency: 100 * time.Microsecond}))
	})
}
