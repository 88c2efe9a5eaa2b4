package transport

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aemp-go/dataconn/core"
)

// peer is what the node knows about another node.
type peer struct {
	id      string
	addrs   []string
	conn    *msgConn   // the current messaging connection, nil when down
	retired []*msgConn // connections that lost a tie-break and drain
	dialing chan struct{}
	dialErr error
	isGo    bool
	window  int // data-connection window it announced (core.KeyDataConnWindow)
	mons    map[uint64]func(up bool, err error)
	pending []core.Message // waiting for a connection, in order
	// dialingOut is set while we dial the peer ourselves (p.dialing is
	// then ours); an accepted handshake from the peer uses p.dialing too.
	dialingOut bool
	// up is closed (and replaced) whenever a connection is registered.
	up chan struct{}
}

// Sizes of a messaging connection's read buffer.
const (
	minReadBuf = 512
	maxReadBuf = 32 << 10
)

// maxPendingMessages bounds the messages queued for a node that is being
// connected to.
const maxPendingMessages = 4096

func (p *peer) addAddrs(addrs []string) {
	for _, a := range addrs {
		dup := false
		for _, b := range p.addrs {
			if a == b {
				dup = true
				break
			}
		}
		if !dup && a != "" {
			p.addrs = append(p.addrs, a)
		}
	}
}

func (p *peer) allConns() []*msgConn {
	out := append([]*msgConn(nil), p.retired...)
	if p.conn != nil {
		out = append(out, p.conn)
	}
	return out
}

func (n *Node) peerLocked(id string) *peer {
	p := n.peers[id]
	if p == nil {
		p = &peer{id: id, mons: map[uint64]func(bool, error){}, up: make(chan struct{})}
		n.peers[id] = p
	}
	return p
}

// msgConn is one established messaging connection.
type msgConn struct {
	n      *Node
	peerID string
	dialer string // node that dialed it (tie-break)
	conn   net.Conn
	res    *core.Result
	codec  core.Codec
	// direct is the network for direct data streams to the peer on this
	// connection, nil when not allowed (see datastream.go).
	direct MuxNetwork

	mu       sync.Mutex
	queue    [][]byte
	queued   int
	err      error // set once shut down
	retiring bool
	wake     chan struct{} // signalled (buffered, 1) whenever kick runs
	done     chan struct{} // closed by shutdown
	// writing is set while a writer goroutine runs (started on demand
	// by kick, it ends when the queue is empty: an idle connection has
	// none). keep is the keepalive timer (no goroutine while it waits);
	// lastWrite is when the writer last wrote.
	writing   bool
	keep      Timer
	lastWrite time.Time
	// room, made when a sender waits in SendContext, is closed when the
	// writer takes the queue or the connection ends: the sender retries.
	room chan struct{}
}

