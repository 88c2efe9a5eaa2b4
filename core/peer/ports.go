package peer

import (
	"fmt"
	"slices"
	"sort"
	"time"
)

type port struct {
	mons   []MonitorID     // in registration order
	remote map[string]bool // nodes that monitor it (mon1)
}

type monKind uint8

const (
	monNode monKind = iota + 1
	monAllNodes
	monPort
	monRemote // a port of another node (MonitorPortID)
	monFamily // a database family (DBMonitor)
)

type monRef struct {
	kind monKind
	name string // peer ID, port name or family
	port string // monRemote: the port name on node name
}

func (m *Machine) nextMonitor(ref monRef) MonitorID {
	m.monSeq++
	m.monitors[m.monSeq] = ref
	return m.monSeq
}

// OpenPort makes the local port name exist: messages for it are
// delivered (Deliver) until it is killed.
func (m *Machine) OpenPort(name string) error {
	if m.closed {
		return ErrClosed
	}
	if name == "" {
		return fmt.Errorf("%w: the empty name is the node port", ErrPortExists)
	}
	if m.ports[name] != nil {
		return fmt.Errorf("%w: %q", ErrPortExists, name)
	}
	m.ports[name] = &port{}
	return nil
}

// KillPort kills local port name with reason (PortKilled, with its
// monitors; the nodes that monitor it get ["", "kil0", NAME, reason...]).
// Killing a port that does not exist does nothing.
func (m *Machine) KillPort(now time.Time, name string, reason ...any) { m.killPort(now, name, reason) }

func (m *Machine) killPort(now time.Time, name string, reason []any) {
	p := m.ports[name]
	if p == nil || m.closed {
		return
	}
	delete(m.ports, name)
	for _, id := range p.mons {
		delete(m.monitors, id)
	}
	if reason == nil {
		reason = []any{}
	}
	m.emit(PortKilled{Port: name, Reason: reason, Monitors: p.mons})
	m.tellRemoteMonitors(now, name, p, reason)
}

// MonitorPort registers a monitor of local port name, called with the
// reason when it is killed. ErrUnknownPort when the port is not open (it
// may have been killed already: the caller knows the reason).
func (m *Machine) MonitorPort(name string) (MonitorID, error) {
	if m.closed {
		return 0, ErrClosed
	}
	p := m.ports[name]
	if p == nil {
		return 0, fmt.Errorf("%w: %q", ErrUnknownPort, name)
	}
	id := m.nextMonitor(monRef{kind: monPort, name: name})
	p.mons = append(p.mons, id)
	return id, nil
}

// MonitorNode registers a monitor of node id's connection, named in the
// NodeUp and NodeDown actions of that node.
func (m *Machine) MonitorNode(id string) MonitorID {
	mid := m.nextMonitor(monRef{kind: monNode, name: id})
	p := m.peer(id)
	if p.mons == nil {
		p.mons = map[MonitorID]bool{}
	}
	p.mons[mid] = true
	return mid
}

// MonitorNodes registers a monitor named in the NodeUp and NodeDown
// actions of every node.
func (m *Machine) MonitorNodes() MonitorID {
	mid := m.nextMonitor(monRef{kind: monAllNodes})
	m.allMons[mid] = true
	return mid
}

// Unmonitor cancels a monitor; an unknown or spent one is ignored. The
// last monitor of a remote port sends ["", "mon0", NAME] to its node.
func (m *Machine) Unmonitor(now time.Time, id MonitorID) {
	ref, ok := m.monitors[id]
	if !ok {
		return
	}
	delete(m.monitors, id)
	switch ref.kind {
	case monRemote:
		m.unmonitorRemote(now, ref.name, ref.port, id)
	case monFamily:
		if l := m.g.lmons[ref.name]; l != nil {
			if i := slices.Index(l, id); i >= 0 {
				l = slices.Delete(l, i, i+1)
			}
			if len(l) == 0 {
				delete(m.g.lmons, ref.name)
			} else {
				m.g.lmons[ref.name] = l
			}
		}
	case monNode:
		if p := m.peers[ref.name]; p != nil {
			delete(p.mons, id)
		}
	case monAllNodes:
		delete(m.allMons, id)
	case monPort:
		if p := m.ports[ref.name]; p != nil {
			if i := slices.Index(p.mons, id); i >= 0 {
				p.mons = slices.Delete(p.mons, i, i+1)
			}
		}
	}
}

// nodeMonitors returns p's monitors then the any-node ones, each in
// registration order.
func (m *Machine) nodeMonitors(p *peerState) []MonitorID {
	var out []MonitorID
	for id := range p.mons {
		out = append(out, id)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	n := len(out)
	for id := range m.allMons {
		out = append(out, id)
	}
	tail := out[n:]
	sort.Slice(tail, func(i, j int) bool { return tail[i] < tail[j] })
	return out
}

// RegisterFunc makes name callable from other nodes as
// ["", name, args...] (Call actions).
func (m *Machine) RegisterFunc(name string) { m.funcs[name] = true }
