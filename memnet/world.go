package memnet

import (
	"context"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// LinkConfig describes the link between two hosts (in both directions).
// Negative values count as zero.
type LinkConfig struct {
	// Latency is the one-way delay of every chunk and of SYN and SYN-ACK.
	Latency time.Duration
	// Jitter adds a delay drawn uniformly from [0, Jitter) to each of them.
	Jitter time.Duration
	// DialLoss is the probability that a connection attempt on this link is
	// lost (see World.SetDialLoss; the larger of the two applies).
	DialLoss float64
}

// Default sizes.
const (
	// DefaultBuffer is the default per-direction window of a stream.
	DefaultBuffer = 256 << 10
	// DefaultBacklog is the default number of streams a listener queues.
	DefaultBacklog = 128
	// DefaultTraceLimit is the default maximum number of trace events kept.
	DefaultTraceLimit = 1 << 20
)

// config holds the options of a World.
type config struct {
	link       LinkConfig
	buffer     int
	backlog    int
	traceLimit int
}

// Option configures a World.
type Option func(*config)

// WithDefaultLink sets the configuration of every link not set by
// World.SetLink (by default, zero latency, no jitter and no loss).
func WithDefaultLink(c LinkConfig) Option {
	return func(cfg *config) { cfg.link = clean(c) }
}

// WithBuffer sets how many bytes each direction of a stream holds (written
// but not yet read) before Write blocks. Values below 1 are ignored.
func WithBuffer(n int) Option {
	return func(cfg *config) {
		if n > 0 {
			cfg.buffer = n
		}
	}
}

// WithBacklog sets how many unaccepted streams a listener queues before
// further dials are refused. Values below 1 are ignored.
func WithBacklog(n int) Option {
	return func(cfg *config) {
		if n > 0 {
			cfg.backlog = n
		}
	}
}

// WithTrace sets the maximum number of trace events kept (later ones are
// counted by World.TraceDropped); 0 or less turns tracing off, which saves
// hashing every byte (use it for benchmarks).
func WithTrace(limit int) Option {
	return func(cfg *config) { cfg.traceLimit = max(limit, 0) }
}

// clean clamps a LinkConfig's negative values to zero.
func clean(c LinkConfig) LinkConfig {
	c.Latency = max(c.Latency, 0)
	c.Jitter = max(c.Jitter, 0)
	if !(c.DialLoss > 0) { // also catches NaN
		c.DialLoss = 0
	}
	c.DialLoss = min(c.DialLoss, 1)
	return c
}

// pairKey is an unordered host pair (a <= b) or, for dial attempts, an
// ordered one.
type pairKey struct{ a, b string }

func unordered(a, b string) pairKey {
	if b < a {
		a, b = b, a
	}
	return pairKey{a, b}
}

// link is the shared, atomically replaceable configuration of a host pair.
type link struct {
	cfg atomic.Pointer[LinkConfig]
}

func (l *link) load() LinkConfig { return *l.cfg.Load() }

// World is one simulated network. All its methods are safe for concurrent
// use.
type World struct {
	seed  int64
	cfg   config
	start time.Time
	tr    tracer

	mu       sync.Mutex
	closed   bool
	topo     chan struct{} // closed and replaced when partitions heal or the world closes
	hosts    map[string]*Host
	links    map[pairKey]*link
	refused  map[string]bool // "host" or "host:port"
	blocked  map[pairKey]bool
	dialLoss float64
	attempts map[pairKey]uint64 // ordered (dialer, listener) → dial attempts so far
	streams  map[*stream]struct{}
}

// New creates a World whose randomness derives from seed. Create it inside
// the testing/synctest bubble that uses it.
func New(seed int64, opts ...Option) *World {
	cfg := config{buffer: DefaultBuffer, backlog: DefaultBacklog, traceLimit: DefaultTraceLimit}
	for _, o := range opts {
		if o != nil {
			o(&cfg)
		}
	}
	return &World{
		seed:     seed,
		cfg:      cfg,
		start:    time.Now(),
		tr:       tracer{limit: cfg.traceLimit},
		topo:     make(chan struct{}),
		hosts:    make(map[string]*Host),
		links:    make(map[pairKey]*link),
		refused:  make(map[string]bool),
		blocked:  make(map[pairKey]bool),
		attempts: make(map[pairKey]uint64),
		streams:  make(map[*stream]struct{}),
	}
}

// Seed returns the seed the World was created with.
func (w *World) Seed() int64 { return w.seed }

// Host returns the host called name, creating it on first use. A name that
// is empty or contains ':', '/' or spaces gives a host whose Listen and Dial
// fail.
func (w *World) Host(name string) *Host {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.hostLocked(name)
}

func (w *World) hostLocked(name string) *Host {
	if h, ok := w.hosts[name]; ok {
		return h
	}
	h := &Host{w: w, name: name, listeners: make(map[int]*Listener), nextPort: 10000, nextEphemeral: 40000}
	w.hosts[name] = h
	return h
}

// linkLocked returns the link between a and b, creating it with the default
// configuration.
func (w *World) linkLocked(a, b string) *link {
	k := unordered(a, b)
	l, ok := w.links[k]
	if !ok {
		l = new(link)
		c := w.cfg.link
		l.cfg.Store(&c)
		w.links[k] = l
	}
	return l
}

// SetLink sets the configuration of the link between hosts a and b, in both
// directions. It applies to chunks written and dials started afterwards,
// including on streams already open.
func (w *World) SetLink(a, b string, c LinkConfig) {
	c = clean(c)
	w.mu.Lock()
	defer w.mu.Unlock()
	w.linkLocked(a, b).cfg.Store(&c)
}

// SetDialLoss sets the probability, for every link, that a connection
// attempt is lost: the dial then hangs until its context is done. A link's
// own LinkConfig.DialLoss applies if larger.
func (w *World) SetDialLoss(p float64) {
	p = clean(LinkConfig{DialLoss: p}).DialLoss
	w.mu.Lock()
	defer w.mu.Unlock()
	w.dialLoss = p
}

// Refuse makes dials to addr ("host:port", or "host" for every port of the
// host) fail at once with ECONNREFUSED until Allow(addr).
func (w *World) Refuse(addr string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.refused[strings.TrimPrefix(addr, Scheme+"://")] = true
}

// Allow undoes Refuse(addr).
func (w *World) Allow(addr string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.refused, strings.TrimPrefix(addr, Scheme+"://"))
}

