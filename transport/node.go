package transport

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aemp-go/dataconn/core"
)

// Defaults of Config.
const (
	DefaultHandshakeTimeout = 10 * time.Second
	DefaultKeepAlive        = 10 * time.Second
	DefaultPeerTimeout      = 30 * time.Second
	DefaultMaxHandshakes    = 256
	DefaultMaxSendQueue     = 64 << 20
	// Provider is announced in our greetings (key "provider").
	Provider = "aemp-go/0.1"
)

// Errors of the Node.
var (
	// ErrClosed is returned by operations on a closed Node.
	ErrClosed = errors.New("aemp: node closed")
	// ErrNoRoute means no address is known for a node.
	ErrNoRoute = errors.New("aemp: no listeners found")
	// ErrWrongPeer means a dialed address answered with another node ID.
	ErrWrongPeer = errors.New("aemp: address belongs to another node")
	// ErrBadPortID means a port ID is not of the form NODE#NAME.
	ErrBadPortID = errors.New("aemp: malformed port id")
	// ErrPeerTimeout means nothing arrived from a peer within PeerTimeout.
	ErrPeerTimeout = errors.New("aemp: peer timed out")
	// ErrSendQueueFull means a peer does not read fast enough: more than
	// MaxSendQueue bytes were waiting for it; the connection is dropped.
	ErrSendQueueFull = errors.New("aemp: send queue overflow")
	// ErrConnReplaced ends a messaging connection that lost the tie-break
	// against a simultaneous one between the same two nodes.
	ErrConnReplaced = errors.New("aemp: connection replaced by a concurrent one")
)

// Config configures a Node. Only NodeID is required, and at least one of
// Secret and TLS is needed to authenticate to anyone.
type Config struct {
	// NodeID is this node's ID: unique in the network, without ';', '#',
	// CR or LF.
	NodeID string
	// Secret is the shared secret for hmac_sha3_512 auth.
	Secret []byte
	// TLS is this node's certificate and the CAs it trusts; with it the
	// node announces tls=1.0 and upgrades connections to TLS.
	TLS *TLSConfig
	// TLSRequired refuses peers that cannot speak TLS.
	TLSRequired bool
	// AllowTLSAnon accepts tls_anon from peers (they are marked untrusted).
	AllowTLSAnon bool
	// AllowCleartext accepts the insecure cleartext auth method.
	AllowCleartext bool
	// Framings the node accepts and can send, in preference order;
	// default core.CodecNames() (msgpack, json).
	Framings []string
	// HandshakeTimeout bounds every handshake; default 10s.
	HandshakeTimeout time.Duration
	// MaxFrame bounds one received message; default core.DefaultMaxFrame.
	MaxFrame int
	// KeepAlive is the idle interval after which a keepalive message is
	// sent on a messaging connection; default 10s.
	KeepAlive time.Duration
	// PeerTimeout drops a messaging connection on which nothing arrived for
	// this long and reports the node down; default 30s.
	PeerTimeout time.Duration
	// MaxHandshakes caps concurrent handshakes per listener; when full, the
	// oldest one is dropped to make room. Default 256.
	MaxHandshakes int
	// MaxSendQueue caps bytes queued for one peer; default 64 MiB.
	MaxSendQueue int
	// DataConn tunes data connections.
	DataConn DataConnConfig
	// Clock is the time source; default SystemClock.
	Clock Clock
	// Rand supplies nonces and ids; default crypto/rand.Reader.
	Rand io.Reader
	// Logger receives diagnostics; default slog.Default() with attribute
	// node=NodeID.
	Logger *slog.Logger
	// Extra greeting keys announced on every connection.
	Extra []core.KV
	// PerlCompat makes the node greet exactly like a Perl node (without
	// the key that marks nodes of this project), so peers use the Perl
	// flow with it. For tests and measurements of that flow.
	PerlCompat bool
	// Prefer orders a peer's addresses by network when dialing: addresses
	// of schemes listed first are tried first ("quic", "tcp", "mem");
	// unlisted schemes follow in their announced order. Default: as
	// announced.
	Prefer []string
	// DisableChannelBinding stops offering core.AuthHMACCB (the auth method
	// whose MAC also covers roles, node IDs and the TLS exporter) to nodes
	// of this project; they then use hmac_sha3_512 like Perl nodes.
	DisableChannelBinding bool
}

