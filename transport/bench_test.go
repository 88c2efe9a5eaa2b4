package transport_test

// Benchmarks of Nodes on memnet in real time (no synctest):
//
//	go test -run '^$' -bench 'SetupRTT|SimulatedSetups|Messages' ./transport
//
// BenchmarkSetupRTT reports the data-connection set-up in round trips of a
// link with a fixed 10ms one-way latency: rtt/op is the initiator's time to
// a usable stream, remote-rtt/op the time until the target's init function
// runs. The original Perl implementation needs 3 and 3.5 on a connected
// pair.

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aemp-go/dataconn/memnet"
	"github.com/aemp-go/dataconn/transport"
)

// benchLatency is the one-way latency of BenchmarkSetupRTT's link.
const benchLatency = 10 * time.Millisecond

// benchPair is an initiator and a target on one World; the target's init
// function "bench" reports when it runs and closes its stream.
type benchPair struct {
	w      *memnet.World
	a, b   *transport.Node
	called chan time.Time
}

func newBenchPair(b *testing.B, seed int64, lat time.Duration, perl bool) *benchPair {
	b.Helper()
	p := &benchPair{
		w:      memnet.New(seed, memnet.WithTrace(0), memnet.WithDefaultLink(memnet.LinkConfig{Latency: lat})),
		called: make(chan time.Time, 1),
	}
	p.a = listening(b, p.w, "a", nil)
	p.b = listening(b, p.w, "b", func(c *transport.Config) { c.PerlCompat = perl })
	meshPeers(p.a, p.b)
	p.b.HandleDataConn("bench", func(_ string, _ []any, c net.Conn) {
		p.called <- time.Now()
		c.Close()
	})
	return p
}

func (p *benchPair) close() {
	p.a.Close()
	p.b.Close()
	p.w.Close()
}

// setup opens one data connection and returns the initiator's and the
// target's times since the call.
func (p *benchPair) setup(b *testing.B) (local, remote time.Duration) {
	start := time.Now()
	c, err := p.a.ConnectTo(context.Background(), "b", 10*time.Second, "bench")
	if err != nil {
		b.Fatal(err)
	}
	local = time.Since(start)
	remote = (<-p.called).Sub(start)
	c.Close()
	return local, remote
}

func BenchmarkSetupRTT(b *testing.B) {
	rtt := float64(2 * benchLatency)
	report := func(b *testing.B, local, remote time.Duration) {
		b.ReportMetric(float64(local)/float64(b.N)/rtt, "rtt/op")
		b.ReportMetric(float64(remote)/float64(b.N)/rtt, "remote-rtt/op")
	}
	warm := func(perl bool) func(b *testing.B) {
		return func(b *testing.B) {
			p := newBenchPair(b, 1, benchLatency, perl)
			defer p.close()
			if err := p.a.Connect(context.Background(), "b"); err != nil {
				b.Fatal(err)
			}
			var local, remote time.Duration
			b.ResetTimer()
			for range b.N {
				l, r := p.setup(b)
				local += l
				remote += r
			}
			b.StopTimer()
			report(b, local, remote)
		}
	}
	b.Run("go-go-warm", warm(false))
	b.Run("go-go-cold", func(b *testing.B) {
		var local, remote time.Duration
		for i := range b.N {
			b.StopTimer()
			p := newBenchPair(b, int64(i), benchLatency, false)
			b.StartTimer()
			l, r := p.setup(b)
			b.StopTimer()
			p.close()
			b.StartTimer()
			local += l
			remote += r
		}
		b.StopTimer()
		report(b, local, remote)
	})
	b.Run("perl-flow", warm(true))
}

// BenchmarkSimulatedSetups measures data-connection set-ups per wall
// second between two connected nodes on a zero-latency memnet: the cost of
// the handshake, the rendezvous and the goroutines, without waiting.
func BenchmarkSimulatedSetups(b *testing.B) {
	p := newBenchPair(b, 2, 0, false)
	defer p.close()
	if err := p.a.Connect(context.Background(), "b"); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		p.setup(b)
	}
	el := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/el.Seconds(), "setups/s")
}

// BenchmarkMessages measures messages per second from one node to a port
// of another over a zero-latency memnet with msgpack framing. The sender
// keeps at most a window of messages in flight (Send only queues).
func BenchmarkMessages(b *testing.B) {
	const window = 4096
	w := memnet.New(3, memnet.WithTrace(0))
	defer w.Close()
	a := listening(b, w, "a", func(c *transport.Config) { c.Framings = []string{"msgpack"} })
	r := listening(b, w, "b", func(c *transport.Config) { c.Framings = []string{"msgpack"} })
	defer closeAll(a, r)
	meshPeers(a, r)
	var got atomic.Int64
	credit := make(chan struct{}, b.N+1)
	port := r.NewPort(func([]any) {
		got.Add(1)
		credit <- struct{}{}
	})
	if err := a.Connect(context.Background(), "b"); err != nil {
		b.Fatal(err)
	}
	payload := "0123456789abcdef0123456789abcdef"
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		if i >= window {
			<-credit
		}
		if err := a.Send(port.ID(), int64(i), payload); err != nil {
			b.Fatal(err)
		}
	}
	for got.Load() < int64(b.N) {
		<-credit
	}
	el := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/el.Seconds(), "msgs/s")
}
