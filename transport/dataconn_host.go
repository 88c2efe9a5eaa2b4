package transport

import (
	"context"
	"errors"
	"net"
	"time"

	"github.com/aemp-go/dataconn/core/wire"
)

// ConnectToPort is the port-flavoured ConnectTo for frameworks: it runs in
// the background; on success cb receives the stream, on failure the port
// is killed with the reason ["AnyEvent::MP::DataConn", message] and cb is
// not called.
func (n *Node) ConnectToPort(port *Port, target string, timeout time.Duration, cb func(net.Conn), initFunc string, initData ...any) {
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		c, err := n.dc.connectTo(n.ctx, port.ID(), target, timeout, initFunc, initData)
		if err != nil {
			var de *DataConnError
			if errors.As(err, &de) {
				port.Kill(de.Reason.Values()...)
			} else {
				port.Kill(wire.DataConnReason("%s: %v", target, err).Values()...)
			}
			return
		}
		cb(c)
	}()
}

// portWatcher is implemented by hosts that can tell when a local port is
// killed (the Node): the target's kill of the expectation's port then ends
// the attempt at once instead of at the timeout.
type portWatcher interface {
	WatchPort(portID string, f func(reason []any)) (stop func())
}

// WatchPort calls f when the local port portID is killed. A port ID of
// this node that names no port gets a port made for the purpose, removed
// by stop.
func (h nodeHost) WatchPort(portID string, f func(reason []any)) (stop func()) {
	node, name, err := SplitPortID(portID)
	if err != nil || node != h.n.id || name == "" {
		return func() {}
	}
	return h.n.watchPort(name, f)
}

// upChecker is implemented by hosts that can tell at once that the
// messaging connection to a node is up (the Node): ConnectTo then skips
// Connected and the timer it would bound it with.
type upChecker interface {
	isUp(node string) bool
}

type nodeHost struct{ n *Node }

func (h nodeHost) isUp(node string) bool {
	h.n.mu.Lock()
	defer h.n.mu.Unlock()
	return !h.n.closed && h.n.m.Current(node) != 0
}

func (h nodeHost) SendControl(node string, msg wire.Message) error { return h.n.sendTo(node, msg) }

func (h nodeHost) RoundTrip(ctx context.Context, node string) error {
	return h.n.roundTrip(ctx, node)
}

func (h nodeHost) ListenerAddrs(node string) []string {
	if node == h.n.id {
		return h.n.Addrs()
	}
	return h.n.PeerAddrs(node)
}

func (h nodeHost) IsGoPeer(node string) bool {
	h.n.mu.Lock()
	defer h.n.mu.Unlock()
	return h.n.m.IsGo(node)
}

func (h nodeHost) NetworkFor(addr string) (Network, string, error) { return h.n.networkFor(addr) }

func (h nodeHost) Connected(ctx context.Context, node string) error {
	return h.n.Connect(ctx, node)
}

// HandleDataConn registers the init function called name on this node.
func (n *Node) HandleDataConn(name string, f InitFunc) { n.dc.Register(name, f) }

// ConnectTo opens a data connection to target; see DataConns.ConnectTo.
func (n *Node) ConnectTo(ctx context.Context, target string, timeout time.Duration, initFunc string, initData ...any) (net.Conn, error) {
	return n.dc.ConnectTo(ctx, target, timeout, initFunc, initData...)
}

// DataConns returns the node's data-connection endpoint.
func (n *Node) DataConns() *DataConns { return n.dc }
