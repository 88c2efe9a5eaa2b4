package transport

import (
	"bytes"
	"context"
	"net"
	"testing"
	"time"

	"github.com/aemp-go/dataconn/core/handshake"
)

// peerFirstConn is one end of a pipe whose peer speaks first (PeerGreeter).
type peerFirstConn struct{ net.Conn }

func (peerFirstConn) PeerGreetsFirst() bool { return true }

// TestDrivePeerGreetsFirst: on a stream whose peer greets first, the
// connecting side reads the peer's lines before it writes, so its
// greeting, nonce and the auth line that answers the peer go out in one
// write (one QUIC packet instead of two); on another stream it writes its
// lines first, before anything arrives.
func TestDrivePeerGreetsFirst(t *testing.T) {
	for _, peerFirst := range []bool{true, false} {
		a, b := net.Pipe()
		var conn net.Conn = a
		if peerFirst {
			conn = peerFirstConn{a}
		}
		m, err := handshake.New(handshake.Config{NodeID: "a", Secret: []byte("s")}, "nonce-a", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		done := make(chan struct{})
		go func() {
			defer close(done)
			_, _, _ = Drive(ctx, conn, m, DriveOptions{})
		}()
		_ = b.SetDeadline(time.Now().Add(10 * time.Second))
		first := make([]byte, 4096)
		if peerFirst {
			if _, err := b.Write([]byte("aemp;1;b;hmac_sha3_512;msgpack\nnonce-b\n")); err != nil {
				t.Fatal(err)
			}
		}
		n, err := b.Read(first)
		if err != nil {
			t.Fatal(err)
		}
		lines := bytes.Count(first[:n], []byte("\n"))
		switch {
		case peerFirst && (lines != 3 || !bytes.Contains(first[:n], []byte("\nhmac_sha3_512;"))):
			t.Fatalf("peer greets first: first write %q, want greeting, nonce and auth line in one", first[:n])
		case !peerFirst && lines != 2:
			t.Fatalf("first write %q, want greeting and nonce before the peer said anything", first[:n])
		}
		cancel()
		_ = b.Close()
		<-done
	}
}
