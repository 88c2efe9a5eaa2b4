package quic

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	quicgo "github.com/quic-go/quic-go"

	"github.com/aemp-go/dataconn/transport"
)

// Defaults of Config.
const (
	DefaultIdleTimeout        = 30 * time.Second
	DefaultKeepAlivePeriod    = 10 * time.Second
	DefaultMaxIncomingStreams = 1024
	// defaultHandshakeTimeout is quic-go's handshake idle timeout (its
	// default), shortened to IdleTimeout when that is shorter.
	defaultHandshakeTimeout = 5 * time.Second
)

// Config configures a Network. The zero Config is usable.
type Config struct {
	// TLS, if set, is the node's certificate and the CAs it trusts. Both
	// ends of every QUIC connection present their certificate and verify
	// the other's chain against RootCAs (client certificates are
	// required), and TLSState reports the state, so AEMP can use
	// tls_sha3_512. If nil, each Network makes an ephemeral self-signed
	// certificate on its first Listen (a Network that only dials needs
	// none), which peers do not verify: QUIC still encrypts, but
	// authentication then comes only from the AEMP handshake
	// (hmac_sha3_512) on every stream, and TLSState reports ok=false.
	TLS *transport.TLSConfig
	// IdleTimeout closes a QUIC connection that received nothing for this
	// long: this is how a peer that vanished is detected. 0 means
	// DefaultIdleTimeout. It also bounds the connection handshake if
	// shorter than 5 s.
	IdleTimeout time.Duration
	// KeepAlivePeriod is how often an otherwise idle connection sends a
	// keep-alive (at most every IdleTimeout/2). 0 means
	// DefaultKeepAlivePeriod; a negative value disables keep-alives, so
	// idle pooled connections then close after IdleTimeout.
	KeepAlivePeriod time.Duration
	// MaxIncomingStreams is how many streams a peer may have open at once
	// on one accepted connection; Dial waits for credit beyond it. 0 means
	// DefaultMaxIncomingStreams.
	MaxIncomingStreams int
	// MaxIncomingConns caps the QUIC connections peers have open (or are
	// handshaking) to this Network; further attempts are refused without
	// a handshake (see admit.go). 0 means DefaultMaxIncomingConns.
	MaxIncomingConns int
	// Logger receives connection events (debug) and, at most once per
	// Network, a warning when the UDP socket buffers cannot be made as
	// large as QUIC wants. nil discards.
	Logger *slog.Logger
}

// Network is a transport.SecureNetwork over QUIC (quic-go). Every AEMP
// connection is one bidirectional QUIC stream; streams to the same remote
// address share one QUIC connection, opened on demand by Dial and kept
// while alive. A listening Network serves everything on one UDP port and
// dials from it too. It is safe for concurrent use.
type Network struct {
	cfg       Config
	old       bool // behave as a version before ALPNGreetFirst (tests)
	log       *slog.Logger
	serverTLS *tls.Config // nil until the first Listen when cfg.TLS is nil (see serverConfig)
	clientTLS *tls.Config
	tlsErr    error
	listenCfg *quicgo.Config
	dialCfg   *quicgo.Config

	bufWarn sync.Once

	incoming     atomic.Int64 // incoming connections counted against MaxIncomingConns
	refusedConns atomic.Int64

	mu        sync.Mutex
	closed    bool
	endpoints []*endpoint // listening sockets, in Listen order
	ephemeral *endpoint   // for dialing when no listening socket fits
	listeners map[*Listener]struct{}
	pool      map[netip.AddrPort]*poolEntry
	accepted  map[*quicgo.Conn]struct{}
	// inbound is the live accepted connection from each remote address:
	// Dial uses it when it has no dialed one, so that the streams of both
	// nodes share one QUIC connection whichever side opened it.
	inbound map[netip.AddrPort]*quicgo.Conn
	// serving maps each connection whose peer streams go to a Listener
	// to that Listener (see AcceptsStreams).
	serving map[*quicgo.Conn]*Listener
	wg      sync.WaitGroup // listener goroutines

	// authMu guards auths: what Nodes proved about each connection (see
	// BindPeer).
	authMu sync.Mutex
	auths  map[*quicgo.Conn]*connAuth

	// listenPacket, if set (by tests only, see export_test.go), opens the
	// packet sockets instead of the system's UDP: "" asks for an
	// ephemeral socket to dial from.
	listenPacket func(addr string) (net.PacketConn, error)
}

