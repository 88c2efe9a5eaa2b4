package quic

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aemp-go/dataconn/transport"
	"github.com/aemp-go/dataconn/transport/testca"
)

// testTimeout bounds every wait in these tests.
const testTimeout = 20 * time.Second

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// newNet returns a Network closed at the end of the test.
func newNet(t *testing.T, cfg Config) *Network {
	t.Helper()
	n := New(cfg)
	t.Cleanup(func() { _ = n.Close() })
	return n
}

// listen makes n listen on a loopback port.
func listen(t *testing.T, n *Network) net.Listener {
	t.Helper()
	l, err := n.Listen(testCtx(t), "127.0.0.1:0")
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	return l
}

// accept runs Accept in a goroutine and returns the result channel.
func accept(l net.Listener) <-chan net.Conn {
	ch := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			close(ch)
			return
		}
		ch <- c
	}()
	return ch
}

func waitConn(t *testing.T, ch <-chan net.Conn) net.Conn {
	t.Helper()
	select {
	case c, ok := <-ch:
		if !ok {
			t.Fatal("Accept failed")
		}
		t.Cleanup(func() { _ = c.Close() })
		return c
	case <-time.After(testTimeout):
		t.Fatal("Accept timed out")
	}
	return nil
}

// echo serves l: every accepted stream (up to 10,000) is copied back until
// EOF, then half-closed. It stops when l is closed.
func echo(l net.Listener) {
	go func() {
		for range 10000 {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
				_ = c.(*Stream).CloseWrite()
			}()
		}
	}()
}

// errAfter waits for f to return, up to d, and returns its error.
func errAfter(t *testing.T, d time.Duration, f func() error) error {
	t.Helper()
	ch := make(chan error, 1)
	go func() { ch <- f() }()
	select {
	case err := <-ch:
		return err
	case <-time.After(d):
		t.Fatalf("call still blocked after %v", d)
	}
	return nil
}

func TestScheme(t *testing.T) {
	if got := New(Config{}).Scheme(); got != "quic" {
		t.Fatalf("Scheme() = %q, want quic", got)
	}
}

func TestEcho(t *testing.T) {
	srv := newNet(t, Config{})
	l := listen(t, srv)
	echo(l)
	cli := newNet(t, Config{})
	c, err := cli.Dial(testCtx(t), l.Addr().String())
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer c.Close()
	msg := []byte("aemp;1;anon/x;hmac_sha3_512;json\n")
	if _, err := c.Write(msg); err != nil {
		t.Fatalf("Write: %v", err)
	}
	if err := c.(*Stream).CloseWrite(); err != nil {
		t.Fatalf("CloseWrite: %v", err)
	}
	_ = c.SetReadDeadline(time.Now().Add(testTimeout))
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("ReadAll: %v", err)
	}
	if !bytes.Equal(got, msg) {
		t.Fatalf("echo = %q, want %q", got, msg)
	}
	if ra := c.RemoteAddr().String(); ra != l.Addr().String() {
		t.Fatalf("RemoteAddr = %s, want %s", ra, l.Addr())
	}
	if _, ok := srv.TLSState(c); ok {
		t.Fatal("TLSState of another Network's stream reported ok")
	}
	if _, ok := cli.TLSState(c); ok {
		t.Fatal("TLSState reported ok without TLS configuration")
	}
}