func (c *Config) setDefaults() error {
	if c.NodeID == "" || strings.ContainsAny(c.NodeID, ";#\r\n") {
		return fmt.Errorf("aemp: invalid node id %q (must be non-empty, without ';', '#', CR, LF)", c.NodeID)
	}
	if len(c.Framings) == 0 {
		c.Framings = core.CodecNames()
	}
	for _, f := range c.Framings {
		if _, ok := core.CodecByName(f); !ok {
			return fmt.Errorf("aemp: unsupported framing %q", f)
		}
	}
	if c.HandshakeTimeout <= 0 {
		c.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if c.MaxFrame <= 0 {
		c.MaxFrame = core.DefaultMaxFrame
	}
	if c.KeepAlive <= 0 {
		c.KeepAlive = DefaultKeepAlive
	}
	if c.PeerTimeout <= 0 {
		c.PeerTimeout = DefaultPeerTimeout
	}
	if c.MaxHandshakes <= 0 {
		c.MaxHandshakes = DefaultMaxHandshakes
	}
	if c.MaxSendQueue <= 0 {
		c.MaxSendQueue = DefaultMaxSendQueue
	}
	if c.Clock == nil {
		c.Clock = SystemClock{}
	}
	if c.Rand == nil {
		c.Rand = rand.Reader
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	c.Logger = c.Logger.With("node", c.NodeID)
	c.DataConn.setDefaults()
	return nil
}

// Func is a function callable by name from other nodes:
// ["", NAME, args...] sent to this node's node port calls it with the
// sending node's ID and args. It runs on the connection's reader goroutine:
// it must not block for long.
type Func func(from string, args []any)

// Node is one AEMP node: an ID, credentials, listeners, messaging
// connections to peers, local ports and data connections. It is safe for
// concurrent use.
type Node struct {
	*endpoint

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu        sync.Mutex
	closed    bool
	networks  map[string]Network // by scheme
	listeners []*listener
	addrs     []string // announced listener addresses
	peers     map[string]*peer
	ports     map[string]*Port
	funcs     map[string]Func
	seq       uint64
	monSeq    uint64
	allMons   map[uint64]func(string, bool, error)

	dc *DataConns
}

// NewNode makes a node. It does not listen or connect until told to.
func NewNode(cfg Config) (*Node, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := &Node{
		endpoint: &endpoint{cfg: cfg, id: cfg.NodeID, log: cfg.Logger, clock: cfg.Clock, resume: newTLSResumer(cfg.Rand)},
		ctx:      ctx,
		cancel:   cancel,
		networks: map[string]Network{},
		peers:    map[string]*peer{},
		ports:    map[string]*Port{},
		funcs:    map[string]Func{},
	}
	n.dc = newDataConns(n.endpoint, nodeHost{n})
	return n, nil
}

// ID returns the node ID.
func (n *Node) ID() string { return n.id }

// AddNetwork makes a network available for dialing addresses of its
// scheme without listening on it. Listen adds its network implicitly.
func (n *Node) AddNetwork(nw Network) {
	n.mu.Lock()
	n.networks[nw.Scheme()] = nw
	n.mu.Unlock()
}

// FormatAddr returns the announced form of addr on nw: plain for tcp,
// "scheme://addr" otherwise.
func FormatAddr(nw Network, addr string) string {
	if nw.Scheme() == "tcp" {
		return addr
	}
	return nw.Scheme() + "://" + addr
}

// SplitAddr splits an announced address into scheme and address; a plain
// "host:port" is tcp.
func SplitAddr(a string) (scheme, addr string) {
	if i := strings.Index(a, "://"); i >= 0 {
		return a[:i], a[i+3:]
	}
	return "tcp", a
}

// Listen starts serving AEMP (messaging and data connections) on addr of
// network nw and returns the announced address. The listener lives until
// the node is closed.
func (n *Node) Listen(ctx context.Context, nw Network, addr string) (string, error) {
	l, err := nw.Listen(ctx, addr)
	if err != nil {
		return "", err
	}
	a := FormatAddr(nw, l.Addr().String())
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		l.Close()
		return "", ErrClosed
	}
	n.networks[nw.Scheme()] = nw
	ln := &listener{n: n, l: l, nw: nw, addr: a, pending: map[*pendingHS]struct{}{}}
	n.listeners = append(n.listeners, ln)
	n.addrs = append(n.addrs, a)
	n.mu.Unlock()
	n.wg.Add(1)
	go ln.acceptLoop()
	n.log.Debug("listening", "addr", a)
	return a, nil
}

// Addrs returns the announced addresses of this node's listeners.
func (n *Node) Addrs() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]string(nil), n.addrs...)
}

// AddPeer records static listener addresses for a node (announced form:
// "host:port" for TCP, "scheme://addr" otherwise).
func (n *Node) AddPeer(nodeID string, addrs ...string) {
	n.mu.Lock()
	p := n.peerLocked(nodeID)
	p.addAddrs(addrs)
	n.mu.Unlock()
}

// PeerAddrs returns the known listener addresses of a node, in the order
// they are dialed (see Config.Prefer).
func (n *Node) PeerAddrs(nodeID string) []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if p, ok := n.peers[nodeID]; ok {
		return n.ordered(p.addrs)
	}
	return nil
}

