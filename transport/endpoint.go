package transport

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aemp-go/dataconn/core/handshake"
	"github.com/aemp-go/dataconn/core/rendezvous"
	"github.com/aemp-go/dataconn/core/wire"
)

// handshakeConfig builds the core configuration for one connection.
func (n *endpoint) handshakeConfig(protocol string, extra []wire.KV, deferGreeting bool, nw Network, c net.Conn) handshake.Config {
	remote := c.RemoteAddr()
	verified := verifiedChannel(nw, c)
	var binding []byte
	if b, ok := nw.(ChannelBinder); ok && len(n.cfg.Secret) > 0 && !n.cfg.PerlCompat && !n.cfg.DisableChannelBinding {
		// Only hmac_sha3_512_cb, which needs the secret, covers it.
		binding = b.ChannelBinding(c)
	}
	accept, offer := n.authLists()
	kv := make([]wire.KV, 1, 4+len(n.cfg.Extra)+len(extra))
	kv[0] = wire.KV{Key: wire.KeyProvider, Value: Provider}
	if !n.cfg.PerlCompat {
		kv = append(kv, wire.KV{Key: wire.KeyGo, Value: n.goExtensions(protocol, nw, c, verified)})
	}
	if remote != nil {
		kv = append(kv, wire.KV{Key: wire.KeyPeerAddr, Value: remote.String()})
	}
	if !n.cfg.PerlCompat && protocol == wire.ProtocolMessaging {
		// Our data-connection window, for peers to pace their set-ups.
		kv = append(kv, wire.KV{Key: rendezvous.KeyDataConnWindow, Value: strconv.Itoa(n.cfg.DataConn.MaxExpectPerPeer)})
	}
	kv = append(kv, n.cfg.Extra...)
	kv = append(kv, extra...)
	return handshake.Config{
		NodeID:          n.id,
		Protocol:        protocol,
		Secret:          n.cfg.Secret,
		MACKey:          n.macKey(),
		AcceptAuths:     accept,
		OfferAuths:      offer,
		AcceptFramings:  n.cfg.Framings,
		SendFramings:    n.cfg.Framings,
		TLS:             n.cfg.TLS != nil,
		TLSRequired:     n.cfg.TLSRequired,
		Extra:           kv,
		Timeout:         n.cfg.HandshakeTimeout,
		DeferGreeting:   deferGreeting,
		ChannelBinding:  binding,
		VerifiedChannel: verified,
	}
}

// authLists returns the auth methods our greetings accept and those we
// offer to send, in order of preference. They follow from the
// configuration alone, so they are made once and shared by every
// handshake (the machine only reads them).
func (n *endpoint) authLists() (accept, offer []string) {
	n.authOnce.Do(func() {
		accept := []string{wire.AuthTLS, wire.AuthHMAC}
		offer := []string{wire.AuthTLS, wire.AuthHMAC}
		if !n.cfg.PerlCompat && !n.cfg.DisableChannelBinding {
			// Offered first to nodes of this project; Perl nodes skip it.
			accept = append([]string{handshake.AuthHMACCB}, accept...)
			offer = append([]string{handshake.AuthHMACCB}, offer...)
		}
		if n.cfg.AllowTLSAnon {
			accept = append(accept, wire.AuthTLSAnon)
		}
		if n.cfg.AllowCleartext {
			accept = append(accept, wire.AuthCleartext)
		}
		n.accept, n.offer = slices.Clip(accept), slices.Clip(offer)
	})
	return n.accept, n.offer
}

// verifiedChannel reports whether c is a stream of a network that
// verified the peer's certificate and had its own verified (a
// SecureNetwork reporting a TLS state for it: QUIC with certificates).
func verifiedChannel(nw Network, c net.Conn) bool {
	s, ok := nw.(SecureNetwork)
	if !ok {
		return false
	}
	_, ok = s.TLSState(c)
	return ok
}

// nonce returns a fresh nonce line: 66 random bytes in base64, as Perl.
func (n *endpoint) nonce() (string, error) {
	b := make([]byte, 66)
	if _, err := io.ReadFull(n.cfg.Rand, b); err != nil {
		return "", fmt.Errorf("aemp: nonce: %w", err)
	}
	return base64.StdEncoding.EncodeToString(b), nil
}