// addConn registers an authenticated messaging connection.
func (n *Node) addConn(c net.Conn, res *core.Result, dialer string) *msgConn {
	codec, ok := core.CodecByName(res.SendFraming)
	if !ok {
		c.Close()
		return nil
	}
	mc := &msgConn{n: n, peerID: res.PeerNodeID, dialer: dialer, conn: c, res: res, codec: codec,
		wake: make(chan struct{}, 1), done: make(chan struct{})}
	mc.direct = n.directMux(c, res)
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		c.Close()
		return nil
	}
	p := n.peerLocked(res.PeerNodeID)
	_, p.isGo = res.Peer.Get(core.KeyGo)
	p.window = 0
	if v, ok := res.Peer.Get(core.KeyDataConnWindow); ok && p.isGo {
		if w, err := strconv.Atoi(v); err == nil && w > 0 {
			p.window = w
		}
	}
	var loser *msgConn
	up := false
	if old := p.conn; old != nil {
		// Two connections between the same pair: keep the one dialed by
		// the lower node ID; from the same dialer, the newer one.
		low := n.id
		if p.id < low {
			low = p.id
		}
		if old.dialer == dialer || dialer == low {
			loser, p.conn = old, mc
		} else {
			loser = mc
		}
		p.retired = append(p.retired, loser)
	} else {
		p.conn = mc
		up = true
	}
	if p.conn == mc {
		if loser != nil {
			// What the replaced connection had not written yet goes
			// first on the winner, before anything sent from now on.
			mc.queue = loser.retireTakeQueue()
			for _, b := range mc.queue {
				mc.queued += len(b)
			}
		}
		mc.enqueueUnchecked(p.pending)
		p.pending = nil
		close(p.up)
		p.up = make(chan struct{})
	}
	mons := n.nodeMonitorsLocked(p)
	n.mu.Unlock()

	n.wg.Add(1)
	go mc.readLoop()
	mc.startKeepalive()
	mc.kick()
	if loser != nil {
		loser.retire()
	}
	if up {
		n.log.Debug("node up", "peer", res.PeerNodeID, "framing", res.SendFraming+"/"+res.RecvFraming)
		for _, f := range mons {
			f(true, nil)
		}
	}
	return mc
}

func (p *peer) monitorsLocked() []func(bool, error) {
	out := make([]func(bool, error), 0, len(p.mons))
	for _, f := range p.mons {
		out = append(out, f)
	}
	return out
}

// connEnded is called once per msgConn when it is gone.
func (n *Node) connEnded(mc *msgConn, err error) {
	n.mu.Lock()
	p := n.peers[mc.peerID]
	var mons []func(bool, error)
	down := false
	if p != nil {
		for i, r := range p.retired {
			if r == mc {
				p.retired = append(p.retired[:i], p.retired[i+1:]...)
				break
			}
		}
		if p.conn == mc {
			p.conn = nil
			down = true
			mons = n.nodeMonitorsLocked(p)
		}
	}
	closed := n.closed
	n.mu.Unlock()
	if down {
		n.log.Debug("node down", "peer", mc.peerID, "err", err)
		for _, f := range mons {
			f(false, err)
		}
		if !closed {
			n.dc.PeerDown(mc.peerID, err)
		}
	}
}

func (mc *msgConn) enqueue(msg core.Message) error {
	b, err := mc.codec.AppendMessage(nil, msg)
	if err != nil {
		return err
	}
	return mc.enqueueBytes(b)
}

func (mc *msgConn) enqueueBytes(b []byte) error {
	mc.mu.Lock()
	if mc.err != nil {
		err := mc.err
		mc.mu.Unlock()
		return err
	}
	if mc.queued+len(b) > mc.n.cfg.MaxSendQueue && mc.queued > 0 {
		// This message does not fit: its sender is told (or waits, with
		// SendContext); the connection and what is queued stay.
		mc.mu.Unlock()
		return &SendQueueError{Node: mc.peerID, Limit: "MaxSendQueue", Max: mc.n.cfg.MaxSendQueue, Unit: "bytes"}
	}
	mc.queue = append(mc.queue, b)
	mc.queued += len(b)
	mc.mu.Unlock()
	mc.kick()
	return nil
}

// enqueueUnchecked queues msgs without the overflow check (it must not
// shut down: the caller holds the node lock). The pending queue it takes
// is bounded by maxPendingMessages.
func (mc *msgConn) enqueueUnchecked(msgs []core.Message) {
	if len(msgs) == 0 {
		return
	}
	mc.mu.Lock()
	for _, m := range msgs {
		b, err := mc.codec.AppendMessage(nil, m)
		if err != nil {
			mc.n.log.Debug("message not encodable; dropped", "peer", mc.peerID, "err", err)
			continue
		}
		mc.queue = append(mc.queue, b)
		mc.queued += len(b)
	}
	mc.mu.Unlock()
	mc.kick()
}