var _ transport.SecureNetwork = (*Network)(nil)

// endpoint is one UDP socket and the quic-go Transport that owns it.
type endpoint struct {
	udp   net.PacketConn // a *net.UDPConn except in tests
	tr    *quicgo.Transport
	local netip.AddrPort
	// l is the listener on this socket (nil for the ephemeral one): the
	// streams a peer opens on connections dialed from here go to it.
	l *Listener
}

// poolEntry is a pooled connection to one remote address, or the attempt
// to open it: ready is closed once conn or err is set.
type poolEntry struct {
	ready chan struct{}
	conn  *quicgo.Conn
	err   error
}

// New returns a Network. It does not open any socket until Listen or Dial.
// A TLS configuration that cannot be used is reported by Listen and Dial.
func New(cfg Config) *Network { return newNetwork(cfg, false) }

// newNetwork is New; old makes the Network behave as a version before
// ALPNGreetFirst (tests of the fallback).
func newNetwork(cfg Config, old bool) *Network {
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.KeepAlivePeriod == 0 {
		cfg.KeepAlivePeriod = DefaultKeepAlivePeriod
	}
	if cfg.MaxIncomingStreams <= 0 {
		cfg.MaxIncomingStreams = DefaultMaxIncomingStreams
	}
	if cfg.MaxIncomingConns <= 0 {
		cfg.MaxIncomingConns = DefaultMaxIncomingConns
	}
	n := &Network{
		cfg:       cfg,
		old:       old,
		log:       cfg.Logger,
		listeners: make(map[*Listener]struct{}),
		pool:      make(map[netip.AddrPort]*poolEntry),
		accepted:  make(map[*quicgo.Conn]struct{}),
		inbound:   make(map[netip.AddrPort]*quicgo.Conn),
		serving:   make(map[*quicgo.Conn]*Listener),
	}
	if n.log == nil {
		n.log = slog.New(slog.DiscardHandler)
	}
	n.serverTLS, n.clientTLS, n.tlsErr = tlsConfigs(cfg.TLS, old)
	keepAlive := cfg.KeepAlivePeriod
	if keepAlive < 0 {
		keepAlive = 0
	}
	hs := min(defaultHandshakeTimeout, cfg.IdleTimeout)
	n.listenCfg = &quicgo.Config{
		HandshakeIdleTimeout:  hs,
		MaxIdleTimeout:        cfg.IdleTimeout,
		KeepAlivePeriod:       keepAlive,
		MaxIncomingStreams:    int64(cfg.MaxIncomingStreams),
		MaxIncomingUniStreams: -1,
	}
	// A connection dialed from the ephemeral socket (no listener to hand
	// them to) only carries streams this side opens; one dialed from a
	// listening socket uses listenCfg and its peer's streams go to that
	// listener, so two nodes share one QUIC connection whichever dialed.
	n.dialCfg = n.listenCfg.Clone()
	n.dialCfg.MaxIncomingStreams = -1
	if n.clientTLS != nil && slices.Contains(n.clientTLS.NextProtos, ALPNGreetFirst) {
		// Except the server's greeting stream (ALPNGreetFirst), which
		// Dial takes; one more that a server might open is never
		// accepted.
		n.dialCfg.MaxIncomingStreams = 1
	}
	return n
}

// Scheme returns "quic".
func (n *Network) Scheme() string { return "quic" }

