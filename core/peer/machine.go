package peer

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/aemp-go/dataconn/core/wire"
)

// Defaults of Config.
const (
	DefaultHandshakeTimeout = 10 * time.Second
	DefaultKeepAlive        = 10 * time.Second
	DefaultPeerTimeout      = 30 * time.Second
	DefaultMaxSendQueue     = 64 << 20
	DefaultMaxPending       = 4096
	DefaultMaxHeld          = 4096
	DefaultWriteWindow      = 256 << 10
)

// ConnectWindow is how long a connection a send needed gets to come up
// (TimerConnect, then ErrConnectTimeout): twice the handshake timeout. An
// adapter bounds the attempts of one Dial by it too.
func ConnectWindow(handshakeTimeout time.Duration) time.Duration { return 2 * handshakeTimeout }

// Config configures a Machine. Only NodeID is required.
type Config struct {
	// NodeID is our node's ID.
	NodeID string
	// HandshakeTimeout bounds one handshake. The connect window of a send
	// is twice this; the wait for a peer's dial after a refusal is this.
	HandshakeTimeout time.Duration
	// KeepAlive is the idle time after which a keepalive goes out on a
	// connection.
	KeepAlive time.Duration
	// PeerTimeout closes a connection on which nothing arrived, or whose
	// frames were not written, for this long.
	PeerTimeout time.Duration
	// MaxSendQueue bounds the bytes queued and in flight on one
	// connection. A send beyond it is refused with ErrQueueFull (the
	// sender waits for Writable); one message larger than the bound is
	// accepted when nothing else is queued.
	MaxSendQueue int
	// MaxPending bounds the messages waiting for a connection to come up.
	MaxPending int
	// MaxHeld bounds the messages held back on a new connection while the
	// one it replaced is still being read. At the bound the machine asks
	// the caller to stop reading the new one (PauseRead) until the old one
	// ends. Beyond the bound plus one message per connection of the peer
	// (which only a caller or peer that ignores PauseRead reaches) the held
	// messages are dispatched at once: nothing is lost, only the order
	// across the replacement.
	MaxHeld int
	// WriteWindow bounds the bytes handed to the writer (Write actions)
	// and not yet confirmed by FrameWritten. Frames beyond it stay in the
	// machine, where a tie-break can still move them to the winning
	// connection.
	WriteWindow int
	// MaxDBFamilies, MaxDBKeys and MaxDBValue bound the database shard
	// one peer may contribute (g_slave, g_set, g_upd): families, keys over
	// all of them, and the JSON size of one key with its value. A write
	// beyond them is refused with a *DBLimitError naming the limit.
	MaxDBFamilies int
	MaxDBKeys     int
	MaxDBValue    int
	// Minimal turns the global role off: the node announces nothing,
	// keeps no database of other nodes, and of the global protocol only
	// answers g_find and takes addresses from g_slave and g_found (a node
	// that only ever talks to nodes it was told about). Remote port
	// monitoring works either way. Off by default: every node is global.
	Minimal bool
	// Seeds are the addresses of the seed nodes ("host:port" or
	// "scheme://addr"). Start dials them, and the machine keeps
	// retrying the ones not connected (Perl's timings, see Start).
	Seeds []string
	// Prefer orders a peer's addresses by scheme when dialing ("quic",
	// "tcp", "mem"); unlisted schemes follow in announced order.
	Prefer []string
}