// randomID returns an unguessable identifier of 16 random bytes.
func (n *endpoint) randomID() (string, error) {
	b := make([]byte, 16)
	if _, err := io.ReadFull(n.cfg.Rand, b); err != nil {
		return "", fmt.Errorf("aemp: id: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// driveOptions returns the options for Drive on a stream of nw.
func (n *endpoint) driveOptions(nw Network) DriveOptions {
	o := DriveOptions{TLS: n.cfg.TLS, resume: n.resume, bufs: &n.bufs}
	if s, ok := nw.(SecureNetwork); ok {
		o.Secure = s
	}
	return o
}

// networkFor returns the network able to dial an announced address.
func (n *Node) networkFor(a string) (Network, string, error) {
	scheme, addr := SplitAddr(a)
	n.mu.Lock()
	nw := n.networks[scheme]
	n.mu.Unlock()
	if nw == nil {
		return nil, "", fmt.Errorf("aemp: no network for scheme %q (address %q)", scheme, a)
	}
	return nw, addr, nil
}

// dialHandshake dials one announced address and runs the handshake with
// the given protocol and extra keys.
func (n *Node) dialHandshake(ctx context.Context, a, protocol string, extra []wire.KV) (net.Conn, *handshake.Result, error) {
	nw, addr, err := n.networkFor(a)
	if err != nil {
		return nil, nil, err
	}
	return n.endpoint.dialHandshake(ctx, nw, addr, protocol, extra)
}

// endpoint holds what every handshake of a node needs: its configuration,
// identity and logger. The Node and a stand-alone DataConns share it.
type endpoint struct {
	cfg Config
	id  string
	log *slog.Logger
	// resume is the TLS session resumption state (tlsresume.go).
	resume *tlsResumer
	// bufs are the handshakes' read buffers (driver.go).
	bufs readBufs
	// mac is the secret prepared once for the MACs of every handshake
	// (handshake.MACKey, immutable once made; macKey makes it).
	macOnce sync.Once
	mac     *handshake.MACKey
	// accept and offer are the auth lists of our greetings (authLists).
	authOnce      sync.Once
	accept, offer []string
}

// macKey returns the node's secret prepared for HMAC-SHA3-512, or nil
// without a secret.
func (n *endpoint) macKey() *handshake.MACKey {
	n.macOnce.Do(func() {
		if len(n.cfg.Secret) > 0 {
			n.mac = handshake.NewMACKey(n.cfg.Secret)
		}
	})
	return n.mac
}

// dialHandshake dials addr on nw and runs the handshake as the connecting
// side with the given protocol and extra greeting keys.
func (n *endpoint) dialHandshake(ctx context.Context, nw Network, addr, protocol string, extra []wire.KV) (net.Conn, *handshake.Result, error) {
	n.growForTLS(nw)
	hctx, cancel := context.WithTimeout(ctx, n.cfg.HandshakeTimeout)
	defer cancel()
	var c net.Conn
	var err error
	if md, ok := nw.(MessagingDialer); ok && protocol == wire.ProtocolMessaging {
		c, err = md.DialMessaging(hctx, addr)
	} else {
		c, err = nw.Dial(hctx, addr)
	}
	if err != nil {
		if isDescriptorLimit(err) {
			err = fmt.Errorf("%w: %w", ErrDescriptorLimit, err)
		}
		return nil, nil, err
	}
	nonce, err := n.nonce()
	if err != nil {
		c.Close()
		return nil, nil, err
	}
	m, err := handshake.New(n.handshakeConfig(protocol, extra, false, nw, c), nonce, time.Now())
	if err != nil {
		c.Close()
		return nil, nil, err
	}
	return Drive(hctx, c, m, n.driveOptions(nw))
}

// dataConnID returns a fresh data-connection id, RANDOM@SELF (RANDOM as
// randomID makes it), and the port the expectation names: portID, or
// SELF#ID when portID is empty. The id is then a part of the port's
// string, one allocation for both (a queued set-up holds them).
func (n *endpoint) dataConnID(portID string) (id, port string, err error) {
	b := make([]byte, 16)
	if _, err := io.ReadFull(n.cfg.Rand, b); err != nil {
		return "", "", fmt.Errorf("aemp: id: %w", err)
	}
	var enc [22]byte // base64.RawURLEncoding.EncodedLen(16)
	base64.RawURLEncoding.Encode(enc[:], b)
	var sb strings.Builder
	if portID != "" {
		sb.Grow(len(enc) + 1 + len(n.id))
		sb.Write(enc[:])
		sb.WriteByte('@')
		sb.WriteString(n.id)
		return sb.String(), portID, nil
	}
	sb.Grow(2*len(n.id) + 2 + len(enc))
	sb.WriteString(n.id)
	sb.WriteByte('#')
	start := sb.Len()
	sb.Write(enc[:])
	sb.WriteByte('@')
	sb.WriteString(n.id)
	port = sb.String()
	return port[start:], port, nil
}
