package peer_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/aemp-go/dataconn/core/peer"
)

// BenchmarkSendWritten measures the machine's cost per message on a
// connection that is up: Send, the Write it hands out, FrameWritten.
func BenchmarkSendWritten(b *testing.B) {
	now := time.Unix(1e9, 0)
	m, _ := peer.New(peer.Config{NodeID: "a"})
	if err := m.ConnUp(now, peer.ConnInfo{Conn: 1, Peer: "b", SendFraming: "msgpack"}); err != nil {
		b.Fatal(err)
	}
	for m.Poll() != nil {
	}
	payload := make([]byte, 1024)
	var frameBytes int64
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if err := m.Send(now, "b#p", payload); err != nil {
			b.Fatal(err)
		}
		for a := m.Poll(); a != nil; a = m.Poll() {
			if w, ok := a.(peer.Write); ok {
				frameBytes += int64(len(w.Frame))
				m.FrameWritten(now, w.Conn, w.Seq)
			}
		}
	}
	b.SetBytes(frameBytes / int64(max(b.N, 1)))
}

// BenchmarkTickManyConns measures one keepalive round over many idle
// connections: the timer table makes each firing O(log n).
func BenchmarkTickManyConns(b *testing.B) {
	for _, n := range []int{100, 10000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			now := time.Unix(1e9, 0)
			m, _ := peer.New(peer.Config{NodeID: "a", KeepAlive: time.Second, PeerTimeout: time.Hour})
			for i := range n {
				m.ConnUp(now, peer.ConnInfo{Conn: peer.ConnID(i + 1), Peer: fmt.Sprintf("p%05d", i), SendFraming: "msgpack"})
			}
			for m.Poll() != nil {
			}
			for b.Loop() {
				now = now.Add(time.Second)
				m.Tick(now)
				for a := m.Poll(); a != nil; a = m.Poll() {
					if w, ok := a.(peer.Write); ok {
						m.FrameWritten(now, w.Conn, w.Seq)
					}
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/conn")
		})
	}
}
