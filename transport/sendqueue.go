package transport

import (
	"context"
	"errors"
	"fmt"
)

// SendQueueError is the error of a message that did not fit a send bound.
// errors.Is(err, ErrSendQueueFull) holds.
type SendQueueError struct {
	// Node is the peer the message was for.
	Node string
	// Limit names the bound ("MaxSendQueue", or the queue of messages
	// waiting for a connection), Max its value in Unit.
	Limit string
	Max   int
	Unit  string
}

func (e *SendQueueError) Error() string {
	return fmt.Sprintf("aemp: %s: send queue overflow: %s is %d %s (send slower, use SendContext to wait, or raise Config.MaxSendQueue)",
		e.Node, e.Limit, e.Max, e.Unit)
}

// Is makes errors.Is(err, ErrSendQueueFull) true.
func (e *SendQueueError) Is(target error) bool { return target == ErrSendQueueFull }

// signalRoom wakes the senders waiting for room in mc's queue.
func (mc *msgConn) signalRoom() {
	mc.mu.Lock()
	if mc.room != nil {
		close(mc.room)
		mc.room = nil
	}
	mc.mu.Unlock()
}

// SendContext is Send that, when the message does not fit a send bound
// (ErrSendQueueFull), waits for room until ctx ends instead of failing;
// then it returns ctx's error wrapped with the bound's error. Other
// senders and the connection are unaffected by the wait.
func (n *Node) SendContext(ctx context.Context, portID string, data ...any) error {
	for {
		err := n.Send(portID, data...)
		var qe *SendQueueError
		if !errors.As(err, &qe) {
			return err
		}
		node, _, _ := SplitPortID(portID)
		wait := n.roomFor(node)
		select {
		case <-wait:
		case <-ctx.Done():
			return fmt.Errorf("%w: %w", ctx.Err(), err)
		}
	}
}

// roomFor returns a channel closed when a message to node may fit again:
// the connection's writer took its queue, or a connection came up.
func (n *Node) roomFor(node string) <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	p := n.peerLocked(node)
	if mc := p.conn; mc != nil {
		mc.mu.Lock()
		defer mc.mu.Unlock()
		if mc.err != nil {
			ch := make(chan struct{})
			close(ch)
			return ch
		}
		if mc.room == nil {
			mc.room = make(chan struct{})
		}
		return mc.room
	}
	return p.up
}
