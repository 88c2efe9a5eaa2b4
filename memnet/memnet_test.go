package memnet

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"testing/synctest"
	"time"
)

func TestEchoRoundTripTakesTwoLatencies(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const lat = 10 * ms
		w := New(1, WithDefaultLink(LinkConfig{Latency: lat}))
		defer w.Close()
		a, b := w.Host("a"), w.Host("b")
		l := listen(t, b, ":7")
		done := make(chan struct{})
		var acceptedAt time.Time
		go func() {
			defer close(done)
			c, err := l.Accept()
			if err != nil {
				t.Errorf("accept: %v", err)
				return
			}
			acceptedAt = time.Now()
			if _, err := io.Copy(c, c); err != nil {
				t.Errorf("echo: %v", err)
			}
			c.Close()
		}()
		start := time.Now()
		c := dial(t, a, "b:7")
		if got := time.Since(start); got != 2*lat {
			t.Fatalf("dial took %v, want one round trip %v", got, 2*lat)
		}
		if c.LocalAddr().Network() != "mem" || c.RemoteAddr().String() != "b:7" || c.LocalAddr().(Addr).Host != "a" {
			t.Fatalf("addresses %v -> %v", c.LocalAddr(), c.RemoteAddr())
		}
		start = time.Now()
		msg := []byte("hello, world")
		if _, err := c.Write(msg); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, len(msg))
		if _, err := io.ReadFull(c, buf); err != nil {
			t.Fatal(err)
		}
		if got := time.Since(start); got != 2*lat {
			t.Fatalf("echo took %v, want %v", got, 2*lat)
		}
		if !bytes.Equal(buf, msg) {
			t.Fatalf("echo returned %q", buf)
		}
		c.Close()
		<-done
		if got := acceptedAt.Sub(w.start); got != 2*lat {
			t.Fatalf("accept returned at %v, want %v", got, 2*lat)
		}
		l.Close()
	})
}

func TestZeroLatencyIsInstant(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := New(1)
		defer w.Close()
		c, s, l := pair(t, w.Host("a"), w.Host("b"), "1")
		defer l.Close()
		start := time.Now()
		if _, err := c.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
		r := <-readAsync(s, 4)
		if r.err != nil || string(r.buf) != "x" || r.at != start {
			t.Fatalf("read %q %v at +%v", r.buf, r.err, r.at.Sub(start))
		}
		c.Close()
		s.Close()
	})
}

func TestOrderingUnderJitter(t *testing.T) {
	const seed = 42
	synctest.Test(t, func(t *testing.T) {
		w := New(seed, WithDefaultLink(LinkConfig{Latency: 5 * ms, Jitter: 50 * ms}))
		defer w.Close()
		c, s, l := pair(t, w.Host("a"), w.Host("b"), "1")
		defer l.Close()
		const n = 500
		go func() {
			for i := range n {
				if _, err := c.Write([]byte{byte(i), byte(i >> 8)}); err != nil {
					t.Errorf("write %d: %v", i, err)
					return
				}
				time.Sleep(ms)
			}
			c.Close()
		}()
		got, err := io.ReadAll(s)
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		if len(got) != 2*n {
			t.Fatalf("seed %d: read %d bytes, want %d", seed, len(got), 2*n)
		}
		for i := range n {
			if v := int(got[2*i]) | int(got[2*i+1])<<8; v != i {
				t.Fatalf("seed %d: message %d arrived at position %d", seed, v, i)
			}
		}
		s.Close()
		// Delivery times are monotone and the jitter did vary them.
		var last time.Duration
		delays := map[time.Duration]bool{}
		seq := 0
		for _, e := range w.Trace() {
			if e.Kind != EvData || e.From != "a" {
				continue
			}
			if e.At < last {
				t.Fatalf("seed %d: delivery went back in time at %v", seed, e)
			}
			last = e.At
			// Chunk seq was written at 10ms (handshake) + seq ms.
			delays[e.At-10*ms-time.Duration(e.Seq)*ms] = true
			seq++
		}
		if seq != n {
			t.Fatalf("seed %d: %d data events, want %d", seed, seq, n)
		}
		if len(delays) < n/10 {
			t.Fatalf("seed %d: only %d distinct delays: jitter not applied", seed, len(delays))
		}
	})
}

