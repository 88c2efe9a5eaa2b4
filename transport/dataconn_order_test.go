package transport_test

import (
	"context"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/aemp-go/dataconn/core/wire"
	"github.com/aemp-go/dataconn/transport"
)

// orderHost is a Host that records the control messages DataConns sends
// and how many of its calls ever ran at once.
type orderHost struct {
	inside, most atomic.Int32
	mu           sync.Mutex
	sent         []sentMsg
}

type sentMsg struct {
	to  string
	msg wire.Message
}

func (h *orderHost) SendControl(node string, msg wire.Message) error {
	n := h.inside.Add(1)
	for {
		m := h.most.Load()
		if n <= m || h.most.CompareAndSwap(m, n) {
			break
		}
	}
	// Give a second runner every chance to come in meanwhile.
	for range 20 {
		runtime.Gosched()
	}
	h.mu.Lock()
	h.sent = append(h.sent, sentMsg{node, msg})
	h.mu.Unlock()
	h.inside.Add(-1)
	return nil
}

func (h *orderHost) RoundTrip(context.Context, string) error { return nil }
func (h *orderHost) ListenerAddrs(string) []string           { return nil }
func (h *orderHost) IsGoPeer(string) bool                    { return false }
func (h *orderHost) NetworkFor(string) (transport.Network, string, error) {
	return nil, "", transport.ErrNoRoute
}
func (h *orderHost) Connected(context.Context, string) error { return nil }

// DataConns runs the rendezvous machine's actions one at a time, in the
// order of their inputs, however many goroutines feed it: 64 peers each
// send expectations for an init function that does not exist, each
// refused with a kill of the sender's port, and the host never sees two
// of the kills at once; one peer's kills arrive in the order of its
// expectations.
func TestDataConnsRunActionsInOrder(t *testing.T) {
	h := &orderHost{}
	dc, err := transport.NewDataConns(transport.Config{NodeID: "t", Secret: []byte("s"), Logger: slog.New(slog.DiscardHandler)}, h)
	if err != nil {
		t.Fatal(err)
	}
	defer dc.Close()
	const peers, each = 64, 8
	var wg sync.WaitGroup
	for p := range peers {
		wg.Go(func() {
			from := "n" + string(rune('A'+p%26)) + string(rune('a'+p/26))
			for i := range each {
				port := from + "#p" + string(rune('0'+i))
				dc.HandleControl(from, wire.NodeMsgExpect{ID: port + "@" + from, Port: port, Timeout: 5, InitFunc: "no::such"})
			}
		})
	}
	wg.Wait()
	if n := h.most.Load(); n != 1 {
		t.Fatalf("%d host calls ran at once, want actions one at a time", n)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.sent) != peers*each {
		t.Fatalf("%d kills sent, want %d", len(h.sent), peers*each)
	}
	next := map[string]int{} // per sender: the port its next kill names
	for _, m := range h.sent {
		k, err := wire.ParseNodeMsg(m.msg[1:])
		kill, ok := k.(wire.NodeMsgKill)
		if err != nil || !ok {
			t.Fatalf("sent %v to %s, want a kill", m.msg, m.to)
		}
		if want := "p" + string(rune('0'+next[m.to])); kill.Port != want {
			t.Fatalf("kill of %s's port %s, want %s: out of order", m.to, kill.Port, want)
		}
		next[m.to]++
	}
	if pending, exp, early := dc.Pending(); pending+exp+early != 0 {
		t.Fatalf("Pending = %d, %d, %d after refusals", pending, exp, early)
	}
}