// TestConcurrentStreams opens 1000 streams at once on one connection; each
// carries random bytes preceded by their SHA-256, which the server checks
// before echoing them; the client checks the echo.
func TestConcurrentStreams(t *testing.T) {
	const streams = 1000
	srv := newNet(t, Config{})
	l := listen(t, srv)
	serverErrs := make(chan error, streams)
	go func() {
		for range streams {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(testTimeout))
				data, err := io.ReadAll(c)
				if err != nil || len(data) < sha256.Size {
					serverErrs <- errors.Join(errors.New("server read"), err)
					return
				}
				sum := sha256.Sum256(data[sha256.Size:])
				if !bytes.Equal(sum[:], data[:sha256.Size]) {
					serverErrs <- errors.New("server: SHA-256 mismatch")
					return
				}
				if _, err := c.Write(data[sha256.Size:]); err != nil {
					serverErrs <- err
					return
				}
				serverErrs <- c.(*Stream).CloseWrite()
			}()
		}
	}()
	cli := newNet(t, Config{})
	ctx := testCtx(t)
	var wg sync.WaitGroup
	clientErrs := make(chan error, streams)
	locals := make(chan string, streams)
	for i := range streams {
		wg.Go(func() {
			payload := make([]byte, 1024+i*8)
			_, _ = rand.Read(payload)
			sum := sha256.Sum256(payload)
			c, err := cli.Dial(ctx, l.Addr().String())
			if err != nil {
				clientErrs <- err
				return
			}
			defer c.Close()
			locals <- c.LocalAddr().String()
			_ = c.SetDeadline(time.Now().Add(testTimeout))
			if _, err := c.Write(append(sum[:], payload...)); err != nil {
				clientErrs <- err
				return
			}
			if err := c.(*Stream).CloseWrite(); err != nil {
				clientErrs <- err
				return
			}
			back, err := io.ReadAll(c)
			if err != nil {
				clientErrs <- err
				return
			}
			if got := sha256.Sum256(back); got != sum {
				clientErrs <- errors.New("client: SHA-256 of echo mismatch")
			}
		})
	}
	wg.Wait()
	close(clientErrs)
	close(locals)
	for err := range clientErrs {
		t.Fatalf("client: %v", err)
	}
	for range streams {
		select {
		case err := <-serverErrs:
			if err != nil {
				t.Fatalf("server: %v", err)
			}
		case <-time.After(testTimeout):
			t.Fatal("server side did not finish")
		}
	}
	first := ""
	for a := range locals {
		if first == "" {
			first = a
		} else if a != first {
			t.Fatalf("streams used different local addresses %s and %s: not one connection", first, a)
		}
	}
	cli.mu.Lock()
	pooled := len(cli.pool)
	cli.mu.Unlock()
	srv.mu.Lock()
	accepted := len(srv.accepted)
	srv.mu.Unlock()
	if pooled != 1 || accepted != 1 {
		t.Fatalf("pooled connections = %d, accepted connections = %d; want 1 and 1", pooled, accepted)
	}
}

func TestCloseWriteHalfClose(t *testing.T) {
	srv := newNet(t, Config{})
	l := listen(t, srv)
	acc := accept(l)
	cli := newNet(t, Config{})
	c, err := cli.Dial(testCtx(t), l.Addr().String())
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("request")); err != nil {
		t.Fatal(err)
	}
	if err := c.(*Stream).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	s := waitConn(t, acc)
	_ = s.SetDeadline(time.Now().Add(testTimeout))
	req, err := io.ReadAll(s)
	if err != nil || string(req) != "request" {
		t.Fatalf("server read %q, %v; want request, EOF", req, err)
	}
	// The client's send side is finished, its receive side is not.
	if _, err := s.Write([]byte("response")); err != nil {
		t.Fatalf("server write after client's CloseWrite: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(testTimeout))
	resp, err := io.ReadAll(c)
	if err != nil || string(resp) != "response" {
		t.Fatalf("client read %q, %v; want response, EOF", resp, err)
	}
	if _, err := c.Write([]byte("x")); err == nil {
		t.Fatal("Write after CloseWrite succeeded")
	}
}

func TestCloseSemantics(t *testing.T) {
	srv := newNet(t, Config{})
	l := listen(t, srv)
	acc := accept(l)
	cli := newNet(t, Config{})
	c, err := cli.Dial(testCtx(t), l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte("last words")); err != nil {
		t.Fatal(err)
	}
	s := waitConn(t, acc)
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := c.Close(); !errors.Is(err, ErrClosed) || !errors.Is(err, net.ErrClosed) {
		t.Fatalf("second Close = %v, want ErrClosed", err)
	}
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Read after Close = %v, want net.ErrClosed", err)
	}
	if _, err := c.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Write after Close = %v, want net.ErrClosed", err)
	}
	// Data written before Close arrives, then EOF.
	_ = s.SetDeadline(time.Now().Add(testTimeout))
	got, err := io.ReadAll(s)
	if err != nil || string(got) != "last words" {
		t.Fatalf("peer read %q, %v; want last words, EOF", got, err)
	}
	// The closed side stopped reading: the peer's writes fail with
	// CodeStreamClosed (STOP_SENDING), within bounded time.
	werr := errAfter(t, testTimeout, func() error {
		buf := make([]byte, 32<<10)
		for range 1000 {
			if _, err := s.Write(buf); err != nil {
				return err
			}
			time.Sleep(time.Millisecond)
		}
		return nil
	})
	var qe *Error
	if !errors.Is(werr, ErrStreamReset) || !errors.As(werr, &qe) || qe.Code != CodeStreamClosed || !qe.Remote {
		t.Fatalf("peer Write after Close = %v, want ErrStreamReset with CodeStreamClosed", werr)
	}
}

