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
	"github.com/aemp-go/dataconn/transport/testca"
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
	{"interleaved", benchThroughputInterleaved},
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

// benchServer returns the address of a listening Network that serves every
// stream with serve, and closes it when the benchmark ends.
func benchServer(b *testing.B, serve func(net.Conn)) string {
	b.Helper()
	srv := rawNetwork(Config{})
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
func roundTrip(b testing.TB, c net.Conn) {
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
	cli := rawNetwork(Config{})
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

// interleaveBlock is how much benchThroughputInterleaved sends on one
// stream before it turns to the other.
const interleaveBlock = 4 << 20

// serveBlocks acknowledges every interleaveBlock bytes read with one byte.
func serveBlocks(c net.Conn) {
	for {
		if _, err := io.CopyN(io.Discard, c, interleaveBlock); err != nil {
			return
		}
		if _, err := c.Write([]byte{'k'}); err != nil {
			return
		}
	}
}

// benchThroughputInterleaved measures the raw and the dataconn rows in
// one run, in turns: each iteration sends interleaveBlock bytes in 64 KiB
// writes on a raw quic-go stream, then on a direct data stream between
// two nodes, each until the receiver acknowledged the block. It reports
// both rates and dataconn/raw, their ratio, which holds while the load of
// the machine changes (the separate rows' medians do not).
func benchThroughputInterleaved(b *testing.B) {
	const chunk = 64 << 10
	addr := benchServer(b, serveBlocks)
	cli := rawNetwork(Config{})
	b.Cleanup(func() { _ = cli.Close() })
	raw, err := cli.Dial(context.Background(), addr)
	if err != nil {
		b.Fatal(err)
	}
	defer raw.Close()
	na := benchNodes(b, func(_ string, _ []any, c net.Conn) {
		defer c.Close()
		serveBlocks(c)
	})
	dc, err := na.ConnectTo(context.Background(), "b", 10*time.Second, "bench")
	if err != nil {
		b.Fatal(err)
	}
	defer dc.Close()
	buf := make([]byte, chunk)
	block := func(c net.Conn) time.Duration {
		start := time.Now()
		for range interleaveBlock / chunk {
			if _, err := c.Write(buf); err != nil {
				b.Fatal(err)
			}
		}
		_ = c.SetReadDeadline(time.Now().Add(time.Minute))
		if _, err := io.ReadFull(c, buf[:1]); err != nil {
			b.Fatal(err)
		}
		return time.Since(start)
	}
	block(raw)
	block(dc)
	var tRaw, tDC time.Duration
	b.SetBytes(2 * interleaveBlock)
	for b.Loop() {
		tRaw += block(raw)
		tDC += block(dc)
	}
	mb := float64(b.N) * interleaveBlock / 1e6
	b.ReportMetric(mb/tRaw.Seconds(), "raw-MB/s")
	b.ReportMetric(mb/tDC.Seconds(), "dataconn-MB/s")
	b.ReportMetric(float64(tRaw)/float64(tDC), "dataconn/raw")
}

// setupRow is one row of BenchmarkSetup: prepare sets it up once and
// returns one set-up, which reports the time it took (tear-down
// excluded). A row with bases runs one set-up of each base after each of
// its own and reports NAME/BASE, the ratio of the means.
type setupRow struct {
	name    string
	prepare func(b *testing.B) (once func() time.Duration)
	base    []string
}

// Rows of BenchmarkSetup:
//
//   - quic-handshake(-tls): a new QUIC connection (throw-away or verified
//     certificates) and a 1-byte echo on a stream;
//   - node-connect-hmac, node-connect-tls: a new Node authenticating to a
//     listening one over a new QUIC connection (Connect, until the target
//     has the messaging connection up too), shared secret
//     (hmac_sha3_512_cb) or certificates only;
//   - stream: a new stream on a warm connection plus the echo;
//   - stream-confirmed: the same with one request/answer round trip
//     first, the floor of any confirmed stream;
//   - dataconn-stream: ConnectTo on a warm node pair (a direct data
//     stream) plus the echo;
//   - dataconn-stream-handshake: the same with plain hmac_sha3_512
//     (DisableChannelBinding), which takes the rendezvous and an AEMP
//     handshake per stream, as with peers of older versions.
func setupRows() []setupRow {
	return []setupRow{
		{"quic-handshake", prepHandshake(false), nil},
		{"quic-handshake-tls", prepHandshake(true), nil},
		{"node-connect-hmac", prepNodeConnect(false), []string{"quic-handshake"}},
		{"node-connect-tls", prepNodeConnect(true), []string{"quic-handshake-tls"}},
		{"stream", prepStream(false), nil},
		{"stream-confirmed", prepStream(true), []string{"stream"}},
		{"dataconn-stream", prepDataConn(nil), []string{"stream", "stream-confirmed"}},
		{"dataconn-stream-handshake", prepDataConn(func(c *transport.Config) { c.DisableChannelBinding = true }), []string{"stream", "dataconn-stream"}},
	}
}

// BenchmarkSetup measures what it costs to get a usable stream (see
// setupRows). Every operation includes one 1-byte round trip on the new
// stream. Rows with bases interleave their set-ups with the bases', so
// their ratios hold even while the machine's load changes; B/op and
// allocs/op of such rows include the bases.
//
//	go test -run '^$' -bench Setup -benchtime 2s ./quic/
func BenchmarkSetup(b *testing.B) {
	byName := map[string]setupRow{}
	for _, r := range setupRows() {
		byName[r.name] = r
	}
	for _, r := range setupRows() {
		b.Run(r.name, func(b *testing.B) {
			once := r.prepare(b)
			bases := make([]func() time.Duration, len(r.base))
			for i, name := range r.base {
				bases[i] = byName[name].prepare(b)
			}
			spent := make([]time.Duration, len(bases))
			var own time.Duration
			for b.Loop() {
				own += once()
				for i, base := range bases {
					spent[i] += base()
				}
			}
			b.ReportMetric(float64(own)/float64(b.N), "ns/op")
			for i, name := range r.base {
				b.ReportMetric(float64(own)/float64(spent[i]), r.name+"/"+name)
			}
		})
	}
}

// benchCerts returns certificates for "srv" and "cli" of one CA.
func benchCerts(b *testing.B) (srv, cli *transport.TLSConfig) {
	b.Helper()
	ca, err := testca.New("bench CA")
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

// benchServerCfg is benchServer with a Network configuration.
func benchServerCfg(b *testing.B, cfg Config, serve func(net.Conn)) string {
	b.Helper()
	srv := rawNetwork(cfg)
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

func prepHandshake(withTLS bool) func(b *testing.B) func() time.Duration {
	return func(b *testing.B) func() time.Duration {
		var srvCfg, cliCfg Config
		if withTLS {
			srvCfg.TLS, cliCfg.TLS = benchCerts(b)
		}
		addr := benchServerCfg(b, srvCfg, pingPong)
		return func() time.Duration {
			start := time.Now()
			cli := rawNetwork(cliCfg)
			c, err := cli.Dial(context.Background(), addr)
			if err != nil {
				b.Fatal(err)
			}
			roundTrip(b, c)
			took := time.Since(start)
			_ = cli.Close()
			return took
		}
	}
}

func prepStream(confirmed bool) func(b *testing.B) func() time.Duration {
	return func(b *testing.B) func() time.Duration {
		serve := pingPong
		if confirmed {
			serve = func(c net.Conn) {
				var req [1]byte
				if _, err := io.ReadFull(c, req[:]); err != nil {
					return
				}
				if _, err := c.Write(req[:]); err != nil {
					return
				}
				pingPong(c)
			}
		}
		addr := benchServer(b, serve)
		cli := rawNetwork(Config{})
		b.Cleanup(func() { _ = cli.Close() })
		warm, err := cli.Dial(context.Background(), addr)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = warm.Close() })
		roundTrip(b, warm)
		if confirmed {
			roundTrip(b, warm)
		}
		return func() time.Duration {
			start := time.Now()
			c, err := cli.Dial(context.Background(), addr)
			if err != nil {
				b.Fatal(err)
			}
			roundTrip(b, c)
			if confirmed {
				roundTrip(b, c)
			}
			took := time.Since(start)
			_ = c.Close()
			return took
		}
	}
}

// prepDataConn measures a data connection on a warm node pair (the
// messaging connection, and so the QUIC connection, already up):
// ConnectTo plus a 1-byte round trip.
func prepDataConn(mod func(*transport.Config)) func(b *testing.B) func() time.Duration {
	return func(b *testing.B) func() time.Duration {
		na := benchNodesWith(b, mod, func(_ string, _ []any, c net.Conn) {
			defer c.Close()
			pingPong(c)
		})
		once := func() time.Duration {
			start := time.Now()
			c, err := na.ConnectTo(context.Background(), "b", 10*time.Second, "bench")
			if err != nil {
				b.Fatal(err)
			}
			roundTrip(b, c)
			took := time.Since(start)
			_ = c.Close()
			return took
		}
		once()
		return once
	}
}

// prepNodeConnect measures a new node connecting and authenticating to a
// listening one over a new QUIC connection: Connect, until the target has
// the messaging connection too.
func prepNodeConnect(withTLS bool) func(b *testing.B) func() time.Duration {
	return func(b *testing.B) func() time.Duration {
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
		b.Cleanup(srv.MonitorNodes(func(id string, isUp bool, _ error) {
			if isUp {
				select {
				case up <- id:
				default:
				}
			}
		}))
		seq := 0
		return func() time.Duration {
			seq++
			cli, err := transport.NewNode(mkCfg("cli-"+strconv.Itoa(seq), cliTLS))
			if err != nil {
				b.Fatal(err)
			}
			cliNet := New(Config{TLS: cliTLS})
			cli.AddNetwork(cliNet)
			cli.AddPeer("srv", addr)
			start := time.Now()
			ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
			if err := cli.Connect(ctx, "srv"); err != nil {
				b.Fatal(err)
			}
			select {
			case <-up:
			case <-ctx.Done():
				b.Fatal("the target did not see the node come up")
			}
			took := time.Since(start)
			cancel()
			_ = cliNet.Close()
			_ = cli.Close()
			return took
		}
	}
}

// rawNetwork is the Network of the raw rows: it offers and selects ALPN
// only, so a row is a plain QUIC handshake and streams, without the
// greeting stream a server opens with ALPNGreetFirst, as before that.
func rawNetwork(cfg Config) *Network { return newNetwork(cfg, true) }
