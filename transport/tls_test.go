package transport

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/aemp-go/dataconn/transport/internal/testcert"
)

// tlsTestTimeout bounds every handshake in these tests.
const tlsTestTimeout = 10 * time.Second

type tlsUpgradeResult struct {
	conn *tls.Conn
	err  error
}

// tlsRunPair runs Upgrade on both ends concurrently and waits for both.
func tlsRunPair(t *testing.T, ctx context.Context, cc, sc net.Conn, ccfg, scfg *TLSConfig) (client, server tlsUpgradeResult) {
	t.Helper()
	ch := make(chan tlsUpgradeResult, 1)
	go func() {
		c, err := scfg.Upgrade(ctx, sc, false)
		ch <- tlsUpgradeResult{c, err}
	}()
	c, err := ccfg.Upgrade(ctx, cc, true)
	client = tlsUpgradeResult{c, err}
	select {
	case server = <-ch:
	case <-time.After(2 * tlsTestTimeout):
		t.Fatal("server Upgrade did not return")
	}
	for _, r := range []tlsUpgradeResult{client, server} {
		if r.conn != nil {
			t.Cleanup(func() { r.conn.Close() })
		}
	}
	// Cleanups run last-registered first: close the raw streams before the
	// TLS conns, whose close_notify would otherwise wait up to 5 s for a
	// synchronous pipe's peer to read it.
	t.Cleanup(func() { cc.Close(); sc.Close() })
	return client, server
}

// tlsTCPPair returns the two ends of a loopback TCP connection.
func tlsTCPPair(t *testing.T) (dialed, accepted net.Conn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ch := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			ch <- nil
			return
		}
		ch <- c
	}()
	d, err := net.DialTimeout("tcp", l.Addr().String(), tlsTestTimeout)
	if err != nil {
		t.Fatal(err)
	}
	a := <-ch
	if a == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { d.Close(); a.Close() })
	return d, a
}

// tlsPipes are the stream kinds every Upgrade test runs over.
func tlsPipes() map[string]func(t *testing.T) (net.Conn, net.Conn) {
	return map[string]func(t *testing.T) (net.Conn, net.Conn){
		"pipe": func(t *testing.T) (net.Conn, net.Conn) {
			a, b := net.Pipe()
			t.Cleanup(func() { a.Close(); b.Close() })
			return a, b
		},
		"tcp": tlsTCPPair,
	}
}

// tlsTestCA is testca.CA for this package's own tests (testca imports
// transport), with the CA's certificate and key at hand.
type tlsTestCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	ca   *testcert.CA
}

func (ca *tlsTestCA) Issue(nodeID string, notBefore, notAfter time.Time) (*TLSConfig, error) {
	cert, pool, err := ca.ca.Issue(nodeID, notBefore, notAfter)
	if err != nil {
		return nil, err
	}
	return &TLSConfig{Certificate: cert, RootCAs: pool}, nil
}

func (ca *tlsTestCA) PerlPEM(nodeID string) ([]byte, error) { return testcert.PerlPEM(nodeID) }

func tlsMustCA(t *testing.T, name string) *tlsTestCA {
	t.Helper()
	ca, err := testcert.New(name)
	if err != nil {
		t.Fatal(err)
	}
	return &tlsTestCA{cert: ca.Cert, key: ca.Key, ca: ca}
}

func tlsMustIssue(t *testing.T, ca *tlsTestCA, node string) *TLSConfig {
	t.Helper()
	cfg, err := ca.Issue(node, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func tlsCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), tlsTestTimeout)
	t.Cleanup(cancel)
	return ctx
}

// tlsExchange checks that data flows both ways and that both ends derive
// the same channel binding.
func tlsExchange(t *testing.T, c, s *tls.Conn) {
	t.Helper()
	go func() {
		buf := make([]byte, 5)
		if _, err := io.ReadFull(s, buf); err != nil {
			return
		}
		s.Write(bytes.ToUpper(buf))
	}()
	if _, err := c.Write([]byte("hello")); err != nil {
		t.Fatalf("client write: %v", err)
	}
	buf := make([]byte, 5)
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatalf("client read: %v", err)
	}
	if string(buf) != "HELLO" {
		t.Fatalf("client read %q, want HELLO", buf)
	}
	ce, err := TLSExporter(c)
	if err != nil {
		t.Fatalf("TLSExporter(client): %v", err)
	}
	se, err := TLSExporter(s)
	if err != nil {
		t.Fatalf("TLSExporter(server): %v", err)
	}
	if len(ce) != 32 || !bytes.Equal(ce, se) {
		t.Fatalf("channel bindings differ or wrong size: %x vs %x", ce, se)
	}
}

