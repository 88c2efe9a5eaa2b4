package quic_test

import (
	"context"
	"io"
	"net"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/aemp-go/dataconn/quic"
	"github.com/aemp-go/dataconn/transport"
)

// leakWait bounds how long a test waits, after closing its nodes and
// Networks, for goroutines and descriptors to go away.
const leakWait = 10 * time.Second

// openFDs returns the number of open file descriptors of the process, and
// how many of them are sockets, from /proc/self/fd.
func openFDs(t testing.TB) (total, sockets int) {
	t.Helper()
	fds := fdTargets(t)
	for _, target := range fds {
		if strings.HasPrefix(target, "socket:") {
			sockets++
		}
	}
	return len(fds), sockets
}

// fdTargets lists what the open descriptors point to.
func fdTargets(t testing.TB) []string {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatalf("reading /proc/self/fd: %v", err)
	}
	out := make([]string, 0, len(ents))
	for _, e := range ents {
		target, err := os.Readlink("/proc/self/fd/" + e.Name())
		if err != nil {
			target = "?"
		}
		out = append(out, e.Name()+" -> "+target)
	}
	return out
}

// checkLeaks records the goroutines and descriptors in use now and, when
// the test ends (after every cleanup registered later, such as closing its
// nodes and Networks), fails it unless both are back to at most that many
// within leakWait. Call it first in a test, before making any node.
// Tests using it must not run in parallel.
func checkLeaks(t *testing.T) {
	t.Helper()
	// The runtime opens its network poller's descriptors on first use and
	// keeps them: make sure that happened before counting.
	if pc, err := net.ListenPacket("udp", "127.0.0.1:0"); err == nil {
		_ = pc.Close()
	}
	goBefore := runtime.NumGoroutine()
	fdBefore, sockBefore := openFDs(t)
	t.Cleanup(func() {
		deadline := time.Now().Add(leakWait)
		for {
			gor := runtime.NumGoroutine()
			fds, socks := openFDs(t)
			if gor <= goBefore && fds <= fdBefore && socks <= sockBefore {
				return
			}
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				t.Errorf("leak after Close: goroutines %d -> %d, descriptors %d -> %d, sockets %d -> %d\ndescriptors: %q\n%s",
					goBefore, gor, fdBefore, fds, sockBefore, socks, fdTargets(t), buf[:runtime.Stack(buf, true)])
				return
			}
			// The runtime keeps the pipes that splice (TCP io.Copy) used
			// in a pool, closed by finalizers once the pool is dropped.
			runtime.GC()
			time.Sleep(20 * time.Millisecond)
		}
	})
}

// TestNodeCloseReleasesEverything: two nodes that exchanged messaging and
// data connections over QUIC leave no goroutine, socket or UDP port behind
// once the nodes and their Networks are closed, and the ports can be bound
// again at once.
func TestNodeCloseReleasesEverything(t *testing.T) {
	goBefore := runtime.NumGoroutine()
	if pc, err := net.ListenPacket("udp", "127.0.0.1:0"); err == nil {
		_ = pc.Close()
	}
	fdBefore, sockBefore := openFDs(t)

	mk := func(id string) (*transport.Node, *quic.Network, string) {
		nw := quic.New(quic.Config{})
		n, err := transport.NewNode(transport.Config{NodeID: id, Secret: testSecret, Logger: quietLog()})
		if err != nil {
			t.Fatal(err)
		}
		addr, err := n.Listen(testCtx(t), nw, "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		return n, nw, addr
	}
	a, aNet, aAddr := mk("leak-a")
	b, bNet, bAddr := mk("leak-b")
	a.AddPeer("leak-b", bAddr)
	b.AddPeer("leak-a", aAddr)
	s := newSink()
	a.HandleDataConn("test::sink", s.init)
	b.HandleDataConn("test::sink", s.init)
	// Data connections both ways; one left open on purpose, so Close has
	// to tear down a live stream.
	for i, pair := range [][2]*transport.Node{{a, b}, {b, a}, {a, b}} {
		c, err := pair[0].ConnectTo(testCtx(t), pair[1].ID(), 10*time.Second, "test::sink", "")
		if err != nil {
			t.Fatalf("ConnectTo %d: %v", i, err)
		}
		if i == 2 {
			if _, err := c.Write([]byte("left open")); err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			continue
		}
		sendAndCheck(t, c, []byte("payload"))
	}
	// The target runs the init function in a goroutine of its own, maybe
	// a moment after the initiator has its end.
	for deadline := time.Now().Add(testTimeout); s.calls.Load() != 3; {
		if time.Now().After(deadline) {
			t.Fatalf("init ran %d times, want 3", s.calls.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}
	during, _ := openFDs(t)
	if during <= fdBefore {
		t.Fatalf("descriptors %d while listening, %d before: the count does not see the sockets", during, fdBefore)
	}

	// Networks first: Node.Close waits for running init functions, and
	// the one reading the open stream returns only when its stream dies.
	for _, c := range []io.Closer{aNet, bNet, a, b} {
		if err := c.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
	}
	for _, addr := range []string{aAddr, bAddr} {
		_, hostPort := transport.SplitAddr(addr)
		pc, err := net.ListenPacket("udp", hostPort)
		if err != nil {
			t.Fatalf("UDP port %s still in use after Close: %v", hostPort, err)
		}
		_ = pc.Close()
	}
	deadline := time.Now().Add(leakWait)
	for {
		gor := runtime.NumGoroutine()
		fds, socks := openFDs(t)
		if gor <= goBefore && fds <= fdBefore && socks <= sockBefore {
			break
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("after Close: goroutines %d -> %d, descriptors %d -> %d, sockets %d -> %d\ndescriptors: %q\n%s",
				goBefore, gor, fdBefore, fds, sockBefore, socks, fdTargets(t), buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(20 * time.Millisecond)
	}
	// A closed node refuses new work instead of hanging.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := a.ConnectTo(ctx, "leak-b", time.Second, "test::sink"); err == nil {
		t.Fatal("ConnectTo on a closed node succeeded")
	}
}
