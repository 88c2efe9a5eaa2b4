package quic

import (
	"net"
	"testing"
	"time"
)

// A flood of new QUIC connections is capped: past MaxIncomingConns the
// attempts are refused without a handshake; once connections close, new
// ones are admitted again.
func TestIncomingConnCap(t *testing.T) {
	const capN, flood = 4, 12
	srv := newNet(t, Config{MaxIncomingConns: capN})
	l := listen(t, srv)
	go echo(l)
	addr := l.Addr().String()
	var conns []net.Conn
	var clients []*Network
	refused := 0
	for i := 0; i < flood; i++ {
		// Each client Network has its own UDP socket: a new QUIC
		// connection each.
		cl := New(Config{})
		clients = append(clients, cl)
		c, err := errAfterConn(t, cl, addr)
		if err != nil {
			refused++
			continue
		}
		conns = append(conns, c)
	}
	open, counted := srv.IncomingConns()
	if len(conns) != capN || refused != flood-capN || open != capN || counted < int64(flood-capN) {
		t.Fatalf("%d connected, %d refused; server counts %d open, %d refused; want %d and %d", len(conns), refused, open, counted, capN, flood-capN)
	}
	for _, cl := range clients {
		cl.Close()
	}
	// The server learns the closes (CONNECTION_CLOSE) and frees the slots.
	deadline := time.Now().Add(testTimeout)
	for {
		if open, _ := srv.IncomingConns(); open == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("slots not freed after the clients closed")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cl := newNet(t, Config{})
	if _, err := errAfterConn(t, cl, addr); err != nil {
		t.Fatalf("new connection after the flood ended: %v", err)
	}
}

// errAfterConn dials addr on cl and round-trips one byte on the stream.
func errAfterConn(t *testing.T, cl *Network, addr string) (net.Conn, error) {
	t.Helper()
	ctx := testCtx(t)
	c, err := cl.Dial(ctx, addr)
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte{1}); err != nil {
		c.Close()
		return nil, err
	}
	var b [1]byte
	if _, err := c.Read(b[:]); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// TestIncomingConnCapDefault pins the README's limits row: a zero Config
// caps incoming QUIC connections at 4096.
func TestIncomingConnCapDefault(t *testing.T) {
	if got := New(Config{}).cfg.MaxIncomingConns; got != 4096 {
		t.Fatalf("default MaxIncomingConns %d, README says 4096", got)
	}
}