func TestUpgradeMutual(t *testing.T) {
	for name, mk := range tlsPipes() {
		t.Run(name, func(t *testing.T) {
			ca := tlsMustCA(t, "test CA")
			a, b := tlsMustIssue(t, ca, "nodeA"), tlsMustIssue(t, ca, "nodeB")
			cc, sc := mk(t)
			cr, sr := tlsRunPair(t, tlsCtx(t), cc, sc, a, b)
			if cr.err != nil || sr.err != nil {
				t.Fatalf("Upgrade: client %v, server %v", cr.err, sr.err)
			}
			cs, ss := cr.conn.ConnectionState(), sr.conn.ConnectionState()
			if cs.Version != tls.VersionTLS13 {
				t.Errorf("negotiated version %x, want TLS 1.3", cs.Version)
			}
			if len(cs.PeerCertificates) == 0 || cs.PeerCertificates[0].Subject.CommonName != "nodeB" {
				t.Errorf("client sees peer %v, want nodeB", cs.PeerCertificates)
			}
			if len(ss.PeerCertificates) == 0 || ss.PeerCertificates[0].Subject.CommonName != "nodeA" {
				t.Errorf("server sees peer %v, want nodeA (client certificate required)", ss.PeerCertificates)
			}
			if cs.DidResume || ss.DidResume {
				t.Error("a session was resumed")
			}
			tlsExchange(t, cr.conn, sr.conn)
		})
	}
}

func TestExporterDiffersPerConnection(t *testing.T) {
	ca := tlsMustCA(t, "ca")
	a, b := tlsMustIssue(t, ca, "a"), tlsMustIssue(t, ca, "b")
	var seen [][]byte
	for i := 0; i < 2; i++ {
		cc, sc := net.Pipe()
		t.Cleanup(func() { cc.Close(); sc.Close() })
		cr, sr := tlsRunPair(t, tlsCtx(t), cc, sc, a, b)
		if cr.err != nil || sr.err != nil {
			t.Fatalf("Upgrade: %v, %v", cr.err, sr.err)
		}
		v, err := TLSExporter(cr.conn)
		if err != nil {
			t.Fatal(err)
		}
		seen = append(seen, v)
	}
	if bytes.Equal(seen[0], seen[1]) {
		t.Fatal("two connections have the same channel binding")
	}
}

func TestTLSExporterErrors(t *testing.T) {
	if _, err := TLSExporter(nil); err == nil {
		t.Error("TLSExporter(nil) succeeded")
	}
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	_, err := TLSExporter(tls.Client(a, &tls.Config{InsecureSkipVerify: true}))
	var te *TLSError
	if !errors.As(err, &te) || !errors.Is(err, ErrTLSHandshake) || !strings.Contains(err.Error(), "handshake not complete") {
		t.Fatalf("TLSExporter before handshake: %v", err)
	}
}

// tlsCheckCertFailure asserts a typed certificate failure.
func tlsCheckCertFailure(t *testing.T, side string, err error) {
	t.Helper()
	var te *TLSError
	if !errors.As(err, &te) {
		t.Fatalf("%s: error %v (%T) is not a *TLSError", side, err, err)
	}
	if !errors.Is(err, ErrTLSHandshake) || !errors.Is(err, ErrTLSCertificate) {
		t.Fatalf("%s: %v does not match ErrTLSHandshake and ErrTLSCertificate", side, err)
	}
	if !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("%s: error text %q does not name the certificate rule", side, err)
	}
}

func TestUpgradeWrongCAFailsBothSides(t *testing.T) {
	for name, mk := range tlsPipes() {
		t.Run(name, func(t *testing.T) {
			a := tlsMustIssue(t, tlsMustCA(t, "ca1"), "a")
			b := tlsMustIssue(t, tlsMustCA(t, "ca2"), "b")
			cc, sc := mk(t)
			start := time.Now()
			cr, sr := tlsRunPair(t, tlsCtx(t), cc, sc, a, b)
			if d := time.Since(start); d > tlsTestTimeout/2 {
				t.Errorf("failure took %v: one side waited for its deadline", d)
			}
			tlsCheckCertFailure(t, "client", cr.err)
			tlsCheckCertFailure(t, "server", sr.err)
			var ua x509.UnknownAuthorityError
			if !errors.As(cr.err, &ua) {
				t.Errorf("client error %v does not carry x509.UnknownAuthorityError", cr.err)
			}
			// Upgrade closed the stream on failure.
			if _, err := cc.Write([]byte("x")); err == nil {
				t.Error("client stream still writable after failed Upgrade")
			}
		})
	}
}