// Listen opens a UDP socket on addr ("host:port"; port 0 picks one, which
// Addr of the listener reports) and returns a listener whose Accept yields
// every incoming stream, from any QUIC connection, as a *Stream. The socket
// also carries the connections this Network dials to addresses it can
// reach; it is released by Network.Close (Listener.Close only stops
// accepting).
func (n *Network) Listen(ctx context.Context, addr string) (net.Listener, error) {
	if n.tlsErr != nil {
		return nil, n.tlsErr
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return nil, &Error{Op: "listen", Addr: addr, Err: ErrAddress, Cause: err}
	}
	var udp net.PacketConn
	if n.listenPacket != nil {
		pc, err := n.listenPacket(addr)
		if err != nil {
			return nil, &Error{Op: "listen", Addr: addr, Err: ErrAddress, Cause: err}
		}
		udp = pc
	} else {
		var lc net.ListenConfig
		pc, err := lc.ListenPacket(ctx, "udp", addr)
		if err != nil {
			return nil, &Error{Op: "listen", Addr: addr, Err: ErrAddress, Cause: err}
		}
		if _, ok := pc.(*net.UDPConn); !ok { // cannot happen for "udp"
			_ = pc.Close()
			return nil, &Error{Op: "listen", Addr: addr, Err: ErrAddress, Cause: errors.New("not a UDP socket")}
		}
		udp = pc
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		_ = udp.Close()
		return nil, &Error{Op: "listen", Addr: addr, Err: ErrClosed}
	}
	if n.serverTLS == nil {
		// Config.TLS is nil: the throw-away certificate is made on the
		// first Listen, so a Network that only dials never makes one.
		sc, err := ephemeralServerConfig(n.old)
		if err != nil {
			_ = udp.Close()
			return nil, err
		}
		n.serverTLS = sc
	}
	ep := n.newEndpoint(udp)
	// An early listener returns connections before the client's
	// Finished, so that a server that greets first (ALPNGreetFirst) can
	// send its greeting as 0.5-RTT data. 0-RTT stays off (Allow0RTT is
	// false in listenCfg): nothing the client sends is read before its
	// handshake is complete (see acceptConn). A Network that never
	// greets first (Config.TLS set) keeps the plain listener.
	greetFirst := new(atomic.Bool)
	var ql quicListener
	var err error
	if tc := serverTLS(n.serverTLS, greetFirst); tc != n.serverTLS {
		ql, err = ep.tr.ListenEarly(tc, n.listenCfg)
	} else {
		ql, err = ep.tr.Listen(tc, n.listenCfg)
	}
	if err != nil {
		_ = ep.tr.Close()
		_ = udp.Close()
		return nil, &Error{Op: "listen", Addr: addr, Err: ErrAddress, Cause: err}
	}
	n.endpoints = append(n.endpoints, ep)
	l := newListener(n, ql, udp.LocalAddr(), greetFirst)
	ep.l = l
	n.listeners[l] = struct{}{}
	n.wg.Add(1)
	go l.acceptConns()
	n.log.Debug("quic: listening", "addr", udp.LocalAddr().String())
	return l, nil
}

// newEndpoint wraps udp in a quic-go Transport after sizing its buffers
// (a UDP socket's: a test's in-memory socket has none). n.mu is held.
func (n *Network) newEndpoint(udp net.PacketConn) *endpoint {
	if u, ok := udp.(*net.UDPConn); ok {
		n.noteBuffers(sizeBuffers(u))
	}
	ap := udp.LocalAddr().(*net.UDPAddr).AddrPort()
	return &endpoint{
		udp:   udp,
		tr:    &quicgo.Transport{Conn: udp, ConnContext: n.admitConn, VerifySourceAddress: n.verifySource},
		local: netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()),
	}
}

// noteBuffers logs a socket buffer problem, at most once per Network.
func (n *Network) noteBuffers(problem string) {
	if problem == "" {
		return
	}
	n.bufWarn.Do(func() {
		n.log.Warn("quic: UDP socket buffers smaller than QUIC wants; throughput may suffer (raise net.core.rmem_max and net.core.wmem_max)",
			"problem", problem, "wanted_kib", wantBufferSize/1024)
	})
}

