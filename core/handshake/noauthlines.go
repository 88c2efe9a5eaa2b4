package handshake

import (
	"slices"

	"github.com/aemp-go/dataconn/core/wire"
)

// What the two extensions that end a handshake without auth lines
// (ExtTLSBind and ExtChannelAuth) share.

// sameFramings reports whether the node sends exactly the framings it
// accepts. Without an auth line the receiver cannot learn the framing
// chosen for it; it predicts it from the greetings, which list accepted
// framings only, while the sender picks from what it can send: the two
// agree only when both sets are the same.
func (h *Machine) sameFramings() bool {
	for _, f := range h.accFram {
		if !slices.Contains(h.sndFram, f) {
			return false
		}
	}
	for _, f := range h.sndFram {
		if !slices.Contains(h.accFram, f) {
			return false
		}
	}
	return true
}

// finishWithoutAuthLines ends a handshake that method authenticated
// without auth lines: it receives the first framing of its own list that
// the peer accepts (what the peer, choosing from our list, sends).
func (h *Machine) finishWithoutAuthLines(method string) {
	recv := ""
	peerFram := wire.SplitList(h.rFramRaw)
	for _, f := range h.accFram {
		if slices.Contains(peerFram, f) {
			recv = f
			break
		}
	}
	if recv == "" {
		h.fail(hsErr(ErrNoCommonFraming, h.rFramRaw+": no common framing method supported"))
		return
	}
	h.state = stEnded
	h.buf = nil
	h.timers.Clear()
	h.actions = append(h.actions, Done{Result: &Result{
		Protocol:    h.proto,
		Peer:        h.peer,
		PeerNodeID:  h.peer.NodeID,
		SendFraming: h.sendFraming,
		RecvFraming: recv,
		SentAuth:    method,
		PeerAuth:    method,
		TLS:         true,
		TLSInfo:     h.tlsInfo,
		LocalLines:  [2]string{h.l1, h.l2},
		PeerLines:   [2]string{h.r1, h.r2},
	}})
}
