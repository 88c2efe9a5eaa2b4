package transport

import (
	"context"
	"errors"
	"fmt"
	"time"
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

// SendContext is Send that, when the message does not fit a send bound
// (ErrSendQueueFull), waits for room until ctx ends instead of failing;
// then it returns ctx's error wrapped with the bound's error. Other
// senders and the connection are unaffected by the wait.
func (n *Node) SendContext(ctx context.Context, portID string, data ...any) error {
	for {
		var wait chan struct{}
		err := n.input(originLocal, func(now time.Time) error {
			err := n.sendLocked(now, portID, data)
			var qe *SendQueueError
			if errors.As(err, &qe) {
				// The machine owes a Writable for this node: it closes
				// the channel.
				wait = n.room[qe.Node]
				if wait == nil {
					wait = make(chan struct{})
					if n.room == nil {
						n.room = map[string]chan struct{}{}
					}
					n.room[qe.Node] = wait
				}
			}
			return err
		})
		if wait == nil {
			return err
		}
		select {
		case <-wait:
		case <-ctx.Done():
			return fmt.Errorf("%w: %w", ctx.Err(), err)
		}
	}
}