// reaches reports whether datagrams from ep's socket can go to dst.
func (ep *endpoint) reaches(dst netip.Addr) bool {
	local := ep.local.Addr()
	if local.IsUnspecified() {
		// 0.0.0.0 reaches IPv4 only; [::] is dual-stack.
		return local.Is6() || dst.Is4()
	}
	return local.Is4() == dst.Is4() && local.IsLoopback() == dst.IsLoopback()
}

// endpointFor returns the socket to dial dst from: the first listening
// socket that can reach it, else the ephemeral one, opened on first use.
// n.mu is held.
func (n *Network) endpointFor(dst netip.Addr) (*endpoint, error) {
	for _, ep := range n.endpoints {
		if ep.reaches(dst) {
			return ep, nil
		}
	}
	if n.ephemeral == nil {
		var udp net.PacketConn
		var err error
		if n.listenPacket != nil {
			udp, err = n.listenPacket("")
		} else {
			udp, err = net.ListenUDP("udp", nil)
		}
		if err != nil {
			return nil, err
		}
		n.ephemeral = n.newEndpoint(udp)
	}
	return n.ephemeral, nil
}

// Dial opens a stream to addr ("host:port") on the pooled QUIC connection
// to that address, opening the connection on first use or when the
// previous one died. ctx bounds the whole operation (resolving, the QUIC
// handshake, waiting for stream credit); whatever ctx says, quic-go gives
// up on a handshake when the peer has not answered within min(5 s,
// IdleTimeout), or not completed it within twice that.
//
// The peer's Listener sees the stream once this side writes to it (AEMP
// peers write their greeting at once).
func (n *Network) Dial(ctx context.Context, addr string) (net.Conn, error) {
	return n.dial(ctx, addr, false)
}

// DialMessaging is Dial for the stream of a messaging connection. When it
// opens a new QUIC connection and the server greets first (ALPN
// ALPNGreetFirst, see the package doc), the stream is the one the server
// opened in its first flight, with the server's greeting already in it;
// otherwise it is a new stream, as Dial's. It implements
// transport.MessagingDialer.
func (n *Network) DialMessaging(ctx context.Context, addr string) (net.Conn, error) {
	return n.dial(ctx, addr, true)
}

func (n *Network) dial(ctx context.Context, addr string, messaging bool) (net.Conn, error) {
	if n.tlsErr != nil {
		return nil, n.tlsErr
	}
	dst, err := resolve(ctx, addr)
	if err != nil {
		return nil, err
	}
	// A pooled connection may die between the pool lookup and the stream
	// opening; then retry once on a fresh one.
	for attempt := 0; ; attempt++ {
		conn, greet, err := n.connTo(ctx, addr, dst, messaging)
		if err != nil {
			return nil, err
		}
		if greet != nil {
			return greet, nil
		}
		s, err := conn.OpenStreamSync(ctx)
		if err == nil {
			return newStream(n, conn, s), nil
		}
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, &Error{Op: "dial", Addr: addr, Err: ErrHandshake, Cause: ctxErr}
		}
		// OpenStreamSync fails only when ctx ends or the connection is
		// gone (its context may be cancelled a moment later).
		n.dropConn(dst, conn)
		if attempt > 0 {
			return nil, n.connError("dial", addr, err)
		}
	}
}

