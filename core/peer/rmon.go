package peer

import (
	"maps"
	"slices"
	"time"

	"github.com/aemp-go/dataconn/core/wire"
)

// remoteMons are the monitors of one remote node's ports, by port name,
// in registration order. The first monitor of a (node, port) sends
// ["", "mon1", NAME], the last one's removal ["", "mon0", NAME].
type remoteMons map[string][]MonitorID

// MonitorPortID registers a monitor of port portID ("NODE#NAME"), local
// or remote. It fires once, as a MonitorFired action with the port's kill
// reason: for a remote port when its node sends kil0, or with
// ["transport_error", NODE, MSG] when the connection to NODE is lost or
// cannot be made. A local port that does not exist fires at once with
// Perl's ["no_such_port", ...] reason; for a remote one its node answers
// so.
func (m *Machine) MonitorPortID(now time.Time, portID string) (MonitorID, error) {
	if m.closed {
		return 0, ErrClosed
	}
	node, name, err := SplitPortID(portID)
	if err != nil {
		return 0, err
	}
	id := m.nextMonitor(monRef{kind: monRemote, name: node, port: name})
	if node == m.self {
		lp := m.ports[name]
		if lp == nil {
			delete(m.monitors, id)
			m.emit(MonitorFired{Port: portID, Reason: []any{noSuchPort, noSuchPortT, portID}, Monitors: []MonitorID{id}})
			return id, nil
		}
		m.monitors[id] = monRef{kind: monPort, name: name}
		lp.mons = append(lp.mons, id)
		return id, nil
	}
	p := m.peer(node)
	if p.rmons == nil {
		p.rmons = remoteMons{}
	}
	first := len(p.rmons[name]) == 0
	p.rmons[name] = append(p.rmons[name], id)
	if first {
		if err := m.SendTo(now, node, wire.Message{"", tagMon1, name}); err != nil {
			// A full queue: the monitor stays, it fires on node down.
			return id, err
		}
	}
	return id, nil
}

// unmonitorRemote drops monitor id of node's port name; the last one
// sends mon0 when the node is up.
func (m *Machine) unmonitorRemote(now time.Time, node, name string, id MonitorID) {
	p := m.peers[node]
	if p == nil {
		return
	}
	l := p.rmons[name]
	i := slices.Index(l, id)
	if i < 0 {
		return
	}
	l = slices.Delete(l, i, i+1)
	if len(l) > 0 {
		p.rmons[name] = l
		return
	}
	delete(p.rmons, name)
	if p.conn != 0 {
		_ = m.SendTo(now, node, wire.Message{"", tagMon0, name})
	}
}

// fireRemote fires (and forgets) the monitors of node's port name with
// reason; kil0 for a port we do not monitor is ignored.
func (m *Machine) fireRemote(node, name string, reason []any) {
	p := m.peers[node]
	if p == nil || len(p.rmons[name]) == 0 {
		return
	}
	ids := p.rmons[name]
	delete(p.rmons, name)
	for _, id := range ids {
		delete(m.monitors, id)
	}
	if reason == nil {
		reason = []any{}
	}
	m.emit(MonitorFired{Port: node + "#" + name, Reason: reason, Monitors: ids})
}

// fireAllRemote fires every port monitor of node with
// ["transport_error", NODE, MSG], port by port in name order.
func (m *Machine) fireAllRemote(p *peerState, err error) {
	msg := "connection lost"
	if err != nil {
		msg = err.Error()
	}
	for _, name := range slices.Sorted(maps.Keys(p.rmons)) {
		m.fireRemote(p.id, name, []any{"transport_error", p.id, msg})
	}
}

// tellRemoteMonitors sends kil0 with reason to every node that
// monitors local port name (mon1), once.
func (m *Machine) tellRemoteMonitors(now time.Time, name string, lp *port, reason []any) {
	for _, node := range slices.Sorted(maps.Keys(lp.remote)) {
		m.sendNode(now, node, append(wire.Message{"", tagKil0, name}, reason...))
	}
}

// forgetRemoteMonitors drops the monitors node registered on our ports
// (mon1): Perl keeps them, but their kil0 would go nowhere.
func (m *Machine) forgetRemoteMonitors(node string) {
	for _, lp := range m.ports {
		delete(lp.remote, node)
	}
}