// TestUpgradeServerRejectsClient covers TLS 1.3's late client-certificate
// check: the server fails in Upgrade, the client on its first Read; neither
// hangs and both errors are classified as certificate failures.
func TestUpgradeServerRejectsClient(t *testing.T) {
	for name, mk := range tlsPipes() {
		t.Run(name, func(t *testing.T) {
			ca1, ca2 := tlsMustCA(t, "ca1"), tlsMustCA(t, "ca2")
			client := tlsMustIssue(t, ca2, "client")
			client.RootCAs.AddCert(ca1.cert) // client trusts the server's CA
			server := tlsMustIssue(t, ca1, "server")
			cc, sc := mk(t)
			ctx := tlsCtx(t)
			start := time.Now()
			ch := make(chan error, 1)
			go func() {
				_, err := server.Upgrade(ctx, sc, false)
				ch <- err
			}()
			c, err := client.Upgrade(ctx, cc, true)
			if err == nil {
				defer c.Close()
				c.SetReadDeadline(time.Now().Add(tlsTestTimeout))
				_, err = c.Read(make([]byte, 1))
				if err == nil {
					t.Fatal("client read succeeded although the server rejected its certificate")
				}
				if !tlsIsCertFailure(err) {
					t.Errorf("client read error %v not recognised as a certificate rejection", err)
				}
			} else {
				tlsCheckCertFailure(t, "client", err)
			}
			tlsCheckCertFailure(t, "server", <-ch)
			if d := time.Since(start); d > tlsTestTimeout/2 {
				t.Errorf("failure took %v", d)
			}
		})
	}
}

