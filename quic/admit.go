package quic

import (
	"context"
	"errors"
	"net"

	quicgo "github.com/quic-go/quic-go"
)

// DefaultMaxIncomingConns is the default Config.MaxIncomingConns.
const DefaultMaxIncomingConns = 4096

// errTooManyConns rejects a connection attempt past MaxIncomingConns.
var errTooManyConns = errors.New("quic: too many incoming connections (Config.MaxIncomingConns)")

// Admission of incoming QUIC connections: at most Config.MaxIncomingConns
// connections that peers opened to this Network are handshaking or open at
// once; further attempts are refused at once (CONNECTION_REFUSED) without
// a handshake, so a flood of new connections costs a bounded amount of
// crypto, goroutines and memory. Honest peers are not crowded out once
// connected: each pair of nodes shares one QUIC connection, whichever side
// opened it, and its streams (messaging and data connections) are not
// counted here. Past half the cap, new attempts must first prove their
// source address (a QUIC Retry round trip), so spoofed floods cannot fill
// it.

// admitConn is the quic-go Transport's ConnContext: it counts the
// connection against the cap until its context ends.
func (n *Network) admitConn(ctx context.Context, _ *quicgo.ClientInfo) (context.Context, error) {
	if n.incoming.Add(1) > int64(n.cfg.MaxIncomingConns) {
		n.incoming.Add(-1)
		n.refusedConns.Add(1)
		n.log.Debug("quic: incoming connection refused at the cap", "cap", n.cfg.MaxIncomingConns)
		return nil, errTooManyConns
	}
	context.AfterFunc(ctx, func() { n.incoming.Add(-1) })
	return ctx, nil
}

// verifySource asks for source-address validation once half the cap is
// in use.
func (n *Network) verifySource(net.Addr) bool {
	return n.incoming.Load() > int64(n.cfg.MaxIncomingConns/2)
}

// IncomingConns reports the incoming QUIC connections counted against
// Config.MaxIncomingConns now, and how many attempts were refused at the
// cap so far.
func (n *Network) IncomingConns() (open int, refused int64) {
	return int(n.incoming.Load()), n.refusedConns.Load()
}

// PeerSpoke reports whether the peer sent on this stream: a QUIC peer's
// stream reaches Accept only once its first frame arrived, so always,
// except on the server's greeting stream (ALPNGreetFirst), which the
// server opened before the client said anything: there once the client's
// data has been read. The Node's listener never drops a handshake whose
// peer spoke to make room (transport.Spoker).
func (s *Stream) PeerSpoke() bool { return !s.greetFirst || s.spoke.Load() }
