package peer

import (
	"fmt"
	"strings"
	"time"

	"github.com/aemp-go/dataconn/core/wire"
)

// perlEmptyDataConnText is the text a kill of family
// wire.KillReasonDataConn gets when a Perl target sent none: it kills
// with a null message when it gives up on an expectation.
const perlEmptyDataConnText = ": data connection not established (the target gave up on it without a reason)"

// deliver hands data for local port name to its handler.
func (m *Machine) deliver(name, from string, data []any) error {
	if m.ports[name] == nil {
		return fmt.Errorf("%w: %q (from %s)", ErrUnknownPort, name, from)
	}
	m.emit(Deliver{Port: name, From: from, Data: data})
	return nil
}

// dispatch handles one message from node from: [NAME, data...] goes to a
// local port, ["", TAG, args...] is a node-port request.
func (m *Machine) dispatch(now time.Time, from string, msg wire.Message) error {
	if len(msg) == 0 {
		return nil
	}
	name, ok := wire.AsString(msg[0])
	if !ok {
		return fmt.Errorf("%w: %T (from %s)", ErrBadMessage, msg[0], from)
	}
	if name != "" {
		return m.deliver(name, from, msg[1:])
	}
	if handled, err := m.dispatchGlobal(now, from, msg[1:]); handled {
		return err
	}
	nm, err := wire.ParseNodeMsg(msg[1:])
	if err != nil {
		return err
	}
	if err := m.refuseUntrusted(now, from, nm); err != nil {
		return err
	}
	switch r := nm.(type) {
	case wire.NodeMsgKeepalive:
		return nil
	case wire.NodeMsgSnd:
		// Relay, to a port of any node (the sender's too): the echo that
		// orders a data connection behind earlier messages.
		return m.Send(now, r.Port, r.Data...)
	case wire.NodeMsgKill:
		if r.Port == "" {
			return fmt.Errorf("%w (from %s)", ErrKillNodePort, from)
		}
		if m.ports[r.Port] == nil {
			return nil // an unknown port is not killed
		}
		reason := r.Reason
		if k := wire.KillReasonFromValues(reason); k.Family == wire.KillReasonDataConn && k.Message == "" {
			k.Message = from + perlEmptyDataConnText
			reason = k.Values()
		}
		m.killPort(now, r.Port, reason)
		return nil
	case wire.NodeMsgExpect, wire.NodeMsgConnect:
		m.emit(DataConn{From: from, Msg: nm})
		return nil
	case wire.NodeMsgGSlave:
		for id, addrs := range r.Listeners {
			m.AddPeer(id, addrs...)
		}
		return nil
	case wire.NodeMsgGFind:
		var addrs []string
		if r.Node == m.self {
			if len(m.addrs) > 0 {
				addrs = m.addrs
			}
		} else {
			addrs = m.PeerAddrs(r.Node)
		}
		return m.SendTo(now, from, wire.GFoundMsg(r.Node, addrs))
	case wire.NodeMsgGFound:
		if r.Found {
			m.AddPeer(r.Node, r.Addrs...)
		}
		return nil
	case wire.NodeMsgCall:
		if !m.funcs[r.Func] {
			return fmt.Errorf("%w: %q (from %s)", ErrUnknownFunc, r.Func, from)
		}
		m.emit(Call{Func: r.Func, From: from, Args: r.Args})
		return nil
	case wire.NodeMsgIgnored:
		return fmt.Errorf("%w: %q (from %s)", ErrIgnored, r.Tag, from)
	}
	return fmt.Errorf("%w: %T (from %s)", ErrIgnored, nm, from)
}

// refuseUntrusted returns ErrUntrustedRequest for a function call or a
// data-connection request from a peer whose connection authenticated
// with tls_anon, killing an _expect's port with the reason (its initiator
// then fails at once); nil for anything else.
func (m *Machine) refuseUntrusted(now time.Time, from string, nm wire.NodeMsg) error {
	if p := m.peers[from]; p == nil || !p.untrusted {
		return nil
	}
	switch r := nm.(type) {
	case wire.NodeMsgCall:
		return fmt.Errorf("%w: function call %q from %s", ErrUntrustedRequest, r.Func, from)
	case wire.NodeMsgExpect:
		if i := strings.LastIndexByte(r.Port, '#'); i > 0 && r.Port[:i] == from && r.Port[i+1:] != "" {
			name := r.Port[i+1:]
			reason := wire.DataConnReason("%s: data connection from %s refused: it authenticated with tls_anon (untrusted)", m.self, from)
			m.SendTo(now, from, wire.KillMsg(name, reason.Values()...))
		}
		return fmt.Errorf("%w: data connection request (init function %q) from %s", ErrUntrustedRequest, r.InitFunc, from)
	case wire.NodeMsgConnect:
		return fmt.Errorf("%w: data connection dial-back request from %s", ErrUntrustedRequest, from)
	}
	return nil
}
