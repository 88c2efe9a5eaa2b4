package transport

import (
	"context"
	"errors"
	"io"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/aemp-go/dataconn/core/handshake"
	"github.com/aemp-go/dataconn/core/rendezvous"
	"github.com/aemp-go/dataconn/core/wire"
)

// Direct data streams: on a multiplexed network (QUIC), a data connection
// to a peer that authenticated on the connection is a new stream of that
// connection with a short header (wire.AppendDataStreamHeader) instead of
// the rendezvous and an AEMP handshake: one round trip for the initiator,
// half a round trip until the init function runs, no HMAC and no greeting.
//
// It is used only between nodes of this project that both announced
// ExtDataStream in the KeyGo key of their messaging greeting on that
// connection, and only when the connection is authenticated for AEMP: the
// peer's messaging handshake on it used handshake.AuthHMACCB (whose MAC covers
// the connection's exporter, so the handshake could not have been relayed
// from another connection), or the transport verified certificates on
// both ends (TLS reported by SecureNetwork.TLSState). A tls_anon peer
// (untrusted) never qualifies. Otherwise the rendezvous and the per-stream
// handshake are used as before.

// ExtDataStream is the extension name, in the comma-separated value of
// wire.KeyGo, that announces direct data streams on this connection.
const ExtDataStream = "qstream"

// MuxNetwork is implemented by SecureNetworks whose connections carry
// many streams (QUIC), to support direct data streams.
type MuxNetwork interface {
	SecureNetwork
	// Carries reports whether c is a stream of this network (possibly
	// wrapped, see WithPending).
	Carries(c net.Conn) bool
	// OpenStream opens a new stream on the connection that carries c,
	// waiting for stream credit until ctx ends or the deadline passes.
	OpenStream(ctx context.Context, deadline time.Time, c net.Conn) (net.Conn, error)
	// AcceptsStreams reports whether streams the peer opens on the
	// connection carrying c reach this side's listener.
	AcceptsStreams(c net.Conn) bool
	// BindPeer records that node peer authenticated to node local on the
	// connection carrying c (for its lifetime).
	BindPeer(c net.Conn, local, peer string)
	// WaitPeer waits until BindPeer(c, local, peer) happened for the
	// connection carrying c and reports whether it did before ctx, the
	// deadline or the connection ended.
	WaitPeer(ctx context.Context, deadline time.Time, c net.Conn, local, peer string) bool
}

// bytePeeker is implemented by streams of a MuxNetwork: PeekByte reads
// the first byte and serves it again to the next Read.
type bytePeeker interface {
	PeekByte() (byte, error)
}

// hasExt reports whether the KeyGo value of g lists ext.
func hasExt(g wire.Greeting, ext string) bool {
	v, ok := g.Get(wire.KeyGo)
	return ok && slices.Contains(strings.Split(v, ","), ext)
}

// goExtensions is the value of wire.KeyGo in a greeting on c of nw;
// verified: c runs in a channel that verified both certificates
// (verifiedChannel).
func (n *endpoint) goExtensions(protocol string, nw Network, c net.Conn, verified bool) string {
	if protocol != wire.ProtocolMessaging {
		return "1"
	}
	v := "1"
	if mux, ok := nw.(MuxNetwork); ok && mux.AcceptsStreams(c) {
		v += "," + ExtDataStream
	}
	switch {
	case n.channelAuth(verified):
		v += "," + handshake.ExtChannelAuth
	case v == "1" && n.tlsBind(nw):
		v += "," + handshake.ExtTLSBind
	}
	return v
}

// channelAuth reports whether our messaging greetings on a stream list
// handshake.ExtChannelAuth: inside a channel that verified both
// certificates, without a shared secret (the auth would be tls_sha3_512,
// which proves nothing there that the channel does not), unless disabled.
func (n *endpoint) channelAuth(verified bool) bool {
	return verified && len(n.cfg.Secret) == 0 && !n.cfg.DisableTLSBind
}

