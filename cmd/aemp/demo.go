package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/aemp-go/dataconn/core/handshake"
	"github.com/aemp-go/dataconn/core/wire"
	"github.com/aemp-go/dataconn/quic"
	"github.com/aemp-go/dataconn/tcp"
	"github.com/aemp-go/dataconn/transport"
	"github.com/aemp-go/dataconn/transport/testca"
)

// demoBlock is the size of the random block the demo's data is made of;
// every block carries its index in its first 8 bytes, so reordering,
// loss and duplication all change the SHA-256.
const demoBlock = 1 << 20

func demoCommand(e *env) (*flag.FlagSet, func(context.Context, []string) error) {
	fs := newFlagSet(e, "demo", "aemp demo [flags]",
		`Run two nodes in this process on loopback and open one data connection
between them over each transport: TCP with a random shared secret (HMAC
auth; hmac_sha3_512_cb between Go nodes), TCP with TLS (certificates made
in memory, tls_sha3_512) and QUIC (same certificates; the QUIC channel
itself authenticates, tls_channel). Each sends --size bytes, the far side checks the
SHA-256, and a table shows the messaging connection time, the data
connection set-up time (the messaging connection already up), the
throughput and whether the SHA-256 matched. No setup and no flags needed.
A QUIC row that cannot be set up reads "not available: REASON".`)
	size := fs.String("size", "256MiB", "`SIZE` to send per transport (e.g. 8MiB, 256MiB, 1GiB, 1000000 bytes)")
	timeout := fs.Duration("timeout", 10*time.Second, "time allowed for each connection set-up")
	verbose := fs.Bool("v", false, "log debug messages to stderr")
	jsonOut := fs.Bool("json", false, "print one JSON object per transport on stdout instead of the table")
	return fs, func(ctx context.Context, args []string) error {
		if len(args) > 0 {
			return usagef("unexpected arguments: %q", args)
		}
		n, err := parseSize(*size)
		if err != nil {
			return usagef("--size: %v", err)
		}
		if *timeout <= 0 {
			return usagef("--timeout must be positive")
		}
		d := &demo{
			size: n, timeout: *timeout, log: newLogger(e.stderr, *verbose),
			progress: e.stderrTTY && !*verbose, progressOut: e.stderr,
		}
		rows := d.run(ctx)
		if *jsonOut {
			rep := &reporter{w: e.stdout, json: true}
			for _, r := range rows {
				rep.emit(r.event())
			}
		} else {
			printDemoTable(e.stdout, n, rows)
		}
		for _, r := range rows {
			if r.err != nil && !r.unavailable {
				return fmt.Errorf("%s: %v", r.transport, r.err)
			}
		}
		if ctx.Err() != nil {
			return errors.New("interrupted")
		}
		return nil
	}
}

type demo struct {
	size        int64
	timeout     time.Duration
	log         *slog.Logger
	progress    bool
	progressOut io.Writer
}

type demoRow struct {
	transport, auth string
	connect, setup  time.Duration
	elapsed         time.Duration
	bytes           int64
	sum             []byte
	verified        bool
	unavailable     bool
	err             error
}

func (r *demoRow) event() event {
	ev := event{Event: "demo", Transport: r.transport, Auth: r.auth}
	if r.err != nil {
		ev.Error = r.err.Error()
		if r.unavailable {
			ev.Reason = "not available"
		}
		ev.Verified = ptr(false)
		return ev
	}
	ev.SetupSeconds = ptr(r.setup.Seconds())
	ev.ConnectSeconds = ptr(r.connect.Seconds())
	ev.Seconds = ptr(r.elapsed.Seconds())
	ev.Bytes = ptr(r.bytes)
	ev.BytesPerSecond = ptr(rate(r.bytes, r.elapsed))
	ev.SHA256 = fmt.Sprintf("%x", r.sum)
	ev.Verified = ptr(r.verified)
	return ev
}

func printDemoTable(w io.Writer, size int64, rows []demoRow) {
	fmt.Fprintf(w, "aemp demo: %s (%d bytes) per transport, two nodes on loopback\n\n", formatBytes(size), size)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TRANSPORT\tAUTH\tCONNECT\tSET-UP\tTIME\tTHROUGHPUT\tVERIFIED")
	for _, r := range rows {
		switch {
		case r.unavailable:
			fmt.Fprintf(tw, "%s\t%s\t-\t-\t-\t-\tnot available: %v\n", r.transport, r.auth, r.err)
		case r.err != nil:
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t-\t-\tno: %v\n", r.transport, r.auth, orDash(r.connect), orDash(r.setup), r.err)
		default:
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\tyes\n", r.transport, r.auth, formatDuration(r.connect),
				formatDuration(r.setup), formatDuration(r.elapsed), formatRate(r.bytes, r.elapsed))
		}
	}
	tw.Flush()
	fmt.Fprintln(w, "\nCONNECT: messaging connection (dial + handshake); SET-UP: data connection")
	fmt.Fprintln(w, "(ConnectTo until the stream is ready); TIME and THROUGHPUT: first byte sent")
	fmt.Fprintln(w, "until the receiver's SHA-256 came back.")
}