func TestFlowControlBlocksWriter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const window = 64 << 10
		w := New(1, WithBuffer(window), WithDefaultLink(LinkConfig{Latency: ms}))
		defer w.Close()
		c, s, l := pair(t, w.Host("a"), w.Host("b"), "1")
		defer l.Close()
		written := make(chan int, 1<<10)
		done := make(chan error, 1)
		go func() {
			buf := make([]byte, 1000)
			for range 1 << 10 { // 1,024,000 bytes, much more than the window
				n, err := c.Write(buf)
				if err != nil {
					done <- err
					return
				}
				written <- n
			}
			done <- nil
		}()
		time.Sleep(time.Second) // nobody reads
		synctest.Wait()
		total := 0
		for len(written) > 0 {
			total += <-written
		}
		// The blocked Write has put its first part in the window too.
		mc := c.(*Conn)
		mc.out.mu.Lock()
		inFlight, allocated := mc.out.ring.n, len(mc.out.ring.buf)
		mc.out.mu.Unlock()
		if inFlight != window || allocated > window {
			t.Fatalf("window holds %d bytes in a %d-byte buffer, want %d in at most %d", inFlight, allocated, window, window)
		}
		if total != window/1000*1000 {
			t.Fatalf("%d bytes accepted by completed Writes with a %d-byte window", total, window)
		}
		select {
		case err := <-done:
			t.Fatalf("writer finished (%v) although nobody reads", err)
		default:
		}
		// Draining lets the writer finish and every byte arrives.
		n, err := io.CopyN(io.Discard, s, 1<<10*1000)
		if err != nil || n != 1<<10*1000 {
			t.Fatalf("drained %d bytes: %v", n, err)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		c.Close()
		s.Close()
	})
}

func TestDeadlines(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := New(1, WithBuffer(4096))
		defer w.Close()
		c, s, l := pair(t, w.Host("a"), w.Host("b"), "1")
		defer l.Close()
		isTimeout := func(err error) bool {
			var ne net.Error
			return errors.Is(err, os.ErrDeadlineExceeded) && errors.As(err, &ne) && ne.Timeout()
		}

		// A read deadline fires at its exact time.
		start := time.Now()
		s.SetReadDeadline(start.Add(3 * time.Second))
		_, err := s.Read(make([]byte, 10))
		if !isTimeout(err) || time.Since(start) != 3*time.Second {
			t.Fatalf("read deadline: %v after %v", err, time.Since(start))
		}
		// It keeps failing until cleared, then reads work again.
		if _, err := s.Read(make([]byte, 10)); !isTimeout(err) {
			t.Fatalf("expired deadline: %v", err)
		}
		s.SetReadDeadline(time.Time{})
		c.Write([]byte("ok"))
		if r := <-readAsync(s, 10); r.err != nil || string(r.buf) != "ok" {
			t.Fatalf("after clearing: %q %v", r.buf, r.err)
		}

		// A deadline moved into the past wakes a pending Read.
		rc := readAsync(s, 10)
		time.Sleep(time.Second)
		s.SetReadDeadline(time.Now().Add(-time.Second))
		if r := <-rc; !isTimeout(r.err) || r.at.Sub(start) != 4*time.Second {
			t.Fatalf("pending read: %v at %v", r.err, r.at.Sub(start))
		}
		// A deadline moved later does not fire at the earlier time.
		s.SetReadDeadline(time.Now().Add(time.Second))
		s.SetReadDeadline(time.Now().Add(5 * time.Second))
		t0 := time.Now()
		if _, err := s.Read(make([]byte, 1)); !isTimeout(err) || time.Since(t0) != 5*time.Second {
			t.Fatalf("extended deadline: %v after %v", err, time.Since(t0))
		}

		// A write deadline stops a Write blocked on a full window, reporting
		// the bytes accepted.
		c.SetWriteDeadline(time.Now().Add(2 * time.Second))
		t0 = time.Now()
		n, err := c.Write(make([]byte, 10000))
		if !isTimeout(err) || n != 4096 || time.Since(t0) != 2*time.Second {
			t.Fatalf("write deadline: n=%d %v after %v", n, err, time.Since(t0))
		}
		// The read side of c is unaffected.
		s.Write([]byte("back"))
		if r := <-readAsync(c, 10); r.err != nil || string(r.buf) != "back" {
			t.Fatalf("read after write timeout: %q %v", r.buf, r.err)
		}
		// SetDeadline covers both directions.
		c.SetDeadline(time.Now().Add(-1))
		if _, err := c.Read(make([]byte, 1)); !isTimeout(err) {
			t.Fatalf("SetDeadline read: %v", err)
		}
		if _, err := c.Write([]byte("x")); !isTimeout(err) {
			t.Fatalf("SetDeadline write: %v", err)
		}
		c.Close()
		s.Close()
		if err := c.SetDeadline(time.Time{}); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("SetDeadline after close: %v", err)
		}
	})
}

func TestCloseWriteHalfClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := New(1, WithDefaultLink(LinkConfig{Latency: 3 * ms}))
		defer w.Close()
		c, s, l := pair(t, w.Host("a"), w.Host("b"), "1")
		defer l.Close()
		c.Write([]byte("request"))
		if err := c.(*Conn).CloseWrite(); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Write([]byte("more")); !errors.Is(err, syscall.EPIPE) {
			t.Fatalf("write after CloseWrite: %v, want EPIPE", err)
		}
		got, err := io.ReadAll(s)
		if err != nil || string(got) != "request" {
			t.Fatalf("server read %q %v", got, err)
		}
		// The reverse direction still works.
		if _, err := s.Write([]byte("response")); err != nil {
			t.Fatal(err)
		}
		s.(*Conn).CloseWrite()
		got, err = io.ReadAll(c)
		if err != nil || string(got) != "response" {
			t.Fatalf("client read %q %v", got, err)
		}
		c.Close()
		s.Close()
		if err := c.Close(); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("second close: %v", err)
		}
	})
}

func TestCloseDeliversPendingThenEOF(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := New(1, WithDefaultLink(LinkConfig{Latency: 10 * ms}))
		defer w.Close()
		c, s, l := pair(t, w.Host("a"), w.Host("b"), "1")
		defer l.Close()
		start := time.Now()
		c.Write([]byte("last words"))
		c.Close()
		if _, err := c.Read(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("read on closed conn: %v", err)
		}
		if _, err := c.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("write on closed conn: %v", err)
		}
		got, err := io.ReadAll(s)
		if err != nil || string(got) != "last words" || time.Since(start) != 10*ms {
			t.Fatalf("read %q %v after %v", got, err, time.Since(start))
		}
		if _, err := s.Write([]byte("reply")); !errors.Is(err, syscall.EPIPE) {
			t.Fatalf("write to closed peer: %v, want EPIPE", err)
		}
		// A pending Read is woken by a local Close.
		c2, s2, l2 := pair(t, w.Host("a"), w.Host("b"), "2")
		defer l2.Close()
		rc := readAsync(s2, 1)
		time.Sleep(ms)
		s2.Close()
		if r := <-rc; !errors.Is(r.err, net.ErrClosed) {
			t.Fatalf("pending read after close: %v", r.err)
		}
		c2.Close()
		s.Close()
	})
}

func TestRefused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := New(1, WithDefaultLink(LinkConfig{Latency: 50 * ms}))
		defer w.Close()
		a, b := w.Host("a"), w.Host("b")
		ctx := context.Background()
		check := func(what, addr string) {
			t.Helper()
			start := time.Now()
			c, err := a.Dial(ctx, addr)
			if !errors.Is(err, syscall.ECONNREFUSED) || c != nil {
				t.Fatalf("%s: %v, want ECONNREFUSED", what, err)
			}
			if time.Since(start) != 0 {
				t.Fatalf("%s: refused after %v, want at once", what, time.Since(start))
			}
		}
		check("unknown host", "nowhere:1")
		check("no listener", "b:1")
		l := listen(t, b, "b:1")
		w.Refuse("b:1")
		check("refused port", "b:1")
		w.Allow("b:1")
		w.Refuse("b")
		check("refused host", "b:1")
		w.Allow("b")
		go func() {
			if c, err := l.Accept(); err == nil {
				c.Close()
			}
		}()
		c := dial(t, a, "mem://b:1")
		c.Close()
		l.Close()
		check("closed listener", "b:1")
		if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("accept after close: %v", err)
		}
		// A listener closed while the SYN travels refuses after the round trip.
		l2 := listen(t, b, ":1")
		time.AfterFunc(30*ms, func() { l2.Close() })
		start := time.Now()
		if _, err := a.Dial(ctx, "b:1"); !errors.Is(err, syscall.ECONNREFUSED) || time.Since(start) != 100*ms {
			t.Fatalf("listener closed during dial: %v after %v", err, time.Since(start))
		}
	})
}