// tlsBind reports whether our greetings on nw list handshake.ExtTLSBind:
// TLS over a stream network (not one that secures itself), no shared
// secret (the auth would be tls_sha3_512), unless disabled.
func (n *endpoint) tlsBind(nw Network) bool {
	_, secure := nw.(SecureNetwork)
	return n.cfg.TLS != nil && len(n.cfg.Secret) == 0 && !secure && !n.cfg.DisableTLSBind
}

// directMux returns the network for direct data streams on messaging
// connection c with handshake result res, or nil when they are not
// allowed (see the top of this file). It binds the peer to the connection
// so that the peer's direct streams are accepted.
func (n *Node) directMux(c net.Conn, res *handshake.Result) MuxNetwork {
	if n.cfg.PerlCompat || res.Untrusted || !(res.PeerAuth == handshake.AuthHMACCB || res.TLS) {
		return nil
	}
	n.mu.Lock()
	nets := make([]Network, 0, len(n.networks))
	for _, nw := range n.networks {
		nets = append(nets, nw)
	}
	n.mu.Unlock()
	for _, nw := range nets {
		mux, ok := nw.(MuxNetwork)
		if !ok {
			continue
		}
		if !mux.Carries(c) {
			continue
		}
		mux.BindPeer(c, n.id, res.PeerNodeID)
		if hasExt(res.Peer, ExtDataStream) {
			return mux
		}
		return nil
	}
	return nil
}

// directConn is implemented by hosts that can open direct data streams
// (the Node).
type directConn interface {
	// DirectConn returns the messaging connection to node and its
	// network when direct data streams to node are allowed on it.
	DirectConn(node string) (MuxNetwork, net.Conn)
}

// DirectConn implements directConn.
func (h nodeHost) DirectConn(node string) (MuxNetwork, net.Conn) {
	h.n.mu.Lock()
	defer h.n.mu.Unlock()
	mc := h.n.mconns[h.n.m.Current(node)]
	if mc == nil || mc.direct == nil {
		return nil, nil
	}
	if len(h.n.cfg.Prefer) > 0 {
		// Config.Prefer names the network data connections go over:
		// stay on the messaging connection only when it is the first.
		if addrs := h.n.m.PeerAddrs(node); len(addrs) > 0 {
			if scheme, _ := SplitAddr(addrs[0]); scheme != mc.direct.Scheme() {
				return nil, nil
			}
		}
	}
	return mc.direct, mc.conn
}

