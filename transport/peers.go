package transport

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/aemp-go/dataconn/core/peer"
	"github.com/aemp-go/dataconn/core/wire"
)

// The peer table: the node's messaging rules live in a peer.Machine (tie
// break, retire and drain, keepalive and peer timeout, the pending queue,
// the dial-back guess, dispatch, kills and monitors). This file feeds it
// inputs under n.mu and runs its actions in order, as etcd-io/raft's
// node.go runs a RawNode: I/O actions (writes, closes, dials, timers) at
// once under the lock, the embedder's callbacks (port handlers, monitors,
// functions) after it, in order per origin.

// origin names the queue an input's callbacks run in: the peer whose
// connection delivered it, or the local API.
const originLocal = ""

// cbQueue runs callbacks of one origin in order; the goroutine that finds
// it idle drains it.
type cbQueue struct {
	items   []func()
	running bool
}

// input runs f on the machine under n.mu with the current time, runs the
// actions it produced and the callbacks of origin. f's error is returned.
func (n *Node) input(origin string, f func(now time.Time) error) error {
	_, err := n.inputOn(origin, f, false, "")
	return err
}

// inputWait is input that returns only when the callbacks of origin
// queued so far have run: a connection's reader uses it, so that a
// message is dispatched (a port handler, an _expect handed to the
// rendezvous) before the next one is read, as the peer expects.
func (n *Node) inputWait(origin string, f func(now time.Time) error) error {
	_, err := n.inputOn(origin, f, true, "")
	return err
}

// inputOn is input (inputWait with wait). With take non-empty, the Dial
// the machine emits for that node in this input, if any, is not started
// but returned (taken; see dialSlot), for the caller to run itself.
func (n *Node) inputOn(origin string, f func(now time.Time) error, wait bool, take string) (dialSlot, error) {
	n.mu.Lock()
	err := f(time.Now())
	n.dialSlot = dialSlot{on: take != "", peer: take}
	after := n.runActionsLocked()
	slot := n.dialSlot
	n.dialSlot = dialSlot{}
	n.mu.Unlock()
	n.finish(origin, after, wait)
	return slot, err
}

// pendingWork is what the actions of one input leave for after the lock:
// connections to close (Close may block on TLS) and callbacks.
type pendingWork struct {
	closes []func()
	// direct callbacks (node monitors) run on the goroutine of the input,
	// not queued behind a peer's messages: a monitor may wait for that
	// peer's messages.
	direct []func()
	cbs    []func()
}

func (n *Node) finish(origin string, w pendingWork, wait bool) {
	for _, f := range w.closes {
		f()
	}
	for _, f := range w.direct {
		f()
	}
	n.mu.Lock()
	if len(w.cbs) == 0 && (!wait || n.cbq[origin] == nil) {
		n.mu.Unlock()
		return
	}
	q := n.cbq[origin]
	if q == nil {
		if n.cbq == nil {
			n.cbq = map[string]*cbQueue{}
		}
		q = &cbQueue{}
		n.cbq[origin] = q
	}
	q.items = append(q.items, w.cbs...)
	if q.running {
		if !wait {
			n.mu.Unlock()
			return
		}
		done := make(chan struct{})
		q.items = append(q.items, func() { close(done) })
		n.mu.Unlock()
		<-done
		return
	}
	q.running = true
	for {
		if len(q.items) == 0 {
			q.running = false
			delete(n.cbq, origin)
			if len(n.cbq) == 0 {
				n.cbq = nil // an idle node keeps no map
			}
			n.mu.Unlock()
			return
		}
		f := q.items[0]
		q.items[0] = nil
		q.items = q.items[1:]
		n.mu.Unlock()
		f()
		n.mu.Lock()
	}
}

// runActionsLocked polls the machine until it has no action left and
// re-arms the timer to its deadline.
func (n *Node) runActionsLocked() pendingWork {
	var w pendingWork
	for {
		a := n.m.Poll()
		if a == nil {
			break
		}
		n.actLocked(a, &w)
	}
	n.armTimerLocked()
	return w
}

