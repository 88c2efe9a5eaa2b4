package tcp_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aemp-go/dataconn/core/handshake"
	"github.com/aemp-go/dataconn/tcp"
	"github.com/aemp-go/dataconn/transport"
)

// tlsRelay is a man in the middle on TCP+TLS: it passes the greeting
// lines between the dialer and target unchanged, then terminates a TLS
// session with each (with its own certificate from the nodes' CA: an
// insider without the shared secret) and relays the plaintext, keeping
// what the dialer sent.
type tlsRelay struct {
	addr   string
	mu     sync.Mutex
	seen   []byte
	relays int
	conns  []net.Conn // closed at the end of the test
}

func (r *tlsRelay) track(cs ...net.Conn) {
	r.mu.Lock()
	r.conns = append(r.conns, cs...)
	r.mu.Unlock()
}

func newTLSRelay(t *testing.T, target string, cert *transport.TLSConfig) *tlsRelay {
	t.Helper()
	l, err := tcp.New().Listen(context.Background(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &tlsRelay{addr: l.Addr().String()}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		l.Close()
		r.mu.Lock()
		for _, c := range r.conns {
			c.Close()
		}
		r.mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for range 20 { // bounded: a test dials a few times
			a, err := l.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { r.relay(a, target, cert) })
		}
	})
	return r
}

// readGreeting reads the two greeting lines.
func readGreeting(br *bufio.Reader) (l1, l2 string, err error) {
	if l1, err = br.ReadString('\n'); err != nil {
		return
	}
	l2, err = br.ReadString('\n')
	return
}

func (r *tlsRelay) relay(a net.Conn, target string, cert *transport.TLSConfig) {
	defer a.Close()
	deadline := time.Now().Add(dcTimeout)
	a.SetDeadline(deadline)
	b, err := net.DialTimeout("tcp", target, dcTimeout)
	if err != nil {
		return
	}
	defer b.Close()
	r.track(a, b)
	b.SetDeadline(deadline)
	ar, br := bufio.NewReader(a), bufio.NewReader(b)
	a1, a2, err := readGreeting(ar)
	if err != nil {
		return
	}
	io.WriteString(b, a1+a2)
	b1, b2, err := readGreeting(br)
	if err != nil {
		return
	}
	io.WriteString(a, b1+b2)
	if !strings.Contains(a1, ";tls=") || !strings.Contains(b1, ";tls=") {
		return // this relay only attacks TLS sessions
	}
	// The lower nonce line is the TLS client: towards the dialer the
	// relay takes the target's role, towards the target the dialer's.
	pendA, _ := ar.Peek(ar.Buffered())
	pendB, _ := br.Peek(br.Buffered())
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	var ta, tb net.Conn
	var ea, eb error
	var hs sync.WaitGroup
	hs.Go(func() { ta, ea = cert.Upgrade(ctx, transport.WithPending(a, bytes.Clone(pendA)), b2 < a2) })
	hs.Go(func() { tb, eb = cert.Upgrade(ctx, transport.WithPending(b, bytes.Clone(pendB)), a2 < b2) })
	hs.Wait()
	if ea != nil || eb != nil {
		return
	}
	r.mu.Lock()
	r.relays++
	r.mu.Unlock()
	var cp sync.WaitGroup
	cp.Go(func() {
		buf := make([]byte, 32<<10)
		for {
			n, err := ta.Read(buf)
			if n > 0 {
				r.mu.Lock()
				r.seen = append(r.seen, buf[:n]...)
				r.mu.Unlock()
				if _, werr := tb.Write(buf[:n]); werr != nil {
					break
				}
			}
			if err != nil {
				break
			}
		}
		tb.(interface{ CloseWrite() error }).CloseWrite()
	})
	cp.Go(func() { io.Copy(ta, tb); ta.(interface{ CloseWrite() error }).CloseWrite() })
	cp.Wait()
}

func (r *tlsRelay) sawFromDialer() []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return bytes.Clone(r.seen)
}

func (r *tlsRelay) tlsSessions() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.relays
}

// TestDataConnTLSRelay: a relay that terminates both TCP+TLS sessions
// (it holds a certificate from the nodes' CA, not the shared secret) and
// passes the handshake lines between them. Between nodes of this project
// hmac_sha3_512_cb covers each session's TLS exporter, so the relayed
// handshake fails for the authentication rule and the relay reads no
// payload; with channel binding off (hmac_sha3_512, as with Perl nodes) the
// same relay gets through and reads the data in clear, which shows that
// the relay works.
func TestDataConnTLSRelay(t *testing.T) {
	certs := testTLS(t, "a", "b", "relay")
	marker := []byte("the relay must not read this unless the peers let it")
	sum := sha256.Sum256(marker)
	for _, cb := range []bool{true, false} {
		name := "hmac_sha3_512_cb"
		if !cb {
			name = "without channel binding"
		}
		t.Run(name, func(t *testing.T) {
			checkLeaks(t)
			a := startNode(t, "a", "127.0.0.1:0", func(c *transport.Config) { c.TLS, c.DisableChannelBinding = certs[0], !cb })
			b := startNode(t, "b", "127.0.0.1:0", func(c *transport.Config) { c.TLS = certs[1] })
			bAddr := strings.TrimPrefix(b.Addrs()[0], "tcp://")
			relay := newTLSRelay(t, bAddr, certs[2])
			a.AddPeer("b", relay.addr)
			h := newHashEcho(1)
			b.HandleDataConn("test::hash", h.init)
			ctx, cancel := context.WithTimeout(context.Background(), 2*dcTimeout)
			defer cancel()
			start := time.Now()
			c, err := a.ConnectTo(ctx, "b", dcTimeout, "test::hash")
			if !cb {
				if err != nil {
					t.Fatalf("ConnectTo through the relay without channel binding: %v", err)
				}
				c.Write(marker)
				c.(transport.CloseWriter).CloseWrite()
				c.SetReadDeadline(time.Now().Add(dcTimeout))
				got, _ := io.ReadAll(c)
				c.Close()
				if !bytes.Equal(got, sum[:]) {
					t.Fatalf("reply %x, want the SHA-256 of what was sent", got)
				}
				if !bytes.Contains(relay.sawFromDialer(), marker) {
					t.Fatal("the relay did not read the data in clear: the control case does not relay")
				}
				a.Close()
				b.Close()
				return
			}
			if d := time.Since(start); d >= dcTimeout {
				t.Errorf("failure took %v: reported by the timeout, not by the authentication", d)
			}
			wantDataConnError(t, c, err, "b", transport.ErrDataConnFailed, handshake.ErrAuthFailed)
			if relay.tlsSessions() == 0 {
				t.Error("the relay never completed its two TLS sessions: the test did not attack")
			}
			if bytes.Contains(relay.sawFromDialer(), marker) {
				t.Error("the relay read the payload")
			}
			a.Close()
			b.Close()
			if n := h.calls.Load(); n != 0 {
				t.Fatalf("init function ran %d times", n)
			}
			if errors.Is(err, transport.ErrDataConnTimeout) {
				t.Errorf("reported as a timeout: %v", err)
			}
		})
	}
}