func TestBacklogFullRefuses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := New(1, WithBacklog(2))
		defer w.Close()
		a := w.Host("a")
		l := listen(t, w.Host("b"), ":1")
		c1, c2 := dial(t, a, "b:1"), dial(t, a, "b:1")
		if _, err := a.Dial(context.Background(), "b:1"); !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatalf("third dial: %v, want refused", err)
		}
		// Closing the listener resets the queued streams.
		l.Close()
		if _, err := c1.Read(make([]byte, 1)); !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("queued stream after listener close: %v", err)
		}
		c1.Close()
		c2.Close()
	})
}

func TestDialLossHangsUntilContextDone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := New(7, WithDefaultLink(LinkConfig{Latency: ms}))
		defer w.Close()
		a := w.Host("a")
		l := listen(t, w.Host("b"), ":1")
		defer l.Close()
		w.SetDialLoss(1)
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		start := time.Now()
		c, err := a.Dial(ctx, "b:1")
		if !errors.Is(err, context.DeadlineExceeded) || c != nil || time.Since(start) != 3*time.Second {
			t.Fatalf("lost dial: %v after %v", err, time.Since(start))
		}
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("lost dial error %v is not a net.Error timeout", err)
		}
		// With p = 0.5 some attempts are lost and some not; which ones depends
		// on the seed only.
		w.SetDialLoss(0.5)
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
		outcome := func() []bool {
			var r []bool
			for range 40 {
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				c, err := a.Dial(ctx, "b:1")
				cancel()
				if err == nil {
					c.Close()
				}
				r = append(r, err == nil)
			}
			return r
		}
		got := outcome()
		ok := 0
		for _, v := range got {
			if v {
				ok++
			}
		}
		if ok < 8 || ok > 32 {
			t.Fatalf("seed %d: %d of 40 dials succeeded with loss 0.5", w.Seed(), ok)
		}
		// The lost attempts are recorded.
		lost := 0
		for _, e := range w.Trace() {
			if e.Kind == EvLost {
				lost++
			}
		}
		if lost != 40-ok+1 {
			t.Fatalf("seed %d: %d lost events, want %d", w.Seed(), lost, 40-ok+1)
		}
	})
}

func TestPartitionThenHeal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := New(1, WithDefaultLink(LinkConfig{Latency: 10 * ms}))
		defer w.Close()
		a, b, c := w.Host("a"), w.Host("b"), w.Host("c")
		ca, sb, l := pair(t, a, b, "1")
		defer l.Close()
		lc := listen(t, c, ":1")
		defer lc.Close()
		w.Partition([]string{"a"}, []string{"b", "c"})
		start := time.Now()
		ca.Write([]byte("held"))
		rc := readAsync(sb, 10)
		dialed := make(chan error, 1)
		go func() {
			conn, err := a.Dial(context.Background(), "c:1")
			if err == nil {
				defer conn.Close()
				_, err = conn.Write([]byte("hi"))
			}
			dialed <- err
		}()
		// A dial across that gives up.
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		if _, err := a.Dial(ctx, "b:1"); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("dial across partition: %v", err)
		}
		cancel()
		// b and c still talk.
		cc := dial(t, b, "c:1")
		cc.Close()
		time.Sleep(time.Hour)
		select {
		case r := <-rc:
			t.Fatalf("data crossed the partition: %q %v", r.buf, r.err)
		case err := <-dialed:
			t.Fatalf("dial crossed the partition: %v", err)
		default:
		}
		w.Heal()
		r := <-rc
		if r.err != nil || string(r.buf) != "held" || r.at.Sub(start) != time.Hour+time.Second+20*ms {
			t.Fatalf("after heal: %q %v at %v", r.buf, r.err, r.at.Sub(start))
		}
		acc, err := lc.Accept()
		if err != nil {
			t.Fatal(err)
		}
		acc.Close()
		acc, err = lc.Accept()
		if err != nil {
			t.Fatal(err)
		}
		if err := <-dialed; err != nil {
			t.Fatalf("dial after heal: %v", err)
		}
		acc.Close()
		// Fresh data flows with normal latency.
		t0 := time.Now()
		sb.Write([]byte("pong"))
		if r := <-readAsync(ca, 10); r.err != nil || r.at.Sub(t0) != 10*ms {
			t.Fatalf("after heal: %v at %v", r.err, r.at.Sub(t0))
		}
		ca.Close()
		sb.Close()
	})
}