func (n *Node) actLocked(a peer.Action, w *pendingWork) {
	switch a := a.(type) {
	case peer.Write:
		if mc := n.mconns[a.Conn]; mc != nil {
			mc.queueLocked(a.Seq, a.Frame)
		}
	case peer.CloseWrite:
		if mc := n.mconns[a.Conn]; mc != nil {
			mc.closeWriteLocked()
		}
	case peer.Close:
		if mc := n.mconns[a.Conn]; mc != nil {
			delete(n.mconns, a.Conn)
			mc.closedLocked(a.Err)
			w.closes = append(w.closes, func() { mc.conn.Close() })
		}
	case peer.PauseRead:
		if mc := n.mconns[a.Conn]; mc != nil {
			mc.paused = true
		}
	case peer.ResumeRead:
		if mc := n.mconns[a.Conn]; mc != nil && mc.paused {
			mc.paused = false
			if mc.resume != nil {
				close(mc.resume)
				mc.resume = nil
			}
		}
	case peer.Dial:
		if n.closed {
			return
		}
		n.wg.Add(1)
		if s := &n.dialSlot; s.on && !s.taken && s.peer == a.Peer {
			s.taken, s.dial = true, a
			return
		}
		go n.runDial(a)
	case peer.DialSeed:
		if n.closed {
			return
		}
		n.wg.Add(1)
		go n.runDialSeed(a)
	case peer.Draw:
		n.m.Drawn(time.Now(), a.Kind, n.uniform())
	case peer.Writable:
		if ch := n.room[a.Peer]; ch != nil {
			close(ch)
			delete(n.room, a.Peer)
			if len(n.room) == 0 {
				n.room = nil
			}
		}
	case peer.NodeUp:
		n.resolveWaitersLocked(a.Peer, nil)
		if n.debugOn() {
			n.log.Debug("node up", "peer", a.Peer)
		}
		mons := n.nodeMonsLocked(a.Monitors)
		if len(mons) == 0 {
			break
		}
		w.direct = append(w.direct, func() {
			for _, f := range mons {
				f(a.Peer, true, nil)
			}
		})
	case peer.NodeDown:
		n.resume.forget(a.Peer)
		err := n.publicErr(a.Err)
		if n.debugOn() {
			n.log.Debug("node down", "peer", a.Peer, "err", err, "dropped", a.Dropped)
		}
		mons := n.nodeMonsLocked(a.Monitors)
		closed := n.closed
		w.direct = append(w.direct, func() {
			for _, f := range mons {
				f(a.Peer, false, err)
			}
			if !closed {
				n.dc.PeerDown(a.Peer, err)
			}
		})
	case peer.Unreachable:
		err := n.publicErr(a.Err)
		n.resolveWaitersLocked(a.Peer, err)
		if a.Dropped > 0 {
			n.log.Debug("dropping messages: node unreachable", "peer", a.Peer, "count", a.Dropped, "err", err)
		}
	case peer.Deliver:
		p := n.ports[a.Port]
		if p == nil {
			n.log.Debug("message for unknown port dropped", "port", a.Port, "from", a.From)
			return
		}
		w.cbs = append(w.cbs, func() { p.handler(a.Data) })
	case peer.Call:
		f := n.funcs[a.Func]
		if f == nil {
			return
		}
		w.cbs = append(w.cbs, func() { f(a.From, a.Args) })
	case peer.PortKilled:
		if p := n.ports[a.Port]; p != nil {
			p.killed, p.reason = true, a.Reason
			delete(n.ports, a.Port)
		}
		mons := n.portMonsLocked(a.Monitors)
		if f := n.killWatch[a.Port]; f != nil {
			delete(n.killWatch, a.Port)
			mons = append(mons, f)
		}
		if len(mons) == 0 {
			// Nobody to tell (a data connection's watch ended by
			// ConnectTo): no callback to queue and run.
			break
		}
		w.cbs = append(w.cbs, func() {
			for _, f := range mons {
				f(a.Reason)
			}
		})
	case peer.MonitorFired:
		mons := n.portMonsLocked(a.Monitors)
		if len(mons) == 0 {
			break
		}
		w.cbs = append(w.cbs, func() {
			for _, f := range mons {
				f(a.Reason)
			}
		})
	case peer.DBChanged:
		var fs []func(string, map[string]any, []string)
		for _, id := range a.Monitors {
			if f := n.dbMons[id]; f != nil {
				fs = append(fs, f)
			}
		}
		w.cbs = append(w.cbs, func() {
			for _, f := range fs {
				f(a.Family, a.Set, a.Del)
			}
		})
	case peer.DataConn:
		switch m := a.Msg.(type) {
		case wire.NodeMsgExpect:
			w.cbs = append(w.cbs, func() { n.dc.expect(a.From, m) })
		case wire.NodeMsgConnect:
			w.cbs = append(w.cbs, func() { n.dc.connectBack(a.From, m) })
		}
	}
}