// Partition cuts every host in groupA off from every host in groupB: no
// byte crosses (data in flight is held and delivered after Heal) and dials
// across wait for Heal or their context. Partitions accumulate until Heal.
func (w *World) Partition(groupA, groupB []string) {
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, a := range groupA {
		for _, b := range groupB {
			if a != b {
				w.blocked[unordered(a, b)] = true
			}
		}
	}
	for s := range w.streams {
		if w.blocked[unordered(s.dialer, s.listener)] {
			s.a.out.setHeld(true, now)
			s.b.out.setHeld(true, now)
		}
	}
	ga, gb := slices.Sorted(slices.Values(groupA)), slices.Sorted(slices.Values(groupB))
	w.record(now, Event{Kind: EvPartition, From: strings.Join(ga, ","), To: strings.Join(gb, ",")})
}

// Heal removes every partition: held data is delivered at once (or at its
// scheduled time if later) and waiting dials proceed.
func (w *World) Heal() {
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	clear(w.blocked)
	for s := range w.streams {
		s.a.out.setHeld(false, now)
		s.b.out.setHeld(false, now)
	}
	w.signalLocked()
	w.record(now, Event{Kind: EvHeal})
}

// ResetConn resets the stream c belongs to (c must come from this World):
// both ends' pending and future Reads and Writes fail with ECONNRESET.
func (w *World) ResetConn(c net.Conn) error {
	mc, ok := c.(*Conn)
	if !ok || mc.s.w != w {
		return &net.OpError{Op: "reset", Net: Scheme, Err: ErrForeignConn}
	}
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	w.resetLocked(mc.s, now)
	return nil
}

// ResetLinks resets every open stream between hosts a and b (in either
// direction).
func (w *World) ResetLinks(a, b string) {
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	k := unordered(a, b)
	for s := range w.streams {
		if unordered(s.dialer, s.listener) == k {
			w.resetLocked(s, now)
		}
	}
}

// Crash crashes a host: its listeners close, its streams are reset, dials
// to it are refused and it cannot listen or dial until Restart.
func (w *World) Crash(host string) {
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	h := w.hostLocked(host)
	h.crashed = true
	for port, l := range h.listeners {
		delete(h.listeners, port)
		l.shutLocked(now)
	}
	for s := range w.streams {
		if s.dialer == host || s.listener == host {
			w.resetLocked(s, now)
		}
	}
	w.signalLocked()
	w.record(now, Event{Kind: EvCrash, From: host})
}

