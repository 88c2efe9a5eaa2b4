package transport

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/aemp-go/dataconn/core/handshake"
	"github.com/aemp-go/dataconn/core/peer"
	"github.com/aemp-go/dataconn/core/wire"
)

// SplitPortID splits "NODE#NAME" into its parts.
func SplitPortID(portID string) (node, name string, err error) {
	return peer.SplitPortID(portID)
}

// Send sends [data...] to the port portID ("NODE#NAME"). Delivery to a
// remote port is asynchronous: Send queues the message and opens the
// messaging connection if needed; a message to an unreachable node is
// dropped and the node's monitors are told.
func (n *Node) Send(portID string, data ...any) error {
	return n.input(originLocal, func(now time.Time) error {
		return n.sendLocked(now, portID, data)
	})
}

// sendLocked is Send under n.mu. A message for an unknown local port is
// dropped without an error (as it would be on a remote node).
func (n *Node) sendLocked(now time.Time, portID string, data []any) error {
	err := n.m.Send(now, portID, data...)
	if errors.Is(err, peer.ErrUnknownPort) {
		n.log.Debug("message for unknown port dropped", "port", portID)
		return nil
	}
	return n.sendErr(err)
}

// sendTo queues msg ([NAME, data...] or a node-port message) for node,
// connecting in the background when needed.
func (n *Node) sendTo(node string, msg wire.Message) error {
	return n.input(originLocal, func(now time.Time) error {
		return n.sendErr(n.m.SendTo(now, node, msg))
	})
}

// Connect makes sure a messaging connection to nodeID exists, dialing its
// known addresses if needed.
func (n *Node) Connect(ctx context.Context, nodeID string) error {
	ch := make(chan error, 1)
	connect := func(now time.Time) error {
		if n.closed {
			return ErrClosed
		}
		if n.m.Current(nodeID) != 0 {
			ch <- nil
			return nil
		}
		if n.waiters == nil {
			n.waiters = map[string][]chan error{}
		}
		n.waiters[nodeID] = append(n.waiters[nodeID], ch)
		if err := n.m.Connect(now, nodeID); err != nil {
			n.dropWaiterLocked(nodeID, ch)
			if errors.Is(err, peer.ErrSelf) {
				return fmt.Errorf("aemp: %s: %w", nodeID, err)
			}
			return n.publicErr(err)
		}
		return nil
	}
	// The Dial the machine emits for nodeID, if any, is taken and run
	// here: this goroutine would only wait for it, and the hand-overs to
	// a dialing goroutine and back are on the connect's critical path.
	slot, err := n.inputOn(originLocal, connect, false, nodeID)
	if slot.taken {
		n.dialInline(ctx, slot.dial)
	}
	if err != nil {
		return err
	}
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
		n.mu.Lock()
		n.dropWaiterLocked(nodeID, ch)
		n.mu.Unlock()
		return ctx.Err()
	}
}

func (n *Node) dropWaiterLocked(node string, ch chan error) {
	ws := n.waiters[node]
	for i, c := range ws {
		if c == ch {
			n.waiters[node] = append(ws[:i:i], ws[i+1:]...)
			break
		}
	}
	if len(n.waiters[node]) == 0 {
		delete(n.waiters, node)
	}
	if len(n.waiters) == 0 {
		n.waiters = nil // an idle node keeps no map
	}
}

// dialSlot is where Connect takes the machine's Dial of its node (see
// actLocked).
type dialSlot struct {
	on, taken bool
	peer      string
	dial      peer.Dial
}

// runDial carries out the machine's Dial on a goroutine of its own.
func (n *Node) runDial(a peer.Dial) {
	defer n.wg.Done()
	n.dial(a, nil)
}

// dialInline carries out the machine's Dial on the goroutine of the
// Connect whose ctx is given. The dial is the machine's, not the
// caller's: other Connects and queued messages may wait for it. So ctx
// ending abandons this run of it (Connect returns at once) and the same
// Dial starts again on a goroutine of its own, unless it already
// succeeded.
func (n *Node) dialInline(ctx context.Context, a peer.Dial) {
	defer n.wg.Done()
	if !n.dial(a, ctx) {
		n.mu.Lock()
		if !n.closed {
			n.wg.Add(1)
			go n.runDial(a)
		}
		n.mu.Unlock()
	}
}

// dial is runDial's work: happy-eyeballs handshakes to the peer's
// addresses, ending in ConnUp or DialFailed. With caller non-nil, its end
// cancels the handshakes; a dial that failed after it ended reports
// nothing and returns false.
func (n *Node) dial(a peer.Dial, caller context.Context) bool {
	ctx, cancel := context.WithTimeout(n.ctx, peer.ConnectWindow(n.cfg.HandshakeTimeout))
	defer cancel()
	if caller != nil {
		stop := context.AfterFunc(caller, cancel)
		defer stop()
	}
	c, res, _, err := n.dialFirst(ctx, a.Addrs, func(ctx context.Context, addr string) (net.Conn, *handshake.Result, error) {
		c, res, err := n.dialHandshake(ctx, addr, wire.ProtocolMessaging, n.withTicket(a.Peer, nil))
		if err == nil {
			if werr := peer.CheckDialed(addr, a.Peer, res.PeerNodeID); werr != nil {
				c.Close()
				return nil, nil, werr
			}
		}
		return c, res, err
	})
	if err == nil {
		n.mu.Lock()
		id := n.newConnIDLocked()
		n.mu.Unlock()
		err = n.addConnOn(id, c, res, peer.ConnInfo{Outbound: true, Attempt: a.Attempt}, caller != nil)
		if err == nil || errors.Is(err, ErrClosed) {
			return true
		}
	} else if caller != nil && caller.Err() != nil {
		return false // perhaps only because caller ended
	}
	n.input(a.Peer, func(now time.Time) error { return n.m.DialFailed(now, a.Peer, a.Attempt, err) })
	return true
}

