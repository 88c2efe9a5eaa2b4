package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net"
	"testing"
	"time"

	"github.com/aemp-go/dataconn/tcp"
	"github.com/aemp-go/dataconn/transport"
)

// TestSendUncheckedReportsVerifiedFalse: a send to an init function other
// than aemp::recv transfers the bytes, but nobody checks them, and --json
// says "verified": false instead of leaving the field out.
func TestSendUncheckedReportsVerifiedFalse(t *testing.T) {
	recv, err := transport.NewNode(transport.Config{NodeID: "sink", Secret: []byte(testSecret)})
	if err != nil {
		t.Fatal(err)
	}
	defer recv.Close()
	got := make(chan []byte, 1)
	recv.HandleDataConn("test::sink", func(from string, data []any, c net.Conn) {
		defer c.Close()
		b, _ := io.ReadAll(c)
		got <- b
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	addr, err := recv.Listen(ctx, tcp.New(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}

	path, data := randomFile(t, t.TempDir(), "payload.bin", 64<<10+7)
	r := runAemp(t, 30*time.Second, nil, nil, "send", "--id", "sender", "--secret", testSecret, "--json",
		"--to", "sink@"+addr, "--initfunc", "test::sink", path)
	if r.code != 0 {
		t.Fatalf("send exit %d\nstderr: %s", r.code, r.stderr)
	}
	ev := lastEvent(t, r.stdout)
	sum := sha256.Sum256(data)
	if ev.Event != "sent" || ev.Bytes == nil || *ev.Bytes != int64(len(data)) || ev.SHA256 != hex.EncodeToString(sum[:]) {
		t.Fatalf("send reported %+v, want %d bytes with sha256 %x", ev, len(data), sum)
	}
	if ev.Verified == nil || *ev.Verified {
		t.Fatalf(`send to test::sink reported verified=%v, want "verified": false`, ev.Verified)
	}
	select {
	case b := <-got:
		if string(b) != string(data) {
			t.Fatalf("the init function read %d bytes, want the %d sent", len(b), len(data))
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the init function never finished reading")
	}
}
