package transport_test

import (
	"context"
	"errors"
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aemp-go/dataconn/memnet"
	"github.com/aemp-go/dataconn/transport"
)

// emfileNet wraps a Network: its listeners fail Accept with EMFILE while
// failing is set, and its dials fail with EMFILE while dialFail is set.
type emfileNet struct {
	transport.Network
	failing  atomic.Bool
	dialFail atomic.Bool
	accepts  atomic.Int64 // Accept calls
}

func (e *emfileNet) Listen(ctx context.Context, addr string) (net.Listener, error) {
	l, err := e.Network.Listen(ctx, addr)
	if err != nil {
		return nil, err
	}
	return &emfileListener{Listener: l, e: e}, nil
}

func (e *emfileNet) Dial(ctx context.Context, addr string) (net.Conn, error) {
	if e.dialFail.Load() {
		return nil, &net.OpError{Op: "dial", Net: "mem", Err: os.NewSyscallError("socket", syscall.EMFILE)}
	}
	return e.Network.Dial(ctx, addr)
}

type emfileListener struct {
	net.Listener
	e *emfileNet
}

func (l *emfileListener) Accept() (net.Conn, error) {
	l.e.accepts.Add(1)
	if l.e.failing.Load() {
		return nil, &net.OpError{Op: "accept", Net: "mem", Err: os.NewSyscallError("accept", syscall.EMFILE)}
	}
	return l.Listener.Accept()
}

// A listener out of descriptors backs off (no busy loop) and serves again
// once descriptors are back; it does not stop for good.
func TestListenerSurvivesEMFILE(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := memnet.New(21, memnet.WithDefaultLink(memnet.LinkConfig{Latency: time.Millisecond}))
		en := &emfileNet{Network: w.Host("b")}
		en.failing.Store(true)
		b := startNode(t, w, nodeSpec{name: "b", listen: true, net: en})
		a := listening(t, w, "a", nil)
		meshPeers(a, b)
		// Ten seconds without descriptors: the loop backs off up to 1 s
		// between attempts, so a few dozen Accept calls, not millions.
		time.Sleep(10 * time.Second)
		if n := en.accepts.Load(); n < 5 || n > 40 {
			t.Fatalf("%d Accept calls in 10 s of EMFILE, want a backoff (5..40)", n)
		}
		if st := b.Stats(); st.AcceptErrors < 5 {
			t.Fatalf("AcceptErrors = %d", st.AcceptErrors)
		}
		en.failing.Store(false)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := a.Connect(ctx, "b"); err != nil {
			t.Fatalf("listener did not serve again after EMFILE: %v", err)
		}
		closeAll(a, b)
	})
}

// A dial that runs out of descriptors fails with a typed error naming the
// limit.
func TestDialEMFILETyped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := memnet.New(22, memnet.WithDefaultLink(memnet.LinkConfig{Latency: time.Millisecond}))
		en := &emfileNet{Network: w.Host("a")}
		a := startNode(t, w, nodeSpec{name: "a", listen: true, net: en})
		b := listening(t, w, "b", nil)
		meshPeers(a, b)
		b.HandleDataConn("f", func(_ string, _ []any, c net.Conn) { c.Close() })
		if err := a.Connect(context.Background(), "b"); err != nil {
			t.Fatal(err)
		}
		en.dialFail.Store(true)
		_, err := a.ConnectTo(context.Background(), "b", 3*time.Second, "f")
		if !errors.Is(err, transport.ErrDescriptorLimit) || !errors.Is(err, syscall.EMFILE) {
			t.Fatalf("ConnectTo with EMFILE: %v, want ErrDescriptorLimit", err)
		}
		closeAll(a, b)
	})
}