// Restart brings a crashed host back: it can listen and dial again (its old
// listeners and streams stay closed).
func (w *World) Restart(host string) {
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	w.hostLocked(host).crashed = false
	w.record(now, Event{Kind: EvRestart, From: host})
}

// Close closes every listener, resets every stream and makes every later
// operation and every waiting dial fail with ErrWorldClosed.
func (w *World) Close() error {
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	w.closed = true
	for _, h := range w.hosts {
		for port, l := range h.listeners {
			delete(h.listeners, port)
			l.shutLocked(now)
		}
	}
	for s := range w.streams {
		w.resetLocked(s, now)
	}
	w.signalLocked()
	return nil
}

// signalLocked wakes the dials waiting for a topology change; w.mu is held.
func (w *World) signalLocked() {
	close(w.topo)
	w.topo = make(chan struct{})
}

// resetLocked resets stream s. w.mu is held.
func (w *World) resetLocked(s *stream, now time.Time) {
	if _, ok := w.streams[s]; !ok {
		return
	}
	delete(w.streams, s)
	s.a.out.doReset()
	s.b.out.doReset()
	w.record(now, Event{Kind: EvReset, From: s.dialer, To: s.listener, Dialer: s.dialer, Stream: s.num})
}

// removeStream forgets a stream whose both ends are closed.
func (w *World) removeStream(s *stream) {
	w.mu.Lock()
	delete(w.streams, s)
	w.mu.Unlock()
}

// refusedLocked reports whether a dial to host:port is refused now.
func (w *World) refusedLocked(host string, port int) (*Listener, bool) {
	h, ok := w.hosts[host]
	if !ok || h.crashed {
		return nil, true
	}
	l, ok := h.listeners[port]
	if !ok || w.refused[host] || w.refused[Addr{host, port}.String()] {
		return nil, true
	}
	return l, false
}

// Host is one machine of a World. It implements transport.Network.
type Host struct {
	w    *World
	name string

	// Guarded by w.mu.
	crashed       bool
	listeners     map[int]*Listener
	nextPort      int
	nextEphemeral int
}

// Name returns the host's name.
func (h *Host) Name() string { return h.name }

// World returns the World the host belongs to.
func (h *Host) World() *World { return h.w }

// Scheme returns "mem".
func (h *Host) Scheme() string { return Scheme }

// Listen opens a listener on addr: "name:port" (name must be the host's own),
// ":port", or port 0 to pick a free port.
func (h *Host) Listen(ctx context.Context, addr string) (net.Listener, error) {
	var laddr net.Addr
	opErr := func(err error) error {
		return &net.OpError{Op: "listen", Net: Scheme, Addr: laddr, Err: err}
	}
	if err := ctx.Err(); err != nil {
		return nil, opErr(err)
	}
	if !validName(h.name) {
		return nil, opErr(&net.AddrError{Err: errBadName, Addr: h.name})
	}
	name, port, err := parseAddr(addr)
	if err != nil {
		return nil, opErr(err)
	}
	laddr = Addr{h.name, port}
	if name != "" && name != h.name {
		return nil, opErr(&net.AddrError{Err: "memnet: a host can only listen on its own name (" + h.name + ")", Addr: addr})
	}
	w := h.w
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case w.closed:
		return nil, opErr(ErrWorldClosed)
	case h.crashed:
		return nil, opErr(ErrHostDown)
	}
	if port == 0 {
		for i := 0; i < 65536 && port == 0; i++ {
			p := h.nextPort
			h.nextPort++
			if h.nextPort > 65535 {
				h.nextPort = 1
			}
			if _, used := h.listeners[p]; !used {
				port = p
			}
		}
		if port == 0 {
			return nil, opErr(syscall.EADDRINUSE)
		}
	} else if _, used := h.listeners[port]; used {
		return nil, opErr(syscall.EADDRINUSE)
	}
	l := &Listener{
		h:    h,
		addr: Addr{h.name, port},
		q:    make(chan *Conn, w.cfg.backlog),
		done: make(chan struct{}),
	}
	h.listeners[port] = l
	return l, nil
}