func orDash(d time.Duration) string {
	if d == 0 {
		return "-"
	}
	return formatDuration(d)
}

// demoNet is one side's view of a transport in the demo.
type demoNet struct {
	nw     transport.Network
	closer io.Closer // nil when nothing to close
}

// demoCase describes how to build one row: a node configuration and a
// network per side.
type demoCase struct {
	transport, auth string
	// build returns the configurations and networks of side a (sender)
	// and b (receiver).
	build func() (a, b transport.Config, na, nb demoNet, err error)
	// optional rows report a set-up failure as "not available".
	optional bool
}

func (d *demo) cases() []demoCase {
	var ca *testca.CA
	issue := func(id string) (*transport.TLSConfig, error) {
		if ca == nil {
			var err error
			if ca, err = testca.New("aemp demo CA"); err != nil {
				return nil, err
			}
		}
		now := time.Now()
		return ca.Issue(id, now.Add(-time.Hour), now.Add(24*time.Hour))
	}
	tlsPair := func() (a, b transport.Config, err error) {
		ta, err := issue("demo-a")
		if err != nil {
			return a, b, err
		}
		tb, err := issue("demo-b")
		if err != nil {
			return a, b, err
		}
		return transport.Config{NodeID: "demo-a", TLS: ta, TLSRequired: true},
			transport.Config{NodeID: "demo-b", TLS: tb, TLSRequired: true}, nil
	}
	return []demoCase{
		{transport: "tcp", build: func() (a, b transport.Config, na, nb demoNet, err error) {
			secret := make([]byte, 32)
			if _, err = rand.Read(secret); err != nil {
				return
			}
			a = transport.Config{NodeID: "demo-a", Secret: secret}
			b = transport.Config{NodeID: "demo-b", Secret: secret}
			return a, b, demoNet{nw: tcp.New()}, demoNet{nw: tcp.New()}, nil
		}},
		{transport: "tcp+tls", build: func() (a, b transport.Config, na, nb demoNet, err error) {
			a, b, err = tlsPair()
			return a, b, demoNet{nw: tcp.New()}, demoNet{nw: tcp.New()}, err
		}},
		{transport: "quic", optional: true, build: func() (a, b transport.Config, na, nb demoNet, err error) {
			a, b, err = tlsPair()
			if err != nil {
				return
			}
			qa := quic.New(quic.Config{TLS: a.TLS, Logger: d.log})
			qb := quic.New(quic.Config{TLS: b.TLS, Logger: d.log})
			return a, b, demoNet{nw: qa, closer: qa}, demoNet{nw: qb, closer: qb}, nil
		}},
	}
}

// run measures every case in turn.
func (d *demo) run(ctx context.Context) []demoRow {
	var rows []demoRow
	for _, c := range d.cases() {
		if ctx.Err() != nil {
			break
		}
		rows = append(rows, d.runCase(ctx, c))
	}
	return rows
}

// errSetup wraps a failure to set a row up (as opposed to a transfer that
// went wrong).
type setupError struct{ err error }

func (e *setupError) Error() string { return e.err.Error() }
func (e *setupError) Unwrap() error { return e.err }

func (d *demo) runCase(ctx context.Context, c demoCase) demoRow {
	row := demoRow{transport: c.transport, auth: c.auth}
	err := d.transfer(ctx, c, &row)
	if err != nil {
		row.err = err
		var se *setupError
		row.unavailable = c.optional && errors.As(err, &se)
	}
	return row
}

