package transport

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/aemp-go/dataconn/core/peer"
	"github.com/aemp-go/dataconn/core/wire"
)

// Defaults of Config.
const (
	// The messaging defaults are the peer machine's (core/peer).
	DefaultHandshakeTimeout = peer.DefaultHandshakeTimeout
	DefaultKeepAlive        = peer.DefaultKeepAlive
	DefaultPeerTimeout      = peer.DefaultPeerTimeout
	DefaultMaxSendQueue     = peer.DefaultMaxSendQueue
	DefaultMaxHandshakes    = 256
	// Provider is announced in our greetings (key "provider").
	Provider = "aemp-go/0.1"
)

// Errors of the Node.
var (
	// ErrClosed is returned by operations on a closed Node.
	ErrClosed = errors.New("aemp: node closed")
	// ErrNoRoute means no address is known for a node.
	ErrNoRoute = peer.ErrNoRoute
	// ErrWrongPeer is peer.ErrWrongPeer: a dialed address answered with
	// another node ID.
	ErrWrongPeer = peer.ErrWrongPeer
	// ErrBadPortID means a port ID is not of the form NODE#NAME.
	ErrBadPortID = peer.ErrBadPortID
	// ErrPeerTimeout means nothing arrived from a peer within PeerTimeout.
	ErrPeerTimeout = peer.ErrPeerTimeout
	// ErrSendQueueFull means a message did not fit a send bound (more than
	// MaxSendQueue bytes waiting for a peer that does not read fast
	// enough, or too many messages waiting for a connection to come up).
	// The message is not sent; the connection and the messages already
	// queued are unharmed. The error is a *SendQueueError naming the
	// bound; SendContext waits for room instead.
	ErrSendQueueFull = peer.ErrQueueFull
	// ErrDescriptorLimit wraps a dial that failed because the process or
	// the system is out of file descriptors (EMFILE, ENFILE): raise the
	// limit (ulimit -n, RLIMIT_NOFILE) or open fewer connections at once.
	ErrDescriptorLimit = errors.New("aemp: out of file descriptors (raise ulimit -n / RLIMIT_NOFILE)")
	// ErrConnReplaced ends a messaging connection that lost the tie-break
	// against a simultaneous one between the same two nodes.
	ErrConnReplaced = peer.ErrConnReplaced
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
	// default wire.CodecNames() (msgpack, json).
	Framings []string
	// HandshakeTimeout bounds every handshake; default 10s.
	HandshakeTimeout time.Duration
	// MaxFrame bounds one received message; default wire.DefaultMaxFrame.
	MaxFrame int
	// KeepAlive is the idle interval after which a keepalive message is
	// sent on a messaging connection; default 10s.
	KeepAlive time.Duration
	// PeerTimeout drops a messaging connection to a node of this project
	// on which nothing arrived for this long, and any connection whose
	// writes stall this long, and reports the node down; default 30s.
	// (A Perl node sends nothing on an idle connection, so reads from it
	// are not timed.)
	PeerTimeout time.Duration
	// MaxHandshakes caps concurrent handshakes per listener that have not
	// proven themselves (a data connection proves itself by presenting an
	// id announced over an authenticated messaging connection; proven
	// ones do not count). When full, the oldest handshake that has not
	// even greeted within a short grace is dropped to make room, or else
	// the oldest that stayed unproven for a quarter of HandshakeTimeout;
	// if there is none, the listener stops accepting until a slot frees
	// and the kernel's backlog holds new connections. Default 256.
	MaxHandshakes int
	// MaxSendQueue caps bytes queued for one peer; a message that does not
	// fit fails with ErrSendQueueFull (Send) or waits (SendContext).
	// Default 64 MiB.
	MaxSendQueue int
	// DataConn tunes data connections.
	DataConn DataConnConfig
	// Rand supplies nonces and ids; default crypto/rand.Reader.
	Rand io.Reader
	// Logger receives diagnostics; default slog.Default() with attribute
	// node=NodeID.
	Logger *slog.Logger
	// Extra greeting keys announced on every connection.
	Extra []wire.KV
	// PerlCompat makes the node greet exactly like a Perl node (without
	// the key that marks nodes of this project), so peers use the Perl
	// flow with it. For tests and measurements of that flow.
	PerlCompat bool
	// Prefer orders a peer's addresses by network when dialing: addresses
	// of schemes listed first are tried first ("quic", "tcp", "mem");
	// unlisted schemes follow in their announced order. Default: as
	// announced.
	Prefer []string
	// Seeds are the addresses of seed nodes ("host:port" for TCP,
	// "scheme://addr" otherwise). Start dials them and keeps retrying the
	// ones not connected with Perl's backoff (a random base r in
	// [0.6, 1.2) s, attempts at 0, 2r, 6r, 14r, 30r, then every 30 s), so
	// it does not matter which node starts first.
	Seeds []string
	// Global turns the global role on: the node is global and its own
	// master, as a Perl seed turns. It tells every node that comes up
	// ["", "g_global"], keeps the network's database (listeners 'l,
	// globals 'g, the embedder's families) merged from its peers, serves
	// g_find, g_mon1 and g_db_* to Perl nodes, and redials the globals it
	// learns. A node that Perl nodes use as their seed needs it (aemp
	// node turns it on). Off, the node only records addresses from
	// g_slave and g_found and answers g_find.
	Global bool
	// MaxDBFamilies, MaxDBKeys and MaxDBValue bound the database shard
	// one peer may write (families, keys, JSON bytes of one value);
	// defaults 256, 65536 and 64 KiB. A write beyond them is refused
	// whole (peer.ErrDBLimit) and logged; the connection stays up.
	MaxDBFamilies int
	MaxDBKeys     int
	MaxDBValue    int
	// DisableChannelBinding stops offering handshake.AuthHMACCB (the auth method
	// whose MAC also covers roles, node IDs and the TLS exporter) to nodes
	// of this project; they then use hmac_sha3_512 like Perl nodes.
	DisableChannelBinding bool
	// DisableTLSBind keeps the auth lines after TLS between nodes of this
	// project. By default, with TLS and no secret on a stream network,
	// greetings list handshake.ExtTLSBind and, when both do, the TLS
	// handshake itself carries what tls_sha3_512 proves (an ALPN value
	// over the greetings), which saves the one-way hop of the auth lines.
	// It also keeps them on QUIC with certificates: by default, without a
	// secret, messaging greetings there list handshake.ExtChannelAuth and,
	// when both do, no auth line is sent (the channel verified both
	// certificates and carries the greetings), which saves the acceptor
	// half a round trip.
	DisableTLSBind bool
}

