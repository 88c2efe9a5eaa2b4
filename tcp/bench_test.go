package tcp_test

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/aemp-go/dataconn/tcp"
	"github.com/aemp-go/dataconn/transport"
	"github.com/aemp-go/dataconn/transport/testca"
)

// Benchmarks comparing the cost of moving bytes and of setting up streams.
// Run them in one invocation so that the ratios between rows hold:
//
//	go test -run '^$' -bench . -benchtime 2s ./tcp
//
// Each benchmark is a table: add a row (for example a data connection made
// by a transport.Node) by appending to throughputCases or setupCases.

// benchChunk is the size of each write in BenchmarkThroughput; one
// iteration moves one chunk.
const benchChunk = 128 << 10

// benchTimeout bounds each stream set-up in the benchmarks.
const benchTimeout = 10 * time.Second

// throughputCase opens one stream: BenchmarkThroughput writes to send and
// copies recv to io.Discard. Closing is left to b.Cleanup.
type throughputCase struct {
	name string
	open func(b *testing.B) (send, recv net.Conn)
}

func throughputCases() []throughputCase {
	return []throughputCase{
		{"raw", openRawTCP},
		{"tls-raw", openTLSTCP},
		{"dataconn", openDataConnHMAC},
		{"tls-dataconn", openDataConnTLS},
	}
}

// setupCase makes and tears down one stream per iteration, on a listener
// prepared once by prepare. A case with base reports its time per
// operation divided by each base's (run earlier in the same invocation)
// as the metric NAME/BASE.
type setupCase struct {
	name    string
	prepare func(b *testing.B) (once func() error)
	base    []string
}

// Rows of BenchmarkSetup:
//
//   - tcp-connect: dial, accept, close;
//   - tls-full-raw(-x25519): a TCP connection and a bare mutual TLS 1.3
//     handshake with crypto/tls (the nodes' certificates, the default key
//     exchange X25519MLKEM768, or X25519 only), plus a 1-byte echo;
//   - tls-resume-raw(-x25519): the same, resuming a session ticket;
//   - node-connect-hmac, node-connect-tls: a new node connecting and
//     authenticating to a listening one (Connect until both ends have the
//     messaging connection), shared secret or certificates;
//   - tcp-3hops: tcp-connect plus the three one-way hops of a data
//     connection's handshake (greeting, answer, auth line: 300, 500 and
//     150 bytes): the floor of dataconn-hmac without any computation;
//   - dataconn-hmac, dataconn-tls(-x25519): a data connection on a warm
//     pair, until the init function runs (TLS: resumed).
func setupCases() []setupCase {
	return []setupCase{
		{"tcp-connect", prepareTCPConnect, nil},
		{"tls-full-raw", prepareTLSRaw(false, nil), nil},
		{"tls-full-raw-x25519", prepareTLSRaw(false, x25519), []string{"tls-full-raw"}},
		{"tls-resume-raw", prepareTLSRaw(true, nil), nil},
		{"tls-resume-raw-x25519", prepareTLSRaw(true, x25519), []string{"tls-resume-raw"}},
		{"node-connect-hmac", prepareNodeConnect(false), []string{"tcp-connect"}},
		{"node-connect-tls", prepareNodeConnect(true), []string{"tls-full-raw"}},
		{"tcp-3hops", prepareTCP3Hops, []string{"tcp-connect"}},
		{"dataconn-hmac", prepareDataConnHMAC, []string{"tcp-connect", "tcp-3hops"}},
		{"dataconn-tls", prepareDataConnTLS, []string{"tls-resume-raw"}},
		{"dataconn-tls-x25519", prepareDataConnTLSX25519, []string{"tls-resume-raw-x25519", "dataconn-tls"}},
	}
}

// x25519 is the classical-only key exchange option.
var x25519 = []tls.CurveID{tls.X25519}

func BenchmarkThroughput(b *testing.B) {
	for _, tc := range throughputCases() {
		b.Run(tc.name, func(b *testing.B) {
			send, recv := tc.open(b)
			buf := make([]byte, benchChunk)
			for i := range buf {
				buf[i] = byte(i * 7)
			}
			type result struct {
				n   int64
				err error
			}
			done := make(chan result, 1)
			go func() {
				n, err := io.Copy(io.Discard, recv)
				done <- result{n, err}
			}()
			b.SetBytes(benchChunk)
			b.ReportAllocs()
			var iters int64
			for b.Loop() {
				if _, err := send.Write(buf); err != nil {
					b.Fatalf("write: %v", err)
				}
				iters++
			}
			if err := send.(transport.CloseWriter).CloseWrite(); err != nil {
				b.Fatalf("CloseWrite: %v", err)
			}
			select {
			case r := <-done:
				if r.err != nil || r.n != iters*benchChunk {
					b.Fatalf("receiver got %d bytes (%v), want %d", r.n, r.err, iters*benchChunk)
				}
			case <-time.After(benchTimeout):
				b.Fatal("receiver did not finish")
			}
		})
	}
}

