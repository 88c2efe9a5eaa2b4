package transport

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"testing"
	"time"
)

// connTCPPair returns both ends of a loopback TCP connection.
func connTCPPair(t *testing.T) (*net.TCPConn, *net.TCPConn) {
	t.Helper()
	d, a := tlsTCPPair(t)
	return d.(*net.TCPConn), a.(*net.TCPConn)
}

// connData returns n deterministic pseudo-random bytes.
func connData(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// connSend writes data to c and half-closes it, in the background.
func connSend(t *testing.T, c *net.TCPConn, data []byte) <-chan error {
	t.Helper()
	ch := make(chan error, 1)
	go func() {
		_, err := c.Write(data)
		if err == nil {
			err = c.CloseWrite()
		}
		ch <- err
	}()
	return ch
}

func TestWithPendingEmptyReturnsConnItself(t *testing.T) {
	d, _ := connTCPPair(t)
	for _, p := range [][]byte{nil, {}} {
		got := WithPending(d, p)
		if tc, ok := got.(*net.TCPConn); !ok || tc != d {
			t.Fatalf("WithPending(tcpConn, %#v) = %T %p, want the *net.TCPConn %p itself", p, got, got, d)
		}
	}
}

func TestWithPendingOrderNoLossNoDuplication(t *testing.T) {
	pending := []byte("bytes-that-arrived-with-the-auth-line|")
	stream := connData(1, 300_000)
	want := append(append([]byte(nil), pending...), stream...)

	readers := map[string]func(io.Reader) ([]byte, error){
		"byte-at-a-time": func(r io.Reader) ([]byte, error) {
			var out []byte
			b := make([]byte, 1)
			for i := 0; i < len(want)+10; i++ { // bounded
				n, err := r.Read(b)
				out = append(out, b[:n]...)
				if err == io.EOF {
					return out, nil
				}
				if err != nil {
					return out, err
				}
			}
			return out, errors.New("no EOF")
		},
		"odd-sized": func(r io.Reader) ([]byte, error) {
			var out []byte
			b := make([]byte, 7)
			for i := 0; i < len(want)+10; i++ {
				n, err := r.Read(b)
				out = append(out, b[:n]...)
				if err == io.EOF {
					return out, nil
				}
				if err != nil {
					return out, err
				}
			}
			return out, errors.New("no EOF")
		},
		"ReadAll": io.ReadAll,
		"io.Copy": func(r io.Reader) ([]byte, error) {
			var buf bytes.Buffer
			_, err := io.Copy(&buf, r)
			return buf.Bytes(), err
		},
	}
	for name, read := range readers {
		t.Run(name, func(t *testing.T) {
			d, a := connTCPPair(t)
			buf := append([]byte(nil), pending...)
			w := WithPending(a, buf)
			for i := range buf { // the caller may reuse its buffer
				buf[i] = 'X'
			}
			sent := connSend(t, d, stream)
			got, err := read(w)
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			if err := <-sent; err != nil {
				t.Fatalf("send: %v", err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("read %d bytes, want %d; first difference at %d", len(got), len(want), connFirstDiff(got, want))
			}
		})
	}
}

func connFirstDiff(a, b []byte) int {
	for i := 0; i < len(a) && i < len(b); i++ {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func TestWithPendingWriteToAndReadFrom(t *testing.T) {
	d, a := connTCPPair(t)
	pending := []byte("early ")
	w := WithPending(a, pending)
	if _, ok := w.(io.WriterTo); !ok {
		t.Fatal("wrapper lacks io.WriterTo")
	}
	if _, ok := w.(io.ReaderFrom); !ok {
		t.Fatal("wrapper lacks io.ReaderFrom")
	}
	if u, ok := w.(interface{ Unwrap() net.Conn }); !ok || u.Unwrap() != net.Conn(a) {
		t.Fatal("Unwrap does not return the wrapped conn")
	}

	// Out of the wrapper: pending, then the stream.
	in := connData(2, 200_000)
	sent := connSend(t, d, in)
	var got bytes.Buffer
	n, err := io.Copy(&got, w)
	if err != nil || <-sent != nil {
		t.Fatalf("io.Copy out: %v", err)
	}
	want := append(append([]byte(nil), pending...), in...)
	if n != int64(len(want)) || !bytes.Equal(got.Bytes(), want) {
		t.Fatalf("io.Copy out: %d bytes, want %d", n, len(want))
	}

	// Into the wrapper: reaches the peer intact.
	out := connData(3, 200_000)
	recv := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(d)
		recv <- b
	}()
	n, err = io.Copy(w, bytes.NewReader(out))
	if err != nil || n != int64(len(out)) {
		t.Fatalf("io.Copy in: %d, %v", n, err)
	}
	if err := w.(CloseWriter).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	select {
	case b := <-recv:
		if !bytes.Equal(b, out) {
			t.Fatalf("peer received %d bytes, want %d", len(b), len(out))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("peer did not see EOF after CloseWrite")
	}
}

// connSpy is a net.Conn (over net.Pipe) whose optional interfaces record
// that they were used.
type connSpy struct {
	net.Conn
	readFrom, writeTo bool
}

func (s *connSpy) ReadFrom(r io.Reader) (int64, error) {
	s.readFrom = true
	return io.Copy(struct{ io.Writer }{s.Conn}, r)
}

func (s *connSpy) WriteTo(w io.Writer) (int64, error) {
	s.writeTo = true
	return io.Copy(w, struct{ io.Reader }{s.Conn})
}

func TestWithPendingDelegates(t *testing.T) {
	p1, p2 := net.Pipe()
	defer p1.Close()
	defer p2.Close()
	spy := &connSpy{Conn: p1}
	w := WithPending(spy, []byte("p"))

	go func() {
		p2.Write([]byte("stream"))
		p2.Close()
	}()
	var got bytes.Buffer
	if _, err := w.(io.WriterTo).WriteTo(&got); err != nil {
		t.Fatal(err)
	}
	if got.String() != "pstream" || !spy.writeTo {
		t.Fatalf("WriteTo gave %q, delegated=%v", got.String(), spy.writeTo)
	}

	q1, q2 := net.Pipe()
	defer q1.Close()
	spy2 := &connSpy{Conn: q1}
	w2 := WithPending(spy2, []byte("p"))
	recv := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(q2)
		recv <- b
	}()
	if _, err := w2.(io.ReaderFrom).ReadFrom(bytes.NewReader([]byte("data"))); err != nil {
		t.Fatal(err)
	}
	q1.Close()
	if b := <-recv; string(b) != "data" || !spy2.readFrom {
		t.Fatalf("ReadFrom sent %q, delegated=%v", b, spy2.readFrom)
	}
}

func TestWithPendingWithoutOptionalInterfaces(t *testing.T) {
	p1, p2 := net.Pipe() // no ReadFrom, WriteTo or CloseWrite
	defer p1.Close()
	defer p2.Close()
	w := WithPending(p1, []byte("ab"))
	if _, ok := w.(CloseWriter); ok {
		t.Fatal("wrapper claims CloseWrite over a conn without it")
	}
	go func() {
		io.Copy(w, bytes.NewReader([]byte("xyz"))) // generic ReadFrom path
		p1.Close()
	}()
	b, err := io.ReadAll(p2)
	if err != nil || string(b) != "xyz" {
		t.Fatalf("peer got %q, %v", b, err)
	}
}

// connFailWriter accepts limit bytes, then fails.
type connFailWriter struct {
	limit int
	got   []byte
}

func (f *connFailWriter) Write(b []byte) (int, error) {
	n := min(len(b), f.limit-len(f.got))
	f.got = append(f.got, b[:n]...)
	if n < len(b) {
		return n, errors.New("writer full")
	}
	return n, nil
}

func TestWithPendingWriteToFailureKeepsRest(t *testing.T) {
	_, a := connTCPPair(t)
	w := WithPending(a, []byte("0123456789"))
	fw := &connFailWriter{limit: 4}
	n, err := w.(io.WriterTo).WriteTo(fw)
	if err == nil || n != 4 || string(fw.got) != "0123" {
		t.Fatalf("WriteTo = %d, %v (%q)", n, err, fw.got)
	}
	rest := make([]byte, 6)
	if _, err := io.ReadFull(w, rest); err != nil || string(rest) != "456789" {
		t.Fatalf("after failed WriteTo, read %q, %v", rest, err)
	}
}

func TestWithPendingDeadlines(t *testing.T) {
	_, a := connTCPPair(t)
	w := WithPending(a, []byte("ready"))
	if err := w.SetReadDeadline(time.Now().Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 16)
	n, err := w.Read(b)
	if err != nil || string(b[:n]) != "ready" {
		t.Fatalf("pending read under expired deadline: %q, %v", b[:n], err)
	}
	if _, err := w.Read(b); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("stream read under expired deadline: %v, want os.ErrDeadlineExceeded", err)
	}
	// The deadline was set on the wrapped conn and can be lifted.
	if err := w.SetDeadline(time.Time{}); err != nil {
		t.Fatal(err)
	}
	if err := w.SetReadDeadline(time.Now().Add(50 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := w.Read(b); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read past deadline: %v", err)
	}
	if d := time.Since(start); d < 30*time.Millisecond || d > 5*time.Second {
		t.Fatalf("read deadline of 50ms fired after %v", d)
	}
	if err := w.SetWriteDeadline(time.Now().Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("x")); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("write under expired deadline: %v", err)
	}
}

func TestWithPendingConcurrentReaders(t *testing.T) {
	d, a := connTCPPair(t)
	pending := connData(4, 1000)
	stream := connData(5, 100_000)
	w := WithPending(a, pending)
	sent := connSend(t, d, stream)
	var mu sync.Mutex
	total := 0
	var sum [256]int
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b := make([]byte, 13)
			for i := 0; i < 1_000_000; i++ { // bounded
				n, err := w.Read(b)
				mu.Lock()
				total += n
				for _, c := range b[:n] {
					sum[c]++
				}
				mu.Unlock()
				if err != nil {
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	var want [256]int
	for _, c := range append(append([]byte(nil), pending...), stream...) {
		want[c]++
	}
	if total != len(pending)+len(stream) || sum != want {
		t.Fatalf("concurrent readers got %d bytes (histogram match %v), want %d", total, sum == want, len(pending)+len(stream))
	}
}
