package tcp_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/aemp-go/dataconn/tcp"
)

// leakSettle is how long a test waits, after its nodes are closed, for
// descriptors and goroutines to return to their starting counts.
const leakSettle = 5 * time.Second

// resources is a snapshot of what a test could leak.
type resources struct {
	fds        int // entries of /proc/self/fd; -1 when unavailable
	goroutines int
}

// countFDs returns the number of open descriptors of the process, or -1 when
// /proc/self/fd cannot be read (not Linux). The directory's own descriptor
// is counted in every snapshot alike.
func countFDs() int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	return len(ents)
}

func snapshot() resources {
	return resources{fds: countFDs(), goroutines: runtime.NumGoroutine()}
}

// errLeak is the rule a leak check reports.
var errLeak = errors.New("resources not released")

// waitReleased polls until the process is back to base (or below) or wait
// has passed; it returns an error naming what is left over.
func waitReleased(base resources, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	for {
		now := snapshot()
		fdOK := base.fds < 0 || now.fds <= base.fds
		if fdOK && now.goroutines <= base.goroutines {
			return nil
		}
		if !time.Now().Before(deadline) {
			var parts []string
			if !fdOK {
				parts = append(parts, fmt.Sprintf("open descriptors %d, started with %d", now.fds, base.fds))
			}
			if now.goroutines > base.goroutines {
				parts = append(parts, fmt.Sprintf("goroutines %d, started with %d", now.goroutines, base.goroutines))
			}
			return fmt.Errorf("%w after %v: %s", errLeak, wait, strings.Join(parts, "; "))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// warmNetpoller makes the runtime create its network poller descriptors, so
// that the first test's snapshot does not miss them.
func warmNetpoller(t testing.TB) {
	t.Helper()
	l, err := tcp.New().Listen(context.Background(), "127.0.0.1:0")
	if err != nil {
		t.Fatalf("warm-up listen: %v", err)
	}
	l.Close()
}

// checkLeaks records the process's descriptors and goroutines and, when
// the test ends (after every cleanup registered later, such as closing
// nodes), fails the test unless both are back to where they started
// within leakSettle. Call it first in a test, before anything is opened;
// tests using it must not run in parallel with others.
func checkLeaks(t *testing.T) {
	t.Helper()
	warmNetpoller(t)
	base := snapshot()
	t.Cleanup(func() {
		if err := waitReleased(base, leakSettle); err != nil {
			buf := make([]byte, 64<<10)
			buf = buf[:runtime.Stack(buf, true)]
			t.Errorf("%v\ngoroutines:\n%s", err, buf)
		}
	})
}

// TestLeakCheckDetects shows that the check can fail: a descriptor or a
// goroutine left open is reported, and releasing them clears it.
func TestLeakCheckDetects(t *testing.T) {
	warmNetpoller(t)
	// Goroutines of an earlier test may still be ending: take the
	// baseline once the counts have held still for 100ms (at most 5s), or
	// one ending during the check would hide the goroutine started here.
	base := snapshot()
	for still, end := time.Now(), time.Now().Add(5*time.Second); time.Since(still) < 100*time.Millisecond && time.Now().Before(end); {
		time.Sleep(10 * time.Millisecond)
		if now := snapshot(); now != base {
			base, still = now, time.Now()
		}
	}
	if base.fds < 0 {
		t.Log("no /proc/self/fd: only goroutines are checked")
	}

	l, err := tcp.New().Listen(context.Background(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		<-stop
	}()
	err = waitReleased(base, 100*time.Millisecond)
	if !errors.Is(err, errLeak) {
		t.Fatalf("a listener and a goroutine left open: check returned %v", err)
	}
	if !strings.Contains(err.Error(), "goroutines") || (base.fds >= 0 && !strings.Contains(err.Error(), "descriptors")) {
		t.Fatalf("report does not name what leaked: %v", err)
	}

	l.Close()
	close(stop)
	<-exited
	if err := waitReleased(base, leakSettle); err != nil {
		t.Fatalf("after releasing everything: %v", err)
	}
}