// resolve turns "host:port" into one UDP address, preferring IPv4 for
// names, as net.Dial would try first.
func resolve(ctx context.Context, addr string) (netip.AddrPort, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return netip.AddrPort{}, &Error{Op: "dial", Addr: addr, Err: ErrAddress, Cause: err}
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil || port == 0 {
		return netip.AddrPort{}, &Error{Op: "dial", Addr: addr, Err: ErrAddress, Cause: errors.New("port must be a number from 1 to 65535")}
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		return netip.AddrPortFrom(ip.Unmap(), uint16(port)), nil
	}
	if host == "" {
		return netip.AddrPort{}, &Error{Op: "dial", Addr: addr, Err: ErrAddress, Cause: errors.New("empty host")}
	}
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil || len(ips) == 0 {
		if err == nil {
			err = errors.New("no addresses")
		}
		return netip.AddrPort{}, &Error{Op: "dial", Addr: addr, Err: ErrAddress, Cause: err}
	}
	best := ips[0].Unmap()
	for _, ip := range ips {
		if ip.Unmap().Is4() {
			best = ip.Unmap()
			break
		}
	}
	return netip.AddrPortFrom(best, uint16(port)), nil
}

// connTo returns the live pooled connection to dst, opening one if there
// is none. Concurrent callers share one attempt. When the server greets
// first (ALPNGreetFirst), the caller that opened it also gets the stream
// the server opened if it asked for it (messaging); otherwise that stream
// is refused, so the server's Node gives up on it at once.
func (n *Network) connTo(ctx context.Context, addr string, dst netip.AddrPort, messaging bool) (*quicgo.Conn, *Stream, error) {
	for {
		n.mu.Lock()
		if n.closed {
			n.mu.Unlock()
			return nil, nil, &Error{Op: "dial", Addr: addr, Err: ErrClosed}
		}
		if e := n.pool[dst]; e != nil {
			n.mu.Unlock()
			select {
			case <-e.ready:
			case <-ctx.Done():
				return nil, nil, &Error{Op: "dial", Addr: addr, Err: ErrHandshake, Cause: ctx.Err()}
			}
			if e.err == nil {
				if e.conn.Context().Err() == nil {
					return e.conn, nil, nil
				}
				n.dropConn(dst, e.conn)
				continue
			}
			var qe *Error
			if errors.As(e.err, &qe) && (errors.Is(qe.Cause, context.Canceled) || errors.Is(qe.Cause, context.DeadlineExceeded)) && ctx.Err() == nil {
				continue // the other caller gave up; try on our own
			}
			return nil, nil, e.err
		}
		if c := n.inbound[dst]; c != nil && c.Context().Err() == nil {
			n.mu.Unlock()
			return c, nil, nil
		}
		e := &poolEntry{ready: make(chan struct{})}
		ep, err := n.endpointFor(dst.Addr())
		if err != nil {
			n.mu.Unlock()
			return nil, nil, &Error{Op: "dial", Addr: addr, Err: ErrAddress, Cause: err}
		}
		n.pool[dst] = e
		n.mu.Unlock()

		// quic-go bounds the handshake by itself: no answer within the
		// handshake idle timeout, or not complete within twice that.
		cfg := n.dialCfg
		if ep.l != nil {
			// The peer may open streams on it too (see inbound).
			cfg = n.listenCfg
		}
		conn, err := ep.tr.Dial(ctx, net.UDPAddrFromAddrPort(dst), n.clientTLS, cfg)
		var greet *Stream
		greetFirst := err == nil && conn.ConnectionState().TLS.NegotiatedProtocol == ALPNGreetFirst
		if greetFirst && messaging {
			// The server's stream, opened in its first flight, came with
			// the handshake: take it before anybody accepts streams.
			greet, err = acceptGreeting(ctx, n, conn)
		}

		n.mu.Lock()
		if err == nil && n.closed {
			err = net.ErrClosed
			_ = conn.CloseWithError(quicgo.ApplicationErrorCode(CodeNoError), "aemp: network closed")
		}
		if err != nil {
			if n.closed {
				e.err = &Error{Op: "dial", Addr: addr, Err: ErrClosed, Cause: err}
			} else {
				if ctxErr := ctx.Err(); ctxErr != nil && !errors.Is(err, ctxErr) {
					err = errors.Join(err, ctxErr)
				}
				e.err = &Error{Op: "dial", Addr: addr, Err: ErrHandshake, Cause: err}
			}
			if n.pool[dst] == e {
				delete(n.pool, dst)
			}
			close(e.ready)
			n.mu.Unlock()
			return nil, nil, e.err
		}
		e.conn = conn
		close(e.ready)
		if ep.l != nil {
			// It refuses the server's greeting stream if nobody took it.
			n.wg.Add(1)
			n.serving[conn] = ep.l
			go ep.l.acceptStreams(conn, greetFirst && greet == nil)
		} else if greetFirst && greet == nil {
			n.wg.Add(1)
			go n.refuseGreeting(conn)
		}
		n.mu.Unlock()
		context.AfterFunc(conn.Context(), func() { n.dropConn(dst, conn) })
		if n.log.Enabled(ctx, slog.LevelDebug) {
			n.log.Debug("quic: connected", "remote", conn.RemoteAddr().String(), "local", conn.LocalAddr().String(), "greet-first", greetFirst)
		}
		return conn, greet, nil
	}
}