func (d *demo) transfer(ctx context.Context, c demoCase, row *demoRow) error {
	ca, cb, na, nb, err := c.build()
	if na.closer != nil {
		defer na.closer.Close()
	}
	if nb.closer != nil {
		defer nb.closer.Close()
	}
	if err != nil {
		return &setupError{err}
	}
	ca.Logger, cb.Logger = d.log, d.log
	row.auth = expectedAuth(c.transport, ca, cb)
	a, err := transport.NewNode(ca)
	if err != nil {
		return &setupError{err}
	}
	defer a.Close()
	b, err := transport.NewNode(cb)
	if err != nil {
		return &setupError{err}
	}
	defer b.Close()
	recv, err := newReceiver("", &reporter{w: io.Discard}, d.log)
	if err != nil {
		return &setupError{err}
	}
	defer recv.close()
	b.HandleDataConn(recvInitFunc, recv.handle)

	addr, err := b.Listen(ctx, nb.nw, "127.0.0.1:0")
	if err != nil {
		return &setupError{fmt.Errorf("listen: %w", err)}
	}
	a.AddNetwork(na.nw)
	a.AddPeer(b.ID(), addr)

	cctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	t0 := time.Now()
	if err := a.Connect(cctx, b.ID()); err != nil {
		return &setupError{fmt.Errorf("connect: %w", err)}
	}
	row.connect = time.Since(t0)
	t1 := time.Now()
	conn, err := a.ConnectTo(cctx, b.ID(), d.timeout, recvInitFunc, "demo-"+c.transport)
	if err != nil {
		return &setupError{err}
	}
	row.setup = time.Since(t1)
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	if c.transport == "tcp+tls" {
		if v, ok := tlsVersion(conn); ok {
			row.auth += " (" + v + ")"
		}
	}

	data, err := newDemoData(d.size)
	if err != nil {
		return &setupError{err}
	}
	bar := newProgress(d.progressOut, d.progress, d.size, c.transport)
	h := sha256.New()
	t2 := time.Now()
	n, err := pump(conn, data, h, bar.add)
	row.bytes = n
	if err != nil {
		bar.abort()
		return fmt.Errorf("stream broken after %d bytes: %w", n, err)
	}
	bar.finish()
	row.sum = h.Sum(nil)
	if err := closeWrite(conn); err != nil {
		return err
	}
	conn.SetReadDeadline(time.Now().Add(d.timeout))
	got := make([]byte, sha256.Size)
	if _, err := io.ReadFull(conn, got); err != nil {
		return fmt.Errorf("%w: %v", errShortHash, err)
	}
	row.elapsed = time.Since(t2)
	if subtle.ConstantTimeCompare(got, row.sum) != 1 {
		return fmt.Errorf("SHA-256 mismatch: sent %x, received %x", row.sum, got)
	}
	row.verified = true
	return nil
}

// expectedAuth names the auth method a sends to b on the connection that
// authenticates the data connection: the first of b's accepted methods
// (see transport.Node) that a can generate. The data connection API does
// not report the negotiated method, so the demo derives it from the
// configurations the same way the handshake does. Over QUIC the data
// connection is a stream of the messaging connection, which two nodes of
// this project with verified certificates and no secret authenticate by
// the channel itself (handshake.AuthChannel); over TCP+TLS the data
// connection has its own tls_sha3_512 handshake.
func expectedAuth(network string, a, b transport.Config) string {
	ours := !a.PerlCompat && !b.PerlCompat
	cb := ours && !a.DisableChannelBinding && !b.DisableChannelBinding
	switch {
	case cb && a.Secret != nil && b.Secret != nil:
		return handshake.AuthHMACCB
	case network == "quic" && ours && a.Secret == nil && b.Secret == nil &&
		!a.DisableTLSBind && !b.DisableTLSBind:
		return handshake.AuthChannel
	case a.TLS != nil && b.TLS != nil:
		return wire.AuthTLS
	}
	return wire.AuthHMAC
}

// tlsVersion reports the TLS version of a data connection, looking through
// wrappers that have Unwrap() net.Conn.
func tlsVersion(c net.Conn) (string, bool) {
	for i := 0; i < 4 && c != nil; i++ {
		if tc, ok := c.(*tls.Conn); ok {
			return strings.ReplaceAll(tls.VersionName(tc.ConnectionState().Version), " ", ""), true
		}
		u, ok := c.(interface{ Unwrap() net.Conn })
		if !ok {
			return "", false
		}
		c = u.Unwrap()
	}
	return "", false
}

// demoData generates size bytes: a random block repeated, each copy
// stamped with its index.
type demoData struct {
	block     []byte
	size, off int64
}

func newDemoData(size int64) (*demoData, error) {
	b := make([]byte, demoBlock)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	return &demoData{block: b, size: size}, nil
}

func (g *demoData) Read(p []byte) (int, error) {
	if g.off >= g.size {
		return 0, io.EOF
	}
	pos := g.off % demoBlock
	if pos == 0 {
		binary.LittleEndian.PutUint64(g.block, uint64(g.off/demoBlock))
	}
	n := copy(p, g.block[pos:])
	if rem := g.size - g.off; int64(n) > rem {
		n = int(rem)
	}
	g.off += int64(n)
	return n, nil
}