// Dial opens a stream to addr ("name:port"). It returns after one round trip
// of the link, fails at once with ECONNREFUSED when nobody listens there,
// and waits (until ctx is done) while a partition separates the hosts or
// when the attempt is lost.
func (h *Host) Dial(ctx context.Context, addr string) (net.Conn, error) {
	w := h.w
	var raddr net.Addr
	local := Addr{h.name, 0}
	opErr := func(err error) error {
		return &net.OpError{Op: "dial", Net: Scheme, Source: local, Addr: raddr, Err: err}
	}
	if !validName(h.name) {
		return nil, opErr(&net.AddrError{Err: errBadName, Addr: h.name})
	}
	dst, port, err := parseAddr(addr)
	if err != nil {
		return nil, opErr(err)
	}
	if dst == "" {
		dst = h.name
	}
	if port == 0 {
		return nil, opErr(&net.AddrError{Err: "memnet: cannot dial port 0", Addr: addr})
	}
	raddr = Addr{dst, port}
	if err := ctx.Err(); err != nil {
		return nil, opErr(err)
	}

	// Wait while a partition separates the hosts.
	for {
		w.mu.Lock()
		closed, crashed, blocked, topo := w.closed, h.crashed, w.blocked[unordered(h.name, dst)], w.topo
		w.mu.Unlock()
		switch {
		case closed:
			return nil, opErr(ErrWorldClosed)
		case crashed:
			return nil, opErr(ErrHostDown)
		}
		if !blocked {
			break
		}
		select {
		case <-topo:
		case <-ctx.Done():
			return nil, opErr(ctx.Err())
		}
	}

	now := time.Now()
	w.mu.Lock()
	pk := pairKey{h.name, dst}
	num := w.attempts[pk]
	w.attempts[pk]++
	lk := w.linkLocked(h.name, dst)
	cfg := lk.load()
	loss := max(cfg.DialLoss, w.dialLoss)
	lost := loss > 0 && w.drawProb(drawLoss, h.name, dst, num, 0) < loss
	_, refused := w.refusedLocked(dst, port)
	topo := w.topo
	w.mu.Unlock()

	if lost {
		w.record(now, Event{Kind: EvLost, From: h.name, To: dst, Dialer: h.name, Stream: num})
		for {
			select {
			case <-ctx.Done():
				return nil, opErr(ctx.Err())
			case <-topo:
				w.mu.Lock()
				closed, crashed := w.closed, h.crashed
				topo = w.topo
				w.mu.Unlock()
				switch {
				case closed:
					return nil, opErr(ErrWorldClosed)
				case crashed:
					return nil, opErr(ErrHostDown)
				}
			}
		}
	}
	if refused {
		w.record(now, Event{Kind: EvRefused, From: h.name, To: dst, Dialer: h.name, Stream: num})
		return nil, opErr(syscall.ECONNREFUSED)
	}

	rtt := 2*cfg.Latency +
		w.drawDuration(cfg.Jitter, drawSYN, h.name, dst, num, 0) +
		w.drawDuration(cfg.Jitter, drawSYNACK, h.name, dst, num, 0)
	if rtt > 0 {
		t := time.NewTimer(rtt)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, opErr(ctx.Err())
		}
	}

	now = time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case w.closed:
		return nil, opErr(ErrWorldClosed)
	case h.crashed:
		return nil, opErr(ErrHostDown)
	}
	l, refused := w.refusedLocked(dst, port)
	if refused {
		w.record(now, Event{Kind: EvRefused, From: h.name, To: dst, Dialer: h.name, Stream: num})
		return nil, opErr(syscall.ECONNREFUSED)
	}
	local.Port = h.ephemeralLocked()
	s := w.newStream(lk, local, l.addr, num, w.blocked[unordered(h.name, dst)], now)
	if !l.enqueue(s.b) {
		w.record(now, Event{Kind: EvRefused, From: h.name, To: dst, Dialer: h.name, Stream: num})
		return nil, opErr(syscall.ECONNREFUSED)
	}
	w.streams[s] = struct{}{}
	w.record(now, Event{Kind: EvConnect, From: h.name, To: dst, Dialer: h.name, Stream: num})
	return s.a, nil
}

// ephemeralLocked picks the local port of a dialed stream.
func (h *Host) ephemeralLocked() int {
	p := h.nextEphemeral
	h.nextEphemeral++
	if h.nextEphemeral > 65535 {
		h.nextEphemeral = 40000
	}
	return p
}
