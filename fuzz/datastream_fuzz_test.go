package fuzz

import (
	"bytes"
	"errors"
	"testing"

	"github.com/aemp-go/dataconn/core/wire"
)

// FuzzDataStreamHeader feeds arbitrary bytes to the direct data stream
// header parser (what a peer on an authenticated QUIC connection sends
// first on a new stream). It must never panic, must reject with an error
// naming the rule (wire.ErrDataStreamHeader), must not consume more than
// it was given, and what it accepts must re-encode to a header that parses
// to the same fields and encodes identically again.
func FuzzDataStreamHeader(f *testing.F) {
	for _, h := range []wire.DataStreamHeader{
		{From: "a", To: "b", InitFunc: "f"},
		{From: "node-1", To: "node-2", InitFunc: "pkg::serve", InitData: []any{int64(1), "x", []any{true, nil}, map[string]any{"k": 1.5}}},
	} {
		b, err := wire.AppendDataStreamHeader(nil, h)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{wire.DataStreamMagic, wire.DataStreamVersion, 0, 0})
	f.Add([]byte{wire.DataStreamMagic, wire.DataStreamVersion, 0xff, 0xff, 0x93})
	f.Add([]byte("aemp;1;x;hmac_sha3_512;json\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, n, err := wire.ParseDataStreamHeader(b)
		if err != nil {
			if !errors.Is(err, wire.ErrDataStreamHeader) {
				t.Fatalf("error %v does not wrap ErrDataStreamHeader", err)
			}
			return
		}
		if n < wire.DataStreamPrefixLen || n > len(b) || n > wire.MaxDataStreamHeader {
			t.Fatalf("consumed %d of %d bytes", n, len(b))
		}
		enc1, err := wire.AppendDataStreamHeader(nil, h)
		if err != nil {
			t.Fatalf("accepted header %+v does not encode: %v", h, err)
		}
		h2, n2, err := wire.ParseDataStreamHeader(enc1)
		if err != nil || n2 != len(enc1) {
			t.Fatalf("re-encoded header does not parse: %v (%d of %d)", err, n2, len(enc1))
		}
		if h2.From != h.From || h2.To != h.To || h2.InitFunc != h.InitFunc || len(h2.InitData) != len(h.InitData) {
			t.Fatalf("round trip changed the header: %+v -> %+v", h, h2)
		}
		enc2, err := wire.AppendDataStreamHeader(nil, h2)
		if err != nil || !bytes.Equal(enc1, enc2) {
			t.Fatalf("encoding is not stable: %x vs %x (%v)", enc1, enc2, err)
		}
	})
}
