package fuzz

import (
	"bufio"
	"context"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aemp-go/dataconn/core/handshake"
	"github.com/aemp-go/dataconn/core/rendezvous"
	"github.com/aemp-go/dataconn/core/wire"
	"github.com/aemp-go/dataconn/tcp"
	"github.com/aemp-go/dataconn/transport"
	"github.com/aemp-go/dataconn/transport/testca"
)

// readLines reads n handshake lines from r (without terminators).
func readLines(t *testing.T, c net.Conn, r *bufio.Reader, n int) []string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	defer c.SetReadDeadline(time.Time{})
	var out []string
	for range n {
		l, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("reading handshake line %d: %v (got %q)", len(out)+1, err, out)
		}
		out = append(out, strings.TrimRight(l, "\r\n"))
	}
	return out
}

// TestHostileReflection: an attacker opens two connections to node B and
// swaps B's greetings and auth lines between them, so that B would
// authenticate itself. B must refuse its own node ID on every connection
// (messaging and data) and its own auth line.
func TestHostileReflection(t *testing.T) {
	e := newEnv(t)
	defer e.finish()
	b, addr, logs := e.node("B", nil)

	// c1: greet as X to make B send its lines.
	c1 := e.dial(addr)
	r1 := bufio.NewReader(c1)
	if _, err := io.WriteString(c1, "aemp;1;X;hmac_sha3_512;json\n"+nonceLine()+"\n"); err != nil {
		t.Fatal(err)
	}
	bl := readLines(t, c1, r1, 3) // B's greeting, nonce and auth line
	if !strings.HasPrefix(bl[0], "aemp;1;B;") || !strings.HasPrefix(bl[2], wire.AuthHMAC+";") {
		t.Fatalf("unexpected lines from B: %q", bl)
	}

	// c2: reflect B's own greeting and nonce (messaging).
	c2 := e.dial(addr)
	io.WriteString(c2, bl[0]+"\n"+bl[1]+"\n")
	expectEOF(t, c2, 5*time.Second)

	// c3: the same as a data connection.
	c3 := e.dial(addr)
	dc := "aemp-dataconn" + strings.TrimPrefix(bl[0], "aemp") + ";dataconn_id=x@B"
	io.WriteString(c3, dc+"\n"+bl[1]+"\n")
	expectEOF(t, c3, 5*time.Second)

	// c1: reflect B's auth line back to it.
	io.WriteString(c1, bl[2]+"\n")
	expectEOF(t, c1, 5*time.Second)

	waitFor(t, 5*time.Second, func() bool { return logs.count(handshake.ErrSelfConnect) >= 2 }, "both self-greetings refused with ErrSelfConnect")
	logs.wait(t, handshake.ErrAuthFailed, 5*time.Second)
	if p := b.Peers(); len(p) != 0 {
		t.Fatalf("B has peers %v after the reflection attack", p)
	}
}

// holdNet is TCP whose dialed streams hold their first write when it is an
// aemp-dataconn greeting: the id is published and the write waits for
// release, so a test can race another node against the honest dialer.
type holdNet struct {
	*tcp.Network
	ids     chan string
	release chan struct{}
}

func (h *holdNet) Dial(ctx context.Context, addr string) (net.Conn, error) {
	c, err := h.Network.Dial(ctx, addr)
	if err != nil {
		return nil, err
	}
	return &holdConn{Conn: c, n: h}, nil
}

type holdConn struct {
	net.Conn
	n    *holdNet
	seen atomic.Bool
}

func (c *holdConn) Write(p []byte) (int, error) {
	if !c.seen.Swap(true) && strings.HasPrefix(string(p), wire.ProtocolDataConn+";") {
		line, _, _ := strings.Cut(string(p), "\n")
		if id, ok := wire.ParseGreeting(line).Get(wire.KeyDataConnID); ok {
			select {
			case c.n.ids <- id:
			default:
			}
			select {
			case <-c.n.release:
			case <-time.After(10 * time.Second):
			}
		}
	}
	return c.Conn.Write(p)
}

func (c *holdConn) CloseWrite() error {
	if cw, ok := c.Conn.(transport.CloseWriter); ok {
		return cw.CloseWrite()
	}
	return c.Conn.Close()
}