func TestCloseInterruptsBlockedWrite(t *testing.T) {
	srv := newNet(t, Config{})
	l := listen(t, srv)
	acc := accept(l)
	cli := newNet(t, Config{})
	c, err := cli.Dial(testCtx(t), l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte("hi")); err != nil {
		t.Fatal(err)
	}
	waitConn(t, acc) // accepted, never read: flow control fills
	done := make(chan error, 1)
	go func() {
		_, err := c.Write(make([]byte, 64<<20))
		done <- err
	}()
	time.Sleep(200 * time.Millisecond)
	if err := errAfter(t, testTimeout, c.Close); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("blocked Write returned %v, want net.ErrClosed", err)
		}
	case <-time.After(testTimeout):
		t.Fatal("Close did not interrupt a blocked Write")
	}
}

func TestDeadlines(t *testing.T) {
	srv := newNet(t, Config{})
	l := listen(t, srv)
	acc := accept(l)
	cli := newNet(t, Config{})
	c, err := cli.Dial(testCtx(t), l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	s := waitConn(t, acc)

	// Read deadline: nothing arrives.
	_ = c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	start := time.Now()
	_, err = c.Read(make([]byte, 1))
	var ne net.Error
	if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("Read past deadline = %v, want a timeout", err)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("read deadline fired after %v", el)
	}
	// Clearing it makes the stream usable again.
	_ = c.SetReadDeadline(time.Time{})
	if _, err := s.Write([]byte("y")); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(testTimeout))
	b := make([]byte, 1)
	if _, err := io.ReadFull(c, b); err != nil || b[0] != 'y' {
		t.Fatalf("Read after clearing deadline: %q, %v", b, err)
	}

	// Write deadline: the peer does not read, flow control blocks.
	_ = c.SetWriteDeadline(time.Now().Add(300 * time.Millisecond))
	err = errAfter(t, testTimeout, func() error {
		_, err := c.Write(make([]byte, 64<<20))
		return err
	})
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Write past deadline = %v, want os.ErrDeadlineExceeded", err)
	}
	// SetDeadline sets both.
	_ = c.SetDeadline(time.Now().Add(-time.Second))
	if _, err := c.Read(b); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read after SetDeadline(past) = %v", err)
	}
}

