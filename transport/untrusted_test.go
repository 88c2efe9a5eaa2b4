package transport_test

import (
	"context"
	"errors"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aemp-go/dataconn/core/handshake"
	"github.com/aemp-go/dataconn/core/wire"
	"github.com/aemp-go/dataconn/memnet"
	"github.com/aemp-go/dataconn/transport"
	"github.com/aemp-go/dataconn/transport/testca"
)

// anonPeer authenticates to addr as node id with tls_anon inside TLS (it
// proves nothing about id) and returns the messaging stream and result.
func anonPeer(t *testing.T, w *memnet.World, ca *testca.CA, id, addr, protocol string, extra ...wire.KV) (net.Conn, *handshake.Result, error) {
	t.Helper()
	tc, err := ca.Issue(id, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	c, err := w.Host("anon").Dial(context.Background(), addr)
	if err != nil {
		t.Fatal(err)
	}
	m, err := handshake.New(handshake.Config{
		NodeID: id, Protocol: protocol, TLS: true,
		AcceptAuths: []string{wire.AuthTLS}, OfferAuths: []string{wire.AuthTLSAnon},
		AcceptFramings: []string{"json"}, SendFramings: []string{"json"},
		Extra: extra, Timeout: 5 * time.Second,
	}, "anon-nonce-"+id+protocol, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return transport.Drive(context.Background(), c, m, transport.DriveOptions{TLS: tc})
}

// TestTLSAnonPeerIsUntrusted: a node with AllowTLSAnon accepts a tls_anon
// peer, which may send to ports but may not call a function or ask for a
// data connection: the call is dropped, the expectation refused with a
// kill of its port that names tls_anon, and neither function runs.
func TestTLSAnonPeerIsUntrusted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := memnet.New(31, memnet.WithDefaultLink(memnet.LinkConfig{Latency: time.Millisecond}))
		ca, err := testca.New("anon test CA")
		if err != nil {
			t.Fatal(err)
		}
		tcA, err := ca.Issue("a", time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		a := listening(t, w, "a", func(c *transport.Config) { c.TLS, c.AllowTLSAnon = tcA, true })
		var calls, inits atomic.Int32
		a.RegisterFunc("test::fn", func(string, []any) { calls.Add(1) })
		a.HandleDataConn("f", func(_ string, _ []any, c net.Conn) { inits.Add(1); c.Close() })
		got := make(chan []any, 1)
		q := a.NewPort(func(d []any) { got <- d })

		c, res, err := anonPeer(t, w, ca, "m", "a:1", wire.ProtocolMessaging)
		if err != nil {
			t.Fatalf("tls_anon handshake: %v", err)
		}
		defer c.Close()
		if res.SentAuth != wire.AuthTLSAnon || !res.TLS {
			t.Fatalf("handshake result %+v, want tls_anon inside TLS", res)
		}
		codec, _ := wire.CodecByName(res.SendFraming)
		var out []byte
		for _, m := range []wire.Message{
			{"", "test::fn", "x"},
			wire.ExpectMsg("id1@m", "m#p", 5, "f"),
			{q.Name(), "hello"},
		} {
			out, _ = codec.AppendMessage(out, m)
		}
		if _, err := c.Write(out); err != nil {
			t.Fatal(err)
		}
		// Messages to ports are delivered, in order: once "hello" is
		// there, the call and the expectation were handled.
		select {
		case d := <-got:
			if len(d) != 1 || d[0] != "hello" {
				t.Fatalf("port got %v", d)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("a message to a port from the tls_anon peer was not delivered")
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		kill := readUntil(t, c, codec, func(m wire.Message) bool { return len(m) >= 3 && m[0] == "" && m[1] == "kil1" && m[2] == "p" })
		if len(kill) != 5 || kill[3] != wire.KillReasonDataConn || !strings.Contains(kill[4].(string), "tls_anon") {
			t.Errorf("kill %v, want the DataConn family and a text naming tls_anon", kill)
		}
		synctest.Wait()
		if calls.Load() != 0 || inits.Load() != 0 {
			t.Errorf("function called %d times, init function %d times, want none", calls.Load(), inits.Load())
		}
		closeAll(a)
	})
}

// readUntil reads messages framed with codec from c until one satisfies
// match, and returns it.
func readUntil(t *testing.T, c net.Conn, codec wire.Codec, match func(wire.Message) bool) wire.Message {
	t.Helper()
	dec := codec.NewDecoder(0)
	buf := make([]byte, 4096)
	for {
		for {
			m, ok, err := dec.Next()
			if err != nil {
				t.Fatalf("decoding what the node sent: %v", err)
			}
			if !ok {
				break
			}
			if match(m) {
				return m
			}
		}
		n, err := c.Read(buf)
		if n > 0 {
			if err := dec.Feed(buf[:n]); err != nil {
				t.Fatalf("decoding what the node sent: %v", err)
			}
		}
		if err != nil {
			t.Fatalf("reading from the node: %v", err)
		}
	}
}

// TestTLSAnonDataConnRefused: a tls_anon peer that claims to be node x
// and presents the id of a data connection x announced gets no data
// connection: its stream is closed after the handshake and the init
// function never runs.
func TestTLSAnonDataConnRefused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := memnet.New(32, memnet.WithDefaultLink(memnet.LinkConfig{Latency: time.Millisecond}))
		ca, err := testca.New("anon test CA")
		if err != nil {
			t.Fatal(err)
		}
		tcA, err := ca.Issue("a", time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		a := listening(t, w, "a", func(c *transport.Config) { c.TLS, c.AllowTLSAnon = tcA, true })
		var inits atomic.Int32
		a.HandleDataConn("f", func(_ string, _ []any, c net.Conn) { inits.Add(1); c.Close() })

		// The real x: authenticated with the shared secret.
		xc, xres, err := rawHandshake(context.Background(), w, "x", "a:1", wire.ProtocolMessaging, []string{"json"}, simSecret, wire.KV{Key: wire.KeyGo, Value: "1"})
		if err != nil {
			t.Fatalf("x: %v", err)
		}
		defer xc.Close()
		if xres.Untrusted {
			t.Fatal("x is untrusted")
		}
		// The impostor's data connection, held until x's expectation.
		type result struct {
			c   net.Conn
			res *handshake.Result
			err error
		}
		imp := make(chan result, 1)
		go func() {
			c, res, err := anonPeer(t, w, ca, "x", "a:1", wire.ProtocolDataConn, wire.KV{Key: wire.KeyDataConnID, Value: "id9@x"}, wire.KV{Key: wire.KeyGo, Value: "1"})
			imp <- result{c, res, err}
		}()
		time.Sleep(100 * time.Millisecond)
		codec, _ := wire.CodecByName(xres.SendFraming)
		msg, _ := codec.AppendMessage(nil, wire.ExpectMsg("id9@x", "x#p", 2, "f"))
		if _, err := xc.Write(msg); err != nil {
			t.Fatal(err)
		}
		r := <-imp
		if r.err == nil {
			if r.res.SentAuth != wire.AuthTLSAnon {
				t.Fatalf("impostor authenticated with %q, want tls_anon", r.res.SentAuth)
			}
			// A closes the stream it will not hand over.
			r.c.SetReadDeadline(time.Now().Add(time.Second))
			if n, err := r.c.Read(make([]byte, 1)); n != 0 || errors.Is(err, os.ErrDeadlineExceeded) {
				t.Errorf("impostor's stream: read %d bytes, %v; want it closed", n, err)
			}
			r.c.Close()
		}
		synctest.Wait()
		if n := inits.Load(); n != 0 {
			t.Errorf("init function ran %d times for the tls_anon impostor", n)
		}
		closeAll(a)
	})
}

