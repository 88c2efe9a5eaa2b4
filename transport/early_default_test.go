package transport_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aemp-go/dataconn/core/wire"
	"github.com/aemp-go/dataconn/memnet"
)

// MaxEarlyPerPeer at its default (16): early data connections of a node of
// this project whose ids nobody expects are held, 16 per peer, for
// EarlyHold (3 s); more are refused at once. An honest initiator never
// needs more (its fast flow dials at most 16 before the round trip).
func TestMaxEarlyPerPeerDefault(t *testing.T) {
	const n = 20
	synctest.Test(t, func(t *testing.T) {
		w := memnet.New(51, memnet.WithDefaultLink(memnet.LinkConfig{Latency: time.Millisecond}))
		b := listening(t, w, "b", nil)
		type out struct {
			at  time.Duration
			err error
		}
		outs := make(chan out, n)
		start := time.Now()
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				c, _, err := rawHandshake(context.Background(), w, "c", b.Addrs()[0], wire.ProtocolDataConn, nil, simSecret,
					wire.KV{Key: wire.KeyDataConnID, Value: fmt.Sprintf("early%d", i)}, wire.KV{Key: wire.KeyGo, Value: "1"})
				if c != nil {
					c.Close()
				}
				outs <- out{time.Since(start), err}
			})
		}
		time.Sleep(time.Second)
		if st := b.Stats(); st.HeldEarly != 16 {
			t.Errorf("HeldEarly = %d, want the default 16", st.HeldEarly)
		}
		wg.Wait()
		close(outs)
		fast, held := 0, 0
		for o := range outs {
			if o.err == nil {
				t.Fatal("an unexpected id completed its handshake")
			}
			switch {
			case o.at < time.Second:
				fast++
			case o.at >= 3*time.Second && o.at < 4*time.Second:
				held++
			default:
				t.Errorf("refused after %v", o.at)
			}
		}
		if fast != n-16 || held != 16 {
			t.Errorf("%d refused at once, %d after the 3 s hold; want %d and 16", fast, held, n-16)
		}
		st := b.Stats()
		if st.Refused["too many early data connections from one node"] != uint64(n-16) {
			t.Errorf("refusals by rule: %v", st.Refused)
		}
		closeAll(b)
	})
}