// TestPeerCrash: the server's Network vanishes without a word; both ends'
// blocked Reads and Writes fail within bounded time, and the next Dial
// does not reuse the dead connection.
func TestPeerCrash(t *testing.T) {
	cfg := Config{IdleTimeout: 600 * time.Millisecond, KeepAlivePeriod: 100 * time.Millisecond}
	srv := newNet(t, cfg)
	l := listen(t, srv)
	addr := l.Addr().String()
	acc := accept(l)
	cli := newNet(t, cfg)
	c, err := cli.Dial(testCtx(t), addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	s := waitConn(t, acc)
	if _, err := io.ReadFull(s, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	clientRead := make(chan error, 1)
	go func() { _, err := c.Read(make([]byte, 1)); clientRead <- err }()
	serverRead := make(chan error, 1)
	go func() { _, err := s.Read(make([]byte, 1)); serverRead <- err }()
	time.Sleep(50 * time.Millisecond)

	start := time.Now()
	if err := srv.shutdown(false); err != nil { // a crash: no CONNECTION_CLOSE
		t.Fatalf("shutdown: %v", err)
	}
	for name, ch := range map[string]chan error{"server": serverRead, "client": clientRead} {
		select {
		case err := <-ch:
			if err == nil || errors.Is(err, io.EOF) {
				t.Fatalf("%s Read after crash = %v, want an error", name, err)
			}
			if name == "client" && !errors.Is(err, ErrConnectionLost) {
				t.Fatalf("client Read after crash = %v, want ErrConnectionLost", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s Read still blocked 10s after the crash", name)
		}
	}
	t.Logf("client noticed the crash after %v", time.Since(start))
	if _, err := c.Write([]byte("y")); !errors.Is(err, ErrConnectionLost) {
		t.Fatalf("client Write after crash = %v, want ErrConnectionLost", err)
	}

	// A new server on the same port: the next Dial opens a new connection.
	srv2 := newNet(t, cfg)
	l2, err := srv2.Listen(testCtx(t), addr)
	if err != nil {
		t.Fatalf("re-Listen on %s: %v", addr, err)
	}
	echo(l2)
	c2, err := cli.Dial(testCtx(t), addr)
	if err != nil {
		t.Fatalf("Dial after crash: %v", err)
	}
	defer c2.Close()
	if _, err := c2.Write([]byte("again")); err != nil {
		t.Fatal(err)
	}
	_ = c2.SetReadDeadline(time.Now().Add(testTimeout))
	b := make([]byte, 5)
	if _, err := io.ReadFull(c2, b); err != nil || string(b) != "again" {
		t.Fatalf("echo on new connection: %q, %v", b, err)
	}
}

// TestPeerClose: a peer that closes its Network is noticed at once (no
// idle timeout needed), with the peer's code.
func TestPeerClose(t *testing.T) {
	srv := newNet(t, Config{})
	l := listen(t, srv)
	acc := accept(l)
	cli := newNet(t, Config{})
	c, err := cli.Dial(testCtx(t), l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	waitConn(t, acc)
	if err := srv.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	err = errAfter(t, 5*time.Second, func() error { _, err := c.Read(make([]byte, 1)); return err })
	var qe *Error
	if !errors.Is(err, ErrConnectionLost) || !errors.As(err, &qe) || !qe.Remote || qe.Code != CodeNoError {
		t.Fatalf("Read after peer Close = %v, want ErrConnectionLost from the peer", err)
	}
	if !strings.Contains(err.Error(), "connection to peer lost") {
		t.Fatalf("error text %q does not name the condition", err)
	}
}

func TestIdleTimeout(t *testing.T) {
	cfg := Config{IdleTimeout: 300 * time.Millisecond, KeepAlivePeriod: -1}
	srv := newNet(t, cfg)
	l := listen(t, srv)
	acc := accept(l)
	cli := newNet(t, cfg)
	c, err := cli.Dial(testCtx(t), l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	s := waitConn(t, acc)
	if _, err := io.ReadFull(s, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	for name, conn := range map[string]net.Conn{"client": c, "server": s} {
		err := errAfter(t, 10*time.Second, func() error {
			_, err := conn.Read(make([]byte, 1))
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		})
		var ne net.Error
		if !errors.Is(err, ErrConnectionLost) || !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("%s Read on idle connection = %v, want ErrConnectionLost timeout", name, err)
		}
	}
	// The dead connection left the pool.
	deadline := time.Now().Add(5 * time.Second)
	for {
		cli.mu.Lock()
		pooled := len(cli.pool)
		cli.mu.Unlock()
		if pooled == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("idle connection still pooled")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestKeepAlive: with keep-alives the same short idle timeout does not
// close a quiet connection.
// TestKeepAlive: keep-alives hold a quiet connection open over several
// idle timeouts. The idle timeout is 20 keep-alive periods, so a machine
// ten times slower than ours (keep-alives a second late) still passes;
// without keep-alives the connection dies after 2 s.
func TestKeepAlive(t *testing.T) {
	cfg := Config{IdleTimeout: 2 * time.Second, KeepAlivePeriod: 100 * time.Millisecond}
	srv := newNet(t, cfg)
	l := listen(t, srv)
	echo(l)
	cli := newNet(t, cfg)
	c, err := cli.Dial(testCtx(t), l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	time.Sleep(5 * time.Second) // two and a half idle timeouts
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatalf("Write after 5 quiet seconds: %v", err)
	}
	_ = c.SetReadDeadline(time.Now().Add(testTimeout))
	b := make([]byte, 4)
	if _, err := io.ReadFull(c, b); err != nil || string(b) != "ping" {
		t.Fatalf("echo after 5 quiet seconds: %q, %v", b, err)
	}
}

func issue(t *testing.T, ca *testca.CA, id string) *transport.TLSConfig {
	t.Helper()
	tc, err := ca.Issue(id, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return tc
}

func TestMutualTLS(t *testing.T) {
	ca, err := testca.New("test CA")
	if err != nil {
		t.Fatal(err)
	}
	srv := newNet(t, Config{TLS: issue(t, ca, "server-node")})
	l := listen(t, srv)
	acc := accept(l)
	cli := newNet(t, Config{TLS: issue(t, ca, "client-node")})
	c, err := cli.Dial(testCtx(t), l.Addr().String())
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	s := waitConn(t, acc)
	cst, ok := cli.TLSState(c)
	if !ok || len(cst.PeerCertificates) == 0 || cst.PeerCertificates[0].Subject.CommonName != "server-node" || cst.NegotiatedProtocol != ALPN {
		t.Fatalf("client TLSState ok=%v, state %+v", ok, cst)
	}
	sst, ok := srv.TLSState(s)
	if !ok || len(sst.PeerCertificates) == 0 || sst.PeerCertificates[0].Subject.CommonName != "client-node" {
		t.Fatalf("server TLSState ok=%v", ok)
	}
	// Both ends derive the same exporter value (channel binding).
	ek1, err1 := cst.ExportKeyingMaterial("EXPORTER-Channel-Binding", nil, 32)
	ek2, err2 := sst.ExportKeyingMaterial("EXPORTER-Channel-Binding", nil, 32)
	if err1 != nil || err2 != nil || !bytes.Equal(ek1, ek2) {
		t.Fatalf("exporters differ: %x (%v) vs %x (%v)", ek1, err1, ek2, err2)
	}
}

func TestMutualTLSWrongCA(t *testing.T) {
	ca, err := testca.New("good CA")
	if err != nil {
		t.Fatal(err)
	}
	other, err := testca.New("other CA")
	if err != nil {
		t.Fatal(err)
	}
	srv := newNet(t, Config{TLS: issue(t, ca, "server-node")})
	l := listen(t, srv)
	acc := accept(l)

	// A client that does not trust the server's CA refuses it.
	stranger := newNet(t, Config{TLS: issue(t, other, "stranger")})
	_, err = stranger.Dial(testCtx(t), l.Addr().String())
	if !errors.Is(err, ErrHandshake) {
		t.Fatalf("Dial to untrusted server = %v, want ErrHandshake", err)
	}

	// A client whose certificate the server does not trust (it trusts the
	// server), and a client with no certificate at all: the server refuses
	// them. With TLS 1.3 the client may finish its side of the handshake
	// first, so the refusal shows either in Dial or in the first Read.
	imposter := issue(t, other, "imposter")
	imposter.RootCAs = issue(t, ca, "x").RootCAs
	for name, cfg := range map[string]Config{"untrusted certificate": {TLS: imposter}, "no certificate": {}} {
		cli := newNet(t, cfg)
		err = errAfter(t, testTimeout, func() error {
			c, err := cli.Dial(testCtx(t), l.Addr().String())
			if err != nil {
				return err
			}
			defer c.Close()
			if _, err := c.Write([]byte("x")); err != nil {
				return err
			}
			_ = c.SetReadDeadline(time.Now().Add(testTimeout))
			_, err = c.Read(make([]byte, 1))
			return err
		})
		if !errors.Is(err, ErrHandshake) && !errors.Is(err, ErrConnectionLost) {
			t.Fatalf("client with %s: %v, want ErrHandshake or ErrConnectionLost", name, err)
		}
		if !strings.Contains(err.Error(), "certificate") {
			t.Fatalf("client with %s: error %q does not name the certificate", name, err)
		}
	}
	select {
	case c, ok := <-acc:
		if ok {
			c.Close()
			t.Fatal("server accepted a stream from a client it does not trust")
		}
	case <-time.After(200 * time.Millisecond):
	}
}

func TestBadTLSConfig(t *testing.T) {
	n := New(Config{TLS: &transport.TLSConfig{}})
	defer n.Close()
	if _, err := n.Listen(testCtx(t), "127.0.0.1:0"); !errors.Is(err, ErrTLSConfig) {
		t.Fatalf("Listen with empty TLSConfig = %v, want ErrTLSConfig", err)
	}
	if _, err := n.Dial(testCtx(t), "127.0.0.1:1"); !errors.Is(err, ErrTLSConfig) {
		t.Fatalf("Dial with empty TLSConfig = %v, want ErrTLSConfig", err)
	}
}

func TestDialErrors(t *testing.T) {
	n := newNet(t, Config{})
	for _, addr := range []string{"no-port", "127.0.0.1:x", "127.0.0.1:0", ":1", "127.0.0.1:70000"} {
		if _, err := n.Dial(testCtx(t), addr); !errors.Is(err, ErrAddress) {
			t.Errorf("Dial(%q) = %v, want ErrAddress", addr, err)
		}
	}
	if _, err := n.Listen(testCtx(t), "no-port"); !errors.Is(err, ErrAddress) {
		t.Errorf("Listen(no-port) = %v, want ErrAddress", err)
	}
	// Nobody answers: the caller's deadline bounds the attempt.
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = n.Dial(ctx, pc.LocalAddr().String())
	if !errors.Is(err, ErrHandshake) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Dial to silent port = %v, want ErrHandshake and DeadlineExceeded", err)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("Dial took %v despite a 300ms deadline", el)
	}
	// After Close.
	_ = n.Close()
	if _, err := n.Dial(testCtx(t), pc.LocalAddr().String()); !errors.Is(err, ErrClosed) || !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Dial after Close = %v, want ErrClosed", err)
	}
	if _, err := n.Listen(testCtx(t), "127.0.0.1:0"); !errors.Is(err, ErrClosed) {
		t.Fatalf("Listen after Close = %v, want ErrClosed", err)
	}
}

// TestDialFromListeningPort: a listening Network dials from its listening
// UDP port, so the peer sees that port; one that does not listen dials
// from one ephemeral port for every destination.
func TestDialFromListeningPort(t *testing.T) {
	a := newNet(t, Config{})
	la := listen(t, a)
	echo(la)
	b := newNet(t, Config{})
	lb := listen(t, b)
	acc := accept(lb)
	c, err := a.Dial(testCtx(t), lb.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	s := waitConn(t, acc)
	if got := s.RemoteAddr().String(); got != la.Addr().String() {
		t.Fatalf("peer sees %s, want the listening address %s", got, la.Addr())
	}

	d := newNet(t, Config{})
	c1, err := d.Dial(testCtx(t), la.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Close()
	c2, err := d.Dial(testCtx(t), lb.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if c1.LocalAddr().(*net.UDPAddr).Port != c2.LocalAddr().(*net.UDPAddr).Port {
		t.Fatalf("non-listening Network used two local ports: %s, %s", c1.LocalAddr(), c2.LocalAddr())
	}
}

func TestListenerClose(t *testing.T) {
	srv := newNet(t, Config{})
	l := listen(t, srv)
	echo(l)
	cli := newNet(t, Config{})
	c, err := cli.Dial(testCtx(t), l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("a")); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(testTimeout))
	if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept after Close = %v, want net.ErrClosed", err)
	}
	// The established stream still works.
	if _, err := c.Write([]byte("b")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
		t.Fatalf("established stream after Listener.Close: %v", err)
	}
	// A new stream on the existing connection is refused at once.
	c2, err := cli.Dial(testCtx(t), l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if _, err := c2.Write([]byte("c")); err != nil {
		t.Fatal(err)
	}
	_ = c2.SetReadDeadline(time.Now().Add(testTimeout))
	_, err = c2.Read(make([]byte, 1))
	var qe *Error
	if !errors.Is(err, ErrStreamReset) || !errors.As(err, &qe) || qe.Code != CodeRefused {
		t.Fatalf("stream after Listener.Close: %v, want ErrStreamReset with CodeRefused", err)
	}
}

// TestCloseReleasesEverything: after Close no goroutine is left and the
// UDP ports are free again.
func TestCloseReleasesEverything(t *testing.T) {
	before := runtime.NumGoroutine()
	srv := New(Config{})
	l, err := srv.Listen(testCtx(t), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	echo(l)
	cli := New(Config{})
	var conns []net.Conn
	for range 10 {
		c, err := cli.Dial(testCtx(t), l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	for _, c := range conns {
		_ = c.SetReadDeadline(time.Now().Add(testTimeout))
		if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
			t.Fatal(err)
		}
	}
	cliPort := conns[0].LocalAddr().(*net.UDPAddr).Port
	if err := cli.Close(); err != nil {
		t.Fatalf("client Close: %v", err)
	}
	if err := srv.Close(); err != nil {
		t.Fatalf("server Close: %v", err)
	}
	if err := srv.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	for _, addr := range []string{l.Addr().String(), net.JoinHostPort("::", strconv.Itoa(cliPort))} {
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			t.Fatalf("UDP port %s still in use after Close: %v", addr, err)
		}
		_ = pc.Close()
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("goroutines: %d before, %d after Close\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// recorder is a slog.Handler that keeps the records it receives.
type recorder struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	r.recs = append(r.recs, rec)
	r.mu.Unlock()
	return nil
}
func (r *recorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *recorder) WithGroup(string) slog.Handler      { return r }

func (r *recorder) warnings() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	k := 0
	for _, rec := range r.recs {
		if rec.Level == slog.LevelWarn {
			k++
		}
	}
	return k
}

// TestBufferWarningOnce: a buffer problem is logged once per Network
// through Config.Logger, however many sockets it opens.
func TestBufferWarningOnce(t *testing.T) {
	rec := &recorder{}
	n := newNet(t, Config{Logger: slog.New(rec)})
	for range 3 {
		n.noteBuffers("UDP receive buffer is 208 kiB, wanted 7168 kiB")
	}
	n.noteBuffers("")
	if got := rec.warnings(); got != 1 {
		t.Fatalf("%d warnings logged, want exactly 1", got)
	}
	quiet := &recorder{}
	m := newNet(t, Config{Logger: slog.New(quiet)})
	m.noteBuffers("")
	if got := quiet.warnings(); got != 0 {
		t.Fatalf("%d warnings logged without a problem", got)
	}
}
