// Package testca is an in-memory certificate authority for tests and
// demos (aemp demo): it issues node certificates with ECDSA P-256 keys as
// *transport.TLSConfig values and touches no files. It is not for
// production: its keys live in memory only and nothing revokes them.
package testca

import (
	"time"

	"github.com/aemp-go/dataconn/transport"
	"github.com/aemp-go/dataconn/transport/internal/testcert"
)

// CA is a self-signed certificate authority.
type CA struct{ ca *testcert.CA }

// New returns a self-signed CA named name. Errors are *transport.TLSError.
func New(name string) (*CA, error) {
	ca, err := testcert.New(name)
	if err != nil {
		return nil, &transport.TLSError{Op: "create test CA", Err: err}
	}
	return &CA{ca: ca}, nil
}

// Issue returns a TLSConfig whose certificate, for nodeID, is signed by the
// CA and valid from notBefore to notAfter, and whose RootCAs hold only this
// CA.
func (ca *CA) Issue(nodeID string, notBefore, notAfter time.Time) (*transport.TLSConfig, error) {
	cert, pool, err := ca.ca.Issue(nodeID, notBefore, notAfter)
	if err != nil {
		return nil, &transport.TLSError{Op: "issue test certificate", Err: err}
	}
	return &transport.TLSConfig{Certificate: cert, RootCAs: pool}, nil
}

// PerlPEM returns one PEM document in the Perl layout: a self-signed
// certificate for nodeID that is also its own CA, followed by its private
// key (PKCS #8). Nodes that share this document trust each other, as Perl
// nodes sharing one certificate file do. The CA itself is not involved.
func (ca *CA) PerlPEM(nodeID string) ([]byte, error) {
	b, err := testcert.PerlPEM(nodeID)
	if err != nil {
		return nil, &transport.TLSError{Op: "create Perl PEM", Err: err}
	}
	return b, nil
}
