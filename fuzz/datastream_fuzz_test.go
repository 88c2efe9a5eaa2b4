package fuzz

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/aemp-go/dataconn/core/rendezvous"
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

// FuzzDirectServe feeds arbitrary bytes, as a peer's new stream delivers
// them, and an authentication outcome to the target's side of a direct
// data stream (rendezvous.DirectServe). It must never panic, must ask
// for more bytes only up to the header's bound, must hold only a stream
// whose header parses and names the local node, and must end with
// exactly one answer: a refusal with a reason, or an accept of an init
// function that is known on a connection authenticated for the sender.
func FuzzDirectServe(f *testing.F) {
	for _, h := range []wire.DataStreamHeader{
		{From: "a", To: "b", InitFunc: "f"},
		{From: "a", To: "c", InitFunc: "f"},
		{From: "a", To: "b", InitFunc: "g", InitData: []any{int64(1), "x"}},
	} {
		b, err := wire.AppendDataStreamHeader(nil, h)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, uint8(0))
		f.Add(append(b, 'x'), uint8(1))
	}
	f.Add([]byte{wire.DataStreamMagic, wire.DataStreamVersion, 0, 0}, uint8(2))
	f.Fuzz(func(t *testing.T, b []byte, how uint8) {
		now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		s := rendezvous.NewDirectServe(now, "b", 5*time.Second)
		a := s.Start()
		for a.Need > 0 {
			if a.Need > wire.MaxDataStreamHeader {
				t.Fatalf("asks for %d bytes, more than a header", a.Need)
			}
			if a.Need > len(b) {
				return // the stream's deadline ends it
			}
			got := b[:a.Need]
			if a.Need > wire.DataStreamPrefixLen {
				got = b
			}
			a = s.Read(got)
		}
		if a.Hold != "" {
			h, n, err := wire.ParseDataStreamHeader(b)
			if err != nil || n != len(b) || h.To != "b" || h.From != a.Hold {
				t.Fatalf("holds for %q a stream whose header is %+v (%d of %d bytes, %v)", a.Hold, h, n, len(b), err)
			}
			ok, closed, known := how&1 == 0, how&2 != 0, how&4 == 0
			a = s.Authenticated(ok, closed, known)
			if a.Accept != (ok && !closed && known) {
				t.Fatalf("accept=%t with authenticated=%t closed=%t known=%t", a.Accept, ok, closed, known)
			}
		}
		if a.Accept == (a.Refuse != nil) || a.Hold != "" || a.Need != 0 {
			t.Fatalf("ends with %+v, want one accept or refusal", a)
		}
		if a.Refuse != nil && a.Refuse.Message == "" {
			t.Fatalf("refusal without a reason")
		}
		if again := s.Authenticated(true, false, true); again.Accept || again.Refuse != nil {
			t.Fatalf("answers twice: %+v", again)
		}
	})
}