// BenchmarkSetup measures stream set-ups (see setupCases):
//
//	go test -run '^$' -bench Setup -benchtime 2s ./tcp
//
// A row with bases runs its own set-up and one of each base in turn, on
// the same machine at the same moment (load on a shared machine varies by
// much more than the ratios it is meant to show), and reports its own
// time as ns/op and NAME/BASE as the ratio of the interleaved means.
func BenchmarkSetup(b *testing.B) {
	byName := map[string]setupCase{}
	for _, sc := range setupCases() {
		byName[sc.name] = sc
	}
	for _, sc := range setupCases() {
		b.Run(sc.name, func(b *testing.B) {
			once := sc.prepare(b)
			bases := make([]func() error, len(sc.base))
			for i, name := range sc.base {
				bases[i] = byName[name].prepare(b)
			}
			spent := make([]time.Duration, len(bases))
			var own time.Duration
			b.ReportAllocs()
			for b.Loop() {
				start := time.Now()
				if err := once(); err != nil {
					b.Fatal(err)
				}
				own += time.Since(start)
				for i, base := range bases {
					start := time.Now()
					if err := base(); err != nil {
						b.Fatal(err)
					}
					spent[i] += time.Since(start)
				}
			}
			if len(bases) == 0 {
				return
			}
			b.ReportMetric(float64(own)/float64(b.N), "ns/op")
			for i, name := range sc.base {
				b.ReportMetric(float64(own)/float64(spent[i]), sc.name+"/"+name)
			}
		})
	}
}

// benchListen starts a listener whose accepted connections arrive on the
// returned channel; everything is closed by b.Cleanup.
func benchListen(b *testing.B, n *tcp.Network) (net.Listener, <-chan net.Conn) {
	b.Helper()
	l, err := n.Listen(context.Background(), "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ch := make(chan net.Conn, 1)
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			ch <- c
		}
	}()
	b.Cleanup(func() {
		l.Close()
		// Unblock the accept goroutine if it is waiting to hand over.
		for {
			select {
			case c := <-ch:
				c.Close()
			case <-stopped:
				return
			}
		}
	})
	return l, ch
}

// benchPair dials the listener and returns both ends.
func benchPair(b *testing.B) (dialed, accepted net.Conn) {
	b.Helper()
	n := tcp.New()
	l, ch := benchListen(b, n)
	ctx, cancel := context.WithTimeout(context.Background(), benchTimeout)
	defer cancel()
	d, err := n.Dial(ctx, l.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	select {
	case a := <-ch:
		b.Cleanup(func() { d.Close(); a.Close() })
		return d, a
	case <-ctx.Done():
		d.Close()
		b.Fatal("accept timed out")
		return nil, nil
	}
}

func openRawTCP(b *testing.B) (net.Conn, net.Conn) { return benchPair(b) }

func openTLSTCP(b *testing.B) (net.Conn, net.Conn) {
	d, a := benchPair(b)
	ca, err := testca.New("bench CA")
	if err != nil {
		b.Fatal(err)
	}
	valid := [2]time.Time{time.Now().Add(-time.Hour), time.Now().Add(time.Hour)}
	cc, err := ca.Issue("client", valid[0], valid[1])
	if err != nil {
		b.Fatal(err)
	}
	sc, err := ca.Issue("server", valid[0], valid[1])
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), benchTimeout)
	defer cancel()
	type res struct {
		c   net.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		c, err := sc.Upgrade(ctx, a, false)
		ch <- res{c, err}
	}()
	client, err := cc.Upgrade(ctx, d, true)
	r := <-ch
	if err != nil || r.err != nil {
		b.Fatalf("TLS upgrade: %v, %v", err, r.err)
	}
	b.Cleanup(func() { client.Close(); r.c.Close() })
	return client, r.c
}

func prepareTCPConnect(b *testing.B) func() error {
	n := tcp.New()
	l, ch := benchListen(b, n)
	addr := l.Addr().String()
	return func() error {
		ctx, cancel := context.WithTimeout(context.Background(), benchTimeout)
		defer cancel()
		d, err := n.Dial(ctx, addr)
		if err != nil {
			return err
		}
		select {
		case a := <-ch:
			a.Close()
		case <-ctx.Done():
			d.Close()
			return ctx.Err()
		}
		return d.Close()
	}
}