// retireTakeQueue marks mc as retiring and returns what it had queued.
func (mc *msgConn) retireTakeQueue() [][]byte {
	mc.mu.Lock()
	q := mc.queue
	mc.queue, mc.queued = nil, 0
	mc.retiring = true
	mc.mu.Unlock()
	return q
}

// retire stops using mc for new messages: what is queued is flushed, then
// the write side is closed; reading goes on until the peer closes too, so
// nothing in flight is lost.
func (mc *msgConn) retire() {
	mc.mu.Lock()
	mc.retiring = true
	mc.mu.Unlock()
	mc.kick()
}

// shutdown closes the connection with err (first error wins).
func (mc *msgConn) shutdown(err error) {
	mc.mu.Lock()
	if mc.err != nil {
		mc.mu.Unlock()
		return
	}
	mc.err = err
	mc.queue, mc.queued = nil, 0
	close(mc.done)
	if mc.keep != nil {
		mc.keep.Stop()
	}
	mc.mu.Unlock()
	mc.conn.Close()
	mc.signalRoom()
	mc.n.connEnded(mc, err)
}

// kick starts the writer goroutine unless one runs or the connection is
// shut down; the caller must not hold mc.mu. An idle connection has no
// writer: it costs no goroutine.
func (mc *msgConn) kick() {
	select {
	case mc.wake <- struct{}{}:
	default:
	}
	mc.mu.Lock()
	if mc.writing || mc.err != nil {
		mc.mu.Unlock()
		return
	}
	mc.writing = true
	// The reader goroutine still counts in n.wg while mc is not shut
	// down, so this Add cannot race with Close's Wait at zero.
	mc.n.wg.Add(1)
	mc.mu.Unlock()
	go mc.writeLoop()
}

// startKeepalive arms the keepalive timer: when nothing was written for
// KeepAlive, a keepalive message is queued.
func (mc *msgConn) startKeepalive() {
	keep := mc.n.cfg.KeepAlive
	var tick func()
	tick = func() {
		mc.mu.Lock()
		if mc.err != nil {
			mc.mu.Unlock()
			return
		}
		now := mc.n.clock.Now()
		idle := now.Sub(mc.lastWrite)
		next := keep - idle
		send := false
		if idle >= keep && len(mc.queue) == 0 && !mc.retiring && !mc.writing {
			mc.queue = append(mc.queue, mc.keepaliveMsg())
			send = true
			next = keep
		}
		if next <= 0 {
			next = keep
		}
		mc.keep = mc.n.clock.AfterFunc(next, tick)
		mc.mu.Unlock()
		if send {
			mc.kick()
		}
	}
	mc.mu.Lock()
	mc.lastWrite = mc.n.clock.Now()
	if mc.err == nil {
		mc.keep = mc.n.clock.AfterFunc(keep, tick)
	}
	mc.mu.Unlock()
}

// keepaliveMsg returns the encoded ["", "devnull"].
func (mc *msgConn) keepaliveMsg() []byte {
	b, _ := mc.codec.AppendMessage(nil, core.Message{"", "devnull"})
	return b
}

// writeLoop writes what is queued until the queue is empty, then ends;
// a retiring connection's write side is closed once it is flushed.
func (mc *msgConn) writeLoop() {
	defer mc.n.wg.Done()
	for {
		mc.mu.Lock()
		q := mc.queue
		mc.queue, mc.queued = nil, 0
		retiring := mc.retiring
		if len(q) == 0 || mc.err != nil {
			mc.writing = false
			failed := mc.err != nil
			mc.mu.Unlock()
			if retiring && !failed {
				if cw, ok := mc.conn.(CloseWriter); ok {
					cw.CloseWrite()
				} else {
					mc.shutdown(ErrConnReplaced)
				}
			}
			return
		}
		mc.mu.Unlock()
		mc.signalRoom()
		mc.conn.SetWriteDeadline(time.Now().Add(mc.n.cfg.PeerTimeout))
		for _, b := range q {
			if _, err := mc.conn.Write(b); err != nil {
				mc.mu.Lock()
				mc.writing = false
				mc.mu.Unlock()
				mc.shutdown(fmt.Errorf("aemp: write to %s: %w", mc.peerID, err))
				return
			}
		}
		mc.mu.Lock()
		mc.lastWrite = mc.n.clock.Now()
		mc.mu.Unlock()
	}
}

