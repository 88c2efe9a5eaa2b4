package burst_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/aemp-go/dataconn/internal/burst"
	"github.com/aemp-go/dataconn/quic"
	"github.com/aemp-go/dataconn/tcp"
	"github.com/aemp-go/dataconn/transport"
)

var benchSecret = []byte("burst bench secret")

// benchNode makes a node listening on loopback over a new Network of the
// given kind; close closes both.
func benchNode(b *testing.B, id, kind string) *transport.Node {
	b.Helper()
	n, err := transport.NewNode(transport.Config{NodeID: id, Secret: benchSecret, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	var nw transport.Network
	switch kind {
	case "tcp":
		nw = tcp.New()
	case "quic":
		q := quic.New(quic.Config{})
		b.Cleanup(func() { q.Close() })
		nw = q
	}
	b.Cleanup(func() { n.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := n.Listen(ctx, nw, "127.0.0.1:0"); err != nil {
		b.Fatal(err)
	}
	return n
}

// BenchmarkBurst: one op is a burst of set-ups (ConnectTo, 5 bytes out, 1
// byte back) started at once, from 1 node or spread over 50, with the
// default configuration. Reports setups/s and failed/op (which must be 0).
func BenchmarkBurst(b *testing.B) {
	for _, kind := range []string{"tcp", "quic"} {
		for _, nodes := range []int{1, 50} {
			for _, total := range []int{1000, 10_000} {
				b.Run(fmt.Sprintf("%s/%dnodes/%d", kind, nodes, total), func(b *testing.B) {
					target := benchNode(b, "target", kind)
					calls := burst.Serve(target)
					senders := make([]*transport.Node, nodes)
					for i := range senders {
						senders[i] = benchNode(b, fmt.Sprintf("s%02d", i), kind)
						senders[i].AddPeer("target", target.Addrs()...)
						target.AddPeer(senders[i].ID(), senders[i].Addrs()...)
					}
					per := total / nodes
					failed := 0
					var took time.Duration
					b.ResetTimer()
					for i := 0; i < b.N; i++ {
						calls.Reset()
						res, err := burst.Run(context.Background(), senders, "target", per, 60*time.Second)
						if err != nil {
							b.Fatal(err)
						}
						failed += res.Failed
						took += res.Took
						if res.Failed != 0 {
							b.Logf("burst: %v", res)
						}
					}
					b.StopTimer()
					b.ReportMetric(float64(per*nodes*b.N)/took.Seconds(), "setups/s")
					b.ReportMetric(float64(failed)/float64(b.N), "failed/op")
				})
			}
		}
	}
}
