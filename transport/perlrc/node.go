package perlrc

import (
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"

	"github.com/aemp-go/dataconn/core/wire"
	"github.com/aemp-go/dataconn/transport"
)

// ErrNodeConfig: a profile cannot be turned into a node configuration (its
// certificate does not parse, it names no framing this project speaks, its
// auth lists leave no method, or it requires TLS without a certificate).
var ErrNodeConfig = errors.New("perlrc: profile cannot configure a node")

// anonSuffixLen is the length of the random suffix appended to a node ID
// ending in "/".
const anonSuffixLen = 10

// NodeConfig returns base with the settings of the profile applied, for
// transport.NewNode. Only keys the profile configures change base; every
// other field (Logger, HandshakeTimeout, ...) is kept. A caller with
// explicit overrides (command-line flags) applies them to the result.
//
//   - secret: Config.Secret (a copy of the Latin-1 bytes Perl hashes).
//   - cert: Config.TLS, parsed with transport.ParsePerlPEM (the
//     certificate is also trusted as the CA, as Perl does).
//   - nodeid: Config.NodeID. An ID ending in "/" ("anon/") gets a random
//     suffix, read from base.Rand or crypto/rand.
//   - framing_format: Config.Framings, the profile's list in its order,
//     reduced to the framings this project speaks (msgpack, json): Perl's
//     "cbor, json, storable" becomes ["json"]. A list with none of them is
//     an error.
//   - auth_accept: Config.AllowTLSAnon and Config.AllowCleartext are set
//     exactly when the list holds tls_anon and cleartext. Unknown method
//     names are ignored, as Perl never matches them.
//   - auth_offer and auth_accept: when neither list leaves a method that
//     works without TLS (hmac_sha3_512 to send; hmac_sha3_512 or cleartext
//     to accept), a Perl node can only talk to TLS peers, so
//     Config.TLSRequired is set (and a certificate is then required). The
//     node always offers tls_sha3_512 (with TLS) and hmac_sha3_512 (with a
//     secret); other restrictions of auth_offer cannot be expressed and
//     are ignored.
//   - monitor_timeout: Config.PeerTimeout.
//
// binds and seeds are not part of the configuration: see ListenAddrs and
// SeedAddrs.
//
// Use the profile as loaded: Profile.WithPerlDefaults adds Perl's default
// auth_accept, which accepts tls_anon and cleartext, and Perl's framing
// list, which drops msgpack between nodes of this project.
//
// Errors are *Error values naming the file, profile and key, wrapping
// ErrNodeConfig (and, for the certificate, the *transport.TLSError).
func (p Profile) NodeConfig(base transport.Config) (transport.Config, error) {
	cfg := base
	fail := func(key string, err error) (transport.Config, error) {
		return base, &Error{File: p.Source, Profile: p.Name, Key: key, Err: err}
	}
	if p.HasSecret {
		cfg.Secret = slices.Clone(p.Secret)
		if cfg.Secret == nil {
			cfg.Secret = []byte{}
		}
	}
	if p.CertPEM != nil {
		tc, err := transport.ParsePerlPEM(p.CertPEM)
		if err != nil {
			return fail("cert", fmt.Errorf("%w: %w", ErrNodeConfig, err))
		}
		cfg.TLS = tc
	}
	if p.NodeID != "" {
		cfg.NodeID = p.NodeID
		if p.NodeIDNeedsSuffix() {
			r := base.Rand
			if r == nil {
				r = rand.Reader
			}
			suffix, err := randomSuffix(r)
			if err != nil {
				return fail("nodeid", fmt.Errorf("%w: random suffix: %w", ErrNodeConfig, err))
			}
			cfg.NodeID += suffix
		}
	}
	if p.FramingFormat != nil {
		var fr []string
		for _, f := range p.FramingFormat {
			if slices.Contains(wire.CodecNames(), f) && !slices.Contains(fr, f) {
				fr = append(fr, f)
			}
		}
		if len(fr) == 0 {
			return fail("framing_format", fmt.Errorf("%w: none of %q is a framing this node speaks (%s)",
				ErrNodeConfig, p.FramingFormat, strings.Join(wire.CodecNames(), ", ")))
		}
		cfg.Framings = fr
	}
	if p.AuthAccept != nil {
		cfg.AllowTLSAnon = slices.Contains(p.AuthAccept, wire.AuthTLSAnon)
		cfg.AllowCleartext = slices.Contains(p.AuthAccept, wire.AuthCleartext)
		if !slices.ContainsFunc(p.AuthAccept, knownAuth) {
			return fail("auth_accept", fmt.Errorf("%w: %q accepts no method this node knows", ErrNodeConfig, p.AuthAccept))
		}
	}
	if p.AuthOffer != nil && !slices.Contains(p.AuthOffer, wire.AuthTLS) && !slices.Contains(p.AuthOffer, wire.AuthHMAC) {
		return fail("auth_offer", fmt.Errorf("%w: %q offers neither %s nor %s", ErrNodeConfig, p.AuthOffer, wire.AuthTLS, wire.AuthHMAC))
	}
	offerPlain := p.AuthOffer == nil || slices.Contains(p.AuthOffer, wire.AuthHMAC)
	acceptPlain := p.AuthAccept == nil || slices.Contains(p.AuthAccept, wire.AuthHMAC) || slices.Contains(p.AuthAccept, wire.AuthCleartext)
	if !offerPlain || !acceptPlain {
		key := "auth_offer"
		if !acceptPlain {
			key = "auth_accept"
		}
		if cfg.TLS == nil {
			return fail(key, fmt.Errorf("%w: the auth lists allow TLS methods only, and no certificate is configured", ErrNodeConfig))
		}
		cfg.TLSRequired = true
	}
	if p.MonitorTimeout > 0 {
		cfg.PeerTimeout = p.MonitorTimeout
	}
	return cfg, nil
}

