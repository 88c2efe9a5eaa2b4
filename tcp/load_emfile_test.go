package tcp_test

import (
	"context"
	"errors"
	"net"
	"syscall"
	"testing"
	"time"
)

// Descriptor exhaustion on real sockets: with RLIMIT_NOFILE lowered so
// that the process runs out of descriptors, the node's listener gets
// EMFILE from Accept; it backs off and keeps serving, and once
// descriptors are free again a data connection to it succeeds.
func TestListenerSurvivesRealEMFILE(t *testing.T) {
	if countFDs() < 0 {
		t.Fatal("needs /proc/self/fd to size the descriptor limit")
	}
	warmNetpoller(t)
	base := snapshot()
	b := startNode(t, "b", "127.0.0.1:0", nil)
	a := startNode(t, "a", "127.0.0.1:0", nil)
	linkNodes(a, b)
	b.HandleDataConn("f", func(_ string, _ []any, c net.Conn) { c.Write([]byte("ok")); c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := a.Connect(ctx, "b"); err != nil {
		t.Fatal(err)
	}

	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	low := old
	low.Cur = uint64(countFDs() + 16)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	restore := func() { syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old) }
	defer restore()

	// Dial raw connections to b until this process is out of
	// descriptors: b's listener then cannot accept them (bounded: the
	// limit allows a few dozen at most).
	var conns []net.Conn
	sawEMFILE := false
	for i := 0; i < 200 && !sawEMFILE; i++ {
		c, err := net.DialTimeout("tcp", b.Addrs()[0], time.Second)
		if err != nil {
			sawEMFILE = errors.Is(err, syscall.EMFILE)
			continue
		}
		conns = append(conns, c)
	}
	if !sawEMFILE {
		t.Fatalf("dials never ran out of descriptors (%d open)", len(conns))
	}
	deadline := time.Now().Add(10 * time.Second)
	for b.Stats().AcceptErrors == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("b's listener saw no Accept error while out of descriptors: %+v", b.Stats())
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, c := range conns {
		c.Close()
	}
	restore()
	errs := b.Stats().AcceptErrors
	// The listener serves again: a data connection goes through.
	c, err := a.ConnectTo(ctx, "b", 10*time.Second, "f")
	if err != nil {
		t.Fatalf("after descriptors came back (%d Accept errors survived): %v", errs, err)
	}
	var buf [2]byte
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(buf[:]); err != nil || string(buf[:]) != "ok" {
		t.Fatalf("data connection after EMFILE: %q, %v", buf, err)
	}
	c.Close()
	t.Logf("listener survived %d EMFILE accepts", errs)
	a.Close()
	b.Close()
	if err := waitReleased(base, leakSettle); err != nil {
		t.Fatal(err)
	}
}