// ordered returns a copy of addrs sorted by Config.Prefer (stable).
func (n *endpoint) ordered(addrs []string) []string {
	out := append([]string(nil), addrs...)
	if len(n.cfg.Prefer) == 0 {
		return out
	}
	rank := func(a string) int {
		scheme, _ := SplitAddr(a)
		for i, s := range n.cfg.Prefer {
			if s == scheme {
				return i
			}
		}
		return len(n.cfg.Prefer)
	}
	sort.SliceStable(out, func(i, j int) bool { return rank(out[i]) < rank(out[j]) })
	return out
}

// Peers returns the IDs of the nodes with an established messaging
// connection, sorted.
func (n *Node) Peers() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	var ids []string
	for id, p := range n.peers {
		if p.conn != nil {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	return ids
}

// RegisterFunc makes f callable from other nodes as ["", name, args...].
func (n *Node) RegisterFunc(name string, f Func) {
	n.mu.Lock()
	n.funcs[name] = f
	n.mu.Unlock()
}

// Close stops listeners, drops every connection, fails pending data
// connections, closes the streams of init functions still running and
// waits for the node's goroutines (init functions included) to end.
// Streams returned by ConnectTo belong to the caller and stay open.
func (n *Node) Close() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	ls := n.listeners
	var conns []*msgConn
	for _, p := range n.peers {
		conns = append(conns, p.allConns()...)
	}
	n.mu.Unlock()
	n.cancel()
	for _, l := range ls {
		l.close()
	}
	for _, c := range conns {
		c.shutdown(ErrClosed)
	}
	n.dc.close()
	n.wg.Wait()
	return nil
}

// handshakeConfig builds the core configuration for one connection.
func (n *endpoint) handshakeConfig(protocol string, extra []core.KV, deferGreeting bool, nw Network, c net.Conn) core.HandshakeConfig {
	remote := c.RemoteAddr()
	var binding []byte
	if b, ok := nw.(ChannelBinder); ok {
		binding = b.ChannelBinding(c)
	}
	accept := []string{core.AuthTLS, core.AuthHMAC}
	offer := []string{core.AuthTLS, core.AuthHMAC}
	if !n.cfg.PerlCompat && !n.cfg.DisableChannelBinding {
		// Offered first to nodes of this project; Perl nodes skip it.
		accept = append([]string{core.AuthHMACCB}, accept...)
		offer = append([]string{core.AuthHMACCB}, offer...)
	}
	if n.cfg.AllowTLSAnon {
		accept = append(accept, core.AuthTLSAnon)
	}
	if n.cfg.AllowCleartext {
		accept = append(accept, core.AuthCleartext)
	}
	kv := []core.KV{{Key: core.KeyProvider, Value: Provider}}
	if !n.cfg.PerlCompat {
		kv = append(kv, core.KV{Key: core.KeyGo, Value: n.goExtensions(protocol, nw, c)})
	}
	if remote != nil {
		kv = append(kv, core.KV{Key: core.KeyPeerAddr, Value: remote.String()})
	}
	kv = append(kv, n.cfg.Extra...)
	kv = append(kv, extra...)
	return core.HandshakeConfig{
		NodeID:         n.id,
		Protocol:       protocol,
		Secret:         n.cfg.Secret,
		AcceptAuths:    accept,
		OfferAuths:     offer,
		AcceptFramings: n.cfg.Framings,
		SendFramings:   n.cfg.Framings,
		TLS:            n.cfg.TLS != nil,
		TLSRequired:    n.cfg.TLSRequired,
		Extra:          kv,
		Timeout:        n.cfg.HandshakeTimeout,
		DeferGreeting:  deferGreeting,
		ChannelBinding: binding,
	}
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
	o := DriveOptions{Clock: n.clock, TLS: n.cfg.TLS, resume: n.resume}
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
func (n *Node) dialHandshake(ctx context.Context, a, protocol string, extra []core.KV) (net.Conn, *core.Result, error) {
	nw, addr, err := n.networkFor(a)
	if err != nil {
		return nil, nil, err
	}
	return n.endpoint.dialHandshake(ctx, nw, addr, protocol, extra)
}

// endpoint holds what every handshake of a node needs: its configuration,
// identity, clock and logger. The Node and a stand-alone DataConns share it.
type endpoint struct {
	cfg   Config
	id    string
	log   *slog.Logger
	clock Clock
	// resume is the TLS session resumption state (tlsresume.go).
	resume *tlsResumer
}

// dialHandshake dials addr on nw and runs the handshake as the connecting
// side with the given protocol and extra greeting keys.
func (n *endpoint) dialHandshake(ctx context.Context, nw Network, addr, protocol string, extra []core.KV) (net.Conn, *core.Result, error) {
	hctx, cancel := context.WithTimeout(ctx, n.cfg.HandshakeTimeout)
	defer cancel()
	c, err := nw.Dial(hctx, addr)
	if err != nil {
		return nil, nil, err
	}
	nonce, err := n.nonce()
	if err != nil {
		c.Close()
		return nil, nil, err
	}
	m, err := core.NewHandshake(n.handshakeConfig(protocol, extra, false, nw, c), nonce, n.clock.Now())
	if err != nil {
		c.Close()
		return nil, nil, err
	}
	return Drive(hctx, c, m, n.driveOptions(nw))
}

// ---- listeners ----

type listener struct {
	n    *Node
	l    net.Listener
	nw   Network
	addr string

	mu      sync.Mutex
	pending map[*pendingHS]struct{}
	closed  bool
}

type pendingHS struct {
	c     net.Conn
	start time.Time
	seq   uint64
	// greeted is set once the peer's greeting arrived: such handshakes
	// are evicted only when no silent one is left.
	greeted atomic.Bool
}

func (l *listener) close() {
	l.mu.Lock()
	l.closed = true
	for p := range l.pending {
		p.c.Close()
	}
	l.mu.Unlock()
	l.l.Close()
}

func (l *listener) acceptLoop() {
	defer l.n.wg.Done()
	var seq uint64
	for {
		c, err := l.l.Accept()
		if err != nil {
			if l.n.ctx.Err() == nil {
				l.n.log.Debug("accept ended", "addr", l.addr, "err", err)
			}
			return
		}
		seq++
		p := &pendingHS{c: c, start: l.n.clock.Now(), seq: seq}
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			c.Close()
			return
		}
		if len(l.pending) >= l.n.cfg.MaxHandshakes {
			// Make room by dropping the oldest handshake whose peer has
			// not even greeted (an honest peer greets at once and finishes
			// in a round trip or two); only when every one has greeted,
			// the oldest of all.
			var oldest *pendingHS
			for q := range l.pending {
				if oldest == nil || (!q.greeted.Load() && oldest.greeted.Load()) ||
					(q.greeted.Load() == oldest.greeted.Load() && q.seq < oldest.seq) {
					oldest = q
				}
			}
			delete(l.pending, oldest)
			oldest.c.Close()
			l.n.log.Debug("handshake cap reached; dropped oldest", "addr", l.addr, "cap", l.n.cfg.MaxHandshakes)
		}
		l.pending[p] = struct{}{}
		l.mu.Unlock()
		l.n.wg.Add(1)
		go l.serve(p)
	}
}

