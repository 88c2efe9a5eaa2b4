package transport

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// tlsMaxFileSize bounds what the loaders read from one PEM file.
const tlsMaxFileSize = 4 << 20

// LoadPerlPEM reads what Perl nodes use: one PEM file with the certificate
// and key, whose certificate is also the CA. Every certificate in the file
// is trusted as a CA (Perl passes the same file as its ca_file), and the
// certificate whose public key matches the private key is the one presented.
func LoadPerlPEM(path string) (*TLSConfig, error) {
	data, err := tlsReadFile(path)
	if err != nil {
		return nil, tlsFileError("load Perl PEM file", path, err)
	}
	cfg, err := ParsePerlPEM(data)
	if err != nil {
		var te *TLSError
		if errors.As(err, &te) {
			return nil, tlsFileError("load Perl PEM file", path, te.Err)
		}
		return nil, tlsFileError("load Perl PEM file", path, err)
	}
	return cfg, nil
}

// ParsePerlPEM is LoadPerlPEM from bytes.
func ParsePerlPEM(pemData []byte) (*TLSConfig, error) {
	certs, key, err := tlsParsePEM(pemData, true)
	if err != nil {
		return nil, tlsCertError("parse Perl PEM", err)
	}
	if len(certs) == 0 {
		return nil, tlsCertError("parse Perl PEM", errors.New("no CERTIFICATE block"))
	}
	if key == nil {
		return nil, tlsCertError("parse Perl PEM", errors.New("no PRIVATE KEY block"))
	}
	cert, err := tlsKeyPair(certs, key)
	if err != nil {
		return nil, tlsCertError("parse Perl PEM", err)
	}
	pool := x509.NewCertPool()
	for _, c := range certs {
		pool.AddCert(c)
	}
	return &TLSConfig{Certificate: cert, RootCAs: pool}, nil
}

// LoadTLS reads a certificate and its key and a separate CA bundle. The key
// may be in the certificate file: pass an empty keyFile (or the same path).
// certFile may hold intermediate certificates after the node's own, which
// are sent to the peer. caFile must hold at least one CA certificate.
func LoadTLS(certFile, keyFile, caFile string) (*TLSConfig, error) {
	certData, err := tlsReadFile(certFile)
	if err != nil {
		return nil, tlsFileError("load certificate file", certFile, err)
	}
	certs, key, err := tlsParsePEM(certData, keyFile == "" || keyFile == certFile)
	if err != nil {
		return nil, tlsFileError("load certificate file", certFile, err)
	}
	if len(certs) == 0 {
		return nil, tlsFileError("load certificate file", certFile, errors.New("no CERTIFICATE block"))
	}
	if keyFile != "" && keyFile != certFile {
		keyData, err := tlsReadFile(keyFile)
		if err != nil {
			return nil, tlsFileError("load key file", keyFile, err)
		}
		if _, key, err = tlsParsePEM(keyData, true); err != nil {
			return nil, tlsFileError("load key file", keyFile, err)
		}
		if key == nil {
			return nil, tlsFileError("load key file", keyFile, errors.New("no PRIVATE KEY block"))
		}
	} else if key == nil {
		return nil, tlsFileError("load certificate file", certFile, errors.New("no PRIVATE KEY block and no separate key file given"))
	}
	cert, err := tlsKeyPair(certs, key)
	if err != nil {
		name := certFile
		if keyFile != "" {
			name = certFile + `" and "` + keyFile
		}
		return nil, tlsFileError("load certificate and key", name, err)
	}
	if caFile == "" {
		return nil, &TLSError{Op: "load CA file", Err: errors.New("no CA file given (the system roots are never trusted)"), kinds: []error{ErrTLSCertificate}}
	}
	caData, err := tlsReadFile(caFile)
	if err != nil {
		return nil, tlsFileError("load CA file", caFile, err)
	}
	cas, _, err := tlsParsePEM(caData, false)
	if err != nil {
		return nil, tlsFileError("load CA file", caFile, err)
	}
	if len(cas) == 0 {
		return nil, tlsFileError("load CA file", caFile, errors.New("no CERTIFICATE block"))
	}
	pool := x509.NewCertPool()
	for _, c := range cas {
		pool.AddCert(c)
	}
	return &TLSConfig{Certificate: cert, RootCAs: pool}, nil
}

func tlsFileError(op, path string, err error) error {
	return &TLSError{Op: op + ` "` + path + `"`, Err: err, kinds: []error{ErrTLSCertificate}}
}

// tlsReadFile reads at most tlsMaxFileSize bytes of a PEM file.
func tlsReadFile(path string) ([]byte, error) {
	if path == "" {
		return nil, errors.New("no file name given")
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, tlsMaxFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > tlsMaxFileSize {
		return nil, fmt.Errorf("file larger than %d bytes", tlsMaxFileSize)
	}
	return data, nil
}

// tlsParsePEM returns the certificates of a PEM document in order and, if
// wantKey, its first private key. Other block types are ignored.
func tlsParsePEM(data []byte, wantKey bool) ([]*x509.Certificate, crypto.Signer, error) {
	var certs []*x509.Certificate
	var key crypto.Signer
	rest := data
	for n := 1; ; n++ {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		switch {
		case block.Type == "CERTIFICATE":
			c, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				return nil, nil, fmt.Errorf("PEM block %d: bad certificate: %w", n, err)
			}
			certs = append(certs, c)
		case wantKey && key == nil && (block.Type == "PRIVATE KEY" || strings.HasSuffix(block.Type, " PRIVATE KEY")):
			if _, encrypted := block.Headers["DEK-Info"]; encrypted || block.Type == "ENCRYPTED PRIVATE KEY" {
				return nil, nil, fmt.Errorf("PEM block %d: encrypted private keys are not supported", n)
			}
			k, err := tlsParseKey(block.Bytes)
			if err != nil {
				return nil, nil, fmt.Errorf("PEM block %d: bad private key: %w", n, err)
			}
			key = k
		}
	}
	return certs, key, nil
}

// tlsParseKey parses a PKCS #8, PKCS #1 or SEC 1 private key.
func tlsParseKey(der []byte) (crypto.Signer, error) {
	if k, err := x509.ParsePKCS8PrivateKey(der); err == nil {
		s, ok := k.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("unsupported key type %T", k)
		}
		return s, nil
	}
	if k, err := x509.ParsePKCS1PrivateKey(der); err == nil {
		return k, nil
	}
	if k, err := x509.ParseECPrivateKey(der); err == nil {
		return k, nil
	}
	return nil, errors.New("not a PKCS #8, PKCS #1 or EC private key")
}

// tlsKeyPair builds the certificate to present: the certificate matching
// key first, then the others in file order.
func tlsKeyPair(certs []*x509.Certificate, key crypto.Signer) (tls.Certificate, error) {
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok {
		return tls.Certificate{}, fmt.Errorf("unsupported key type %T", key)
	}
	leaf := -1
	for i, c := range certs {
		if pub.Equal(c.PublicKey) {
			leaf = i
			break
		}
	}
	if leaf < 0 {
		return tls.Certificate{}, errors.New("private key matches none of the certificates")
	}
	out := tls.Certificate{PrivateKey: key, Leaf: certs[leaf]}
	out.Certificate = append(out.Certificate, certs[leaf].Raw)
	for i, c := range certs {
		if i != leaf {
			out.Certificate = append(out.Certificate, c.Raw)
		}
	}
	return out, nil
}