// TestHostileIDHijack: node C, authenticated with the shared secret,
// learns the id of A's pending data connection and dials B with it first.
// B refuses C (rendezvous.ErrIDHijack: the id is bound to A), and A's connection
// still succeeds.
func TestHostileIDHijack(t *testing.T) {
	e := newEnv(t)
	defer e.finish()
	hn := &holdNet{Network: tcp.New(), ids: make(chan string, 1), release: make(chan struct{})}
	a, _, _ := e.nodeOn("A", hn, nil)
	b, addrB, logsB := e.node("B", nil)
	a.AddPeer("B", addrB)
	var calls atomic.Int32
	var from atomic.Value
	b.HandleDataConn("echo", func(f string, _ []any, c net.Conn) {
		calls.Add(1)
		from.Store(f)
		io.Copy(c, c)
		c.Close()
	})
	type result struct {
		c   net.Conn
		err error
	}
	done := make(chan result, 1)
	go func() {
		c, err := a.ConnectTo(context.Background(), "B", 10*time.Second, "echo")
		done <- result{c, err}
	}()
	var id string
	select {
	case id = <-hn.ids:
	case r := <-done:
		t.Fatalf("ConnectTo ended before dialing: %v", r.err)
	case <-time.After(5 * time.Second):
		close(hn.release)
		t.Fatal("A never dialed its data connection")
	}
	waitFor(t, 5*time.Second, func() bool { _, x, _ := b.DataConns().Pending(); return x == 1 }, "B holds A's expectation")

	// C, a node with the secret, presents A's id.
	cc := e.dial(addrB)
	_, _, err := attackerHandshake(cc, handshake.Config{
		NodeID: "C", Protocol: wire.ProtocolDataConn, Secret: hostileSecret,
		Extra: []wire.KV{{Key: wire.KeyGo, Value: "1"}, {Key: wire.KeyDataConnID, Value: id}},
	})
	if err == nil {
		close(hn.release)
		t.Fatal("B completed a data-connection handshake with C for A's id")
	}
	if !errors.Is(err, handshake.ErrPeerClosed) {
		t.Errorf("C's handshake failed with %v, want ErrPeerClosed (B closes before greeting)", err)
	}
	hj := logsB.wait(t, rendezvous.ErrIDHijack, 5*time.Second)
	var re *rendezvous.Error
	if !errors.As(hj, &re) || re.Node != "C" {
		t.Errorf("logged %v, want an *rendezvous.Error naming C", hj)
	}

	close(hn.release)
	var r result
	select {
	case r = <-done:
	case <-time.After(15 * time.Second):
		t.Fatal("A's ConnectTo did not return")
	}
	if r.err != nil {
		t.Fatalf("A's data connection failed after the hijack attempt: %v", r.err)
	}
	e.track(r.c)
	if _, err := io.WriteString(r.c, "hello"); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 5)
	r.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(r.c, buf); err != nil || string(buf) != "hello" {
		t.Fatalf("echo: %q, %v", buf, err)
	}
	r.c.Close()
	if calls.Load() != 1 || from.Load() != "A" {
		t.Fatalf("init function ran %d times, last from %v; want once, from A", calls.Load(), from.Load())
	}
}

