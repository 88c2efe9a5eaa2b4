package transport_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aemp-go/dataconn/core/handshake"
	"github.com/aemp-go/dataconn/core/wire"
	"github.com/aemp-go/dataconn/memnet"
	"github.com/aemp-go/dataconn/transport"
)

func TestMessagingRoundTrip(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := memnet.New(1, memnet.WithDefaultLink(memnet.LinkConfig{Latency: 10 * time.Millisecond}))
		a := listening(t, w, "a", nil)
		b := listening(t, w, "b", nil)
		meshPeers(a, b)
		got := make(chan []any, 10)
		pa := a.NewPort(func(d []any) { got <- d })
		pb := b.NewPort(func(d []any) {
			// echo back to the port named in the message
			b.Send(d[0].(string), "pong", d[1])
		})
		for i := 0; i < 5; i++ {
			if err := a.Send(pb.ID(), pa.ID(), int64(i)); err != nil {
				t.Fatal(err)
			}
		}
		for i := 0; i < 5; i++ {
			d := <-got
			if d[0] != "pong" || d[1] != int64(i) {
				t.Fatalf("message %d: got %v", i, d)
			}
		}
		if p := a.Peers(); len(p) != 1 || p[0] != "b" {
			t.Fatalf("peers of a: %v", p)
		}
		a.Close()
		b.Close()
	})
}

// recvAll is an init function that hashes what it receives, reports it
// and echoes the hash back.
type sink struct {
	mu    sync.Mutex
	calls int
	sums  chan [32]byte
	data  []any
}

func newSink() *sink { return &sink{sums: make(chan [32]byte, 100)} }

func (s *sink) init(from string, data []any, c net.Conn) {
	s.mu.Lock()
	s.calls++
	s.data = data
	s.mu.Unlock()
	h := sha256.New()
	io.Copy(h, c)
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	c.Write(sum[:])
	c.Close()
	s.sums <- sum
}

func (s *sink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

func sendAndCheck(t *testing.T, c net.Conn, size int) {
	t.Helper()
	payload := bytes.Repeat([]byte("0123456789abcdef"), size/16)
	want := sha256.Sum256(payload)
	if _, err := c.Write(payload); err != nil {
		t.Fatal(err)
	}
	if err := c.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want[:]) {
		t.Fatalf("remote hash %x, want %x", got, want)
	}
	c.Close()
}

func TestDataConnGoToGo(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const lat = 10 * time.Millisecond
		w := memnet.New(2, memnet.WithDefaultLink(memnet.LinkConfig{Latency: lat}))
		a := listening(t, w, "a", nil)
		b := listening(t, w, "b", nil)
		meshPeers(a, b)
		s := newSink()
		b.HandleDataConn("test::recv", s.init)
		if err := a.Connect(context.Background(), "b"); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		c, err := a.ConnectTo(context.Background(), "b", 5*time.Second, "test::recv", "hello", int64(42))
		if err != nil {
			t.Fatal(err)
		}
		rtts := float64(time.Since(start)) / float64(2*lat)
		if rtts > 2.01 {
			t.Errorf("warm set-up took %.2f round trips, want <= 2", rtts)
		}
		sendAndCheck(t, c, 1<<16)
		<-s.sums
		if s.count() != 1 || len(s.data) != 2 || s.data[0] != "hello" || s.data[1] != int64(42) {
			t.Fatalf("init calls %d data %v", s.count(), s.data)
		}
		if o, e, h := b.DataConns().Pending(); o+e+h != 0 {
			t.Fatalf("b still holds %d/%d/%d", o, e, h)
		}
		a.Close()
		b.Close()
	})
}

func TestDataConnPerlFlow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := memnet.New(3, memnet.WithDefaultLink(memnet.LinkConfig{Latency: 10 * time.Millisecond}))
		a := listening(t, w, "a", nil)
		b := listening(t, w, "b", func(c *transport.Config) { c.PerlCompat = true })
		meshPeers(a, b)
		s := newSink()
		b.HandleDataConn("test::recv", s.init)
		c, err := a.ConnectTo(context.Background(), "b#someport", 5*time.Second, "test::recv")
		if err != nil {
			t.Fatal(err)
		}
		sendAndCheck(t, c, 1<<12)
		<-s.sums
		a.Close()
		b.Close()
	})
}

