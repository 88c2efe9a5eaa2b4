package memnet

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"
)

// scenarioResult is what a cluster scenario leaves behind.
type scenarioResult struct {
	digest            string
	events            []Event
	attempts, dialsOK int
	refused           int
}

// runCluster runs a deterministic scenario on a fresh World: 20 hosts each
// listen and dial three others (retrying lost attempts), exchange framed
// messages with an echo server, and close; the links jitter and lose some
// connection attempts.
func runCluster(t *testing.T, seed int64) scenarioResult {
	t.Helper()
	var res scenarioResult
	synctest.Test(t, func(t *testing.T) {
		const hosts = 20
		w := New(seed, WithDefaultLink(LinkConfig{Latency: 5 * ms, Jitter: 4 * ms}))
		w.SetDialLoss(0.15)
		w.SetLink("h00", "h01", LinkConfig{Latency: 40 * ms, Jitter: 30 * ms})
		names := make([]string, hosts)
		for i := range names {
			names[i] = fmt.Sprintf("h%02d", i)
		}
		var servers, clients sync.WaitGroup
		listeners := make([]net.Listener, hosts)
		for i, n := range names {
			listeners[i] = listen(t, w.Host(n), ":7")
			servers.Go(func() { serveEcho(t, listeners[i], &servers) })
		}
		var mu sync.Mutex
		for i, n := range names {
			for _, k := range []int{1, 3, 7} {
				peer := names[(i+k)%hosts]
				clients.Go(func() {
					attempts, ok := talk(t, w.Host(n), peer, i*10+k)
					mu.Lock()
					res.attempts += attempts
					if ok {
						res.dialsOK++
					}
					mu.Unlock()
				})
			}
			// A refused dial, for the trace.
			clients.Go(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 300*ms)
				defer cancel()
				_, err := w.Host(n).Dial(ctx, names[(i+5)%hosts]+":8")
				switch {
				case errors.Is(err, syscall.ECONNREFUSED):
					mu.Lock()
					res.refused++
					mu.Unlock()
				case !errors.Is(err, context.DeadlineExceeded):
					t.Errorf("seed %d: dial to a closed port: %v", seed, err)
				}
			})
		}
		clients.Wait()
		for _, l := range listeners {
			l.Close()
		}
		servers.Wait()
		res.digest = w.TraceDigest()
		res.events = w.Trace()
		w.Close()
	})
	return res
}

// serveEcho echoes framed messages (2-byte length, payload) on every
// accepted stream until the peer closes.
func serveEcho(t *testing.T, l net.Listener, wg *sync.WaitGroup) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		wg.Go(func() {
			defer c.Close()
			for {
				hdr := make([]byte, 2)
				if _, err := io.ReadFull(c, hdr); err != nil {
					return
				}
				msg := make([]byte, 2+int(binary.BigEndian.Uint16(hdr)))
				copy(msg, hdr)
				if _, err := io.ReadFull(c, msg[2:]); err != nil {
					t.Errorf("echo read: %v", err)
					return
				}
				if _, err := c.Write(msg); err != nil {
					t.Errorf("echo write: %v", err)
					return
				}
			}
		})
	}
}

// talk dials peer (up to 8 attempts of 300 ms each), sends five messages
// whose sizes and bytes derive from id, checks the echoes and closes.
func talk(t *testing.T, h *Host, peer string, id int) (attempts int, ok bool) {
	var c net.Conn
	for attempts < 8 && c == nil {
		attempts++
		ctx, cancel := context.WithTimeout(context.Background(), 300*ms)
		c, _ = h.Dial(ctx, peer+":7")
		cancel()
	}
	if c == nil {
		return attempts, false
	}
	defer c.Close()
	for round := range 5 {
		size := 50 + (id*37+round*101)%3000
		msg := make([]byte, 2+size)
		binary.BigEndian.PutUint16(msg, uint16(size))
		for i := range size {
			msg[2+i] = byte(id + round + i)
		}
		if _, err := c.Write(msg); err != nil {
			t.Errorf("%s→%s write: %v", h.Name(), peer, err)
			return attempts, false
		}
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, msg) {
			t.Errorf("%s→%s echo mismatch: %v", h.Name(), peer, err)
			return attempts, false
		}
		time.Sleep(time.Duration(id%5) * ms)
	}
	return attempts, true
}

func TestDeterministicTrace(t *testing.T) {
	const seed = 20240601
	first := runCluster(t, seed)
	second := runCluster(t, seed)
	other := runCluster(t, seed+1)
	if first.digest != second.digest {
		for i := range min(len(first.events), len(second.events)) {
			if first.events[i] != second.events[i] {
				t.Fatalf("seed %d: traces differ at event %d:\n%v\n%v", seed, i, first.events[i], second.events[i])
			}
		}
		t.Fatalf("seed %d: traces differ in length: %d vs %d", seed, len(first.events), len(second.events))
	}
	if first.digest == other.digest {
		t.Fatalf("seeds %d and %d gave the same trace %s", seed, seed+1, first.digest)
	}
	// The scenario did what it claims: every client eventually connected,
	// each end closed once (the server's end of stream reaches no reader),
	// some attempts were lost, the data and every kind of event are there.
	if first.dialsOK != 60 || first.attempts <= 60 {
		t.Fatalf("seed %d: %d of 60 clients connected in %d attempts", seed, first.dialsOK, first.attempts)
	}
	kinds := map[EventKind]int{}
	bytesIn := 0
	for _, e := range first.events {
		kinds[e.Kind]++
		if e.Kind == EvData {
			bytesIn += e.Bytes
		}
	}
	if first.refused == 20 || first.refused == 0 {
		t.Fatalf("seed %d: %d of 20 dials to a closed port were refused, want some lost", seed, first.refused)
	}
	if kinds[EvConnect] != 60 || kinds[EvLost] != first.attempts-60+20-first.refused || kinds[EvRefused] != first.refused || kinds[EvEOF] != 60 || kinds[EvClose] != 120 {
		t.Fatalf("seed %d: event counts %v", seed, kinds)
	}
	want := 0
	for i := range 20 {
		for _, k := range []int{1, 3, 7} {
			for round := range 5 {
				want += 2 * (2 + 50 + ((i*10+k)*37+round*101)%3000)
			}
		}
	}
	if bytesIn != want {
		t.Fatalf("seed %d: %d bytes delivered, want %d", seed, bytesIn, want)
	}
}

func TestTraceLimitAndOff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		for _, limit := range []int{0, 3} {
			w := New(99, WithTrace(limit))
			if w.Seed() != 99 {
				t.Fatalf("Seed() = %d", w.Seed())
			}
			c, s, l := pair(t, w.Host("a"), w.Host("b"), "1")
			for range 5 {
				c.Write([]byte("x"))
			}
			c.Close()
			s.Close()
			l.Close()
			// connect + 5 data + eof + 2 close = 9 events.
			if got := len(w.Trace()); got != limit {
				t.Fatalf("limit %d: %d events kept", limit, got)
			}
			wantDropped := uint64(0)
			if limit > 0 {
				wantDropped = uint64(9 - limit)
			}
			if got := w.TraceDropped(); got != wantDropped {
				t.Fatalf("limit %d: %d events dropped, want %d", limit, got, wantDropped)
			}
			w.Close()
		}
	})
}