// TestHostileDowngrade: a node that requires TLS refuses a peer greeting
// without tls; a node refuses cleartext auth it did not offer.
func TestHostileDowngrade(t *testing.T) {
	ca, err := testca.New("hostile CA")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tb, err := ca.Issue("B", now.Add(-time.Hour), now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	t.Run("no-tls", func(t *testing.T) {
		e := newEnv(t)
		defer e.finish()
		_, addr, logs := e.node("B", func(c *transport.Config) { c.TLS, c.TLSRequired = tb, true })
		c := e.dial(addr)
		_, _, err := attackerHandshake(c, handshake.Config{NodeID: "M", Secret: hostileSecret})
		if err == nil {
			t.Fatal("a peer without TLS authenticated to a node that requires TLS")
		}
		logs.wait(t, handshake.ErrTLSRequired, 5*time.Second)
	})
	t.Run("cleartext", func(t *testing.T) {
		e := newEnv(t)
		defer e.finish()
		b, addr, logs := e.node("B", nil)
		c := e.dial(addr)
		r := bufio.NewReader(c)
		io.WriteString(c, "aemp;1;M;hmac_sha3_512,cleartext;json\n"+nonceLine()+"\n")
		readLines(t, c, r, 3)
		io.WriteString(c, wire.AuthCleartext+";"+hex.EncodeToString(hostileSecret)+";json\n")
		expectEOF(t, c, 5*time.Second)
		err := logs.wait(t, handshake.ErrAuthNotOffered, 5*time.Second)
		if !strings.Contains(err.Error(), wire.AuthCleartext) {
			t.Errorf("logged %q, want it to name the method", err)
		}
		if p := b.Peers(); len(p) != 0 {
			t.Fatalf("B has peers %v after a cleartext attempt", p)
		}
	})
}

// TestHostileTLSCertificates: a peer whose certificate comes from another
// CA, or has expired, is refused on both sides with ErrTLSFailed caused by
// a certificate error; a valid certificate gets in (control).
func TestHostileTLSCertificates(t *testing.T) {
	ca, err := testca.New("CA one")
	if err != nil {
		t.Fatal(err)
	}
	other, err := testca.New("CA two")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tb, _ := ca.Issue("B", now.Add(-time.Hour), now.Add(time.Hour))
	good, _ := ca.Issue("A", now.Add(-time.Hour), now.Add(time.Hour))
	wrongCA, _ := other.Issue("A", now.Add(-time.Hour), now.Add(time.Hour))
	expired, _ := ca.Issue("A", now.Add(-48*time.Hour), now.Add(-24*time.Hour))
	if tb == nil || good == nil || wrongCA == nil || expired == nil {
		t.Fatal("issuing test certificates failed")
	}
	cases := []struct {
		name string
		tls  *transport.TLSConfig
		ok   bool
	}{
		{"valid", good, true},
		{"wrong-ca", wrongCA, false},
		{"expired", expired, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			defer e.finish()
			_, addr, logsB := e.node("B", func(c *transport.Config) { c.Secret, c.TLS, c.TLSRequired = nil, tb, true })
			a, _, _ := e.node("A", func(c *transport.Config) { c.Secret, c.TLS, c.TLSRequired = nil, tc.tls, true })
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			id, err := a.ConnectAddr(ctx, addr)
			if tc.ok {
				if err != nil || id != "B" {
					t.Fatalf("valid certificate: %q, %v", id, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("connected with a %s certificate", tc.name)
			}
			// B verifies A's certificate in either TLS role: it must
			// report a TLS failure caused by certificate material.
			serr := logsB.wait(t, handshake.ErrTLSFailed, 5*time.Second)
			var te *transport.TLSError
			if c := causeOf(serr); !errors.As(c, &te) || !errors.Is(c, transport.ErrTLSCertificate) {
				t.Errorf("acceptor's TLS failure cause %T %v, want a *transport.TLSError matching ErrTLSCertificate", c, c)
			}
			// A learns it from B's alert: as TLS server from its
			// handshake (ErrTLSFailed); as TLS 1.3 client only from its
			// first read after the handshake (ErrPeerClosed caused by
			// the alert), as transport.TLSConfig.Upgrade documents.
			var he *handshake.Error
			var alert *net.OpError
			switch {
			case !errors.As(err, &he):
				t.Fatalf("dialer error %T %v, want a *handshake.Error", err, err)
			case errors.Is(err, handshake.ErrTLSFailed):
				if !errors.As(he.Cause, &te) || !errors.Is(he.Cause, transport.ErrTLSHandshake) {
					t.Errorf("dialer's TLS failure cause %T %v, want a *transport.TLSError", he.Cause, he.Cause)
				}
			case errors.Is(err, handshake.ErrPeerClosed) && errors.As(he.Cause, &alert) && alert.Op == "remote error":
			default:
				t.Fatalf("dialer error %v, want ErrTLSFailed or a TLS alert", err)
			}
		})
	}
}

func causeOf(err error) error {
	var he *handshake.Error
	if errors.As(err, &he) {
		return he.Cause
	}
	return nil
}
