package handshake

import (
	"github.com/aemp-go/dataconn/core/wire"
	"testing"
)

// BenchmarkHandshake runs complete hmac handshakes between two machines
// back to back (both directions, all writes delivered whole).
func BenchmarkHandshake(b *testing.B) {
	ca := Config{NodeID: "A", Secret: testSecret, Protocol: wire.ProtocolDataConn,
		Extra: []wire.KV{{Key: wire.KeyDataConnID, Value: "1@A"}, {Key: wire.KeyProvider, Value: "aemp-go"}}}
	cb := Config{NodeID: "B", Secret: testSecret, Extra: []wire.KV{{Key: wire.KeyProvider, Value: "aemp-go"}}}
	const na = "7c2YIhc2UkBLBBXJ7c2C6bUdK5UHDCmvWLiFFTD0bElwrixZdc8kCp0s0lk+uo2DP1apmnSfZIDGB1a9VZjwUanQ"
	const nb = "HjRoZxb4mpXEPKBlSubgGTYVQo5WtWQaK5skoOVdM0odwmoz/pLrFJSHYZbODJjsCFal3TKKnrE3FZTaXCrV6vm7"
	b.ReportAllocs()
	for b.Loop() {
		ha, err := New(ca, na, t0)
		if err != nil {
			b.Fatal(err)
		}
		hb, err := New(cb, nb, t0)
		if err != nil {
			b.Fatal(err)
		}
		done := 0
		for round := 0; round < 8 && done < 2; round++ {
			for _, pair := range [2][2]*Machine{{ha, hb}, {hb, ha}} {
				for act := pair[0].Poll(); act != nil; act = pair[0].Poll() {
					switch a := act.(type) {
					case Write:
						pair[1].Receive(t0, a.Data)
					case Done:
						done++
					case Failed:
						b.Fatal(a.Err)
					}
				}
			}
		}
		if done != 2 {
			b.Fatal("handshake did not complete")
		}
	}
}