// acceptGreeting returns the first stream the server opened on conn, its
// greeting stream (ALPNGreetFirst). A server that opens none within ctx,
// or another stream first, breaks the protocol: conn is closed.
func acceptGreeting(ctx context.Context, n *Network, conn *quicgo.Conn) (*Stream, error) {
	qs, err := conn.AcceptStream(ctx)
	if err == nil && qs.StreamID() != firstServerStream {
		refuse(qs)
		err = errors.New("the server's first stream is not its greeting stream")
	}
	if err != nil {
		_ = conn.CloseWithError(quicgo.ApplicationErrorCode(CodeRefused), "aemp: no greeting stream")
		return nil, err
	}
	s := newStream(n, conn, qs)
	s.peerFirst = true
	return s, nil
}

// refuseGreeting refuses the server's greeting stream on conn, which no
// messaging connection took (conn was dialed for a data connection, from
// a socket without a listener).
func (n *Network) refuseGreeting(conn *quicgo.Conn) {
	defer n.wg.Done()
	if qs, err := conn.AcceptStream(conn.Context()); err == nil {
		refuse(qs)
	}
}

// firstServerStream is the ID of the first bidirectional stream a QUIC
// server opens (RFC 9000, 2.1).
const firstServerStream = 1

// dropConn removes conn from the pool if it is still the entry for dst.
func (n *Network) dropConn(dst netip.AddrPort, conn *quicgo.Conn) {
	n.mu.Lock()
	if e := n.pool[dst]; e != nil && e.conn == conn {
		delete(n.pool, dst)
	}
	n.mu.Unlock()
}

// TLSState returns the TLS state of the QUIC connection carrying c, which
// must be a *Stream of this Network. ok is true only if the Network has a
// TLS configuration (so the peer's certificate was verified) and the
// handshake is complete; with Config.TLS nil it is always false.
func (n *Network) TLSState(c net.Conn) (tls.ConnectionState, bool) {
	s, isStream := n.streamOf(c)
	if !isStream || n.cfg.TLS == nil {
		return tls.ConnectionState{}, false
	}
	st := s.conn.ConnectionState().TLS
	if !st.HandshakeComplete {
		return tls.ConnectionState{}, false
	}
	return st, true
}

// ChannelBinding returns the RFC 9266 tls-exporter value of the QUIC
// connection that carries c, whether or not the peer's certificate was
// verified. The AEMP auth method hmac_sha3_512_cb mixes it into its MAC,
// so a man in the middle who terminates QUIC on both sides (possible when
// Config.TLS is nil) cannot pass the lines between the two sessions.
// It implements transport.ChannelBinder.
func (n *Network) ChannelBinding(c net.Conn) []byte {
	s, isStream := n.streamOf(c)
	if !isStream {
		return nil
	}
	st := s.conn.ConnectionState().TLS
	if st.HandshakeComplete {
		return transport.ChannelBindingOf(st)
	}
	if s.greetFirst {
		// The server's greeting stream, before the client's Finished: the
		// exporter is known since the server sent its Finished (RFC 8446
		// 7.5: its transcript ends there), and is the client's.
		if v := earlyExporter(st); v != nil {
			return v
		}
	}
	select {
	case <-s.conn.HandshakeComplete():
	case <-s.conn.Context().Done():
		return nil
	}
	return transport.ChannelBindingOf(s.conn.ConnectionState().TLS)
}