func prepareTCP3Hops(b *testing.B) func() error {
	n := tcp.New()
	l, ch := benchListen(b, n)
	addr := l.Addr().String()
	hop := func(c net.Conn, in, out int) error {
		if in > 0 {
			buf := make([]byte, in)
			if _, err := io.ReadFull(c, buf); err != nil {
				return err
			}
		}
		if out > 0 {
			if _, err := c.Write(make([]byte, out)); err != nil {
				return err
			}
		}
		return nil
	}
	return func() error {
		ctx, cancel := context.WithTimeout(context.Background(), benchTimeout)
		defer cancel()
		d, err := n.Dial(ctx, addr)
		if err != nil {
			return err
		}
		defer d.Close()
		_ = d.SetDeadline(time.Now().Add(benchTimeout))
		done := make(chan error, 1)
		go func() {
			select {
			case a := <-ch:
				defer a.Close()
				_ = a.SetDeadline(time.Now().Add(benchTimeout))
				if err := hop(a, 300, 500); err != nil {
					done <- err
					return
				}
				done <- hop(a, 150, 0)
			case <-ctx.Done():
				done <- ctx.Err()
			}
		}()
		if err := hop(d, 0, 300); err != nil {
			return err
		}
		if err := hop(d, 500, 150); err != nil {
			return err
		}
		return <-done
	}
}

// benchNodes starts two nodes on loopback, a and b, that know each other's
// address; mod configures node i (0 for a, 1 for b). b's init function
// "bench::take" hands its stream to the returned channel. The messaging
// connection is opened, so set-ups measured on the pair are warm.
func benchNodes(b *testing.B, mod func(i int, c *transport.Config)) (na, nb *transport.Node, taken <-chan net.Conn) {
	b.Helper()
	nodes := make([]*transport.Node, 2)
	for i, id := range []string{"a", "b"} {
		nodes[i] = startNode(b, id, "127.0.0.1:0", func(c *transport.Config) {
			if mod != nil {
				mod(i, c)
			}
		})
	}
	linkNodes(nodes...)
	ch := make(chan net.Conn, 1)
	nodes[1].HandleDataConn("bench::take", func(_ string, _ []any, c net.Conn) { ch <- c })
	ctx, cancel := context.WithTimeout(context.Background(), benchTimeout)
	defer cancel()
	if err := nodes[0].Connect(ctx, "b"); err != nil {
		b.Fatal(err)
	}
	return nodes[0], nodes[1], ch
}

// benchTLS makes both nodes use TLS certificates of one CA and no secret.
func benchTLS(b *testing.B) func(i int, c *transport.Config) {
	certs := testTLS(b, "a", "b")
	return func(i int, c *transport.Config) {
		c.Secret = nil
		c.TLS = certs[i]
	}
}

// dataConnOnce opens one data connection from a to b's "bench::take" and
// returns both ends.
func dataConnOnce(a *transport.Node, taken <-chan net.Conn) (send, recv net.Conn, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), benchTimeout)
	defer cancel()
	c, err := a.ConnectTo(ctx, "b", benchTimeout, "bench::take")
	if err != nil {
		return nil, nil, err
	}
	select {
	case r := <-taken:
		return c, r, nil
	case <-ctx.Done():
		c.Close()
		return nil, nil, errors.New("init function not called")
	}
}

func openDataConn(b *testing.B, mod func(i int, c *transport.Config)) (net.Conn, net.Conn) {
	a, _, taken := benchNodes(b, mod)
	send, recv, err := dataConnOnce(a, taken)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { send.Close(); recv.Close() })
	return send, recv
}

func openDataConnHMAC(b *testing.B) (net.Conn, net.Conn) { return openDataConn(b, nil) }

func openDataConnTLS(b *testing.B) (net.Conn, net.Conn) { return openDataConn(b, benchTLS(b)) }

// prepareDataConn returns one full data-connection set-up on a warm node
// pair: ConnectTo, the init function called, both ends closed.
func prepareDataConn(b *testing.B, mod func(i int, c *transport.Config)) func() error {
	a, _, taken := benchNodes(b, mod)
	once := func() error {
		send, recv, err := dataConnOnce(a, taken)
		if err != nil {
			return err
		}
		recv.Close()
		return send.Close()
	}
	// One data connection outside the measurement warms what the first
	// one sets up (TLS session state, buffers).
	if err := once(); err != nil {
		b.Fatal(err)
	}
	return once
}

func prepareDataConnHMAC(b *testing.B) func() error { return prepareDataConn(b, nil) }

