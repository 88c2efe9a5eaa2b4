package tcp_test

import (
	"fmt"
	"net"
	"os"
	"runtime"
	"strings"
	"testing"
)

// underCI reports whether the tests run in CI (CI=true, as .ci/run and
// most CI services set it): there every environment the tests need is
// provided, so a skip would hide a test that did not run.
func underCI() bool { return os.Getenv("CI") == "true" }

// skipOrFail skips t with the reason, or fails it under CI.
func skipOrFail(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if underCI() {
		t.Fatalf("%s; under CI=true this skip is a failure", msg)
	}
	t.Skip("skipped: " + msg)
}

// needLoopback skips (or under CI fails) t when addr is an IPv6 address
// and this host has no IPv6 loopback to listen on.
func needLoopback(t testing.TB, addr string) {
	t.Helper()
	if !strings.HasPrefix(addr, "[::1]") {
		return
	}
	l, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		skipOrFail(t, "no IPv6 loopback on this host (%v)", err)
		return
	}
	l.Close()
}

// TestSkipOrFailUnderCI: the skip helper fails under CI=true.
func TestSkipOrFailUnderCI(t *testing.T) {
	for _, ci := range []string{"", "true"} {
		t.Run("CI="+ci, func(t *testing.T) {
			t.Setenv("CI", ci)
			ft := &fakeTB{}
			done := make(chan struct{})
			go func() { // Fatal and Skip end the goroutine, as in a test
				defer close(done)
				skipOrFail(ft, "no %s", "thing")
			}()
			<-done
			if ci == "true" && (!ft.failed || ft.skipped) {
				t.Errorf("CI=true: failed %v skipped %v, want a failure", ft.failed, ft.skipped)
			}
			if ci == "" && (ft.failed || !ft.skipped || ft.msg != "skipped: no thing") {
				t.Errorf("no CI: failed %v skipped %v (%q), want a skip with the reason", ft.failed, ft.skipped, ft.msg)
			}
		})
	}
}

// fakeTB records what skipOrFail does.
type fakeTB struct {
	testing.TB
	failed, skipped bool
	msg             string
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.failed, f.msg = true, fmt.Sprintf(format, args...)
	runtime.Goexit()
}
func (f *fakeTB) Skip(args ...any) {
	f.skipped, f.msg = true, fmt.Sprint(args...)
	runtime.Goexit()
}
