package quic

import (
	"context"
	"io"
	"log/slog"
	"net"
	"strconv"
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

// setupRows are the rows of BenchmarkSetup. A row with base reports its
// time per operation divided by base's (run earlier in the same
// invocation) as the metric NAME/BASE.
var setupRows = []struct {
	benchRow
	base []string
}{
	{benchRow{"quic-handshake", benchSetupHandshake}, nil},
	{benchRow{"quic-handshake-tls", benchSetupHandshakeTLS}, nil},
	{benchRow{"node-connect-hmac", benchSetupNodeConnect(false)}, []string{"quic-handshake"}},
	{benchRow{"node-connect-tls", benchSetupNodeConnect(true)}, []string{"quic-handshake-tls"}},
	{benchRow{"stream", benchSetupStream}, nil},
	{benchRow{"stream-confirmed", benchSetupStreamConfirmed}, nil},
	{benchRow{"dataconn-stream", benchSetupDataConn(nil)}, []string{"stream", "stream-confirmed"}},
	{benchRow{"dataconn-stream-handshake", benchSetupDataConn(func(c *transport.Config) { c.DisableChannelBinding = true })}, []string{"stream"}},
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
//
//	go test -run '^$' -bench Setup -benchtime 2s ./quic/
//
// Rows: quic-handshake(-tls), a new QUIC connection (throw-away or
// verified certificates) and a 1-byte echo on a stream; node-connect-*, a
// new Node authenticating to a listening one over a new QUIC connection
// (Connect until both ends have the messaging connection), with the
// shared secret (hmac_sha3_512_cb) or certificates only; stream, a new
// stream on a warm connection plus the echo; stream-confirmed, the same
// with one request/answer round trip first (the floor of a confirmed
// stream); dataconn-stream, ConnectTo on a warm node pair (a direct data
// stream) plus the echo; dataconn-stream-handshake, the same with plain
// hmac_sha3_512, which takes the rendezvous and a handshake per stream
// (as with peers of older versions).
func BenchmarkSetup(b *testing.B) {
	perOp := map[string]float64{}
	for _, r := range setupRows {
		b.Run(r.name, func(b *testing.B) {
			r.run(b)
			if b.N == 0 {
				return
			}
			own := float64(b.Elapsed()) / float64(b.N)
			perOp[r.name] = own
			for _, base := range r.base {
				if v := perOp[base]; v > 0 {
					b.ReportMetric(own/v, r.name+"/"+base)
				}
			}
		})
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
	return benchNodesWith(b, nil, serve)
}

func benchNodesWith(b *testing.B, mod func(*transport.Config), serve transport.InitFunc) *transport.Node {
	b.Helper()
	mk := func(id string) (*transport.Node, *Network) {
		cfg := transport.Config{NodeID: id, Secret: []byte("bench"), Logger: slog.New(slog.DiscardHandler)}
		if mod != nil {
			mod(&cfg)
		}
		n, err := transport.NewNode(cfg)
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
func benchSetupDataConn(mod func(*transport.Config)) func(b *testing.B) {
	return func(b *testing.B) { benchSetupDataConnWith(b, mod) }
}

func benchSetupDataConnWith(b *testing.B, mod func(*transport.Config)) {
	na := benchNodesWith(b, mod, func(_ string, _ []any, c net.Conn) {
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

// benchSetupStreamConfirmed is benchSetupStream with one more round trip
// before the echo: the dialer writes a 1-byte request and waits for a
// 1-byte answer, as a direct data stream waits for the target's accept.
// It is the floor of dataconn-stream on this machine.
func benchSetupStreamConfirmed(b *testing.B) {
	addr := benchServer(b, func(c net.Conn) {
		var req [1]byte
		if _, err := io.ReadFull(c, req[:]); err != nil {
			return
		}
		if _, err := c.Write(req[:]); err != nil {
			return
		}
		pingPong(c)
	})
	cli := New(Config{})
	defer cli.Close()
	warm, err := cli.Dial(context.Background(), addr)
	if err != nil {
		b.Fatal(err)
	}
	defer warm.Close()
	roundTrip(b, warm)
	roundTrip(b, warm)
	b.ResetTimer()
	for range b.N {
		c, err := cli.Dial(context.Background(), addr)
		if err != nil {
			b.Fatal(err)
		}
		roundTrip(b, c)
		roundTrip(b, c)
		_ = c.Close()
	}
}

// benchCerts returns certificates for "srv" and "cli" of one CA.
func benchCerts(b *testing.B) (srv, cli *transport.TLSConfig) {
	b.Helper()
	ca, err := transport.NewTestCA("bench CA")
	if err != nil {
		b.Fatal(err)
	}
	valid := [2]time.Time{time.Now().Add(-time.Hour), time.Now().Add(time.Hour)}
	if srv, err = ca.Issue("srv", valid[0], valid[1]); err != nil {
		b.Fatal(err)
	}
	if cli, err = ca.Issue("cli", valid[0], valid[1]); err != nil {
		b.Fatal(err)
	}
	return srv, cli
}

// benchSetupHandshakeTLS is benchSetupHandshake with verified
// certificates on both ends (the same as node-connect-tls uses).
func benchSetupHandshakeTLS(b *testing.B) {
	srvTLS, cliTLS := benchCerts(b)
	srv := New(Config{TLS: srvTLS})
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
				pingPong(c)
			}()
		}
	}()
	addr := l.Addr().String()
	b.ResetTimer()
	for range b.N {
		cli := New(Config{TLS: cliTLS})
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

// benchSetupNodeConnect measures a new node connecting and
// authenticating to a listening one over a new QUIC connection: Connect,
// until the target has the messaging connection too.
func benchSetupNodeConnect(withTLS bool) func(b *testing.B) {
	return func(b *testing.B) {
		var srvTLS, cliTLS *transport.TLSConfig
		if withTLS {
			srvTLS, cliTLS = benchCerts(b)
		}
		mkCfg := func(id string, tc *transport.TLSConfig) transport.Config {
			cfg := transport.Config{NodeID: id, Secret: []byte("bench"), Logger: slog.New(slog.DiscardHandler)}
			if tc != nil {
				cfg.Secret, cfg.TLS = nil, tc
			}
			return cfg
		}
		srv, err := transport.NewNode(mkCfg("srv", srvTLS))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = srv.Close() })
		srvNet := New(Config{TLS: srvTLS})
		b.Cleanup(func() { _ = srvNet.Close() })
		addr, err := srv.Listen(context.Background(), srvNet, "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		up := make(chan string, 1)
		cancel := srv.MonitorNodes(func(id string, isUp bool, _ error) {
			if isUp {
				select {
				case up <- id:
				default:
				}
			}
		})
		defer cancel()
		b.ResetTimer()
		for i := range b.N {
			id := "cli-" + strconv.Itoa(i)
			b.StopTimer()
			cli, err := transport.NewNode(mkCfg(id, cliTLS))
			if err != nil {
				b.Fatal(err)
			}
			cliNet := New(Config{TLS: cliTLS})
			cli.AddNetwork(cliNet)
			cli.AddPeer("srv", addr)
			b.StartTimer()
			ctx, cancelCtx := context.WithTimeout(context.Background(), testTimeout)
			if err := cli.Connect(ctx, "srv"); err != nil {
				b.Fatal(err)
			}
			select {
			case <-up:
			case <-ctx.Done():
				b.Fatal("the target did not see the node come up")
			}
			cancelCtx()
			b.StopTimer()
			_ = cliNet.Close()
			_ = cli.Close()
			b.StartTimer()
		}
	}
}
