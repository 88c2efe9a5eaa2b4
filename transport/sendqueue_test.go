package transport_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aemp-go/dataconn/core/wire"
	"github.com/aemp-go/dataconn/memnet"
	"github.com/aemp-go/dataconn/transport"
)

// At the default MaxSendQueue (64 MiB), a sender that overfills the queue
// of a peer that does not read gets ErrSendQueueFull naming the limit; the
// connection stays, what was queued is delivered once the peer reads, and
// SendContext waits for room instead of failing.
func TestSendQueueFullDefault(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := memnet.New(31, memnet.WithDefaultLink(memnet.LinkConfig{Latency: time.Millisecond}), memnet.WithTrace(0))
		b := listening(t, w, "b", nil)
		c, ev := hostileConn(t, w, b, "msgpack")
		blob := make([]byte, 1<<20)
		sent := 0
		var err error
		for i := 0; i < 100; i++ {
			if err = b.Send("c#sink", blob); err != nil {
				break
			}
			sent++
		}
		var qe *transport.SendQueueError
		if !errors.Is(err, transport.ErrSendQueueFull) || !errors.As(err, &qe) || qe.Limit != "MaxSendQueue" || qe.Max != transport.DefaultMaxSendQueue {
			t.Fatalf("after %d MiB: %v, want a SendQueueError for MaxSendQueue=%d", sent, err, transport.DefaultMaxSendQueue)
		}
		if sent < 60 || sent > 70 {
			t.Fatalf("%d MiB queued before the error, want about 64", sent)
		}
		if got := b.Peers(); len(got) != 1 || got[0] != "c" {
			t.Fatalf("connection dropped after the overflow: peers %v", got)
		}
		// A waiting sender: it gets in once c reads.
		waited := make(chan error, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			waited <- b.SendContext(ctx, "c#sink", "after the wait")
		}()
		// c reads everything: every queued message arrives, then the
		// waiting sender's.
		msgs := make(chan wire.Message, 128)
		go func() {
			codec, _ := wire.CodecByName("msgpack")
			dec := codec.NewDecoder(2 << 20)
			buf := make([]byte, 64<<10)
			for {
				n, err := c.Read(buf)
				if n > 0 {
					dec.Feed(buf[:n])
					for {
						m, ok, _ := dec.Next()
						if !ok {
							break
						}
						msgs <- m
					}
				}
				if err != nil {
					close(msgs)
					return
				}
			}
		}()
		got := 0
		for got < sent+1 {
			select {
			case m := <-msgs:
				if len(m) > 0 && m[0] == "sink" {
					got++
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("%d of %d messages arrived", got, sent+1)
			}
		}
		if err := <-waited; err != nil {
			t.Fatalf("SendContext: %v", err)
		}
		select {
		case e := <-ev.ch:
			t.Fatalf("connection event during the test: %+v", e)
		default:
		}
		c.Close()
		closeAll(b)
	})
}

// While a connection comes up, at most 4096 messages wait for it: the next
// send gets ErrSendQueueFull naming that bound, SendContext waits with its
// context, and the messages already waiting are not lost.
func TestSendPendingQueueDefault(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := memnet.New(32, memnet.WithDefaultLink(memnet.LinkConfig{Latency: time.Millisecond}))
		a := listening(t, w, "a", nil)
		b := listening(t, w, "b", nil)
		meshPeers(a, b)
		got := make(chan []any, 8192)
		p := b.NewPort(func(d []any) { got <- d })
		// b's listener is slow to come up: the dial waits in the backlog.
		w.SetLink("a", "b", memnet.LinkConfig{Latency: 2 * time.Second})
		for i := range 4096 {
			if err := a.Send(p.ID(), i); err != nil {
				t.Fatalf("message %d: %v", i, err)
			}
		}
		err := a.Send(p.ID(), "one more")
		var qe *transport.SendQueueError
		if !errors.Is(err, transport.ErrSendQueueFull) || !errors.As(err, &qe) || qe.Max != 4096 || qe.Unit != "messages" {
			t.Fatalf("4097th message: %v", err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
		err = a.SendContext(ctx, p.ID(), "one more")
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, transport.ErrSendQueueFull) {
			t.Fatalf("SendContext with a short context: %v", err)
		}
		// With a longer context it waits for the connection.
		ctx, cancel = context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := a.SendContext(ctx, p.ID(), "after the wait"); err != nil {
			t.Fatalf("SendContext: %v", err)
		}
		for i := range 4096 {
			d := <-got
			if len(d) != 1 || d[0] != int64(i) && d[0] != uint64(i) && d[0] != i {
				t.Fatalf("message %d: %#v", i, d)
			}
		}
		if d := <-got; len(d) != 1 || d[0] != "after the wait" {
			t.Fatalf("last message %#v", d)
		}
		closeAll(a, b)
	})
}