func TestUpgradeExpiredCertificate(t *testing.T) {
	ca := tlsMustCA(t, "ca")
	now := time.Now()
	expired, err := ca.Issue("old", now.Add(-48*time.Hour), now.Add(-24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	good := tlsMustIssue(t, ca, "good")

	t.Run("server-expired", func(t *testing.T) {
		cc, sc := net.Pipe()
		defer cc.Close()
		defer sc.Close()
		cr, sr := tlsRunPair(t, tlsCtx(t), cc, sc, good, expired)
		tlsCheckCertFailure(t, "client", cr.err)
		tlsCheckCertFailure(t, "server", sr.err)
		var ci x509.CertificateInvalidError
		if !errors.As(cr.err, &ci) || ci.Reason != x509.Expired {
			t.Errorf("client error %v is not x509.Expired", cr.err)
		}
	})

	t.Run("clock-override-accepts", func(t *testing.T) {
		// With Time set inside its validity, the "expired" certificate is fine.
		past := func() time.Time { return now.Add(-36 * time.Hour) }
		g, o := *good, *expired
		g.Time, o.Time = past, past
		// good is not valid yet at that time: issue one that is.
		g2, err := ca.Issue("good2", now.Add(-72*time.Hour), now.Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		g2.Time = past
		cc, sc := net.Pipe()
		defer cc.Close()
		defer sc.Close()
		cr, sr := tlsRunPair(t, tlsCtx(t), cc, sc, g2, &o)
		if cr.err != nil || sr.err != nil {
			t.Fatalf("Upgrade with clock override: %v, %v", cr.err, sr.err)
		}
		// And a clock far in the future expires a fresh certificate.
		future := func() time.Time { return now.Add(30 * 24 * time.Hour) }
		g.Time = future
		cc2, sc2 := net.Pipe()
		defer cc2.Close()
		defer sc2.Close()
		good2 := *good
		cr, sr = tlsRunPair(t, tlsCtx(t), cc2, sc2, &g, &good2)
		tlsCheckCertFailure(t, "client (future clock)", cr.err)
		tlsCheckCertFailure(t, "server (future clock)", sr.err)
	})
}

func TestUpgradeContext(t *testing.T) {
	ca := tlsMustCA(t, "ca")
	cfg, peer := tlsMustIssue(t, ca, "n"), tlsMustIssue(t, ca, "peer")

	t.Run("silent-peer-deadline", func(t *testing.T) {
		cc, sc := net.Pipe() // nobody reads sc
		defer sc.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := cfg.Upgrade(ctx, cc, true)
		if !errors.Is(err, ErrTLSHandshake) || errors.Is(err, ErrTLSCertificate) {
			t.Fatalf("Upgrade against a silent peer: %v", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("Upgrade took %v despite a 200ms deadline", d)
		}
		var ne net.Error
		if !errors.Is(err, context.DeadlineExceeded) && !(errors.As(err, &ne) && ne.Timeout()) {
			t.Errorf("error %v does not say it timed out", err)
		}
	})

	t.Run("already-cancelled", func(t *testing.T) {
		cc, sc := net.Pipe()
		defer sc.Close()
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := cfg.Upgrade(ctx, cc, false)
		if !errors.Is(err, ErrTLSHandshake) || !errors.Is(err, context.Canceled) {
			t.Fatalf("Upgrade with cancelled ctx: %v", err)
		}
		if _, err := cc.Write([]byte("x")); !errors.Is(err, io.ErrClosedPipe) {
			t.Errorf("conn not closed after failed Upgrade: %v", err)
		}
	})

	t.Run("deadline-cleared-after-success", func(t *testing.T) {
		cc, sc := tlsTCPPair(t)
		// 2 s: a TLS handshake on loopback takes milliseconds (tens
		// under -race), so a machine ten times slower still finishes.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		cr, sr := tlsRunPair(t, ctx, cc, sc, cfg, peer)
		if cr.err != nil || sr.err != nil {
			t.Fatalf("Upgrade: %v, %v", cr.err, sr.err)
		}
		dl, _ := ctx.Deadline()
		time.Sleep(time.Until(dl) + 100*time.Millisecond) // past the ctx deadline
		tlsExchange(t, cr.conn, sr.conn)
	})
}

func TestUpgradeConfigErrors(t *testing.T) {
	good := tlsMustIssue(t, tlsMustCA(t, "ca"), "n")
	noRoots := *good
	noRoots.RootCAs = nil
	noCert := *good
	noCert.Certificate = tls.Certificate{}
	for name, cfg := range map[string]*TLSConfig{"nil": nil, "no-roots": &noRoots, "no-cert": &noCert} {
		t.Run(name, func(t *testing.T) {
			cc, sc := net.Pipe()
			defer sc.Close()
			_, err := cfg.Upgrade(context.Background(), cc, true)
			var te *TLSError
			if !errors.As(err, &te) || !errors.Is(err, ErrTLSHandshake) || !errors.Is(err, ErrTLSCertificate) {
				t.Fatalf("Upgrade with bad config: %v", err)
			}
		})
	}
	if _, err := good.Upgrade(context.Background(), nil, true); !errors.Is(err, ErrTLSHandshake) {
		t.Fatalf("Upgrade(nil conn): %v", err)
	}
}

func TestUpgradeMinVersion(t *testing.T) {
	ca := tlsMustCA(t, "ca")
	a := tlsMustIssue(t, ca, "a")
	// A peer limited to TLS 1.2 (driven by crypto/tls directly).
	peer := tlsMustIssue(t, ca, "peer")
	peerCfg := peer.tlsStdConfig(nil, false)
	peerCfg.MaxVersion = tls.VersionTLS12

	run := func(cfg *TLSConfig) (*tls.Conn, error, error) {
		cc, sc := net.Pipe()
		t.Cleanup(func() { cc.Close(); sc.Close() })
		ch := make(chan error, 1)
		srv := tls.Server(sc, peerCfg)
		go func() { ch <- srv.HandshakeContext(tlsCtx(t)) }()
		c, err := cfg.Upgrade(tlsCtx(t), cc, true)
		return c, err, <-ch
	}

	c, err, serr := run(a)
	if err != nil || serr != nil {
		t.Fatalf("default MinVersion against TLS 1.2 peer: %v, %v", err, serr)
	}
	if v := c.ConnectionState().Version; v != tls.VersionTLS12 {
		t.Fatalf("version %x, want TLS 1.2", v)
	}
	// TLS 1.2 with extended master secret still gives a channel binding.
	if v, err := TLSExporter(c); err != nil || len(v) != 32 {
		t.Fatalf("TLSExporter over TLS 1.2: %x, %v", v, err)
	}

	strict := *a
	strict.MinVersion = tls.VersionTLS13
	if _, err, _ := run(&strict); !errors.Is(err, ErrTLSHandshake) || errors.Is(err, ErrTLSCertificate) {
		t.Fatalf("MinVersion 1.3 against TLS 1.2 peer: %v", err)
	}
}

// tlsRejectsUsage checks that a certificate whose extended key usage does
// not allow its TLS role is refused.
func TestUpgradeKeyUsage(t *testing.T) {
	ca := tlsMustCA(t, "ca")
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	nb, na := testcert.Validity()
	tmpl, err := testcert.Template("server-only", nb, na, false)
	if err != nil {
		t.Fatal(err)
	}
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	serverOnly := &TLSConfig{Certificate: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, RootCAs: x509.NewCertPool()}
	serverOnly.RootCAs.AddCert(ca.cert)
	other := tlsMustIssue(t, ca, "other")

	// As TLS server it is fine.
	cc, sc := net.Pipe()
	cr, sr := tlsRunPair(t, tlsCtx(t), cc, sc, other, serverOnly)
	if cr.err != nil || sr.err != nil {
		t.Fatalf("serverAuth-only certificate as server: %v, %v", cr.err, sr.err)
	}
	// As TLS client it is refused by the server.
	cc, sc = net.Pipe()
	ch := make(chan error, 1)
	go func() {
		_, err := other.Upgrade(tlsCtx(t), sc, false)
		ch <- err
	}()
	if c, err := serverOnly.Upgrade(tlsCtx(t), cc, true); err == nil {
		c.SetReadDeadline(time.Now().Add(tlsTestTimeout))
		c.Read(make([]byte, 1))
		c.Close()
	}
	tlsCheckCertFailure(t, "server", <-ch)
}

func TestPerlPEM(t *testing.T) {
	ca := tlsMustCA(t, "unused")
	shared, err := ca.PerlPEM("cluster")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "aemp.pem")
	if err := os.WriteFile(path, shared, 0o600); err != nil {
		t.Fatal(err)
	}
	fromFile, err := LoadPerlPEM(path)
	if err != nil {
		t.Fatalf("LoadPerlPEM: %v", err)
	}
	fromBytes, err := ParsePerlPEM(shared)
	if err != nil {
		t.Fatalf("ParsePerlPEM: %v", err)
	}
	if !fromFile.Certificate.Leaf.IsCA {
		t.Error("Perl PEM certificate is not a CA")
	}

	t.Run("shared-file", func(t *testing.T) {
		for name, mk := range tlsPipes() {
			t.Run(name, func(t *testing.T) {
				cc, sc := mk(t)
				cr, sr := tlsRunPair(t, tlsCtx(t), cc, sc, fromFile, fromBytes)
				if cr.err != nil || sr.err != nil {
					t.Fatalf("Upgrade with shared Perl PEM: %v, %v", cr.err, sr.err)
				}
				tlsExchange(t, cr.conn, sr.conn)
			})
		}
	})

	t.Run("key-first", func(t *testing.T) {
		blocks := tlsPEMBlocks(t, shared)
		reordered := append(pem.EncodeToMemory(blocks[1]), pem.EncodeToMemory(blocks[0])...)
		cfg, err := ParsePerlPEM(reordered)
		if err != nil {
			t.Fatalf("key before certificate: %v", err)
		}
		cc, sc := net.Pipe()
		cr, sr := tlsRunPair(t, tlsCtx(t), cc, sc, cfg, fromBytes)
		if cr.err != nil || sr.err != nil {
			t.Fatalf("Upgrade: %v, %v", cr.err, sr.err)
		}
	})

	t.Run("ca-cert-first", func(t *testing.T) {
		// CA certificate, then the node's own certificate and key: the
		// node certificate is the one matching the key.
		node := tlsMustIssue(t, ca, "node")
		keyDER, err := x509.MarshalPKCS8PrivateKey(node.Certificate.PrivateKey)
		if err != nil {
			t.Fatal(err)
		}
		var doc []byte
		doc = append(doc, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw})...)
		doc = append(doc, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: node.Certificate.Certificate[0]})...)
		doc = append(doc, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})...)
		cfg, err := ParsePerlPEM(doc)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Certificate.Leaf.Subject.CommonName != "node" {
			t.Fatalf("presented certificate %q, want node", cfg.Certificate.Leaf.Subject.CommonName)
		}
		peer := tlsMustIssue(t, ca, "peer")
		cc, sc := net.Pipe()
		cr, sr := tlsRunPair(t, tlsCtx(t), cc, sc, cfg, peer)
		if cr.err != nil || sr.err != nil {
			t.Fatalf("Upgrade: %v, %v", cr.err, sr.err)
		}
	})

	t.Run("different-files-fail", func(t *testing.T) {
		otherPEM, err := ca.PerlPEM("cluster")
		if err != nil {
			t.Fatal(err)
		}
		other, err := ParsePerlPEM(otherPEM)
		if err != nil {
			t.Fatal(err)
		}
		cc, sc := net.Pipe()
		cr, sr := tlsRunPair(t, tlsCtx(t), cc, sc, fromFile, other)
		tlsCheckCertFailure(t, "client", cr.err)
		tlsCheckCertFailure(t, "server", sr.err)
	})
}

