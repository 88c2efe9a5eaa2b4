package transport

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"
)

// ErrTLSHandshake is matched (errors.Is) by every *TLSError that comes from
// a TLS handshake which did not complete, whatever the cause.
var ErrTLSHandshake = errors.New("TLS handshake failed")

// ErrTLSCertificate is matched (errors.Is) by every *TLSError caused by
// certificate material: a peer certificate that is malformed, expired, not
// yet valid or not issued by a trusted CA, a peer that rejected ours, or a
// certificate, key or CA file that cannot be used.
var ErrTLSCertificate = errors.New("TLS certificate not acceptable (bad, expired or from an unknown CA)")

// TLSError reports a TLS failure: loading certificate material, the
// handshake, or exporting channel-binding data. Op says what was being done
// (and names the file for load errors); Err is the underlying cause. Use
// errors.Is with ErrTLSHandshake and ErrTLSCertificate to classify it.
type TLSError struct {
	Op  string
	Err error

	// kinds are the sentinels this error matches besides Err's chain.
	kinds []error
}

// Error implements error. The text names the operation, the rule that was
// broken and the cause.
func (e *TLSError) Error() string {
	var b strings.Builder
	b.WriteString("aemp tls: ")
	b.WriteString(e.Op)
	// Print the most specific kind only: a certificate failure during the
	// handshake is also a handshake failure, but saying so adds nothing.
	if n := len(e.kinds); n > 0 {
		b.WriteString(": ")
		b.WriteString(e.kinds[n-1].Error())
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Unwrap returns the sentinels this error is classified as and the cause.
func (e *TLSError) Unwrap() []error {
	out := make([]error, 0, len(e.kinds)+1)
	out = append(out, e.kinds...)
	if e.Err != nil {
		out = append(out, e.Err)
	}
	return out
}

// tlsExporterLabel is the RFC 9266 label of the tls-exporter channel binding.
const tlsExporterLabel = "EXPORTER-Channel-Binding"

// TLSConfig holds a node's certificate and the CAs it trusts to verify peers.
//
// The same TLSConfig serves both TLS roles: AEMP decides the role from the
// nonces (the side with the lower nonce line is the TLS client), so a node
// must be ready to be either. A TLSConfig is not modified by Upgrade and may
// be shared by concurrent handshakes.
type TLSConfig struct {
	// Certificate is presented to the peer in both roles.
	Certificate tls.Certificate
	// RootCAs are the CAs a peer's certificate must chain to. It must not
	// be nil: the system roots are never used.
	RootCAs *x509.CertPool
	// Time, if set, replaces time.Now for certificate validity checks (tests).
	Time func() time.Time
	// MinVersion is the lowest TLS version accepted; 0 means TLS 1.2.
	MinVersion uint16
	// CurvePreferences, if set, are the key exchanges offered and
	// accepted, in order (crypto/tls.Config.CurvePreferences). Nil keeps
	// Go's default, which puts the post-quantum hybrid X25519MLKEM768
	// first; []tls.CurveID{tls.X25519} saves its cost (see the README's
	// benchmarks) at the price of no protection against a future quantum
	// computer recording today's traffic. Over QUIC it applies too.
	CurvePreferences []tls.CurveID
}

// Upgrade runs the TLS handshake on conn in the given role (client is the
// TLS client) and returns the *tls.Conn after a successful handshake.
//
// Both sides present their certificate and verify the peer's chain against
// RootCAs; client certificates are required. Node IDs are not host names,
// so verification is chain-only: there is no host name check, and any
// certificate issued by a trusted CA is accepted whatever its subject. The
// peer's identity is established by the AEMP authentication that follows.
// The peer certificate must allow use in its role (extended key usage
// serverAuth for a TLS server, clientAuth for a TLS client, or none).
// Session tickets and resumption are not used.
//
// ctx bounds the handshake: its deadline is set on conn for the duration of
// the handshake (and cleared after success), and cancelling it aborts the
// handshake. On failure conn is closed (after the TLS alert, if any, has
// been sent, so the peer's handshake fails too) and the error is a
// *TLSError matching ErrTLSHandshake, and also ErrTLSCertificate when a
// certificate was rejected by either side.
//
// With TLS 1.3 the client finishes its handshake before the server has
// checked the client certificate; a client whose certificate the server
// rejects therefore learns it from its first Read (a "remote error" alert),
// not from Upgrade.
func (c *TLSConfig) Upgrade(ctx context.Context, conn net.Conn, client bool) (*tls.Conn, error) {
	return c.upgrade(ctx, conn, client, nil)
}

// upgrade is Upgrade; mod, if not nil, adjusts the crypto/tls
// configuration (session resumption, see tlsresume.go).
func (c *TLSConfig) upgrade(ctx context.Context, conn net.Conn, client bool, mod func(*tls.Config)) (*tls.Conn, error) {
	op := "handshake as server"
	if client {
		op = "handshake as client"
	}
	if conn == nil {
		return nil, &TLSError{Op: op, Err: errors.New("nil connection"), kinds: []error{ErrTLSHandshake}}
	}
	if err := c.tlsCheck(); err != nil {
		_ = conn.Close()
		return nil, &TLSError{Op: op, Err: err, kinds: []error{ErrTLSHandshake, ErrTLSCertificate}}
	}
	if err := ctx.Err(); err != nil {
		_ = conn.Close()
		return nil, &TLSError{Op: op, Err: err, kinds: []error{ErrTLSHandshake}}
	}
	dl, hasDeadline := ctx.Deadline()
	if hasDeadline {
		_ = conn.SetDeadline(dl)
	}
	cfg := c.tlsStdConfig(conn, client)
	if mod != nil {
		mod(cfg)
	}
	var tc *tls.Conn
	if client {
		tc = tls.Client(conn, cfg)
	} else {
		tc = tls.Server(conn, cfg)
	}
	if err := tc.HandshakeContext(ctx); err != nil {
		_ = conn.Close()
		return nil, tlsHandshakeError(ctx, op, err)
	}
	if hasDeadline {
		_ = conn.SetDeadline(time.Time{})
	}
	return tc, nil
}

// TLSExporter returns the RFC 9266 "EXPORTER-Channel-Binding" value (32
// bytes, empty context) of an established *tls.Conn. Both ends of a
// connection get the same value; it differs for every connection. It fails
// before the handshake has completed, and for TLS 1.2 connections without
// the extended master secret extension.
func TLSExporter(c *tls.Conn) ([]byte, error) {
	const op = "export channel binding"
	if c == nil {
		return nil, &TLSError{Op: op, Err: errors.New("nil connection")}
	}
	cs := c.ConnectionState()
	if !cs.HandshakeComplete {
		return nil, &TLSError{Op: op, Err: errors.New("handshake not complete"), kinds: []error{ErrTLSHandshake}}
	}
	v, err := cs.ExportKeyingMaterial(tlsExporterLabel, nil, 32)
	if err != nil {
		return nil, &TLSError{Op: op, Err: err}
	}
	return v, nil
}

// ChannelBindingOf returns the RFC 9266 tls-exporter value (32 bytes) of
// a completed TLS session, or nil when it has none.
func ChannelBindingOf(st tls.ConnectionState) []byte {
	if !st.HandshakeComplete {
		return nil
	}
	v, err := st.ExportKeyingMaterial(tlsExporterLabel, nil, 32)
	if err != nil {
		return nil
	}
	return v
}

// tlsCheck reports a configuration that cannot be used for a handshake.
func (c *TLSConfig) tlsCheck() error {
	switch {
	case c == nil:
		return errors.New("nil TLSConfig")
	case len(c.Certificate.Certificate) == 0:
		return errors.New("no certificate configured")
	case c.Certificate.PrivateKey == nil:
		return errors.New("certificate has no private key")
	case c.RootCAs == nil:
		return errors.New("no RootCAs configured (the system roots are never trusted)")
	}
	return nil
}

// tlsStdConfig builds the crypto/tls configuration of one handshake.
//
// conn is the stream the handshake runs on; when not nil, it is drained
// after our side rejects the peer's certificate (see tlsDrain).
func (c *TLSConfig) tlsStdConfig(conn net.Conn, client bool) *tls.Config {
	minVersion := c.MinVersion
	if minVersion == 0 {
		minVersion = tls.VersionTLS12
	}
	cfg := &tls.Config{
		Certificates:     []tls.Certificate{c.Certificate},
		MinVersion:       minVersion,
		Time:             c.Time,
		CurvePreferences: c.CurvePreferences,
		// No resumption by default: a server ticket written after the
		// handshake would block a synchronous conn (net.Pipe, memnet)
		// whose peer is not reading. Between nodes of this project over
		// TCP, tlsresume.go turns it on.
		SessionTicketsDisabled: true,
		// Chain-only verification happens in VerifyConnection for both
		// roles; crypto/tls's own client check would demand a host name.
		InsecureSkipVerify: true,
		ClientAuth:         tls.RequireAnyClientCert,
		// ClientCAs stays nil on purpose: a Go client given a list of CA
		// names sends no certificate at all when none matches, which hides
		// the real reason ("unknown authority") from both sides.
		VerifyConnection: func(cs tls.ConnectionState) error {
			err := c.tlsVerifyPeer(cs.PeerCertificates, client)
			if err != nil && conn != nil {
				go tlsDrain(conn)
			}
			return err
		},
	}
	return cfg
}

// tlsDrain reads and discards conn until it fails. It runs once our side
// has rejected the peer's certificate, while crypto/tls sends its alert:
// on a synchronous stream (net.Pipe, in-memory networks) the peer may be
// blocked writing its own flight or first line, and would never read the
// alert otherwise. Upgrade closes conn after a failed handshake, which ends
// the drain. crypto/tls reads nothing more from conn after the failure.
func tlsDrain(conn net.Conn) {
	var buf [512]byte
	for {
		if _, err := conn.Read(buf[:]); err != nil {
			return
		}
	}
}

// tlsVerifyError marks a peer certificate rejected by our own check.
type tlsVerifyError struct{ err error }

func (e *tlsVerifyError) Error() string { return "peer certificate rejected: " + e.err.Error() }
func (e *tlsVerifyError) Unwrap() error { return e.err }

// VerifyPeer checks a peer's certificate chain (leaf first) against
// RootCAs at the configured time, for the extended key usage of the peer's
// role: serverAuth when the peer is the TLS server (peerIsServer), else
// clientAuth. Node IDs are not host names, so no name is checked. QUIC
// uses it for its own handshake.
func (c *TLSConfig) VerifyPeer(certs []*x509.Certificate, peerIsServer bool) error {
	return c.tlsVerifyPeer(certs, peerIsServer)
}

// tlsVerifyPeer checks the peer's chain against RootCAs at the configured
// time, for the usage of the peer's role.
func (c *TLSConfig) tlsVerifyPeer(certs []*x509.Certificate, client bool) error {
	if len(certs) == 0 {
		return &tlsVerifyError{errors.New("peer sent no certificate")}
	}
	opts := x509.VerifyOptions{
		Roots:         c.RootCAs,
		Intermediates: x509.NewCertPool(),
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if client {
		opts.KeyUsages = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	}
	if c.Time != nil {
		opts.CurrentTime = c.Time()
	}
	for _, ic := range certs[1:] {
		opts.Intermediates.AddCert(ic)
	}
	if _, err := certs[0].Verify(opts); err != nil {
		return &tlsVerifyError{err}
	}
	return nil
}

// tlsCertAlerts returns the TLS alert codes a peer sends when it rejects
// our certificate: bad_certificate, unsupported_certificate,
// certificate_revoked, certificate_expired, certificate_unknown,
// unknown_ca, certificate_required.
func tlsCertAlerts() []uint8 { return []uint8{42, 43, 44, 45, 46, 48, 116} }

// tlsIsCertFailure reports whether a handshake error was caused by a
// certificate, rejected by us or by the peer.
func tlsIsCertFailure(err error) bool {
	var ve *tlsVerifyError
	if errors.As(err, &ve) {
		return true
	}
	var ua x509.UnknownAuthorityError
	var ci x509.CertificateInvalidError
	var cv *tls.CertificateVerificationError
	if errors.As(err, &ua) || errors.As(err, &ci) || errors.As(err, &cv) {
		return true
	}
	// A received alert surfaces as *net.OpError{Op: "remote error"} whose
	// Err is crypto/tls's unexported alert type; its text equals that of
	// the exported tls.AlertError with the same code.
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Op == "remote error" && oe.Err != nil {
		msg := oe.Err.Error()
		for _, code := range tlsCertAlerts() {
			if msg == tls.AlertError(code).Error() {
				return true
			}
		}
	}
	return false
}

// tlsHandshakeError classifies a failed handshake.
func tlsHandshakeError(ctx context.Context, op string, err error) error {
	kinds := []error{ErrTLSHandshake}
	if tlsIsCertFailure(err) {
		kinds = append(kinds, ErrTLSCertificate)
	}
	if ctxErr := ctx.Err(); ctxErr != nil && !errors.Is(err, ctxErr) {
		err = fmt.Errorf("%w (%w)", err, ctxErr)
	}
	return &TLSError{Op: op, Err: err, kinds: kinds}
}

func tlsCertError(op string, err error) error {
	return &TLSError{Op: op, Err: err, kinds: []error{ErrTLSCertificate}}
}
