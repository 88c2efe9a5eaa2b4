package transport

import (
	"errors"

	"github.com/aemp-go/dataconn/core"
)

// ErrUntrustedPeer is the rule a request from an untrusted peer breaks:
// one that authenticated with tls_anon (accepted only with
// Config.AllowTLSAnon). Such a peer proved nothing about its node ID, so
// it may send to ports, but it may not call functions (RegisterFunc), ask
// for or accept data connections (init functions never run for it), and
// a data connection is never handed over on a stream it authenticated.
var ErrUntrustedPeer = errors.New("aemp: request from an untrusted (tls_anon) peer refused")

// refuseUntrusted reports whether nm, received from the untrusted peer
// from, is refused: function calls and data-connection requests are (an
// expectation's port is killed with the reason, so that the initiator
// does not wait for its timeout); everything else is not.
func (n *Node) refuseUntrusted(from string, nm core.NodeMsg) bool {
	switch m := nm.(type) {
	case core.NodeMsgCall:
		n.log.Warn("function call refused", "from", from, "func", m.Func, "err", ErrUntrustedPeer)
	case core.NodeMsgExpect:
		if node, name, err := SplitPortID(m.Port); err == nil && node == from && name != "" {
			r := core.DataConnReason("%s: data connection from %s refused: it authenticated with tls_anon (untrusted)", n.id, from)
			n.sendTo(from, core.KillMsg(name, r.Values()...))
		}
		n.log.Warn("data connection request refused", "from", from, "func", m.InitFunc, "err", ErrUntrustedPeer)
	case core.NodeMsgConnect:
		n.log.Warn("data connection dial-back request refused", "from", from, "err", ErrUntrustedPeer)
	default:
		return false
	}
	return true
}