func tlsPEMBlocks(t *testing.T, data []byte) []*pem.Block {
	t.Helper()
	var out []*pem.Block
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return out
		}
		out = append(out, b)
	}
}

func TestLoadErrorsNameTheFile(t *testing.T) {
	ca := tlsMustCA(t, "ca")
	perl, err := ca.PerlPEM("n")
	if err != nil {
		t.Fatal(err)
	}
	blocks := tlsPEMBlocks(t, perl)
	certOnly := pem.EncodeToMemory(blocks[0])
	keyOnly := pem.EncodeToMemory(blocks[1])
	otherPEM, _ := ca.PerlPEM("other")
	mismatch := append(append([]byte(nil), certOnly...), pem.EncodeToMemory(tlsPEMBlocks(t, otherPEM)[1])...)

	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	missing := filepath.Join(dir, "missing.pem")
	certPath := write("cert-only.pem", certOnly)
	keyPath := write("key-only.pem", keyOnly)
	garbage := write("garbage.pem", []byte("this is not PEM\n"))
	badCert := write("bad-cert.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1, 2, 3}}))
	mismatchPath := write("mismatch.pem", mismatch)
	good := write("good.pem", perl)

	cases := []struct {
		name     string
		load     func() (*TLSConfig, error)
		file     string
		contains string
		notExist bool
	}{
		{"perl-missing", func() (*TLSConfig, error) { return LoadPerlPEM(missing) }, missing, "", true},
		{"perl-no-key", func() (*TLSConfig, error) { return LoadPerlPEM(certPath) }, certPath, "PRIVATE KEY", false},
		{"perl-no-cert", func() (*TLSConfig, error) { return LoadPerlPEM(keyPath) }, keyPath, "CERTIFICATE", false},
		{"perl-garbage", func() (*TLSConfig, error) { return LoadPerlPEM(garbage) }, garbage, "CERTIFICATE", false},
		{"perl-bad-cert", func() (*TLSConfig, error) { return LoadPerlPEM(badCert) }, badCert, "bad certificate", false},
		{"perl-mismatch", func() (*TLSConfig, error) { return LoadPerlPEM(mismatchPath) }, mismatchPath, "matches none", false},
		{"tls-missing-cert", func() (*TLSConfig, error) { return LoadTLS(missing, keyPath, good) }, missing, "", true},
		{"tls-missing-key", func() (*TLSConfig, error) { return LoadTLS(certPath, missing, good) }, missing, "", true},
		{"tls-key-file-has-no-key", func() (*TLSConfig, error) { return LoadTLS(certPath, certPath+"", good) }, certPath, "PRIVATE KEY", false},
		{"tls-key-not-key", func() (*TLSConfig, error) { return LoadTLS(certPath, garbage, good) }, garbage, "PRIVATE KEY", false},
		{"tls-missing-ca", func() (*TLSConfig, error) { return LoadTLS(certPath, keyPath, missing) }, missing, "", true},
		{"tls-ca-no-cert", func() (*TLSConfig, error) { return LoadTLS(certPath, keyPath, keyPath) }, keyPath, "CERTIFICATE", false},
		{"tls-no-ca", func() (*TLSConfig, error) { return LoadTLS(certPath, keyPath, "") }, "CA file", "system roots", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := tc.load()
			if err == nil {
				t.Fatalf("loaded %v, want an error", cfg)
			}
			var te *TLSError
			if !errors.As(err, &te) || !errors.Is(err, ErrTLSCertificate) {
				t.Fatalf("error %v is not a certificate *TLSError", err)
			}
			if !strings.Contains(te.Op, tc.file) {
				t.Errorf("error %q: Op %q does not name %q", err, te.Op, tc.file)
			}
			if tc.contains != "" && !strings.Contains(err.Error(), tc.contains) {
				t.Errorf("error %q does not mention %q", err, tc.contains)
			}
			if tc.notExist != errors.Is(err, fs.ErrNotExist) {
				t.Errorf("error %q: errors.Is(fs.ErrNotExist) = %v", err, !tc.notExist)
			}
		})
	}
}

