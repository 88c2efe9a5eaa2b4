package transport_test

import (
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aemp-go/dataconn/memnet"
)

// TestGlobalSimMonitorFailedConnect: PERL-NODE.md §4, the monitors of a
// connect attempt that fails (a Perl node fires them with
// ["transport_error", NODE, "no known address"] or "connect timeout"): a
// monitor of a port on a node nobody announced, and one on a node whose
// address refuses, each fire once, at once, with ["transport_error",
// NODE, MSG], and never again (memnet, virtual time).
func TestGlobalSimMonitorFailedConnect(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := memnet.New(48, memnet.WithDefaultLink(memnet.LinkConfig{Latency: time.Millisecond}), memnet.WithTrace(0))
		a := goGlobal(t, w, "A", true, nil)
		a.AddPeer("Y", seedAddr("Y")) // nothing listens there
		var mu sync.Mutex
		fired := map[string][][]any{}
		start := time.Now()
		for _, port := range []string{"Z#p", "Y#p"} {
			if _, err := a.Monitor(port, func(r []any) {
				mu.Lock()
				fired[port] = append(fired[port], r)
				mu.Unlock()
				if d := time.Since(start); d > time.Second {
					t.Errorf("monitor of %s fired after %v, want at once", port, d)
				}
			}); err != nil {
				t.Fatalf("Monitor %s: %v", port, err)
			}
		}
		time.Sleep(time.Minute)
		mu.Lock()
		defer mu.Unlock()
		for _, port := range []string{"Z#p", "Y#p"} {
			rs := fired[port]
			if len(rs) != 1 || len(rs[0]) != 3 || rs[0][0] != "transport_error" || rs[0][1] != port[:1] {
				t.Errorf("monitor of %s fired %v, want once with [transport_error %s MSG]", port, rs, port[:1])
			}
		}
		t.Logf("monitors fired %v", fmt.Sprint(fired))
		a.Close()
	})
}