func knownAuth(m string) bool {
	switch m {
	case wire.AuthTLS, wire.AuthHMAC, wire.AuthTLSAnon, wire.AuthCleartext:
		return true
	}
	return false
}

// randomSuffix returns anonSuffixLen random characters of [a-z2-7].
func randomSuffix(r io.Reader) (string, error) {
	b := make([]byte, anonSuffixLen*5/8)
	if _, err := io.ReadFull(r, b); err != nil {
		return "", err
	}
	return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b)), nil
}

// ListenAddrs returns the profile's "binds" as TCP addresses for
// transport.Node.Listen ("host:port", see ListenAddress): "*" hosts become
// all local addresses and "*" ports port 0 (any). It returns nil when the profile has
// no binds (Perl's default is "*:*"); the first malformed entry is an
// *Error wrapping ErrBadAddress.
func (p Profile) ListenAddrs() ([]string, error) {
	if p.Binds == nil {
		return nil, nil
	}
	out := make([]string, 0, len(p.Binds))
	for _, b := range p.Binds {
		a, err := ListenAddress(b)
		if err != nil {
			return nil, &Error{File: p.Source, Profile: p.Name, Key: "binds", Err: err}
		}
		out = append(out, a)
	}
	return out, nil
}

// SeedAddrs returns the profile's "seeds" as TCP addresses to dial
// ("host:port", port 4040 when none is written). A seed must name a host
// and a port: "*" in either is an *Error wrapping ErrBadAddress, as is a
// malformed entry. It returns nil when the profile has no seeds.
func (p Profile) SeedAddrs() ([]string, error) {
	if p.Seeds == nil {
		return nil, nil
	}
	out := make([]string, 0, len(p.Seeds))
	for _, s := range p.Seeds {
		host, port, err := SplitHostPort(s)
		if err == nil && (host == "*" || port == "*") {
			err = fmt.Errorf("%w: %q: a seed must name a host and a port, not \"*\"", ErrBadAddress, s)
		}
		if err != nil {
			return nil, &Error{File: p.Source, Profile: p.Name, Key: "seeds", Err: err}
		}
		out = append(out, net.JoinHostPort(host, port))
	}
	return out, nil
}