func (l *listener) serve(p *pendingHS) {
	defer l.n.wg.Done()
	n := l.n
	c := p.c
	done := func() {
		l.mu.Lock()
		delete(l.pending, p)
		l.mu.Unlock()
	}
	if mux, ok := l.nw.(MuxNetwork); ok && !n.cfg.PerlCompat {
		if n.peekDataStream(mux, c, done) {
			return
		}
	}
	nonce, err := n.nonce()
	if err != nil {
		done()
		c.Close()
		return
	}
	m, err := core.NewHandshake(n.handshakeConfig(core.ProtocolMessaging, nil, true, l.nw, c), nonce, n.clock.Now())
	if err != nil {
		done()
		c.Close()
		return
	}
	opts := n.driveOptions(l.nw)
	var ref core.RvConnRef
	var admitted func()
	opts.OnPeerGreeting = func(ctx context.Context, g core.Greeting, protocol string) ([]core.KV, error) {
		p.greeted.Store(true)
		if protocol == core.ProtocolMessaging {
			var err error
			admitted, err = n.admitIncoming(g.NodeID)
			return n.ticketFor(g, nil), err
		}
		if protocol != core.ProtocolDataConn {
			return nil, fmt.Errorf("aemp: unsupported protocol %q", protocol)
		}
		var extra []core.KV
		ref, extra, err = n.dc.incomingGreeting(ctx, g)
		return n.ticketFor(g, extra), err
	}
	conn, res, err := Drive(n.ctx, c, m, opts)
	done()
	if admitted != nil {
		if err == nil && res.Protocol == core.ProtocolMessaging {
			n.addConn(conn, res, res.PeerNodeID)
			conn = nil
		}
		admitted()
	}
	if err != nil {
		if ref != 0 {
			n.dc.incomingFailed(ref, err)
		}
		n.log.Debug("incoming handshake failed", "addr", l.addr, "remote", c.RemoteAddr(), "err", err)
		return
	}
	switch res.Protocol {
	case core.ProtocolMessaging:
		if conn != nil {
			n.addConn(conn, res, res.PeerNodeID)
		}
	case core.ProtocolDataConn:
		n.dc.incomingDone(ref, conn, res)
	default:
		conn.Close()
	}
}