func (mc *msgConn) readLoop() {
	defer mc.n.wg.Done()
	codec, ok := core.CodecByName(mc.res.RecvFraming)
	if !ok {
		mc.shutdown(fmt.Errorf("aemp: peer framing %q unsupported", mc.res.RecvFraming))
		return
	}
	dec := codec.NewDecoder(mc.n.cfg.MaxFrame)
	// The read buffer grows while reads fill it and shrinks back once
	// they do not, so an idle connection holds only the small one.
	small := make([]byte, minReadBuf)
	buf := small
	for {
		mc.conn.SetReadDeadline(time.Now().Add(mc.n.cfg.PeerTimeout))
		nr, err := mc.conn.Read(buf)
		if nr > 0 {
			ferr := dec.Feed(buf[:nr])
			// Messages completed before a framing error are delivered.
			for {
				msg, ok, derr := dec.Next()
				if ok {
					mc.n.dispatch(mc, msg)
					continue
				}
				if derr != nil && ferr == nil {
					ferr = derr
				}
				break
			}
			if ferr != nil {
				mc.shutdown(fmt.Errorf("aemp: from %s: %w", mc.peerID, ferr))
				return
			}
			switch {
			case nr == len(buf) && len(buf) < maxReadBuf:
				buf = make([]byte, 2*len(buf))
			case nr < len(buf)/8 && len(buf) > minReadBuf:
				buf = small
			}
		}
		if err != nil {
			if isTimeout(err) {
				err = ErrPeerTimeout
			}
			mc.shutdown(fmt.Errorf("aemp: connection to %s: %w", mc.peerID, err))
			return
		}
	}
}

// ---- sending ----

// SplitPortID splits "NODE#NAME" into its parts.
func SplitPortID(portID string) (node, name string, err error) {
	i := strings.LastIndexByte(portID, '#')
	if i <= 0 {
		return "", "", fmt.Errorf("%w: %q", ErrBadPortID, portID)
	}
	return portID[:i], portID[i+1:], nil
}

// Send sends [data...] to the port portID ("NODE#NAME"). Delivery to a
// remote port is asynchronous: Send queues the message and opens the
// messaging connection if needed; a message to an unreachable node is
// dropped and the node's monitors are told.
func (n *Node) Send(portID string, data ...any) error {
	node, name, err := SplitPortID(portID)
	if err != nil {
		return err
	}
	msg := append(core.Message{name}, data...)
	if node == n.id {
		n.deliverLocal(name, data, n.id)
		return nil
	}
	return n.sendTo(node, msg)
}

// sendTo queues msg for node, connecting in the background when needed.
// Messages to one node keep their order.
func (n *Node) sendTo(node string, msg core.Message) error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return ErrClosed
	}
	p := n.peerLocked(node)
	if mc := p.conn; mc != nil {
		n.mu.Unlock()
		return mc.enqueue(msg)
	}
	if len(p.pending) >= maxPendingMessages {
		n.mu.Unlock()
		return &SendQueueError{Node: node, Limit: "pending messages while connecting", Max: maxPendingMessages, Unit: "messages"}
	}
	p.pending = append(p.pending, msg)
	start := len(p.pending) == 1 && p.dialing == nil
	n.mu.Unlock()
	if start {
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			ctx, cancel := context.WithTimeout(n.ctx, n.cfg.HandshakeTimeout*2)
			defer cancel()
			if _, err := n.connect(ctx, node); err != nil {
				n.mu.Lock()
				dropped := len(p.pending)
				if p.conn == nil {
					p.pending = nil
				}
				n.mu.Unlock()
				n.log.Debug("dropping messages: node unreachable", "peer", node, "count", dropped, "err", err)
			}
		}()
	}
	return nil
}