func prepareDataConnTLS(b *testing.B) func() error { return prepareDataConn(b, benchTLS(b)) }

func prepareDataConnTLSX25519(b *testing.B) func() error {
	certs := benchTLS(b)
	return prepareDataConn(b, func(i int, c *transport.Config) {
		certs(i, c)
		tc := *c.TLS
		tc.CurvePreferences = x25519
		c.TLS = &tc
	})
}

// prepareTLSRaw returns one bare crypto/tls 1.3 set-up over a new TCP
// connection: mutual certificates (the nodes' kind), chain verified on
// full handshakes as the nodes do, and a 1-byte echo. With resume, the
// client resumes a ticket from an earlier connection (one set-up outside
// the measurement gets it).
func prepareTLSRaw(resume bool, curves []tls.CurveID) func(b *testing.B) func() error {
	return func(b *testing.B) func() error {
		certs := testTLS(b, "a", "b")
		mk := func(tc *transport.TLSConfig) *tls.Config {
			return &tls.Config{
				Certificates:           []tls.Certificate{tc.Certificate},
				MinVersion:             tls.VersionTLS13,
				CurvePreferences:       curves,
				InsecureSkipVerify:     true, //nolint:gosec // chain checked in VerifyConnection
				ClientAuth:             tls.RequireAnyClientCert,
				SessionTicketsDisabled: !resume,
				VerifyConnection: func(cs tls.ConnectionState) error {
					if cs.DidResume {
						return nil
					}
					return tc.VerifyPeer(cs.PeerCertificates, true)
				},
			}
		}
		cli, srv := mk(certs[0]), mk(certs[1])
		srv.VerifyConnection = func(cs tls.ConnectionState) error {
			if cs.DidResume {
				return nil
			}
			return certs[1].VerifyPeer(cs.PeerCertificates, false)
		}
		if resume {
			cli.ClientSessionCache = tls.NewLRUClientSessionCache(4)
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { l.Close() })
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				go func() {
					defer c.Close()
					tc := tls.Server(c, srv)
					_ = tc.SetDeadline(time.Now().Add(benchTimeout))
					var one [1]byte
					if _, err := io.ReadFull(tc, one[:]); err == nil {
						_, _ = tc.Write(one[:])
					}
				}()
			}
		}()
		addr := l.Addr().String()
		warmed := false // set once a ticket must have been received
		once := func() error {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				return err
			}
			tc := tls.Client(c, cli)
			defer tc.Close()
			_ = tc.SetDeadline(time.Now().Add(benchTimeout))
			if _, err := tc.Write([]byte{'p'}); err != nil {
				return err
			}
			var one [1]byte
			if _, err := io.ReadFull(tc, one[:]); err != nil {
				return err
			}
			if resume && !tc.ConnectionState().DidResume && warmed {
				return errors.New("TLS session not resumed")
			}
			return nil
		}
		for range 2 { // the first one gets the ticket
			if err := once(); err != nil {
				b.Fatal(err)
			}
		}
		warmed = true
		return once
	}
}

// prepareNodeConnect returns one new node (with a fresh TCP network)
// connecting and authenticating to a listening node, until the listener
// has the messaging connection up too.
func prepareNodeConnect(withTLS bool) func(b *testing.B) func() error {
	return func(b *testing.B) func() error {
		var certs []*transport.TLSConfig
		if withTLS {
			certs = testTLS(b, "srv", "cli")
		}
		mod := func(i int) func(*transport.Config) {
			return func(c *transport.Config) {
				if certs != nil {
					c.Secret, c.TLS = nil, certs[i]
				}
			}
		}
		srv := startNode(b, "srv", "127.0.0.1:0", mod(0))
		up := make(chan string, 1)
		cancel := srv.MonitorNodes(func(id string, isUp bool, _ error) {
			if isUp {
				select {
				case up <- id:
				default:
				}
			}
		})
		b.Cleanup(cancel)
		seq := 0
		return func() error {
			seq++
			cfg := transport.Config{NodeID: "cli-" + strconv.Itoa(seq), Secret: testSecret, Logger: quiet}
			mod(1)(&cfg)
			cli, err := transport.NewNode(cfg)
			if err != nil {
				return err
			}
			defer cli.Close()
			cli.AddNetwork(tcp.New())
			cli.AddPeer("srv", srv.Addrs()...)
			ctx, cancel := context.WithTimeout(context.Background(), benchTimeout)
			defer cancel()
			if err := cli.Connect(ctx, "srv"); err != nil {
				return err
			}
			select {
			case <-up:
				return nil
			case <-ctx.Done():
				return errors.New("the listener did not see the node come up")
			}
		}
	}
}