func (c *Config) setDefaults() error {
	if c.NodeID == "" || strings.ContainsAny(c.NodeID, ";#\r\n") {
		return fmt.Errorf("peer: invalid node id %q (must be non-empty, without ';', '#', CR, LF)", c.NodeID)
	}
	if c.HandshakeTimeout <= 0 {
		c.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if c.KeepAlive <= 0 {
		c.KeepAlive = DefaultKeepAlive
	}
	if c.PeerTimeout <= 0 {
		c.PeerTimeout = DefaultPeerTimeout
	}
	if c.MaxSendQueue <= 0 {
		c.MaxSendQueue = DefaultMaxSendQueue
	}
	if c.MaxPending <= 0 {
		c.MaxPending = DefaultMaxPending
	}
	if c.MaxHeld <= 0 {
		c.MaxHeld = DefaultMaxHeld
	}
	if c.WriteWindow <= 0 {
		c.WriteWindow = DefaultWriteWindow
	}
	if c.MaxDBFamilies <= 0 {
		c.MaxDBFamilies = DefaultMaxDBFamilies
	}
	if c.MaxDBKeys <= 0 {
		c.MaxDBKeys = DefaultMaxDBKeys
	}
	if c.MaxDBValue <= 0 {
		c.MaxDBValue = DefaultMaxDBValue
	}
	return nil
}

// ConnID names one messaging connection. The caller chooses it (unique
// among the connections it has reported and not yet seen end); 0 is not
// a valid ID.
type ConnID uint64

// MonitorID names one node or port monitor; the machine hands them out.
type MonitorID uint64

// Machine is the messaging state of one node: its peers and their
// connections, the local ports and functions, and the monitors. It is not
// safe for concurrent use; the caller serialises inputs and drains Poll
// after each.
type Machine struct {
	cfg     Config
	self    string
	closed  bool
	closing bool // inside Close: no Writable, no dispatch of held messages

	peers   map[string]*peerState
	conns   map[ConnID]*conn
	inbound map[ConnID]string // greeted incoming handshakes: peer ID
	ports   map[string]*port
	funcs   map[string]bool
	addrs   []string // our listeners

	monSeq   MonitorID
	monitors map[MonitorID]monRef
	allMons  map[MonitorID]bool

	g           globalState
	seeds       []*seedState
	started     bool
	seedRetry   backoff
	globalRetry backoff

	timers timerTable
	out    []Action
}

type peerState struct {
	id    string
	addrs []string
	isGo  bool

	conn    ConnID   // current connection, 0 when down
	retired []ConnID // losers of a tie-break, draining

	dialing  bool   // our Dial is in flight
	attempt  uint64 // of the last Dial
	awaiting bool   // refused dial: waiting for the peer's connection
	dialErr  error
	inbound  int // greeted incoming handshakes not yet ended

	pending []wire.Message // waiting for a connection, in order
	blocked bool           // a send was refused; Writable is owed

	// held are messages read on a connection while one that came up
	// before it (a retired one) is still being read: they are
	// dispatched once that one's read side ended, so that a replacement
	// does not reorder what the peer sent.
	held    []heldMsg
	carrier uint64 // counts the connections that came up (ConnUp)

	mons  map[MonitorID]bool
	rmons remoteMons // monitors of its ports (MonitorPortID)

	untrusted bool // its last connection authenticated with tls_anon
}

func (p *peerState) connecting() bool { return p.dialing || p.awaiting || p.inbound > 0 }

type connState uint8

const (
	connUp connState = iota + 1
	connRetired
)

type conn struct {
	id     ConnID
	peer   string
	dialer string
	codec  wire.Codec
	state  connState

	queue         []frame // encoded, not yet handed to the writer
	queued        int     // bytes in queue
	inflight      []frame // handed out, not confirmed
	inflightBytes int
	seq           uint64
	halfClosed    bool
	paused        bool   // PauseRead was asked for
	carried       uint64 // its place in the order of p's connections (ConnUp)
	readDone      bool   // the peer ended its side (ReadClosed)
	goPeer        bool   // the peer greeted as a node of this project
}

type heldMsg struct {
	carried uint64 // of the connection it arrived on
	msg     wire.Message
}

type frame struct {
	seq  uint64
	b    []byte
	keep bool
}

// New returns a machine for cfg (defaults filled in).
func New(cfg Config) (*Machine, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	cfg.Prefer = slices.Clone(cfg.Prefer)
	cfg.Seeds = slices.Clone(cfg.Seeds)
	m := &Machine{
		cfg:      cfg,
		self:     cfg.NodeID,
		peers:    map[string]*peerState{},
		conns:    map[ConnID]*conn{},
		inbound:  map[ConnID]string{},
		ports:    map[string]*port{},
		funcs:    map[string]bool{},
		monitors: map[MonitorID]monRef{},
		allMons:  map[MonitorID]bool{},
		timers:   newTimerTable(),
		g:        newGlobalState(cfg.NodeID),
	}
	for i, a := range cfg.Seeds {
		if a != "" && !slices.Contains(cfg.Seeds[:i], a) {
			m.seeds = append(m.seeds, &seedState{addr: a})
		}
	}
	return m, nil
}

// Config returns the configuration in effect (defaults filled in).
func (m *Machine) Config() Config { return m.cfg }

// Poll returns the next action, or nil when there is none. Call it until
// nil after every input.
func (m *Machine) Poll() Action {
	if len(m.out) == 0 {
		return nil
	}
	a := m.out[0]
	m.out[0] = nil
	m.out = m.out[1:]
	if len(m.out) == 0 {
		m.out = nil
	}
	return a
}

func (m *Machine) emit(a Action) { m.out = append(m.out, a) }

func (m *Machine) peer(id string) *peerState {
	p := m.peers[id]
	if p == nil {
		p = &peerState{id: id} // mons made by MonitorNode: an idle peer stays small
		m.peers[id] = p
	}
	return p
}

// AddPeer records listener addresses of node id (announced form,
// "host:port" for TCP, "scheme://addr" otherwise). Duplicates and empty
// strings are skipped; our own ID is ignored.
func (m *Machine) AddPeer(id string, addrs ...string) {
	if id == m.self || id == "" {
		return
	}
	p := m.peer(id)
	for _, a := range addrs {
		if a != "" && !slices.Contains(p.addrs, a) {
			p.addrs = append(p.addrs, a)
		}
	}
}

// SetListeners records our own announced listener addresses: our 'l
// entry ([] for none), which g_find, g_set and the globals get (a change
// goes to the known globals as g_upd).
func (m *Machine) SetListeners(now time.Time, addrs []string) {
	m.addrs = slices.Clone(addrs)
	l := []any{}
	for _, a := range addrs {
		if a != "" {
			l = append(l, a)
		}
	}
	m.dbApply(now, m.self, FamilyListeners, map[string]any{m.self: l}, nil, false)
}

// PeerAddrs returns the known addresses of node id in dial order
// (Config.Prefer), nil when none is known.
func (m *Machine) PeerAddrs(id string) []string {
	p := m.peers[id]
	if p == nil {
		p = &peerState{id: id}
	}
	addrs := m.knownAddrs(p)
	if len(addrs) == 0 {
		return nil
	}
	return m.ordered(addrs)
}

// Peers returns the IDs of the nodes with a connection up, sorted.
func (m *Machine) Peers() []string {
	var ids []string
	for id, p := range m.peers {
		if p.conn != 0 {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	return ids
}

// IsGo reports whether the current (or last) connection to id greeted as
// a node of this project.
func (m *Machine) IsGo(id string) bool {
	p := m.peers[id]
	return p != nil && p.isGo
}

// Conns returns the IDs of the connections the machine knows (up or
// retired), sorted.
func (m *Machine) Conns() []ConnID {
	out := make([]ConnID, 0, len(m.conns))
	for id := range m.conns {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

// scheme returns an announced address's scheme: the part before "://",
// "tcp" for a plain "host:port".
func scheme(a string) string {
	if i := strings.Index(a, "://"); i >= 0 {
		return a[:i]
	}
	return "tcp"
}

func (m *Machine) ordered(addrs []string) []string {
	out := slices.Clone(addrs)
	if len(m.cfg.Prefer) == 0 {
		return out
	}
	rank := func(a string) int {
		if i := slices.Index(m.cfg.Prefer, scheme(a)); i >= 0 {
			return i
		}
		return len(m.cfg.Prefer)
	}
	sort.SliceStable(out, func(i, j int) bool { return rank(out[i]) < rank(out[j]) })
	return out
}

// SplitPortID splits "NODE#NAME" at its last '#'.
func SplitPortID(portID string) (node, name string, err error) {
	i := strings.LastIndexByte(portID, '#')
	if i <= 0 {
		return "", "", fmt.Errorf("%w: %q", ErrBadPortID, portID)
	}
	return portID[:i], portID[i+1:], nil
}

// Close ends the machine with err: every connection is closed (Close
// actions), the nodes that were up go down, queued messages are dropped.
// Later inputs return ErrClosed.
func (m *Machine) Close(now time.Time, err error) {
	if m.closed {
		return
	}
	if err == nil {
		err = ErrClosed
	}
	m.closing = true
	for _, id := range m.Conns() {
		if c := m.conns[id]; c != nil {
			m.closeConn(now, c, err)
		}
	}
	ids := make([]string, 0, len(m.peers))
	for id := range m.peers {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		p := m.peers[id]
		p.pending, p.dialing, p.awaiting, p.inbound = nil, false, false, 0
	}
	clear(m.inbound)
	m.timers.Clear()
	m.closed = true
}

// Current returns the ID of node id's current messaging connection (the
// one new messages go on), 0 when it is down.
func (m *Machine) Current(id string) ConnID {
	if p := m.peers[id]; p != nil {
		return p.conn
	}
	return 0
}