func TestDataConnSameNode(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := memnet.New(4)
		a := listening(t, w, "a", nil)
		s := newSink()
		a.HandleDataConn("test::recv", s.init)
		c, err := a.ConnectTo(context.Background(), "a", time.Second, "test::recv", "x")
		if err != nil {
			t.Fatal(err)
		}
		payload := []byte("same node")
		go func() {
			c.Write(payload)
			c.(interface{ CloseWrite() error }).CloseWrite()
		}()
		var sum [32]byte
		if _, err := io.ReadFull(c, sum[:]); err != nil {
			t.Fatal(err)
		}
		if sum != sha256.Sum256(payload) {
			t.Fatal("hash mismatch")
		}
		c.Close()
		<-s.sums
		a.Close()
	})
}

func TestDataConnNoListeners(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := memnet.New(5)
		b := listening(t, w, "b", nil)
		a, err := transport.NewNode(transport.Config{NodeID: "a", Secret: simSecret})
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		a.AddNetwork(w.Host("a"))
		_, err = a.ConnectTo(context.Background(), "b", time.Second, "f")
		var de *transport.DataConnError
		if !errors.As(err, &de) || !errors.Is(err, transport.ErrDataConnNoRoute) {
			t.Fatalf("err = %v", err)
		}
		if err.Error() != "b: no listeners found" || de.Reason.Family != wire.KillReasonDataConn {
			t.Fatalf("reason %q family %q", err.Error(), de.Reason.Family)
		}
		b.Close()
	})
}

// TestDataConnWrongSecretFailsAtOnce: a target with another secret fails
// the set-up with the authentication rule as soon as its auth line
// arrives, not at the timeout.
func TestDataConnWrongSecretFailsAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := memnet.New(6, memnet.WithDefaultLink(memnet.LinkConfig{Latency: time.Millisecond}))
		a := listening(t, w, "a", nil)
		b := listening(t, w, "b", func(c *transport.Config) { c.Secret = []byte("other") })
		meshPeers(a, b)
		var called atomic.Int32
		b.HandleDataConn("f", func(string, []any, net.Conn) { called.Add(1) })
		start := time.Now()
		_, err := a.ConnectTo(context.Background(), "b", 2*time.Second, "f")
		// The messaging connection's handshake fails on b's auth line,
		// four one-way hops (connect, SYN-ACK, greeting, auth) after the
		// call: long before the timeout, and for the auth rule.
		if d := time.Since(start); d != 4*time.Millisecond {
			t.Errorf("failed after %v, want 4ms (four 1ms hops)", d)
		}
		if !errors.Is(err, handshake.ErrAuthFailed) || errors.Is(err, transport.ErrDataConnTimeout) {
			t.Errorf("err = %v, want the auth failure (handshake.ErrAuthFailed), not a timeout", err)
		}
		dcErr(t, err, "b", transport.ErrDataConnFailed)
		if called.Load() != 0 {
			t.Fatal("init function ran")
		}
		a.Close()
		b.Close()
	})
}

func TestDataConnUnknownInitFunction(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := memnet.New(7, memnet.WithDefaultLink(memnet.LinkConfig{Latency: 5 * time.Millisecond}))
		a := listening(t, w, "a", nil)
		b := listening(t, w, "b", nil)
		meshPeers(a, b)
		start := time.Now()
		_, err := a.ConnectTo(context.Background(), "b", 5*time.Second, "no::such")
		var de *transport.DataConnError
		if !errors.As(err, &de) || !errors.Is(err, transport.ErrDataConnKilled) {
			t.Fatalf("err = %v", err)
		}
		if de.Error() != `b: no init function "no::such"` {
			t.Fatalf("text %q", de.Error())
		}
		if time.Since(start) >= time.Second {
			t.Fatalf("took %v: the refusal should arrive in a round trip or two", time.Since(start))
		}
		a.Close()
		b.Close()
	})
}

func TestMonitorNodes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := memnet.New(8, memnet.WithDefaultLink(memnet.LinkConfig{Latency: time.Millisecond}))
		a := listening(t, w, "a", nil)
		b := listening(t, w, "b", nil)
		meshPeers(a, b)
		type ev struct {
			id string
			up bool
		}
		evs := make(chan ev, 4)
		cancel := a.MonitorNodes(func(id string, up bool, err error) { evs <- ev{id, up} })
		defer cancel()
		if err := a.Connect(context.Background(), "b"); err != nil {
			t.Fatal(err)
		}
		if e := <-evs; e != (ev{"b", true}) {
			t.Fatalf("got %+v", e)
		}
		b.Close()
		if e := <-evs; e != (ev{"b", false}) {
			t.Fatalf("got %+v", e)
		}
		a.Close()
	})
}
