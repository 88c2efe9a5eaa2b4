package quic

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"time"

	"github.com/aemp-go/dataconn/transport"
)

// ALPN is the application protocol of the QUIC connections of this
// package on which the client opens the messaging stream: every
// connection with Config.TLS set, and those with a peer of an older
// version. A peer that offers neither it nor ALPNGreetFirst is refused in
// the handshake.
const ALPN = "aemp"

// ALPNGreetFirst is the application protocol of a QUIC connection on
// which the server opens the first stream in its first flight (0.5-RTT
// data, never 0-RTT) and greets on it first (package doc, "Server greets
// first"). Networks with Config.TLS nil offer it before ALPN, as clients
// and as servers; a peer of an older version offers or selects only ALPN.
const ALPNGreetFirst = "aemp-sg1"

// alpns returns the protocols a Network offers: with no certificates
// (tc nil, and not told to behave as an older version) ALPNGreetFirst
// first.
func alpns(tc *transport.TLSConfig, old bool) []string {
	if tc == nil && !old {
		return []string{ALPNGreetFirst, ALPN}
	}
	return []string{ALPN}
}

// tlsConfigs returns the crypto/tls configurations of the server and the
// client side of every QUIC connection of a Network.
//
// With tc set, both sides present tc.Certificate and verify the peer's
// chain against tc.RootCAs, chain only (node addresses are not host names),
// for the usage of the peer's role, as transport.TLSConfig.Upgrade does
// over TCP; client certificates are required.
//
// With tc nil, the client accepts any certificate and server is nil: a
// Network makes the server side on its first Listen (ephemeralServerConfig),
// so that one that only dials never pays for a key and a signature. QUIC
// still encrypts, but nobody is authenticated by it.
func tlsConfigs(tc *transport.TLSConfig, old bool) (server, client *tls.Config, err error) {
	if tc == nil {
		client = &tls.Config{
			// Deliberate: with no TLS configuration, authentication comes
			// only from the AEMP handshake on every stream.
			InsecureSkipVerify: true, //nolint:gosec // see package doc
			NextProtos:         alpns(nil, old),
			MinVersion:         tls.VersionTLS13,
		}
		return nil, client, nil
	}
	switch {
	case len(tc.Certificate.Certificate) == 0 || tc.Certificate.PrivateKey == nil:
		return nil, nil, &Error{Op: "configure", Err: ErrTLSConfig, Cause: errors.New("TLS.Certificate has no certificate or no private key")}
	case tc.RootCAs == nil:
		return nil, nil, &Error{Op: "configure", Err: ErrTLSConfig, Cause: errors.New("TLS.RootCAs is nil (the system roots are never trusted)")}
	}
	verify := func(peerIsServer bool) func(tls.ConnectionState) error {
		return func(cs tls.ConnectionState) error {
			if err := tc.VerifyPeer(cs.PeerCertificates, peerIsServer); err != nil {
				return fmt.Errorf("quic: %w", err)
			}
			return nil
		}
	}
	server = &tls.Config{
		Certificates:     []tls.Certificate{tc.Certificate},
		NextProtos:       []string{ALPN},
		MinVersion:       tls.VersionTLS13,
		Time:             tc.Time,
		CurvePreferences: tc.CurvePreferences,
		ClientAuth:       tls.RequireAnyClientCert,
		ClientCAs:        tc.RootCAs,
		VerifyConnection: verify(false),
	}
	client = &tls.Config{
		Certificates:     []tls.Certificate{tc.Certificate},
		NextProtos:       []string{ALPN},
		MinVersion:       tls.VersionTLS13,
		Time:             tc.Time,
		CurvePreferences: tc.CurvePreferences,
		// Chain-only verification happens in VerifyConnection; crypto/tls's
		// own check would demand a host name.
		InsecureSkipVerify: true, //nolint:gosec // verified in VerifyConnection
		VerifyConnection:   verify(true),
	}
	return server, client, nil
}

// ephemeralServerConfig is the server side of a Network without TLS
// configuration: an ephemeral self-signed certificate made here, which
// peers do not verify.
func ephemeralServerConfig(old bool) (*tls.Config, error) {
	cert, err := ephemeralCertificate()
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		NextProtos:   alpns(nil, old),
		MinVersion:   tls.VersionTLS13,
	}, nil
}

// ephemeralCertificate makes the self-signed ECDSA P-256 certificate a
// Network without TLS configuration presents. Peers do not verify it.
func ephemeralCertificate() (tls.Certificate, error) {
	fail := func(err error) (tls.Certificate, error) {
		return tls.Certificate{}, &Error{Op: "configure", Err: ErrTLSConfig, Cause: fmt.Errorf("ephemeral certificate: %w", err)}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fail(err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return fail(err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "aemp-quic-ephemeral"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(100 * 365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return fail(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}
