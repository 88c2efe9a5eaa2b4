package quic

import (
	"context"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/aemp-go/dataconn/transport"
)

// benchRow is one row of a benchmark table: BenchmarkX/name. Rows for other
// layers (the lead's /dataconn rows: the same measurement through a Node
// and the AEMP handshake) are added to the tables below.
type benchRow struct {
	name string
	run  func(b *testing.B)
}

// throughputRows are the rows of BenchmarkThroughput.
var throughputRows = []benchRow{
	{"raw", benchThroughputRaw},
	{"dataconn", benchThroughputDataConn},
}

// setupRows are the rows of BenchmarkSetup.
var setupRows = []benchRow{
	{"quic-handshake", benchSetupHandshake},
	{"stream", benchSetupStream},
	{"dataconn-stream", benchSetupDataConn},
}

// BenchmarkThroughput measures one-way bulk transfer over loopback, in
// 64 KiB writes (see b.SetBytes).
//
//	go test -run '^$' -bench . -benchtime 2s ./quic/
func BenchmarkThroughput(b *testing.B) {
	for _, r := range throughputRows {
		b.Run(r.name, r.run)
	}
}

// BenchmarkSetup measures what it costs to get a usable stream: a new QUIC
// connection (handshake included), or a new stream on a warm connection.
// Each operation includes one 1-byte round trip on the new stream.
func BenchmarkSetup(b *testing.B) {
	for _, r := range setupRows {
		b.Run(r.name, r.run)
	}
}

// benchServer returns the address of a listening Network that serves every
// stream with serve, and closes it when the benchmark ends.
func benchServer(b *testing.B, serve func(net.Conn)) string {
	b.Helper()
	srv := New(Config{})
	b.Cleanup(func() { _ = srv.Close() })
	l, err := srv.Listen(context.Background(), "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				serve(c)
			}()
		}
	}()
	return l.Addr().String()
}

// pingPong answers each byte with the same byte until EOF.
func pingPong(c net.Conn) { _, _ = io.Copy(c, c) }

// roundTrip sends one byte and waits for its echo.
func roundTrip(b *testing.B, c net.Conn) {
	var buf [1]byte
	_ = c.SetDeadline(time.Now().Add(testTimeout))
	if _, err := c.Write([]byte{'p'}); err != nil {
		b.Fatal(err)
	}
	if _, err := io.ReadFull(c, buf[:]); err != nil {
		b.Fatal(err)
	}
}

func benchThroughputRaw(b *testing.B) {
	const chunk = 64 << 10
	addr := benchServer(b, func(c net.Conn) {
		// Drain, then acknowledge the end.
		if _, err := io.Copy(io.Discard, c); err == nil {
			_, _ = c.Write([]byte{'k'})
		}
	})
	cli := New(Config{})
	defer cli.Close()
	c, err := cli.Dial(context.Background(), addr)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, chunk)
	b.SetBytes(chunk)
	b.ResetTimer()
	for range b.N {
		if _, err := c.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
	if err := c.(*Stream).CloseWrite(); err != nil {
		b.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(time.Minute))
	if _, err := io.ReadFull(c, buf[:1]); err != nil {
		b.Fatal(err)
	}
}

func benchSetupHandshake(b *testing.B) {
	addr := benchServer(b, pingPong)
	b.ResetTimer()
	for range b.N {
		cli := New(Config{})
		c, err := cli.Dial(context.Background(), addr)
		if err != nil {
			b.Fatal(err)
		}
		roundTrip(b, c)
		b.StopTimer()
		_ = cli.Close()
		b.StartTimer()
	}
}

func benchSetupStream(b *testing.B) {
	addr := benchServer(b, pingPong)
	cli := New(Config{})
	defer cli.Close()
	warm, err := cli.Dial(context.Background(), addr)
	if err != nil {
		b.Fatal(err)
	}
	defer warm.Close()
	roundTrip(b, warm)
	b.ResetTimer()
	for range b.N {
		c, err := cli.Dial(context.Background(), addr)
		if err != nil {
			b.Fatal(err)
		}
		roundTrip(b, c)
		_ = c.Close()
	}
}

// benchNodes returns node "a", which knows node "b"; b listens on loopback
// QUIC and serves the init function "bench" with serve. Both are closed
// when the benchmark ends (Networks first: Node.Close waits for running
// init functions).
func benchNodes(b *testing.B, serve transport.InitFunc) *transport.Node {
	b.Helper()
	mk := func(id string) (*transport.Node, *Network) {
		n, err := transport.NewNode(transport.Config{NodeID: id, Secret: []byte("bench"), Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = n.Close() })
		nw := New(Config{})
		b.Cleanup(func() { _ = nw.Close() })
		return n, nw
	}
	na, aNet := mk("a")
	na.AddNetwork(aNet)
	nb, bNet := mk("b")
	nb.HandleDataConn("bench", serve)
	addr, err := nb.Listen(context.Background(), bNet, "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	na.AddPeer("b", addr)
	if err := na.Connect(context.Background(), "b"); err != nil {
		b.Fatal(err)
	}
	return na
}

// benchThroughputDataConn is benchThroughputRaw through a Node: the same
// 64 KiB writes on a data connection (a QUIC stream after the AEMP
// handshake) instead of a bare stream.
func benchThroughputDataConn(b *testing.B) {
	const chunk = 64 << 10
	na := benchNodes(b, func(_ string, _ []any, c net.Conn) {
		defer c.Close()
		if _, err := io.Copy(io.Discard, c); err == nil {
			_, _ = c.Write([]byte{'k'})
		}
	})
	c, err := na.ConnectTo(context.Background(), "b", 10*time.Second, "bench")
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, chunk)
	b.SetBytes(chunk)
	b.ResetTimer()
	for range b.N {
		if _, err := c.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
	if err := c.(transport.CloseWriter).CloseWrite(); err != nil {
		b.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(time.Minute))
	if _, err := io.ReadFull(c, buf[:1]); err != nil {
		b.Fatal(err)
	}
}

// benchSetupDataConn measures a data connection on a warm node pair (the
// messaging connection, and so the QUIC connection, already up): ConnectTo
// plus a 1-byte round trip.
func benchSetupDataConn(b *testing.B) {
	na := benchNodes(b, func(_ string, _ []any, c net.Conn) {
		defer c.Close()
		pingPong(c)
	})
	warm, err := na.ConnectTo(context.Background(), "b", 10*time.Second, "bench")
	if err != nil {
		b.Fatal(err)
	}
	roundTrip(b, warm)
	_ = warm.Close()
	b.ResetTimer()
	for range b.N {
		c, err := na.ConnectTo(context.Background(), "b", 10*time.Second, "bench")
		if err != nil {
			b.Fatal(err)
		}
		roundTrip(b, c)
		_ = c.Close()
	}
}
