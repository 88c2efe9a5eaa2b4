package tcp_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/aemp-go/dataconn/transport"
)

// readSyscalls returns this process's read-type system calls so far
// (syscr of /proc/self/io: read, pread, readv and sendfile count, splice
// does not).
func readSyscalls(t *testing.T) int64 {
	t.Helper()
	f, err := os.Open("/proc/self/io")
	if err != nil {
		t.Skipf("skipped: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "syscr: "); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no syscr in /proc/self/io")
	return 0
}

// TestDataConnKernelPath: io.Copy from a file to the stream ConnectTo
// returns takes the kernel's path (sendfile; the target splices into
// /dev/null): the read-type system calls of the whole process during a
// 32 MiB copy are a small fraction of those of the same copy forced
// through a user-space buffer (32 KiB per read: over 1,000), in the same
// run on the same node pair.
//
// No checkLeaks: splice keeps a pool of pipes (two descriptors) in the
// standard library after the copy.
func TestDataConnKernelPath(t *testing.T) {
	const size = 32 << 20
	path := filepath.Join(t.TempDir(), "payload")
	if err := os.WriteFile(path, make([]byte, size), 0o600); err != nil {
		t.Fatal(err)
	}
	devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer devnull.Close()
	a := startNode(t, "a", "127.0.0.1:0", nil)
	b := startNode(t, "b", "127.0.0.1:0", nil)
	linkNodes(a, b)
	got := make(chan int64, 1)
	b.HandleDataConn("sink", func(_ string, _ []any, c net.Conn) {
		defer c.Close()
		n, _ := io.Copy(devnull, c) // (*os.File).ReadFrom: splice from the socket
		got <- n
	})
	copyOnce := func(user bool) int64 {
		ctx, cancel := context.WithTimeout(context.Background(), dcTimeout)
		defer cancel()
		c, err := a.ConnectTo(ctx, "b", dcTimeout, "sink")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, ok := c.(*net.TCPConn); !ok {
			t.Fatalf("ConnectTo returned %T, want the bare *net.TCPConn", c)
		}
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		before := readSyscalls(t)
		var n int64
		if user {
			// Hide WriterTo and ReaderFrom: a plain 32 KiB buffer loop.
			n, err = io.Copy(struct{ io.Writer }{c}, struct{ io.Reader }{f})
		} else {
			n, err = io.Copy(c, f)
		}
		if err != nil || n != size {
			t.Fatalf("copied %d bytes, %v", n, err)
		}
		c.(transport.CloseWriter).CloseWrite()
		if r := <-got; r != size {
			t.Fatalf("target received %d bytes, want %d", r, size)
		}
		return readSyscalls(t) - before
	}
	user := copyOnce(true)
	kernel := copyOnce(false)
	t.Logf("read-type system calls for 32 MiB: %d through user space, %d by io.Copy on the data connection", user, kernel)
	if user < size/(32<<10) {
		t.Fatalf("the user-space copy made only %d read calls: the measurement does not see reads", user)
	}
	if kernel*4 > user {
		t.Errorf("io.Copy on the data connection made %d read calls, the user-space copy %d: not the kernel's path", kernel, user)
	}
}