func TestPartitionFillsWindowThenBlocks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := New(1, WithBuffer(1000))
		defer w.Close()
		c, s, l := pair(t, w.Host("a"), w.Host("b"), "1")
		defer l.Close()
		w.Partition([]string{"b"}, []string{"a"})
		c.SetWriteDeadline(time.Now().Add(time.Minute))
		n, err := c.Write(make([]byte, 5000))
		if n != 1000 || !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("write during partition: %d %v", n, err)
		}
		w.Heal()
		got, err := io.ReadFull(s, make([]byte, 1000))
		if err != nil || got != 1000 {
			t.Fatalf("read after heal: %d %v", got, err)
		}
		c.Close()
		s.Close()
	})
}

func TestCrashAndRestart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := New(1, WithDefaultLink(LinkConfig{Latency: 5 * ms}))
		defer w.Close()
		a, b := w.Host("a"), w.Host("b")
		ca, sb, l := pair(t, a, b, "1")
		rc := readAsync(ca, 10)
		acceptErr := make(chan error, 1)
		go func() {
			_, err := l.Accept()
			acceptErr <- err
		}()
		time.Sleep(ms)
		w.Crash("b")
		if r := <-rc; !errors.Is(r.err, syscall.ECONNRESET) {
			t.Fatalf("pending read on a crashed peer: %v", r.err)
		}
		if _, err := sb.Write([]byte("x")); !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("write on the crashed host: %v", err)
		}
		if err := <-acceptErr; !errors.Is(err, net.ErrClosed) {
			t.Fatalf("accept on a crashed host: %v", err)
		}
		if _, err := a.Dial(context.Background(), "b:1"); !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatalf("dial to a crashed host: %v", err)
		}
		if _, err := b.Dial(context.Background(), "a:1"); !errors.Is(err, ErrHostDown) {
			t.Fatalf("dial from a crashed host: %v", err)
		}
		if _, err := b.Listen(context.Background(), ":1"); !errors.Is(err, ErrHostDown) {
			t.Fatalf("listen on a crashed host: %v", err)
		}
		// Dials waiting from the crashed host (lost, or across a partition)
		// fail too.
		w.Restart("b")
		w.Partition([]string{"b"}, []string{"c"})
		w.SetDialLoss(1)
		waiting := make(chan error, 2)
		go func() { _, err := b.Dial(context.Background(), "a:1"); waiting <- err }()
		go func() { _, err := b.Dial(context.Background(), "c:1"); waiting <- err }()
		synctest.Wait()
		w.Crash("b")
		for range 2 {
			if err := <-waiting; !errors.Is(err, ErrHostDown) {
				t.Fatalf("waiting dial from a crashing host: %v", err)
			}
		}
		w.SetDialLoss(0)
		w.Heal()
		w.Restart("b")
		// The old listener stays closed; a new one works.
		if _, err := a.Dial(context.Background(), "b:1"); !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatalf("dial to a restarted host without listener: %v", err)
		}
		c2, s2, l2 := pair(t, a, b, "1")
		c2.Write([]byte("again"))
		if r := <-readAsync(s2, 10); r.err != nil || string(r.buf) != "again" {
			t.Fatalf("after restart: %q %v", r.buf, r.err)
		}
		for _, c := range []net.Conn{ca, sb, c2, s2} {
			c.Close()
		}
		l2.Close()
	})
}

