package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync"
	"time"

	"github.com/aemp-go/dataconn/core/handshake"
	"github.com/aemp-go/dataconn/core/wire"
)

// TLS 1.3 session resumption between nodes of this project over TCP.
//
// A full TLS handshake signs and verifies certificates; a data connection
// to a peer that was already authenticated by certificates does not need
// that again. So between nodes of this project (both greetings carry
// wire.KeyGo), on TCP:
//
//   - every TLS server issues a session ticket after its handshake (the
//     messaging connection's included), sealed with the node's own ticket
//     keys, which rotate every tlsTicketRotate (a ticket is accepted for at
//     most twice that);
//   - the client keeps it, by peer node ID (at most tlsMaxTickets peers),
//     while the peer is up: a Node forgets it when the peer goes down (a
//     peer that comes back gets a new ticket on its new messaging
//     connection; without this, a node whose peers come and go kept up
//     to tlsMaxTickets dead sessions, each with the peer's parsed
//     certificates, live for the garbage collector to scan);
//   - a node that holds a ticket for the peer says so in its greeting
//     (wire.KeyTLSTicket), and then it is the TLS client, whatever the
//     nonces say (handshake.StartTLS). This is how the "reversed role" gets
//     solved: AEMP picks TLS roles from the nonces, but between our nodes
//     the side with the ticket takes the client role, so one ticket, the
//     one the messaging connection's TLS client received, serves data
//     connections in both directions. When both or neither hold one, the
//     nonces decide; a server role then issues a ticket to the other side,
//     so after the first connection both hold one;
//   - a resumed handshake (psk_dhe_ke: a fresh X25519MLKEM768 exchange, so
//     forward secrecy stays) sends and checks no certificate signature and
//     runs no chain verification: the session's certificates were verified
//     when it was established; only their validity period is checked
//     again. The AEMP auth line still runs inside, over the new session's
//     exporter, as on every connection.
//
// There is no TLS 0-RTT early data (crypto/tls does not offer it over TCP).
// Perl peers, memnet and other non-TCP streams keep the full handshake
// without tickets.

// Limits of the resumption state.
const (
	tlsTicketRotate = time.Hour
	tlsMaxTickets   = 4096
)

// tlsResumer is one node's resumption state. It is safe for concurrent
// use.
type tlsResumer struct {
	rand io.Reader

	mu      sync.Mutex
	keys    [][32]byte // current first
	rotated time.Time
	tickets map[string]*tls.ClientSessionState
}

func newTLSResumer(rand io.Reader) *tlsResumer {
	return &tlsResumer{rand: rand, tickets: map[string]*tls.ClientSessionState{}}
}

// ticketKeys returns the server's ticket keys, rotating them when due.
func (r *tlsResumer) ticketKeys() ([][32]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	if len(r.keys) == 0 || now.Sub(r.rotated) >= tlsTicketRotate {
		var k [32]byte
		if _, err := io.ReadFull(r.rand, k[:]); err != nil {
			return nil, err
		}
		keys := [][32]byte{k}
		if len(r.keys) > 0 && now.Sub(r.rotated) < 2*tlsTicketRotate {
			keys = append(keys, r.keys[0])
		}
		r.keys, r.rotated = keys, now
	}
	return r.keys, nil
}

// has reports whether a ticket for peer is held.
func (r *tlsResumer) has(peer string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.tickets[peer] != nil
}

// forget drops the ticket held for peer, if any.
func (r *tlsResumer) forget(peer string) {
	r.mu.Lock()
	delete(r.tickets, peer)
	r.mu.Unlock()
}

// peerCache is the tls.ClientSessionCache of one handshake with peer: it
// keys the session by node ID instead of the address (a node's data
// connections come from and go to many addresses).
type peerCache struct {
	r    *tlsResumer
	peer string
}

func (c peerCache) Get(string) (*tls.ClientSessionState, bool) {
	c.r.mu.Lock()
	defer c.r.mu.Unlock()
	cs := c.r.tickets[c.peer]
	return cs, cs != nil
}

func (c peerCache) Put(_ string, cs *tls.ClientSessionState) {
	c.r.mu.Lock()
	defer c.r.mu.Unlock()
	if cs == nil {
		delete(c.r.tickets, c.peer)
		return
	}
	if _, known := c.r.tickets[c.peer]; !known && len(c.r.tickets) >= tlsMaxTickets {
		for k := range c.r.tickets { // drop an arbitrary one
			delete(c.r.tickets, k)
			break
		}
	}
	c.r.tickets[c.peer] = cs
}

// withTicket returns extra plus wire.KeyTLSTicket when this node holds a
// ticket for node (and uses TLS and greets as a node of this project).
func (n *endpoint) withTicket(node string, extra []wire.KV) []wire.KV {
	if n.resume == nil || n.cfg.TLS == nil || n.cfg.PerlCompat || !n.resume.has(node) {
		return extra
	}
	return append(extra, wire.KV{Key: wire.KeyTLSTicket, Value: "1"})
}

