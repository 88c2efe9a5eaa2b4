package transport

import (
	"context"
	"errors"
	"io"
	"net"
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
// When one may be used (rendezvous.DirectAuth), what the target answers
// (rendezvous.DirectServe) and how the initiator's set-up ends
// (rendezvous.DirectSetup) are decided in core/rendezvous; this file
// opens, reads and writes the streams.

// ExtDataStream is rendezvous.ExtDataStream, the extension name in the
// comma-separated value of wire.KeyGo that announces direct data streams
// on this connection.
const ExtDataStream = rendezvous.ExtDataStream

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
// allowed (rendezvous.DirectAuth). It binds the peer to the connection
// when the connection is authenticated for it, so that the peer's direct
// streams are accepted.
func (n *Node) directMux(c net.Conn, res *handshake.Result) MuxNetwork {
	auth := rendezvous.DirectAuth{PerlCompat: n.cfg.PerlCompat, Untrusted: res.Untrusted,
		ChannelBound: res.PeerAuth == handshake.AuthHMACCB, TLSVerified: res.TLS,
		PeerListed: rendezvous.ListsDirect(res.Peer)}
	if !auth.Bind() {
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
		if auth.Use() {
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
// the caller then uses the rendezvous. rendezvous.DirectSetup decides how
// the set-up ends (its deadline, ties, the target's refusal); this
// function only opens, writes and reads the stream.
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
	su := rendezvous.NewDirectSetup(deadline.Add(-timeout), target, timeout)
	// settle turns the machine's outcome into this call's results.
	settle := func(o rendezvous.DirectOutcome, res rendezvous.DirectResult, cause error) (net.Conn, error, bool) {
		switch o {
		case rendezvous.DirectFallback:
			return nil, nil, false
		case rendezvous.DirectFailed:
			return nil, &DataConnError{Node: target, Reason: res.Reason, Rule: dcRule(res.Err), Cause: cause}, true
		}
		return nil, nil, true
	}
	// interrupted reports the caller's context ending, if it did.
	interrupted := func() (rendezvous.DirectOutcome, rendezvous.DirectResult, bool) {
		switch err := ctx.Err(); {
		case err == nil:
			return 0, rendezvous.DirectResult{}, false
		case errors.Is(err, context.DeadlineExceeded):
			o, r := su.Expire()
			return o, r, true
		default:
			o, r := su.Cancel(time.Now(), d.ctxReason(ctx, target, timeout))
			return o, r, true
		}
	}
	s, oerr := mux.OpenStream(ctx, su.Deadline(), mc)
	if oerr != nil {
		if o, r, ok := interrupted(); ok {
			return settle(o, r, oerr)
		}
		o, r := su.OpenFailed(time.Now())
		return settle(o, r, oerr)
	}
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		s.Close()
		o, r := su.Closed(time.Now())
		return settle(o, r, nil)
	}
	// Close closes it, like an init function's stream.
	d.inits[s] = struct{}{}
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		delete(d.inits, s)
		d.mu.Unlock()
		if err != nil {
			s.Close()
		}
	}()
	// The stream's deadline bounds the set-up; ctx, when it can end,
	// interrupts it.
	stop := func() bool { return true }
	if ctx.Done() != nil {
		stop = context.AfterFunc(ctx, func() { s.SetDeadline(time.Unix(1, 0)) })
	}
	defer stop()
	s.SetDeadline(su.Deadline())
	// lost reports a failed write or read: the context or the node
	// closing may be why.
	lost := func(cause error, detail string) (net.Conn, error, bool) {
		if o, r, ok := interrupted(); ok {
			return settle(o, r, cause)
		}
		d.mu.Lock()
		closed := d.closed
		d.mu.Unlock()
		if closed {
			o, r := su.Closed(time.Now())
			return settle(o, r, cause)
		}
		o, r := su.Lost(time.Now(), detail, cause)
		return settle(o, r, cause)
	}
	if _, err := s.Write(hdr); err != nil {
		return lost(err, err.Error())
	}
	var ans [3]byte
	if _, err := io.ReadFull(s, ans[:1]); err != nil {
		return lost(err, "connection lost before the data connection was accepted ("+err.Error()+")")
	}
	switch ans[0] {
	case wire.DataStreamAccept:
		if !stop() {
			o, r, _ := interrupted()
			return settle(o, r, ctx.Err())
		}
		o, r := su.Accepted()
		if o != rendezvous.DirectAccepted {
			return settle(o, r, nil)
		}
		s.SetDeadline(time.Time{})
		return s, nil, true
	case wire.DataStreamRefuse:
		if _, err := io.ReadFull(s, ans[1:3]); err != nil {
			return lost(err, "truncated refusal ("+err.Error()+")")
		}
		n, perr := wire.ParseDataStreamRefusalLen(ans[1:3])
		if perr != nil {
			return lost(perr, perr.Error())
		}
		text := make([]byte, n)
		if _, err := io.ReadFull(s, text); err != nil {
			return lost(err, "truncated refusal ("+err.Error()+")")
		}
		msg, perr := wire.ParseDataStreamRefusalText(text)
		if perr != nil {
			return lost(perr, perr.Error())
		}
		o, r := su.Refused(time.Now(), msg)
		return settle(o, r, nil)
	}
	perr := error(&wire.DataStreamError{Detail: "unknown answer byte"})
	return lost(perr, perr.Error())
}

// serveDataStream serves a stream of mux whose first byte was
// wire.DataStreamMagic, as rendezvous.DirectServe decides: it reads the
// header, waits (within the handshake timeout) until the connection is
// authenticated for the node the header names, and answers: refused with
// the reason, or accepted, after which the init function runs with the
// stream. done is called once the header is decided.
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
	sv := rendezvous.NewDirectServe(time.Now(), d.ep.id, hs)
	c.SetDeadline(sv.Deadline())
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
	a := sv.Start()
	for a.Need > 0 {
		if !fill(a.Need) {
			untrack()
			c.Close()
			return
		}
		a = sv.Read(buf)
	}
	var f InitFunc
	if a.Hold != "" {
		ok := mux.WaitPeer(ctx, sv.Deadline(), c, d.ep.id, a.Hold)
		d.mu.Lock()
		f = d.funcs[sv.Header().InitFunc]
		closed := d.closed
		d.mu.Unlock()
		a = sv.Authenticated(ok, closed, f != nil)
	}
	if a.Refuse != nil {
		untrack()
		d.ep.log.Debug("direct data stream refused", "remote", c.RemoteAddr(), "reason", a.Refuse.Message)
		// The refusal gets a fresh deadline: holding may have used up
		// the first.
		c.SetWriteDeadline(time.Now().Add(hs))
		c.Write(wire.AppendDataStreamRefusal(nil, a.Refuse.Message))
		c.Close()
		return
	}
	if !a.Accept {
		untrack()
		c.Close()
		return
	}
	if _, err := c.Write([]byte{wire.DataStreamAccept}); err != nil {
		untrack()
		c.Close()
		return
	}
	c.SetDeadline(time.Time{})
	h := sv.Header()
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