// connectDirect opens a direct data stream to target if the host allows
// one; ok is false when it does not (or the header cannot be made), and
// the caller then uses the rendezvous.
func (d *DataConns) connectDirect(ctx context.Context, target string, deadline time.Time, timeout time.Duration, initFunc string, initData []any) (conn net.Conn, err error, ok bool) {
	dh, isDirect := d.host.(directConn)
	if !isDirect {
		return nil, nil, false
	}
	mux, mc := dh.DirectConn(target)
	if mux == nil {
		return nil, nil, false
	}
	hdr, herr := wire.AppendDataStreamHeader(nil, wire.DataStreamHeader{From: d.ep.id, To: target, InitFunc: initFunc, InitData: initData})
	if herr != nil {
		return nil, nil, false
	}
	s, oerr := mux.OpenStream(ctx, deadline, mc)
	if oerr != nil {
		if ctx.Err() != nil || !time.Now().Before(deadline) {
			r := rendezvous.TimeoutReason(target, timeout)
			if ctx.Err() != nil {
				r = d.ctxReason(ctx, target, timeout)
			}
			return nil, &DataConnError{Node: target, Reason: r, Rule: ctxRule(ctx), Cause: oerr}, true
		}
		return nil, nil, false // the connection died: take the long way
	}
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		s.Close()
		return nil, &DataConnError{Node: target, Reason: wire.DataConnReason("%s: node closed", target), Rule: ErrDataConnCancelled}, true
	}
	// Close closes it, like an init function's stream.
	d.inits[s] = struct{}{}
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		delete(d.inits, s)
		closed := d.closed
		d.mu.Unlock()
		if err != nil {
			s.Close()
			var de *DataConnError
			if closed && !errors.As(err, &de) {
				err = &DataConnError{Node: target, Reason: wire.DataConnReason("%s: node closed", target), Rule: ErrDataConnCancelled}
			}
		}
	}()
	// The stream's deadline bounds the set-up; ctx, when it can end,
	// interrupts it.
	stop := func() bool { return true }
	if ctx.Done() != nil {
		stop = context.AfterFunc(ctx, func() { s.SetDeadline(time.Unix(1, 0)) })
	}
	defer stop()
	s.SetDeadline(deadline)
	fail := func(rule error, cause error, format string, args ...any) (net.Conn, error, bool) {
		if ctx.Err() != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded) {
			r := d.ctxReason(ctx, target, timeout)
			return nil, &DataConnError{Node: target, Reason: r, Rule: ctxRule(ctx), Cause: cause}, true
		}
		if !time.Now().Before(deadline) || ctx.Err() != nil {
			r := rendezvous.TimeoutReason(target, timeout)
			return nil, &DataConnError{Node: target, Reason: r, Rule: ErrDataConnTimeout, Cause: cause}, true
		}
		d.mu.Lock()
		closed := d.closed
		d.mu.Unlock()
		if closed {
			return nil, &DataConnError{Node: target, Reason: wire.DataConnReason("%s: node closed", target), Rule: ErrDataConnCancelled, Cause: cause}, true
		}
		return nil, &DataConnError{Node: target, Reason: wire.DataConnReason(format, args...), Rule: rule, Cause: cause}, true
	}
	if _, err := s.Write(hdr); err != nil {
		return fail(ErrDataConnFailed, err, "%s: %v", target, err)
	}
	var ans [3]byte
	if _, err := io.ReadFull(s, ans[:1]); err != nil {
		return fail(ErrDataConnFailed, err, "%s: connection lost before the data connection was accepted (%v)", target, err)
	}
	switch ans[0] {
	case wire.DataStreamAccept:
		if !stop() {
			return fail(ErrDataConnCancelled, ctx.Err(), "%s: %v", target, ctx.Err())
		}
		s.SetDeadline(time.Time{})
		return s, nil, true
	case wire.DataStreamRefuse:
		if _, err := io.ReadFull(s, ans[1:3]); err != nil {
			return fail(ErrDataConnFailed, err, "%s: truncated refusal (%v)", target, err)
		}
		n, perr := wire.ParseDataStreamRefusalLen(ans[1:3])
		if perr != nil {
			return fail(ErrDataConnFailed, perr, "%s: %v", target, perr)
		}
		text := make([]byte, n)
		if _, err := io.ReadFull(s, text); err != nil {
			return fail(ErrDataConnFailed, err, "%s: truncated refusal (%v)", target, err)
		}
		msg, perr := wire.ParseDataStreamRefusalText(text)
		if perr != nil {
			return fail(ErrDataConnFailed, perr, "%s: %v", target, perr)
		}
		r := wire.DataConnReason("%s", msg)
		return nil, &DataConnError{Node: target, Reason: r, Rule: dcRule(rendezvous.KillError(target, r))}, true
	}
	perr := error(&wire.DataStreamError{Detail: "unknown answer byte"})
	return fail(ErrDataConnFailed, perr, "%s: %v", target, perr)
}