func TestReset(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := New(1, WithDefaultLink(LinkConfig{Latency: 5 * ms}))
		defer w.Close()
		a, b, c := w.Host("a"), w.Host("b"), w.Host("c")
		ab, ba, l := pair(t, a, b, "1")
		defer l.Close()
		ab.Write([]byte("in flight")) // discarded by the reset
		rc := readAsync(ab, 10)
		if err := w.ResetConn(ba); err != nil {
			t.Fatal(err)
		}
		for _, got := range []error{(<-rc).err, (<-readAsync(ba, 10)).err} {
			if !errors.Is(got, syscall.ECONNRESET) {
				t.Fatalf("read after reset: %v, want ECONNRESET", got)
			}
		}
		if _, err := ab.Write([]byte("x")); !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("write after reset: %v", err)
		}
		if err := w.ResetConn(struct{ net.Conn }{ab}); !errors.Is(err, ErrForeignConn) {
			t.Fatalf("reset of a foreign conn: %v", err)
		}
		ab.Close()
		ba.Close()

		// ResetLinks resets every stream between the two hosts, both ways,
		// and nothing else.
		lc := listen(t, c, ":1")
		defer lc.Close()
		la := listen(t, a, ":1")
		defer la.Close()
		x1, y1, lb := pair(t, a, b, "2")
		defer lb.Close()
		x2 := dial(t, b, "a:1")
		y2, _ := la.Accept()
		x3 := dial(t, a, "c:1")
		y3, _ := lc.Accept()
		w.ResetLinks("b", "a")
		for i, conn := range []net.Conn{x1, y1, x2, y2} {
			if _, err := conn.Write([]byte("x")); !errors.Is(err, syscall.ECONNRESET) {
				t.Fatalf("conn %d after ResetLinks: %v", i, err)
			}
		}
		if _, err := x3.Write([]byte("x")); err != nil {
			t.Fatalf("unrelated conn after ResetLinks: %v", err)
		}
		for _, conn := range []net.Conn{x1, y1, x2, y2, x3, y3} {
			conn.Close()
		}
	})
}

func TestListenAddresses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := New(1)
		defer w.Close()
		h := w.Host("n1")
		ctx := context.Background()
		l1 := listen(t, h, ":0")
		l2 := listen(t, h, "n1:0")
		l3 := listen(t, h, "mem://n1:9")
		if l1.Addr().String() == l2.Addr().String() || l3.Addr().String() != "n1:9" || l1.Addr().Network() != "mem" {
			t.Fatalf("addresses %v %v %v", l1.Addr(), l2.Addr(), l3.Addr())
		}
		if h.Scheme() != "mem" || h.World() != w || w.Host("n1") != h {
			t.Fatal("host identity")
		}
		if _, err := h.Listen(ctx, ":9"); !errors.Is(err, syscall.EADDRINUSE) {
			t.Fatalf("port in use: %v", err)
		}
		var ae *net.AddrError
		for _, bad := range []string{"n2:1", "n1", "n1:x", "n1:-1", "n1:70000", "a/b:1", ""} {
			if _, err := h.Listen(ctx, bad); !errors.As(err, &ae) {
				t.Fatalf("listen %q: %v, want an AddrError", bad, err)
			}
		}
		for _, bad := range []string{"n1:0", "n1", "n1:99999"} {
			if _, err := h.Dial(ctx, bad); !errors.As(err, &ae) {
				t.Fatalf("dial %q: %v, want an AddrError", bad, err)
			}
		}
		if _, err := w.Host("bad name").Listen(ctx, ":1"); !errors.As(err, &ae) {
			t.Fatalf("listen on a badly named host: %v", err)
		}
		cancelled, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := h.Dial(cancelled, "n1:9"); !errors.Is(err, context.Canceled) {
			t.Fatalf("dial with a cancelled context: %v", err)
		}
		// Dialing ":port" reaches the host itself.
		go func() {
			if c, err := l3.Accept(); err == nil {
				c.Close()
			}
		}()
		c := dial(t, h, ":9")
		c.Close()
		l1.Close()
		l2.Close()
		l3.Close()
		if err := l1.Close(); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("second listener close: %v", err)
		}
		w.Close()
		if _, err := h.Listen(ctx, ":0"); !errors.Is(err, ErrWorldClosed) {
			t.Fatalf("listen after world close: %v", err)
		}
		if _, err := h.Dial(ctx, "n1:9"); !errors.Is(err, ErrWorldClosed) {
			t.Fatalf("dial after world close: %v", err)
		}
	})
}

func TestWorldCloseUnblocksEverything(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := New(1, WithBuffer(10))
		a, b := w.Host("a"), w.Host("b")
		c, s, l := pair(t, a, b, "1")
		errs := make(chan error, 4)
		go func() { _, err := l.Accept(); errs <- err }()
		go func() { _, err := c.Read(make([]byte, 1)); errs <- err }()
		go func() { _, err := c.Write(make([]byte, 100)); errs <- err }()
		w.SetDialLoss(1)
		go func() { _, err := a.Dial(context.Background(), "b:1"); errs <- err }()
		synctest.Wait()
		w.Close()
		for range 4 {
			if err := <-errs; err == nil {
				t.Fatal("an operation survived World.Close")
			}
		}
		c.Close()
		s.Close()
	})
}