// runDialSeed carries out the machine's DialSeed: a handshake with a seed
// address, whose node ID comes from its greeting.
func (n *Node) runDialSeed(a peer.DialSeed) {
	defer n.wg.Done()
	c, res, err := n.dialHandshake(n.ctx, a.Addr, wire.ProtocolMessaging, nil)
	if err == nil {
		n.mu.Lock()
		id := n.newConnIDLocked()
		n.m.AddPeer(res.PeerNodeID, a.Addr)
		n.mu.Unlock()
		err = n.addConn(id, c, res, peer.ConnInfo{Outbound: true, Attempt: a.Attempt, Seed: a.Addr})
		if err == nil || errors.Is(err, ErrClosed) || errors.Is(err, peer.ErrSelf) {
			return
		}
	}
	n.log.Debug("seed unreachable", "addr", a.Addr, "attempt", a.Attempt, "err", err)
	n.input(originLocal, func(now time.Time) error { return n.m.SeedFailed(now, a.Addr, a.Attempt, err) })
}

// ConnectAddr opens a messaging connection to a seed address and returns
// the node ID the peer announced. The address is recorded for that node.
func (n *Node) ConnectAddr(ctx context.Context, addr string) (string, error) {
	c, res, err := n.dialHandshake(ctx, addr, wire.ProtocolMessaging, nil)
	if err != nil {
		return "", err
	}
	n.mu.Lock()
	id := n.newConnIDLocked()
	n.m.AddPeer(res.PeerNodeID, addr)
	n.mu.Unlock()
	if err := n.addConn(id, c, res, peer.ConnInfo{Outbound: true}); err != nil {
		if errors.Is(err, peer.ErrSelf) {
			return "", fmt.Errorf("aemp: %s: %w", addr, err)
		}
		return "", err
	}
	return res.PeerNodeID, nil
}

// dialFirst dials addrs on the happy-eyeballs schedule of a
// wire.DialPlan (the one the rendezvous machine dials data connections
// with): the next address a stagger after the previous one, or at once
// when a dial fails. It returns the first success; the others are
// cancelled and closed.
func (n *Node) dialFirst(ctx context.Context, addrs []string, dial func(context.Context, string) (net.Conn, *handshake.Result, error)) (net.Conn, *handshake.Result, string, error) {
	if len(addrs) == 0 {
		return nil, nil, "", ErrNoRoute
	}
	if len(addrs) == 1 {
		// Nothing to race: dial on this goroutine, without the hand-offs
		// of a dialing goroutine, a timer and a channel on the way in and
		// out (a connect is CPU-bound on a busy machine, so they show).
		c, res, err := dial(ctx, addrs[0])
		if err != nil {
			return nil, nil, "", err
		}
		return c, res, addrs[0], nil
	}
	type result struct {
		c    net.Conn
		res  *handshake.Result
		addr string
		err  error
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	plan := wire.NewDialPlan(addrs, wire.DefaultDialStagger)
	results := make(chan result, len(addrs))
	// Stopped until the first stagger is due (a stopped timer's channel
	// stays empty since Go 1.23, so nothing needs draining).
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	start := func() {
		addr, ok := plan.Start(time.Now())
		if !ok {
			return
		}
		go func() {
			c, res, err := dial(ctx, addr)
			results <- result{c, res, addr, err}
		}()
		if due := plan.Due(); !due.IsZero() {
			timer.Reset(time.Until(due))
		}
	}
	start()
	for !plan.Exhausted() {
		select {
		case r := <-results:
			if r.err == nil {
				plan.Ended(r.addr)
				cancel()
				// close later successes
				if pending := plan.InFlight(); pending > 0 {
					go func() {
						for range pending {
							if r := <-results; r.c != nil {
								r.c.Close()
							}
						}
					}()
				}
				return r.c, r.res, r.addr, nil
			}
			plan.Failed(r.addr, r.err)
			if plan.Remaining() {
				timer.Stop()
				start()
			}
		case <-timer.C:
			if plan.Remaining() {
				start()
			}
		}
	}
	return nil, nil, "", plan.LastErr
}

// Announce sends this node's listener addresses to nodeID in the form a
// Perl 2.x node records (g_slave).
func (n *Node) Announce(nodeID string) error {
	return n.sendTo(nodeID, wire.GSlaveMsg(n.id, n.Addrs()))
}

// FindAddrs asks nodeID (typically a seed) for the listener addresses of
// target (g_find); the answer is recorded when it arrives.
func (n *Node) FindAddrs(nodeID, target string) error {
	return n.sendTo(nodeID, wire.GFindMsg(target))
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
	if err := n.sendTo(node, wire.SndMsg(p.ID())); err != nil {
		return err
	}
	select {
	case <-got:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
