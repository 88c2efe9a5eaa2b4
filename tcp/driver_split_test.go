package tcp_test

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/aemp-go/dataconn/core/handshake"
	"github.com/aemp-go/dataconn/core/wire"
	"github.com/aemp-go/dataconn/transport"
)

// TestDriveEarlyBytesWhileDeferred: over real TCP, an acceptor whose
// greeting is deferred refuses a peer that sends more than its two lines
// before our greeting (ErrEarlyData), also when the extra bytes arrive in
// the same read as the lines (the driver feeds a read up to the peer's
// nonce line first).
func TestDriveEarlyBytesWhileDeferred(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	written := make(chan struct{})
	go func() {
		defer close(written)
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			return
		}
		defer c.Close()
		c.Write([]byte("aemp;1;P;hmac_sha3_512;json\nnonceP\nhmac_sha3_512;00;json\n"))
		written <- struct{}{}
		<-ctx.Done()
	}()
	c, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	// The peer's bytes are in before the first read: on loopback a
	// write that returned has queued them at the receiver (were they to
	// arrive in pieces, the outcome is the same, by the machine's own
	// rule).
	<-written
	m, err := handshake.New(handshake.Config{NodeID: "A", Secret: []byte("s"), DeferGreeting: true}, "nonceA", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	called := false
	_, _, err = transport.Drive(ctx, c, m, transport.DriveOptions{
		OnPeerGreeting: func(context.Context, wire.Greeting, string) ([]wire.KV, error) {
			called = true
			return nil, nil
		},
	})
	if !errors.Is(err, handshake.ErrEarlyData) {
		t.Fatalf("Drive: %v, want ErrEarlyData", err)
	}
	if called {
		t.Error("OnPeerGreeting called for a peer already refused")
	}
}