func TestLoadTLS(t *testing.T) {
	ca := tlsMustCA(t, "ca")
	dir := t.TempDir()
	caPath := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	files := func(name string) (certPath, keyPath string) {
		cfg := tlsMustIssue(t, ca, name)
		keyDER, err := x509.MarshalECPrivateKey(cfg.Certificate.PrivateKey.(*ecdsa.PrivateKey))
		if err != nil {
			t.Fatal(err)
		}
		certPath = filepath.Join(dir, name+".crt")
		keyPath = filepath.Join(dir, name+".key")
		if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cfg.Certificate.Certificate[0]}), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
			t.Fatal(err)
		}
		return certPath, keyPath
	}
	ac, ak := files("a")
	bc, bk := files("b")
	a, err := LoadTLS(ac, ak, caPath)
	if err != nil {
		t.Fatalf("LoadTLS(two files): %v", err)
	}
	// One combined file, key given as "".
	combined := filepath.Join(dir, "b.pem")
	cb, _ := os.ReadFile(bc)
	kb, _ := os.ReadFile(bk)
	if err := os.WriteFile(combined, append(cb, kb...), 0o600); err != nil {
		t.Fatal(err)
	}
	b, err := LoadTLS(combined, "", caPath)
	if err != nil {
		t.Fatalf("LoadTLS(combined): %v", err)
	}
	for name, mk := range tlsPipes() {
		t.Run(name, func(t *testing.T) {
			cc, sc := mk(t)
			cr, sr := tlsRunPair(t, tlsCtx(t), cc, sc, a, b)
			if cr.err != nil || sr.err != nil {
				t.Fatalf("Upgrade: %v, %v", cr.err, sr.err)
			}
			tlsExchange(t, cr.conn, sr.conn)
		})
	}
}