// anonTargetHost is the Host of a DataConns whose only peer, "t", is a
// Perl-flow target on memnet.
type anonTargetHost struct{ nw transport.Network }

func (h anonTargetHost) SendControl(string, wire.Message) error  { return nil }
func (h anonTargetHost) RoundTrip(context.Context, string) error { return nil }
func (h anonTargetHost) ListenerAddrs(node string) []string      { return []string{"t:1"} }
func (h anonTargetHost) IsGoPeer(string) bool                    { return false }
func (h anonTargetHost) Connected(context.Context, string) error { return nil }
func (h anonTargetHost) NetworkFor(addr string) (transport.Network, string, error) {
	return h.nw, addr, nil
}

// TestTLSAnonTargetRefused: a target that answers our data connection
// with tls_anon proved nothing about being the node we asked for: the
// stream is not handed over and ConnectTo fails for ErrUntrustedPeer.
func TestTLSAnonTargetRefused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := memnet.New(33)
		ca, err := testca.New("anon test CA")
		if err != nil {
			t.Fatal(err)
		}
		issue := func(id string) *transport.TLSConfig {
			tc, err := ca.Issue(id, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			return tc
		}
		l, err := w.Host("t").Listen(context.Background(), "t:1")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		targetAuth := make(chan string, 1)
		go func() {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close()
			m, err := handshake.New(handshake.Config{
				NodeID: "t", TLS: true,
				AcceptAuths: []string{wire.AuthTLS}, OfferAuths: []string{wire.AuthTLSAnon},
				AcceptFramings: []string{"json"}, SendFramings: []string{"json"},
				Timeout: 5 * time.Second,
			}, "target-nonce", time.Now())
			if err != nil {
				targetAuth <- err.Error()
				return
			}
			conn, res, err := transport.Drive(context.Background(), c, m, transport.DriveOptions{TLS: issue("t")})
			if err != nil {
				targetAuth <- err.Error()
				return
			}
			targetAuth <- res.SentAuth
			conn.Read(make([]byte, 1)) // until the initiator closes
		}()
		d, err := transport.NewDataConns(transport.Config{NodeID: "a", Secret: simSecret, TLS: issue("a"), AllowTLSAnon: true, Logger: quietLogger()},
			anonTargetHost{nw: w.Host("a")})
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		c, err := d.ConnectTo(context.Background(), "t", 2*time.Second, "f")
		if err == nil {
			c.Close()
			t.Fatal("ConnectTo handed over a stream a tls_anon target authenticated")
		}
		if got := <-targetAuth; got != wire.AuthTLSAnon {
			t.Fatalf("the target's handshake: %s, want it completed with tls_anon", got)
		}
		if !errors.Is(err, transport.ErrUntrustedPeer) || !errors.Is(err, transport.ErrDataConnFailed) {
			t.Errorf("ConnectTo: %v; want ErrDataConnFailed for ErrUntrustedPeer", err)
		}
	})
}