// isTCP reports whether c (through WithPending wrappers) is a TCP stream.
func isTCP(c net.Conn) bool {
	for range 8 {
		switch x := c.(type) {
		case *net.TCPConn:
			return true
		case interface{ Unwrap() net.Conn }:
			c = x.Unwrap()
		default:
			return false
		}
	}
	return false
}

// upgradeTLS performs the TLS upgrade the machine asked for: resumable
// (see the top of this file) with a peer of this project over TCP, else
// TLSConfig.Upgrade.
func upgradeTLS(ctx context.Context, opt DriveOptions, conn net.Conn, a handshake.StartTLS) (*tls.Conn, error) {
	// The binding of the greetings (handshake.ExtTLSBind): the one ALPN
	// protocol either side offers; the machine checks what TLS
	// negotiated (TLSInfo.Bound).
	bind := func(cfg *tls.Config) {
		if a.Bind != "" {
			cfg.NextProtos = []string{a.Bind}
		}
	}
	// hold is applied last, over the final VerifyConnection.
	hold := func(*tls.Config) {}
	if fw, ok := conn.(*firstWriteConn); ok && a.Client && a.Bind == "" {
		// An auth line follows our Finished: once the server is
		// verified, the next write (the Finished) waits for it
		// (firstWriteConn).
		hold = func(cfg *tls.Config) {
			verify := cfg.VerifyConnection
			cfg.VerifyConnection = func(cs tls.ConnectionState) error {
				if err := verify(cs); err != nil {
					return err
				}
				fw.holdNext()
				return nil
			}
		}
	}
	_, peerGo := a.Peer.Get(wire.KeyGo)
	plain := func(cfg *tls.Config) {
		bind(cfg)
		hold(cfg)
	}
	if opt.resume == nil || !peerGo || a.Peer.NodeID == "" || !isTCP(conn) {
		return opt.TLS.upgrade(ctx, conn, a.Client, plain)
	}
	keys, err := opt.resume.ticketKeys()
	if err != nil {
		return opt.TLS.upgrade(ctx, conn, a.Client, plain)
	}
	tc := opt.TLS
	var th *ticketHoldConn
	if !a.Client && a.Bind != "" {
		th = newTicketHoldConn(conn)
		conn = th
	}
	return tc.upgrade(ctx, conn, a.Client, func(cfg *tls.Config) {
		bind(cfg)
		cfg.SessionTicketsDisabled = false
		cfg.SetSessionTicketKeys(keys)
		if a.Client {
			cfg.ClientSessionCache = peerCache{r: opt.resume, peer: a.Peer.NodeID}
		}
		full := cfg.VerifyConnection
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			if !cs.DidResume {
				if err := full(cs); err != nil {
					return err
				}
				if th != nil {
					// The client is verified: what we write next is
					// the session ticket (ticketHoldConn).
					th.holdNext()
				}
				return nil
			}
			// Verified when the session was established; the period
			// may have ended since.
			if len(cs.PeerCertificates) == 0 {
				return &tlsVerifyError{errors.New("resumed session without peer certificate")}
			}
			now := time.Now()
			if tc.Time != nil {
				now = tc.Time()
			}
			for _, c := range cs.PeerCertificates {
				if now.Before(c.NotBefore) || now.After(c.NotAfter) {
					return &tlsVerifyError{errors.New("certificate of the resumed session is outside its validity period")}
				}
			}
			return nil
		}
		hold(cfg)
	})
}

// ticketHoldConn is the stream under the TLS server's *tls.Conn of a
// messaging connection bound by handshake.ExtTLSBind (between nodes of
// this project over TCP). A full handshake with a client certificate ends
// with the server sending its session ticket, after it has verified the
// client and before it checks the client's Finished: a write of its own
// at the end of the handshake that ends last (the initiator's), while the
// ticket is only for later connections. Once the client's certificate is
// verified (holdNext), the next Write (the ticket; an alert if the
// handshake fails after all) is held, and sent in front of the Write after
// it, before the first Read (the connection's reader starts as soon as the
// node is up), or on Close. TLS record order is kept: nothing is written
// while a record is held but after it. A
// resumed handshake sends its ticket in its first flight, unheld. Data
// connections, whose streams go to the user, do not get this wrapper.
//
// The holding is firstWriteConn's (with nothing to write first); this
// type only adds the flush before a Read.
type ticketHoldConn struct {
	firstWriteConn
}

func newTicketHoldConn(c net.Conn) *ticketHoldConn {
	return &ticketHoldConn{firstWriteConn{Conn: c}}
}

func (c *ticketHoldConn) Read(p []byte) (int, error) {
	if err := c.flush(); err != nil {
		return 0, err
	}
	return c.Conn.Read(p)
}

// ticketFor is withTicket for the acceptor, which learns the peer from its
// greeting: only peers of this project resume.
func (n *endpoint) ticketFor(g wire.Greeting, extra []wire.KV) []wire.KV {
	if _, ok := g.Get(wire.KeyGo); !ok {
		return extra
	}
	return n.withTicket(g.NodeID, extra)
}
