package transport_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/aemp-go/dataconn/memnet"
	"github.com/aemp-go/dataconn/transport"
)

// heapAndGoroutines returns the live heap after a GC and the number of
// goroutines.
func heapAndGoroutines() (heap uint64, goroutines int) {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc + ms.StackInuse, runtime.NumGoroutine()
}

// BenchmarkIdlePeers: a seed node with many idle messaging connections,
// one per peer node, on memnet. Reports the heap (and goroutine stacks)
// and the goroutines one idle connection costs per end: the difference
// between the nodes connected and the same nodes unconnected, halved.
// memnet's own cost for the same streams (its buffers, measured on idle
// raw stream pairs that moved a little data each way) is reported apart
// as netB/conn/end and not counted in heapB/conn/end.
func BenchmarkIdlePeers(b *testing.B) {
	for _, peers := range []int{1000, 10_000} {
		b.Run(fmt.Sprint(peers), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				total, gPer := idlePeers(b, peers)
				netPer := idleStreams(b, peers)
				b.ReportMetric(total-netPer, "heapB/conn/end")
				b.ReportMetric(netPer, "netB/conn/end")
				b.ReportMetric(gPer, "goroutines/conn/end")
			}
		})
	}
}

// idleStreams returns memnet's own heap per stream end for n idle stream
// pairs that carried a few hundred bytes each way and have read deadlines
// set, as a messaging connection's do.
func idleStreams(b *testing.B, n int) float64 {
	b.Helper()
	w := memnet.New(2, memnet.WithTrace(0), memnet.WithBacklog(n+1))
	defer w.Close()
	l, err := w.Host("seed").Listen(context.Background(), "seed:1")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	hosts := make([]*memnet.Host, n)
	for i := range hosts {
		hosts[i] = w.Host(fmt.Sprintf("p%05d", i))
	}
	h0, _ := heapAndGoroutines()
	conns := make([]net.Conn, 0, 2*n)
	msg := make([]byte, 300)
	buf := make([]byte, 300)
	for i := range n {
		c, err := hosts[i].Dial(context.Background(), "seed:1")
		if err != nil {
			b.Fatal(err)
		}
		s, err := l.Accept()
		if err != nil {
			b.Fatal(err)
		}
		for _, pair := range [][2]net.Conn{{c, s}, {s, c}} {
			pair[0].Write(msg)
			io.ReadFull(pair[1], buf)
		}
		c.SetReadDeadline(time.Now().Add(time.Hour))
		s.SetReadDeadline(time.Now().Add(time.Hour))
		conns = append(conns, c, s)
	}
	h1, _ := heapAndGoroutines()
	for _, c := range conns {
		c.Close()
	}
	return float64(int64(h1)-int64(h0)) / float64(2*n)
}

func idlePeers(b *testing.B, peers int) (heapPerEnd, goroutinesPerEnd float64) {
	b.Helper()
	w := memnet.New(1, memnet.WithTrace(0))
	defer w.Close()
	mk := func(name string, listen bool) *transport.Node {
		n, err := transport.NewNode(transport.Config{NodeID: name, Secret: simSecret, Logger: quietLogger(),
			KeepAlive: time.Hour, PeerTimeout: 2 * time.Hour})
		if err != nil {
			b.Fatal(err)
		}
		if listen {
			if _, err := n.Listen(context.Background(), w.Host(name), name+":1"); err != nil {
				b.Fatal(err)
			}
		} else {
			n.AddNetwork(w.Host(name))
		}
		return n
	}
	seed := mk("seed", true)
	nodes := make([]*transport.Node, peers)
	for i := range nodes {
		nodes[i] = mk(fmt.Sprintf("p%05d", i), false)
		nodes[i].AddPeer("seed", seed.Addrs()...)
	}
	defer func() {
		for _, n := range nodes {
			n.Close()
		}
		seed.Close()
	}()
	h0, g0 := heapAndGoroutines()
	sem := make(chan struct{}, 16)
	errs := make(chan error, peers)
	for _, n := range nodes {
		sem <- struct{}{}
		go func() {
			defer func() { <-sem }()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			errs <- n.Connect(ctx, "seed")
		}()
	}
	for range peers {
		if err := <-errs; err != nil {
			b.Fatalf("%v; seed %+v", err, seed.Stats())
		}
	}
	// Every connection is up at both ends.
	for deadline := time.Now().Add(time.Minute); seed.Stats().Peers < peers; {
		if time.Now().After(deadline) {
			b.Fatalf("seed has %d of %d peers", seed.Stats().Peers, peers)
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	h1, g1 := heapAndGoroutines()
	return float64(int64(h1)-int64(h0)) / float64(2*peers), float64(g1-g0) / float64(2*peers)
}
