package transport_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aemp-go/dataconn/core/handshake"
	"github.com/aemp-go/dataconn/memnet"
	"github.com/aemp-go/dataconn/transport"
)

// errLog is a slog.Handler keeping the "err" attributes logged.
type errLog struct {
	mu   sync.Mutex
	errs []error
}

func (l *errLog) Enabled(context.Context, slog.Level) bool { return true }
func (l *errLog) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *errLog) WithGroup(string) slog.Handler            { return l }
func (l *errLog) Handle(_ context.Context, r slog.Record) error {
	r.Attrs(func(a slog.Attr) bool {
		if err, ok := a.Value.Any().(error); ok && a.Key == "err" {
			l.mu.Lock()
			l.errs = append(l.errs, err)
			l.mu.Unlock()
		}
		return true
	})
	return nil
}

func (l *errLog) count(rule error) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, e := range l.errs {
		if errors.Is(e, rule) {
			n++
		}
	}
	return n
}

// TestHandshakeLimitsAtDefaults: a node with the default Config (the
// README's limits table) reads a first handshake line of exactly 4096
// bytes, terminator included, and answers; at 4097 it drops the
// connection for ErrLineTooLong without answering; a connection that sends
// nothing is dropped for handshake.ErrTimeout after exactly 10 s.
func TestHandshakeLimitsAtDefaults(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := memnet.New(41)
		logs := &errLog{}
		b := listening(t, w, "b", func(c *transport.Config) { c.Logger = slog.New(logs) })
		greeting := func(n int) string {
			l := "aemp;1;x;hmac_sha3_512;json;pad="
			return l + strings.Repeat("p", n-len(l)-1) + "\n"
		}
		for _, tc := range []struct {
			size   int
			answer bool
		}{{4096, true}, {4097, false}} {
			c, err := w.Host("x").Dial(context.Background(), "b:1")
			if err != nil {
				t.Fatal(err)
			}
			line := greeting(tc.size)
			if len(line) != tc.size {
				t.Fatalf("line of %d bytes", len(line))
			}
			go io.WriteString(c, line)
			c.SetReadDeadline(time.Now().Add(time.Second))
			got, err := bufio.NewReader(c).ReadString('\n')
			if tc.answer && !strings.HasPrefix(got, "aemp;1;b;") {
				t.Errorf("%d-byte line: node answered %q, %v; want its greeting", tc.size, got, err)
			}
			if !tc.answer && (got != "" || !errors.Is(err, io.EOF)) {
				t.Errorf("%d-byte line: node answered %q, %v; want the connection closed", tc.size, got, err)
			}
			c.Close()
		}
		synctest.Wait()
		if n := logs.count(handshake.ErrLineTooLong); n != 1 {
			t.Errorf("%d connections dropped for ErrLineTooLong, want the 4097-byte one", n)
		}

		// Silence: dropped at the default handshake timeout.
		c, err := w.Host("x").Dial(context.Background(), "b:1")
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		c.SetReadDeadline(time.Now().Add(time.Minute))
		n, err := c.Read(make([]byte, 1))
		if d := time.Since(start); d != 10*time.Second || n != 0 || !errors.Is(err, io.EOF) {
			t.Errorf("silent connection: read %d bytes, %v after %v; want EOF after exactly 10s", n, err, d)
		}
		c.Close()
		synctest.Wait()
		if n := logs.count(handshake.ErrTimeout); n != 1 {
			t.Errorf("%d connections dropped for handshake.ErrTimeout, want 1", n)
		}
		closeAll(b)
	})
}
