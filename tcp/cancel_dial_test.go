package tcp_test

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/aemp-go/dataconn/transport"
)

// TestConnectToCancelDuringDial: ConnectTo runs its first dial on its own
// goroutine; cancelling its context while that dial's handshake hangs (the
// only address known for the target accepts TCP and never answers) ends
// ConnectTo at once with ErrDataConnCancelled, as it did while it only
// waited for a dial on another goroutine.
func TestConnectToCancelDuringDial(t *testing.T) {
	hole, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer hole.Close()
	accepted := make(chan net.Conn, 4)
	go func() {
		for {
			c, err := hole.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c // held open, never answered
		}
	}()
	defer func() {
		hole.Close()
		for c := range accepted {
			c.Close()
		}
	}()

	a := startNode(t, "a", "127.0.0.1:0", nil)
	b := startNode(t, "b", "127.0.0.1:0", nil)
	// b knows a's listener and brings the messaging connection up; a knows
	// b only at the address that never answers.
	b.AddPeer("a", a.Addrs()...)
	a.AddPeer("b", hole.Addr().String())
	b.HandleDataConn("t::never", func(string, []any, net.Conn) {})
	ctx, cancel := context.WithTimeout(context.Background(), dcTimeout)
	defer cancel()
	if err := b.Connect(ctx, "a"); err != nil {
		t.Fatal(err)
	}

	cctx, ccancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, ccancel)
	start := time.Now()
	c, err := a.ConnectTo(cctx, "b", dcTimeout, "t::never")
	took := time.Since(start)
	if err == nil {
		c.Close()
		t.Fatal("ConnectTo succeeded through an address that never answers")
	}
	if !errors.Is(err, transport.ErrDataConnCancelled) {
		t.Fatalf("ConnectTo: %v, want ErrDataConnCancelled", err)
	}
	if took > dcTimeout/2 {
		t.Fatalf("ConnectTo returned %v after its context was cancelled at 100ms", took)
	}
}
