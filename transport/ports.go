package transport

import (
	"fmt"
	"time"

	"github.com/aemp-go/dataconn/core/peer"
)

// Ports and monitors: the machine keeps which ports exist and who
// monitors what; the transport keeps the handlers and callbacks by the
// machine's IDs.

// Port is a local port: messages sent to its ID call its handler.
type Port struct {
	n       *Node
	name    string
	handler func(data []any)

	// guarded by n.mu
	killed bool
	reason []any
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
	p := &Port{n: n, name: name, handler: handler}
	n.mu.Lock()
	if err := n.m.OpenPort(name); err != nil {
		// Closed node (or a name taken): the port is dead from the start.
		p.killed, p.reason = true, []any{}
	} else {
		n.ports[name] = p
	}
	n.mu.Unlock()
	return p
}

// ID returns "NODE#NAME".
func (p *Port) ID() string { return p.n.id + "#" + p.name }

// Name returns the port's local name.
func (p *Port) Name() string { return p.name }

// Kill removes the port and tells its monitors (and the nodes that
// monitor it) the reason. Killing a killed port does nothing.
func (p *Port) Kill(reason ...any) {
	p.n.input(originLocal, func(now time.Time) error {
		if !p.killed && p.n.ports[p.name] == p {
			p.n.m.KillPort(now, p.name, reason...)
		}
		return nil
	})
}

// Monitor calls f once with the kill reason when the port is killed (at
// once if it already was). The returned function cancels the monitor.
func (p *Port) Monitor(f func(reason []any)) (cancel func()) {
	n := p.n
	n.mu.Lock()
	if p.killed || n.ports[p.name] != p {
		r := p.reason
		n.mu.Unlock()
		f(r)
		return func() {}
	}
	id, err := n.m.MonitorPort(p.name)
	if err != nil {
		n.mu.Unlock()
		f(p.reason)
		return func() {}
	}
	n.portMons[id] = f
	n.mu.Unlock()
	return n.unmonitor(id)
}

// unmonitor returns a cancel function for machine monitor id.
func (n *Node) unmonitor(id peer.MonitorID) func() {
	return func() {
		n.input(originLocal, func(now time.Time) error {
			delete(n.portMons, id)
			delete(n.nodeMons, id)
			delete(n.dbMons, id)
			n.m.Unmonitor(now, id)
			return nil
		})
	}
}

// watchPort calls f when the local port name is killed (by us or a
// peer's kil1). A name without a port is opened in the machine only (no
// handler): lighter than a Port, for the many set-ups a burst may queue.
func (n *Node) watchPort(name string, f func(reason []any)) (stop func()) {
	n.mu.Lock()
	if p := n.ports[name]; p != nil {
		n.mu.Unlock()
		return p.Monitor(f)
	}
	if err := n.m.OpenPort(name); err != nil {
		n.mu.Unlock()
		return func() {}
	}
	n.killWatch[name] = f
	n.mu.Unlock()
	return func() { n.unwatch(name) }
}

// unwatch ends a watchPort of a name without a Port.
func (n *Node) unwatch(name string) {
	n.input(originLocal, func(now time.Time) error {
		if _, ok := n.killWatch[name]; ok {
			delete(n.killWatch, name)
			n.m.KillPort(now, name)
		}
		return nil
	})
}

// Kill kills the port portID with reason: a local port at once, a remote
// one by sending kil1 to its node.
func (n *Node) Kill(portID string, reason ...any) error {
	return n.input(originLocal, func(now time.Time) error {
		return n.sendErr(n.m.Kill(now, portID, reason...))
	})
}

// MonitorNodes calls f whenever the messaging connection to any node goes
// up or down. The returned function cancels the monitor.
func (n *Node) MonitorNodes(f func(nodeID string, up bool, err error)) (cancel func()) {
	n.mu.Lock()
	id := n.m.MonitorNodes()
	n.nodeMons[id] = f
	n.mu.Unlock()
	return n.unmonitor(id)
}

// MonitorNode calls f when the messaging connection to nodeID goes up or
// down. The returned function cancels the monitor.
func (n *Node) MonitorNode(nodeID string, f func(up bool, err error)) (cancel func()) {
	n.mu.Lock()
	id := n.m.MonitorNode(nodeID)
	n.nodeMons[id] = func(_ string, up bool, err error) { f(up, err) }
	n.mu.Unlock()
	return n.unmonitor(id)
}

// Monitor calls f once with the kill reason of port portID ("NODE#NAME"),
// local or remote: the reason it was killed with; Perl's
// ["no_such_port", ...] when it does not exist; or
// ["transport_error", NODE, MSG] when its node goes down or cannot be
// reached. For a remote port the node is asked with mon1 (once per port)
// and answers with kil0. The returned function cancels the monitor (the
// last one of a remote port sends mon0).
func (n *Node) Monitor(portID string, f func(reason []any)) (cancel func(), err error) {
	var id peer.MonitorID
	err = n.input(originLocal, func(now time.Time) error {
		var err error
		id, err = n.m.MonitorPortID(now, portID)
		if id != 0 {
			n.portMons[id] = f
		}
		return err
	})
	if id == 0 {
		return func() {}, n.sendErr(err)
	}
	return n.unmonitor(id), n.sendErr(err)
}