func TestTLSErrorText(t *testing.T) {
	err := error(&TLSError{Op: "handshake as client", Err: errors.New("boom"), kinds: []error{ErrTLSHandshake, ErrTLSCertificate}})
	want := "aemp tls: handshake as client: " + ErrTLSCertificate.Error() + ": boom"
	if err.Error() != want {
		t.Fatalf("Error() = %q, want %q", err, want)
	}
	if !errors.Is(err, ErrTLSHandshake) || !errors.Is(err, ErrTLSCertificate) {
		t.Fatal("sentinels not matched")
	}
	plain := &TLSError{Op: "x", Err: ErrTLSHandshake}
	if !errors.Is(plain, ErrTLSHandshake) || errors.Is(plain, ErrTLSCertificate) {
		t.Fatal("a TLSError built from a sentinel must match exactly it")
	}
}

// TestUpgradeFailureLeaksNoGoroutine checks that the drain started after a
// rejection, and crypto/tls's own helpers, end with the failed Upgrade.
func TestUpgradeFailureLeaksNoGoroutine(t *testing.T) {
	a := tlsMustIssue(t, tlsMustCA(t, "ca1"), "a")
	b := tlsMustIssue(t, tlsMustCA(t, "ca2"), "b")
	before := runtime.NumGoroutine()
	for i := 0; i < 5; i++ {
		cc, sc := net.Pipe()
		ctx, cancel := context.WithTimeout(context.Background(), tlsTestTimeout)
		ch := make(chan error, 1)
		go func() {
			_, err := b.Upgrade(ctx, sc, false)
			ch <- err
		}()
		_, cerr := a.Upgrade(ctx, cc, true)
		serr := <-ch
		cancel()
		if cerr == nil || serr == nil {
			t.Fatalf("wrong CA accepted: %v, %v", cerr, serr)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines left, %d before", runtime.NumGoroutine(), before)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