// earlyExporter is the tls-exporter value of a server's TLS 1.3 session
// whose handshake waits for the client's Finished, or nil. crypto/tls
// derives it when the server sends its Finished; quic-go's early
// listener returns a connection only after that flight (a recover guards
// against a future change that would return it before).
func earlyExporter(st tls.ConnectionState) (v []byte) {
	if st.Version != tls.VersionTLS13 {
		return nil
	}
	defer func() {
		if recover() != nil {
			v = nil
		}
	}()
	st.HandshakeComplete = true // ChannelBindingOf wants it; the exporter is final
	return transport.ChannelBindingOf(st)
}

// Close closes every listener and QUIC connection (sending
// CONNECTION_CLOSE with CodeNoError, so peers' streams fail at once) and
// every UDP socket, and waits for the Network's goroutines. Later Listen
// and Dial calls fail with ErrClosed. It is idempotent.
func (n *Network) Close() error { return n.shutdown(true) }

// shutdown closes the Network; graceful sends CONNECTION_CLOSE on every
// connection first, otherwise connections vanish silently, as in a crash.
func (n *Network) shutdown(graceful bool) error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	listeners := make([]*Listener, 0, len(n.listeners))
	for l := range n.listeners {
		listeners = append(listeners, l)
	}
	var conns []*quicgo.Conn
	for _, e := range n.pool {
		if e.conn != nil {
			conns = append(conns, e.conn)
		}
	}
	for c := range n.accepted {
		conns = append(conns, c)
	}
	eps := append([]*endpoint(nil), n.endpoints...)
	if n.ephemeral != nil {
		eps = append(eps, n.ephemeral)
	}
	n.mu.Unlock()

	for _, l := range listeners {
		_ = l.Close()
	}
	if graceful {
		var wg sync.WaitGroup
		for _, c := range conns {
			wg.Go(func() {
				_ = c.CloseWithError(quicgo.ApplicationErrorCode(CodeNoError), "aemp: network closed")
			})
		}
		wg.Wait()
	}
	var errs []error
	for _, ep := range eps {
		// Transport.Close destroys what is left (silently) and stops its
		// goroutines; the socket is ours to close.
		if err := ep.tr.Close(); err != nil {
			errs = append(errs, err)
		}
		if err := ep.udp.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
	}
	n.wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return &Error{Op: "close", Err: ErrClosed, Cause: err}
	}
	return nil
}

// isClosed reports whether Close has begun.
func (n *Network) isClosed() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.closed
}

// trackAccepted records a connection accepted by a listener, so Close can
// close it; it reports false if the Network is already closed.
func (n *Network) trackAccepted(c *quicgo.Conn) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return false
	}
	n.accepted[c] = struct{}{}
	if k := remoteKey(c); n.inbound[k] == nil || n.inbound[k].Context().Err() != nil {
		n.inbound[k] = c
	}
	return true
}

// remoteKey is the pool key of c's remote address.
func remoteKey(c *quicgo.Conn) netip.AddrPort {
	ap := c.RemoteAddr().(*net.UDPAddr).AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

func (n *Network) untrackAccepted(c *quicgo.Conn) {
	n.mu.Lock()
	delete(n.accepted, c)
	if k := remoteKey(c); n.inbound[k] == c {
		delete(n.inbound, k)
	}
	n.mu.Unlock()
}

func (n *Network) removeListener(l *Listener) {
	n.mu.Lock()
	delete(n.listeners, l)
	n.mu.Unlock()
}
