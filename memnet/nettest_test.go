package memnet

import (
	"context"
	"fmt"
	"net"
	"runtime"
	"testing"
	"time"

	"golang.org/x/net/nettest"
)

// makePipe returns a MakePipe over a fresh World with the given link.
func makePipe(cfg LinkConfig) nettest.MakePipe {
	return func() (c1, c2 net.Conn, stop func(), err error) {
		w := New(1, WithDefaultLink(cfg), WithTrace(0))
		l, err := w.Host("server").Listen(context.Background(), ":0")
		if err != nil {
			return nil, nil, nil, err
		}
		accepted := make(chan net.Conn, 1)
		go func() {
			c, err := l.Accept()
			if err != nil {
				c = nil
			}
			accepted <- c
		}()
		c1, err = w.Host("client").Dial(context.Background(), l.Addr().String())
		if err != nil {
			l.Close()
			return nil, nil, nil, err
		}
		c2 = <-accepted
		if c2 == nil {
			c1.Close()
			return nil, nil, nil, fmt.Errorf("accept failed")
		}
		stop = func() {
			c1.Close()
			c2.Close()
			l.Close()
			w.Close()
		}
		return c1, c2, stop, nil
	}
}

// TestNetConnConformance runs golang.org/x/net/nettest's net.Conn checks,
// in real time, with and without latency.
func TestNetConnConformance(t *testing.T) {
	t.Run("ZeroLatency", func(t *testing.T) { nettest.TestConn(t, makePipe(LinkConfig{})) })
	t.Run("Latency", func(t *testing.T) {
		nettest.TestConn(t, makePipe(LinkConfig{Latency: 50 * time.Microsecond, Jitter: 20 * time.Microsecond}))
	})
}

// TestNoGoroutineLeak checks, in real time, that no memnet goroutine is
// left once conns and listeners are closed.
func TestNoGoroutineLeak(t *testing.T) {
	before := runtime.NumGoroutine()
	w := New(3, WithDefaultLink(LinkConfig{Latency: 200 * time.Microsecond, Jitter: 100 * time.Microsecond}))
	a, b := w.Host("a"), w.Host("b")
	for i := range 20 {
		c, s, l := pair(t, a, b, fmt.Sprint(i+1))
		c.SetDeadline(time.Now().Add(time.Hour))
		s.SetReadDeadline(time.Now().Add(time.Hour))
		c.Write(make([]byte, 1000))
		if _, err := s.Read(make([]byte, 10)); err != nil {
			t.Fatal(err)
		}
		c.Close()
		s.Close()
		l.Close()
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<16)
		t.Fatalf("%d goroutines before, %d after:\n%s", before, n, buf[:runtime.Stack(buf, true)])
	}
}