// Connect makes sure a messaging connection to nodeID exists, dialing its
// known addresses if needed.
func (n *Node) Connect(ctx context.Context, nodeID string) error {
	_, err := n.connect(ctx, nodeID)
	return err
}

func (n *Node) connect(ctx context.Context, node string) (*msgConn, error) {
	if node == n.id {
		return nil, fmt.Errorf("aemp: %s: cannot open a messaging connection to myself", node)
	}
	for {
		n.mu.Lock()
		if n.closed {
			n.mu.Unlock()
			return nil, ErrClosed
		}
		p := n.peerLocked(node)
		if p.conn != nil {
			mc := p.conn
			n.mu.Unlock()
			return mc, nil
		}
		if ch := p.dialing; ch != nil {
			n.mu.Unlock()
			select {
			case <-ch:
				n.mu.Lock()
				err := p.dialErr
				mc := p.conn
				n.mu.Unlock()
				if mc != nil {
					return mc, nil
				}
				if err != nil {
					return nil, err
				}
				continue
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		addrs := n.ordered(p.addrs)
		ch := make(chan struct{})
		p.dialing, p.dialingOut = ch, true
		n.mu.Unlock()

		mc, err := n.dialMessaging(ctx, node, addrs)
		if err != nil && n.id > node && errors.Is(err, core.ErrPeerClosed) {
			// The peer may have refused our dial because it is dialing
			// us at the same time (the lower ID's connection wins): its
			// connection arrives within a handshake.
			mc = n.awaitConn(ctx, p)
		}
		n.mu.Lock()
		p.dialing, p.dialingOut = nil, false
		p.dialErr = err
		if mc == nil && p.conn != nil {
			mc = p.conn
		}
		if mc != nil {
			err = nil
		}
		n.mu.Unlock()
		close(ch)
		return mc, err
	}
}

// awaitConn waits up to a handshake timeout for a connection to p.
func (n *Node) awaitConn(ctx context.Context, p *peer) *msgConn {
	t := time.NewTimer(n.cfg.HandshakeTimeout)
	defer t.Stop()
	for {
		n.mu.Lock()
		mc, up := p.conn, p.up
		n.mu.Unlock()
		if mc != nil {
			return mc
		}
		select {
		case <-up:
		case <-t.C:
			return nil
		case <-ctx.Done():
			return nil
		}
	}
}

// admitIncoming decides on an incoming messaging handshake from node at
// the greeting: when both nodes dial each other at once, only the
// connection dialed by the lower node ID is kept, so no message can
// overtake another on a second connection. It returns a function to call
// when the handshake has ended.
func (n *Node) admitIncoming(node string) (done func(), err error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil, ErrClosed
	}
	p := n.peerLocked(node)
	if n.id < node && ((p.dialing != nil && p.dialingOut) || (p.conn != nil && p.conn.dialer == n.id)) {
		return nil, fmt.Errorf("%w: %s and %s dialed each other; the lower ID's connection is kept", ErrConnReplaced, n.id, node)
	}
	if p.dialing != nil {
		return func() {}, nil
	}
	ch := make(chan struct{})
	p.dialing = ch
	return func() {
		n.mu.Lock()
		if p.dialing == ch {
			p.dialing = nil
		}
		n.mu.Unlock()
		close(ch)
	}, nil
}

func (n *Node) dialMessaging(ctx context.Context, node string, addrs []string) (*msgConn, error) {
	if len(addrs) == 0 {
		return nil, fmt.Errorf("%s: %w", node, ErrNoRoute)
	}
	c, res, _, err := n.dialFirst(ctx, addrs, func(ctx context.Context, a string) (net.Conn, *core.Result, error) {
		c, res, err := n.dialHandshake(ctx, a, core.ProtocolMessaging, n.withTicket(node, nil))
		if err == nil && res.PeerNodeID != node {
			c.Close()
			return nil, nil, fmt.Errorf("%w: %s answered as %q, expected %q", ErrWrongPeer, a, res.PeerNodeID, node)
		}
		return c, res, err
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", node, err)
	}
	mc := n.addConn(c, res, n.id)
	if mc == nil {
		return nil, ErrClosed
	}
	return mc, nil
}

// ConnectAddr opens a messaging connection to a seed address and returns
// the node ID the peer announced. The address is recorded for that node.
func (n *Node) ConnectAddr(ctx context.Context, addr string) (string, error) {
	c, res, err := n.dialHandshake(ctx, addr, core.ProtocolMessaging, nil)
	if err != nil {
		return "", err
	}
	n.mu.Lock()
	n.peerLocked(res.PeerNodeID).addAddrs([]string{addr})
	n.mu.Unlock()
	if n.addConn(c, res, n.id) == nil {
		return "", ErrClosed
	}
	return res.PeerNodeID, nil
}

// dialStagger is the happy-eyeballs delay between dial attempts.
const dialStagger = 250 * time.Millisecond

// dialFirst dials addrs with staggered concurrent attempts and returns the
// first success; the others are cancelled and closed.
func (n *Node) dialFirst(ctx context.Context, addrs []string, dial func(context.Context, string) (net.Conn, *core.Result, error)) (net.Conn, *core.Result, string, error) {
	type result struct {
		c    net.Conn
		res  *core.Result
		addr string
		err  error
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	results := make(chan result, len(addrs))
	started, finished := 0, 0
	var lastErr error
	timer := time.NewTimer(0)
	defer timer.Stop()
	<-timer.C
	start := func() {
		a := addrs[started]
		started++
		go func() {
			c, res, err := dial(ctx, a)
			results <- result{c, res, a, err}
		}()
		if started < len(addrs) {
			timer.Reset(dialStagger)
		}
	}
	start()
	for finished < started {
		select {
		case r := <-results:
			finished++
			if r.err == nil {
				cancel()
				// close later successes
				go func(pending int) {
					for i := 0; i < pending; i++ {
						if r := <-results; r.c != nil {
							r.c.Close()
						}
					}
				}(started - finished)
				return r.c, r.res, r.addr, nil
			}
			lastErr = r.err
			if started < len(addrs) {
				timer.Stop()
				start()
			}
		case <-timer.C:
			if started < len(addrs) {
				start()
			}
		}
	}
	return nil, nil, "", lastErr
}

// ---- ports ----

// Port is a local port: messages sent to its ID call its handler.
type Port struct {
	n       *Node
	name    string
	handler func(data []any)

	mu     sync.Mutex
	killed bool
	reason []any
	mons   map[uint64]func(reason []any)
}

// NewPort creates a local port whose handler receives every message sent
// to it (without the port name). The handler runs on the goroutine that
// delivered the message (a connection's reader): it must not block long.
func (n *Node) NewPort(handler func(data []any)) *Port {
	name, err := n.randomID()
	if err != nil {
		n.mu.Lock()
		n.seq++
		name = fmt.Sprintf("p%d", n.seq)
		n.mu.Unlock()
	}
	return n.newNamedPort(name, handler)
}

func (n *Node) newNamedPort(name string, handler func([]any)) *Port {
	p := &Port{n: n, name: name, handler: handler, mons: map[uint64]func([]any){}}
	n.mu.Lock()
	n.ports[name] = p
	n.mu.Unlock()
	return p
}

// ID returns "NODE#NAME".
func (p *Port) ID() string { return p.n.id + "#" + p.name }

// Name returns the port's local name.
func (p *Port) Name() string { return p.name }

// Kill removes the port and tells its monitors the reason. Killing a
// killed port does nothing.
func (p *Port) Kill(reason ...any) {
	p.mu.Lock()
	if p.killed {
		p.mu.Unlock()
		return
	}
	p.killed = true
	p.reason = reason
	mons := make([]func([]any), 0, len(p.mons))
	for _, f := range p.mons {
		mons = append(mons, f)
	}
	p.mons = nil
	p.mu.Unlock()
	p.n.mu.Lock()
	if p.n.ports[p.name] == p {
		delete(p.n.ports, p.name)
	}
	p.n.mu.Unlock()
	for _, f := range mons {
		f(reason)
	}
}

// Monitor calls f once with the kill reason when the port is killed (at
// once if it already was). The returned function cancels the monitor.
func (p *Port) Monitor(f func(reason []any)) (cancel func()) {
	p.mu.Lock()
	if p.killed {
		r := p.reason
		p.mu.Unlock()
		f(r)
		return func() {}
	}
	p.n.mu.Lock()
	p.n.monSeq++
	k := p.n.monSeq
	p.n.mu.Unlock()
	p.mons[k] = f
	p.mu.Unlock()
	return func() {
		p.mu.Lock()
		delete(p.mons, k)
		p.mu.Unlock()
	}
}

// Kill kills the port portID with reason: a local port at once, a remote
// one by sending kil1 to its node.
func (n *Node) Kill(portID string, reason ...any) error {
	node, name, err := SplitPortID(portID)
	if err != nil {
		return err
	}
	if node == n.id {
		n.mu.Lock()
		p := n.ports[name]
		n.mu.Unlock()
		if p != nil {
			p.Kill(reason...)
		}
		return nil
	}
	return n.sendTo(node, core.KillMsg(name, reason...))
}

// MonitorNodes calls f whenever the messaging connection to any node goes
// up or down. The returned function cancels the monitor.
func (n *Node) MonitorNodes(f func(nodeID string, up bool, err error)) (cancel func()) {
	n.mu.Lock()
	n.monSeq++
	k := n.monSeq
	if n.allMons == nil {
		n.allMons = map[uint64]func(string, bool, error){}
	}
	n.allMons[k] = f
	n.mu.Unlock()
	return func() {
		n.mu.Lock()
		delete(n.allMons, k)
		n.mu.Unlock()
	}
}

// nodeMonitorsLocked returns the monitors of p and the any-node monitors,
// bound to p's ID.
func (n *Node) nodeMonitorsLocked(p *peer) []func(bool, error) {
	out := p.monitorsLocked()
	for _, f := range n.allMons {
		out = append(out, func(up bool, err error) { f(p.id, up, err) })
	}
	return out
}

// MonitorNode calls f when the messaging connection to nodeID goes up or
// down. The returned function cancels the monitor.
func (n *Node) MonitorNode(nodeID string, f func(up bool, err error)) (cancel func()) {
	n.mu.Lock()
	p := n.peerLocked(nodeID)
	n.monSeq++
	k := n.monSeq
	p.mons[k] = f
	n.mu.Unlock()
	return func() {
		n.mu.Lock()
		delete(p.mons, k)
		n.mu.Unlock()
	}
}

func (n *Node) deliverLocal(name string, data []any, from string) {
	n.mu.Lock()
	p := n.ports[name]
	n.mu.Unlock()
	if p == nil {
		n.log.Debug("message for unknown port dropped", "port", name, "from", from)
		return
	}
	p.handler(data)
}

// dispatch handles one message received from mc's peer.
func (n *Node) dispatch(mc *msgConn, msg core.Message) {
	if len(msg) == 0 {
		return
	}
	port, ok := core.AsString(msg[0])
	if !ok {
		n.log.Debug("message with a non-string port dropped", "from", mc.peerID)
		return
	}
	if port != "" {
		n.deliverLocal(port, msg[1:], mc.peerID)
		return
	}
	nm, err := core.ParseNodeMsg(msg[1:])
	if err != nil {
		n.log.Debug("malformed node-port message ignored", "from", mc.peerID, "err", err)
		return
	}
	from := mc.peerID
	if mc.res.Untrusted && n.refuseUntrusted(from, nm) {
		return
	}
	switch m := nm.(type) {
	case core.NodeMsgSnd:
		if err := n.Send(m.Port, m.Data...); err != nil {
			n.log.Debug("snd failed", "from", from, "port", m.Port, "err", err)
		}
	case core.NodeMsgKill:
		n.mu.Lock()
		p := n.ports[m.Port]
		watch := n.killWatch[m.Port]
		n.mu.Unlock()
		if p == nil && watch != nil {
			reason := m.Reason
			if r := core.KillReasonFromValues(reason); r.Family == core.KillReasonDataConn && r.Message == "" {
				r.Message = from + ": data connection not established (the target gave up on it without a reason)"
				reason = r.Values()
			}
			watch(reason)
		}
		if p != nil {
			reason := m.Reason
			if r := core.KillReasonFromValues(reason); r.Family == core.KillReasonDataConn && r.Message == "" {
				// A Perl target kills with a null message when it gives
				// up on an expectation; always carry a text.
				r.Message = from + ": data connection not established (the target gave up on it without a reason)"
				reason = r.Values()
			}
			p.Kill(reason...)
		}
	case core.NodeMsgKeepalive:
	case core.NodeMsgExpect:
		n.dc.expect(from, m)
	case core.NodeMsgConnect:
		n.dc.connectBack(from, m)
	case core.NodeMsgGSlave:
		n.mu.Lock()
		for id, addrs := range m.Listeners {
			if id != n.id {
				n.peerLocked(id).addAddrs(addrs)
			}
		}
		n.mu.Unlock()
	case core.NodeMsgGFind:
		var addrs []string
		if m.Node == n.id {
			addrs = n.Addrs()
		} else {
			addrs = n.PeerAddrs(m.Node)
		}
		n.sendTo(from, core.GFoundMsg(m.Node, addrs))
	case core.NodeMsgGFound:
		if m.Found && m.Node != n.id {
			n.AddPeer(m.Node, m.Addrs...)
		}
	case core.NodeMsgCall:
		n.mu.Lock()
		f := n.funcs[m.Func]
		n.mu.Unlock()
		if f == nil {
			n.log.Debug("call of unknown function ignored", "from", from, "func", m.Func)
			return
		}
		f(from, m.Args)
	case core.NodeMsgIgnored:
		n.log.Debug("node-port message ignored", "from", from, "tag", m.Tag)
	default:
		n.log.Debug("node-port message ignored", "from", from, "type", fmt.Sprintf("%T", nm))
	}
}

// Announce sends this node's listener addresses to nodeID in the form a
// Perl 2.x node records (g_slave).
func (n *Node) Announce(nodeID string) error {
	return n.sendTo(nodeID, core.GSlaveMsg(n.id, n.Addrs()))
}

// FindAddrs asks nodeID (typically a seed) for the listener addresses of
// target (g_find); the answer is recorded when it arrives.
func (n *Node) FindAddrs(nodeID, target string) error {
	return n.sendTo(nodeID, core.GFindMsg(target))
}

// roundTrip sends ["", "snd", SELF#tmp] to node and waits for the empty
// answer: when it arrives, everything sent before it has been processed.
func (n *Node) roundTrip(ctx context.Context, node string) error {
	got := make(chan struct{}, 1)
	p := n.NewPort(func([]any) {
		select {
		case got <- struct{}{}:
		default:
		}
	})
	defer p.Kill()
	if err := n.sendTo(node, core.SndMsg(p.ID())); err != nil {
		return err
	}
	select {
	case <-got:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
