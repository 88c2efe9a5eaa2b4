package transport_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aemp-go/dataconn/memnet"
	"github.com/aemp-go/dataconn/transport"
)

// TestDataConnTimeoutWinsTie: with no latency, the initiator's deadline,
// its machine's own timer and the kill the target sends when its
// expectation expires all fall on the same virtual instant. The deadline
// wins: every attempt fails with ErrDataConnTimeout and the initiator's
// timeout text, after exactly the timeout, whatever order the goroutines
// run in (the race detector shuffles it).
func TestDataConnTimeoutWinsTie(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := memnet.New(21)
		a := listening(t, w, "a", nil)
		b := listening(t, w, "b", nil)
		meshPeers(a, b)
		var calls initCounter
		b.HandleDataConn("f", calls.init)
		if err := a.Connect(context.Background(), "b"); err != nil {
			t.Fatal(err)
		}
		w.SetDialLoss(1)
		for i := range 200 {
			start := time.Now()
			_, err := a.ConnectTo(context.Background(), "b", time.Millisecond, "f")
			if d := time.Since(start); d != time.Millisecond {
				t.Errorf("attempt %d: failed after %v, want exactly 1ms", i, d)
			}
			if errors.Is(err, transport.ErrDataConnKilled) {
				t.Errorf("attempt %d: reported as killed by the target: %v", i, err)
			}
			if text := dcErr(t, err, "b", transport.ErrDataConnTimeout); text != "b: unable to establish connection within 0.001 seconds" {
				t.Errorf("attempt %d: text %q", i, text)
			}
		}
		time.Sleep(time.Second)
		if calls.n.Load() != 0 {
			t.Error("init function ran")
		}
		closeAll(a, b)
	})
}