// serveDataStream serves a stream of mux whose first byte was
// wire.DataStreamMagic: it reads and checks the header, waits (within the
// handshake timeout) until the connection is authenticated for the node
// the header names, and answers: refused with the reason, or accepted,
// after which the init function runs with the stream. done is called once
// the header is decided.
func (d *DataConns) serveDataStream(ctx context.Context, mux MuxNetwork, c net.Conn, done func()) {
	defer func() { done() }()
	// Close closes it (as an init function's stream), so that a node
	// that closes does not wait for the handshake timeout.
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		c.Close()
		return
	}
	d.inits[c] = struct{}{}
	d.mu.Unlock()
	untrack := func() {
		d.mu.Lock()
		delete(d.inits, c)
		d.mu.Unlock()
	}
	hs := d.ep.cfg.HandshakeTimeout
	deadline := time.Now().Add(hs)
	c.SetDeadline(deadline)
	refuse := func(format string, args ...any) {
		untrack()
		r := wire.DataConnReason(format, args...)
		d.ep.log.Debug("direct data stream refused", "remote", c.RemoteAddr(), "reason", r.Message)
		// The refusal gets a fresh deadline: holding may have used up
		// the first.
		c.SetWriteDeadline(time.Now().Add(hs))
		c.Write(wire.AppendDataStreamRefusal(nil, r.Message))
		c.Close()
	}
	// One buffer, filled by as few Reads as the data arrived in.
	buf := make([]byte, 0, 256)
	fill := func(want int) bool {
		for len(buf) < want {
			if cap(buf) < want {
				buf = append(make([]byte, 0, want), buf...)
			}
			k, err := c.Read(buf[len(buf):cap(buf)])
			buf = buf[:len(buf)+k]
			if err != nil && len(buf) < want {
				return false
			}
		}
		return true
	}
	if !fill(wire.DataStreamPrefixLen) {
		untrack()
		c.Close()
		return
	}
	n, err := wire.DataStreamBodyLen(buf[:wire.DataStreamPrefixLen])
	if err != nil {
		refuse("%s: %v", d.ep.id, err)
		return
	}
	if !fill(wire.DataStreamPrefixLen + n) {
		untrack()
		c.Close()
		return
	}
	if len(buf) > wire.DataStreamPrefixLen+n {
		// An initiator sends nothing after the header before it has the
		// answer.
		refuse("%s: data stream: bytes after the header before the answer", d.ep.id)
		return
	}
	body := buf[wire.DataStreamPrefixLen:]
	h, err := wire.ParseDataStreamBody(body)
	if err != nil {
		refuse("%s: %v", d.ep.id, err)
		return
	}
	if h.To != d.ep.id {
		refuse("%s: data stream for node %q", d.ep.id, h.To)
		return
	}
	if !mux.WaitPeer(ctx, deadline, c, d.ep.id, h.From) {
		refuse("%s: data stream from %q on a connection not authenticated for it", d.ep.id, h.From)
		return
	}
	d.mu.Lock()
	f := d.funcs[h.InitFunc]
	closed := d.closed
	d.mu.Unlock()
	if closed {
		refuse("%s: node closed", d.ep.id)
		return
	}
	if f == nil {
		refuse("%s", rendezvous.NoInitFuncReason(d.ep.id, h.InitFunc).Message)
		return
	}
	if _, err := c.Write([]byte{wire.DataStreamAccept}); err != nil {
		untrack()
		c.Close()
		return
	}
	c.SetDeadline(time.Time{})
	// The init function runs on this goroutine (one hand-over less); the
	// stream stays in d.inits, so Close closes it like any init
	// function's, and the caller's done has been called.
	done()
	done = func() {}
	defer untrack()
	f(h.From, h.InitData, c)
}

// peekDataStream reads the first byte of a stream accepted from mux
// (within the handshake timeout). If it starts a direct data stream, it
// serves it and reports true; otherwise the byte is served again to the
// handshake. done is called when the stream leaves the handshake count.
func (n *Node) peekDataStream(mux MuxNetwork, c net.Conn, done func()) bool {
	pk, ok := c.(bytePeeker)
	if !ok {
		return false
	}
	c.SetReadDeadline(time.Now().Add(n.cfg.HandshakeTimeout))
	b, err := pk.PeekByte()
	if err != nil {
		done()
		c.Close()
		return true
	}
	if b != wire.DataStreamMagic {
		return false
	}
	n.dc.serveDataStream(n.ctx, mux, c, done)
	return true
}
