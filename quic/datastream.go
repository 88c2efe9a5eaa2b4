package quic

import (
	"context"
	"errors"
	"net"
	"sync"
	"time"

	quicgo "github.com/quic-go/quic-go"

	"github.com/aemp-go/dataconn/transport"
)

// This file makes Network a transport.MuxNetwork: data connections to a
// peer that is authenticated on a QUIC connection are new streams of that
// connection, with a short header instead of an AEMP handshake (see the
// package doc, "Direct data streams").

var _ transport.MuxNetwork = (*Network)(nil)

// connAuth is what the Nodes using this Network proved about one QUIC
// connection: the (local node, peer node) pairs whose messaging handshake
// succeeded on one of its streams in a way that binds it to the
// connection (transport decides which ways do).
type connAuth struct {
	mu    sync.Mutex
	pairs map[[2]string]struct{}
	// changed is closed (and replaced) whenever a pair is added.
	changed chan struct{}
}

// authOf returns the record of c, making it on first use; it is dropped
// when the connection ends. It returns nil for a connection that ended.
func (n *Network) authOf(c *quicgo.Conn) *connAuth {
	n.authMu.Lock()
	defer n.authMu.Unlock()
	if a := n.auths[c]; a != nil {
		return a
	}
	if c.Context().Err() != nil {
		return nil
	}
	if n.auths == nil {
		n.auths = make(map[*quicgo.Conn]*connAuth)
	}
	a := &connAuth{pairs: map[[2]string]struct{}{}, changed: make(chan struct{})}
	n.auths[c] = a
	context.AfterFunc(c.Context(), func() {
		n.authMu.Lock()
		delete(n.auths, c)
		n.authMu.Unlock()
	})
	return a
}

// streamOf returns the *Stream under c (through wrappers that have an
// Unwrap() net.Conn method) if it belongs to this Network.
func (n *Network) streamOf(c net.Conn) (*Stream, bool) {
	for range 8 {
		if s, ok := c.(*Stream); ok {
			return s, s.net == n
		}
		u, ok := c.(interface{ Unwrap() net.Conn })
		if !ok {
			return nil, false
		}
		c = u.Unwrap()
	}
	return nil, false
}

// Carries reports whether c is a stream of this Network, possibly
// wrapped (an Unwrap() net.Conn method). It implements
// transport.MuxNetwork.
func (n *Network) Carries(c net.Conn) bool {
	_, ok := n.streamOf(c)
	return ok
}

// OpenStream opens a new stream on the QUIC connection that carries c
// (a stream of this Network). The peer sees it once this side writes.
// It implements transport.MuxNetwork.
func (n *Network) OpenStream(ctx context.Context, deadline time.Time, c net.Conn) (net.Conn, error) {
	s, ok := n.streamOf(c)
	if !ok {
		return nil, &Error{Op: "dial", Err: ErrAddress, Cause: errors.New("not a stream of this network")}
	}
	if qs, err := s.conn.OpenStream(); err == nil {
		return newStream(n, s.conn, qs), nil
	}
	// No stream credit (or the connection is gone): wait for credit.
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	qs, err := s.conn.OpenStreamSync(ctx)
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, &Error{Op: "dial", Err: ErrHandshake, Cause: ctxErr}
		}
		return nil, n.connError("dial", "", err)
	}
	return newStream(n, s.conn, qs), nil
}

// AcceptsStreams reports whether streams the peer opens on the QUIC
// connection carrying c reach an open Listener of this Network: the
// connection was accepted by one, or dialed from a listening socket. It
// implements transport.MuxNetwork.
func (n *Network) AcceptsStreams(c net.Conn) bool {
	s, ok := n.streamOf(c)
	if !ok {
		return false
	}
	n.mu.Lock()
	l := n.serving[s.conn]
	n.mu.Unlock()
	return l != nil && l.ctx.Err() == nil
}

// setServing records (l non-nil) or forgets that l takes the peer's
// streams on c.
func (n *Network) setServing(c *quicgo.Conn, l *Listener) {
	n.mu.Lock()
	if l != nil {
		n.serving[c] = l
	} else {
		delete(n.serving, c)
	}
	n.mu.Unlock()
}

// BindPeer records that on the QUIC connection carrying c, node peer
// authenticated to node local. It implements transport.MuxNetwork.
func (n *Network) BindPeer(c net.Conn, local, peer string) {
	s, ok := n.streamOf(c)
	if !ok {
		return
	}
	a := n.authOf(s.conn)
	if a == nil {
		return
	}
	a.mu.Lock()
	k := [2]string{local, peer}
	if _, dup := a.pairs[k]; !dup {
		a.pairs[k] = struct{}{}
		close(a.changed)
		a.changed = make(chan struct{})
	}
	a.mu.Unlock()
}

// WaitPeer waits until peer is bound to local on the QUIC connection
// carrying c (see BindPeer), and reports whether it is: false when ctx
// ends, the deadline passes, or c or its connection is closed first. It implements transport.MuxNetwork.
func (n *Network) WaitPeer(ctx context.Context, deadline time.Time, c net.Conn, local, peer string) bool {
	s, ok := n.streamOf(c)
	if !ok {
		return false
	}
	a := n.authOf(s.conn)
	if a == nil {
		return false
	}
	var timer *time.Timer
	for {
		a.mu.Lock()
		_, bound := a.pairs[[2]string{local, peer}]
		ch := a.changed
		a.mu.Unlock()
		if bound {
			return true
		}
		if timer == nil {
			timer = time.NewTimer(time.Until(deadline))
			defer timer.Stop()
		}
		select {
		case <-ch:
		case <-timer.C:
			return false
		case <-ctx.Done():
			return false
		case <-s.conn.Context().Done():
			return false
		case <-s.s.Context().Done():
			// The stream was closed (say, evicted by the handshake cap).
			return false
		}
	}
}

// PeekByte reads the first bytes of the stream (what has arrived, at
// least one, at most peekSize) and serves them again to the next Reads.
// Call it before any Read, from the reading goroutine.
func (s *Stream) PeekByte() (byte, error) {
	buf := make([]byte, peekSize)
	for {
		n, err := s.Read(buf)
		if n > 0 {
			s.head = buf[:n]
			return buf[0], nil
		}
		if err != nil {
			return 0, err
		}
	}
}

// peekSize bounds what PeekByte reads ahead: a greeting line, or a
// direct data stream header with small init data.
const peekSize = 512
