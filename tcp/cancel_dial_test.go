package tcp_test

import (
	"context"
	"errors"
	"io"
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

// TestConnectCancelKeepsSharedDial: Connect runs the machine's dial on
// its own goroutine, but the dial is not the caller's alone. Here a
// message is queued for b while that dial's handshake is held (b's only
// known address is a gate that holds connections until opened);
// cancelling Connect ends it at once, and once the gate opens the message
// still arrives: the dial started again on its own.
func TestConnectCancelKeepsSharedDial(t *testing.T) {
	b := startNode(t, "b", "127.0.0.1:0", nil)
	got := make(chan []any, 1)
	p := b.NewPort(func(data []any) {
		select {
		case got <- data:
		default:
		}
	})
	gate, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer gate.Close()
	open := make(chan struct{})
	accepted := make(chan struct{}, 16)
	go func() {
		for {
			c, err := gate.Accept()
			if err != nil {
				return
			}
			accepted <- struct{}{}
			go func() {
				defer c.Close()
				<-open
				up, err := net.Dial("tcp", b.Addrs()[0])
				if err != nil {
					return
				}
				defer up.Close()
				go func() { io.Copy(up, c); up.Close() }()
				io.Copy(c, up)
			}()
		}
	}()

	a := startNode(t, "a", "127.0.0.1:0", nil)
	a.AddPeer("b", gate.Addr().String())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	res := make(chan error, 1)
	go func() { res <- a.Connect(ctx, "b") }()
	select {
	case <-accepted:
	case <-time.After(dcTimeout):
		t.Fatal("Connect did not dial")
	}
	// Queued behind the dial in flight.
	if err := a.Send(p.ID(), "hello"); err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case err := <-res:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Connect: %v, want context.Canceled", err)
		}
	case <-time.After(dcTimeout):
		t.Fatal("Connect did not return after its context was cancelled")
	}
	close(open)
	select {
	case data := <-got:
		if len(data) != 1 || data[0] != "hello" {
			t.Fatalf("b got %v, want [hello]", data)
		}
	case <-time.After(dcTimeout):
		t.Fatal("the queued message never arrived: the dial ended with the cancelled Connect")
	}
}