func (c *Config) setDefaults() error {
	if c.NodeID == "" || strings.ContainsAny(c.NodeID, ";#\r\n") {
		return fmt.Errorf("aemp: invalid node id %q (must be non-empty, without ';', '#', CR, LF)", c.NodeID)
	}
	if len(c.Framings) == 0 {
		c.Framings = wire.CodecNames()
	}
	for _, f := range c.Framings {
		if _, ok := wire.CodecByName(f); !ok {
			return fmt.Errorf("aemp: unsupported framing %q", f)
		}
	}
	if c.HandshakeTimeout <= 0 {
		c.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if c.MaxFrame <= 0 {
		c.MaxFrame = wire.DefaultMaxFrame
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
	seq       uint64

	// The messaging rules: the peer machine (peers.go runs it) and what
	// the transport keeps beside it by the machine's IDs.
	m        *peer.Machine
	mconns   map[peer.ConnID]*msgConn
	connSeq  peer.ConnID
	ports    map[string]*Port
	funcs    map[string]Func
	portMons map[peer.MonitorID]func([]any)
	nodeMons map[peer.MonitorID]func(string, bool, error)
	dbMons   map[peer.MonitorID]func(string, map[string]any, []string)
	waiters  map[string][]chan error  // Connect calls by node
	room     map[string]chan struct{} // SendContext waiters by node
	cbq      map[string]*cbQueue      // callbacks by origin
	// killWatch holds the watchers of names opened as ports without a
	// handler (the data-connection set-ups' ids; see watchPort).
	killWatch map[string]func([]any)
	timer     *time.Timer
	timerAt   time.Time

	// dialSlot, while a Connect runs its input, takes the Dial of its
	// node instead of a goroutine (see Connect).
	dialSlot dialSlot

	dc *DataConns
}

// NewNode makes a node. It does not listen or connect until told to.
func NewNode(cfg Config) (*Node, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	m, err := peer.New(peer.Config{
		NodeID:           cfg.NodeID,
		HandshakeTimeout: cfg.HandshakeTimeout,
		KeepAlive:        cfg.KeepAlive,
		PeerTimeout:      cfg.PeerTimeout,
		MaxSendQueue:     cfg.MaxSendQueue,
		Prefer:           cfg.Prefer,
		Minimal:          !cfg.Global,
		Seeds:            cfg.Seeds,
		MaxDBFamilies:    cfg.MaxDBFamilies,
		MaxDBKeys:        cfg.MaxDBKeys,
		MaxDBValue:       cfg.MaxDBValue,
	})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := &Node{
		endpoint:  &endpoint{cfg: cfg, id: cfg.NodeID, log: cfg.Logger, resume: newTLSResumer(cfg.Rand)},
		ctx:       ctx,
		cancel:    cancel,
		networks:  map[string]Network{},
		m:         m,
		mconns:    map[peer.ConnID]*msgConn{},
		ports:     map[string]*Port{},
		funcs:     map[string]Func{},
		portMons:  map[peer.MonitorID]func([]any){},
		nodeMons:  map[peer.MonitorID]func(string, bool, error){},
		dbMons:    map[peer.MonitorID]func(string, map[string]any, []string){},
		killWatch: map[string]func([]any){},
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
	if gf, ok := l.(GreetFirstListener); ok {
		gf.EnableGreetFirst() // the node serves EarlyGreeter streams
	}
	a := FormatAddr(nw, l.Addr().String())
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		l.Close()
		return "", ErrClosed
	}
	n.networks[nw.Scheme()] = nw
	ln := newListener(n, l, nw, a)
	n.listeners = append(n.listeners, ln)
	n.addrs = append(n.addrs, a)
	n.m.SetListeners(time.Now(), n.addrs)
	w := n.runActionsLocked()
	n.mu.Unlock()
	n.finish(originLocal, w, false)
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
	n.m.AddPeer(nodeID, addrs...)
	n.mu.Unlock()
}

// PeerAddrs returns the known listener addresses of a node, in the order
// they are dialed (see Config.Prefer).
func (n *Node) PeerAddrs(nodeID string) []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.m.PeerAddrs(nodeID)
}

// Peers returns the IDs of the nodes with an established messaging
// connection, sorted.
func (n *Node) Peers() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.m.Peers()
}

// RegisterFunc makes f callable from other nodes as ["", name, args...].
func (n *Node) RegisterFunc(name string, f Func) {
	n.mu.Lock()
	n.funcs[name] = f
	n.m.RegisterFunc(name)
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
	n.m.Close(time.Now(), ErrClosed)
	w := n.runActionsLocked()
	if n.timer != nil {
		n.timer.Stop()
	}
	for ch, ws := range n.waiters {
		for _, c := range ws {
			c <- ErrClosed
		}
		delete(n.waiters, ch)
	}
	for k, ch := range n.room {
		close(ch)
		delete(n.room, k)
	}
	n.mu.Unlock()
	n.cancel()
	for _, l := range ls {
		l.close()
	}
	n.finish(originLocal, w, false)
	n.dc.close()
	n.wg.Wait()
	return nil
}