// debugOn reports whether the logger takes debug records. Records of every
// connection's life check it first: slog.Logger.Debug, even when the
// handler drops the record, boxes its arguments and has a frame large
// enough to grow the small stack of a connection's reader (a copy of the
// whole stack) before it asks the handler.
func (n *Node) debugOn() bool { return n.log.Enabled(context.Background(), slog.LevelDebug) }

// uniform returns a uniform number in [0, 1) from Config.Rand (crypto/rand
// by default; a simulation's deterministic source makes retries
// reproducible).
func (n *Node) uniform() float64 {
	var b [8]byte
	if _, err := io.ReadFull(n.cfg.Rand, b[:]); err != nil {
		return 0.5
	}
	return float64(binary.BigEndian.Uint64(b[:])>>11) / (1 << 53)
}

// nodeMonsLocked returns the node monitor callbacks of ids.
func (n *Node) nodeMonsLocked(ids []peer.MonitorID) []func(string, bool, error) {
	var out []func(string, bool, error)
	for _, id := range ids {
		if f := n.nodeMons[id]; f != nil {
			out = append(out, f)
		}
	}
	return out
}

// portMonsLocked returns (and forgets: they fire once) the port monitor
// callbacks of ids.
func (n *Node) portMonsLocked(ids []peer.MonitorID) []func([]any) {
	var out []func([]any)
	for _, id := range ids {
		if f := n.portMons[id]; f != nil {
			out = append(out, f)
			delete(n.portMons, id)
		}
	}
	return out
}

// armTimerLocked keeps the node's one timer at the machine's deadline.
func (n *Node) armTimerLocked() {
	at, ok := n.m.Deadline()
	if !ok || n.closed {
		if n.timer != nil && !n.timerAt.IsZero() {
			n.timer.Stop()
			n.timerAt = time.Time{}
		}
		return
	}
	if at.Equal(n.timerAt) {
		return
	}
	n.timerAt = at
	d := time.Until(at)
	if n.timer == nil {
		n.timer = time.AfterFunc(d, n.tick)
		return
	}
	n.timer.Reset(d)
}

func (n *Node) tick() {
	n.input("\x00timer", func(now time.Time) error {
		n.timerAt = time.Time{}
		n.m.Tick(now)
		return nil
	})
}

// resolveWaitersLocked ends the Connect calls waiting for node.
func (n *Node) resolveWaitersLocked(node string, err error) {
	for _, ch := range n.waiters[node] {
		ch <- err
	}
	delete(n.waiters, node)
	if len(n.waiters) == 0 {
		n.waiters = nil
	}
}

// publicErr maps the machine's sentinels onto the transport's where the
// two differ (ErrClosed).
func (n *Node) publicErr(err error) error {
	if errors.Is(err, peer.ErrClosed) && !errors.Is(err, ErrClosed) {
		return fmt.Errorf("%w: %w", ErrClosed, err)
	}
	return err
}

// sendErr maps a refused send onto the transport's errors.
func (n *Node) sendErr(err error) error {
	var qe *peer.QueueFullError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &qe):
		if qe.Limit == "MaxPending" {
			return &SendQueueError{Node: qe.Peer, Limit: "pending messages while connecting", Max: qe.Max, Unit: "messages"}
		}
		return &SendQueueError{Node: qe.Peer, Limit: qe.Limit, Max: qe.Max, Unit: "bytes"}
	case errors.Is(err, peer.ErrClosed):
		return ErrClosed
	}
	return err
}
