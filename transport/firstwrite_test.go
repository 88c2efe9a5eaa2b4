package transport

import (
	"bytes"
	"net"
	"testing"
)

// writeLog is a net.Conn that records each Write it gets.
type writeLog struct {
	net.Conn
	writes [][]byte
	closed bool
}

func (w *writeLog) Write(p []byte) (int, error) {
	w.writes = append(w.writes, append([]byte(nil), p...))
	return len(p), nil
}

func (w *writeLog) Close() error { w.closed = true; return nil }

// TestFirstWriteConnHold: the lines before the ClientHello go out with it
// in one write; once told, the next write (a TLS client's Finished) waits
// and goes out with the one after it (the auth line) in one write, or
// alone on flush or Close; nothing is held after that.
func TestFirstWriteConnHold(t *testing.T) {
	log := &writeLog{}
	c := &firstWriteConn{Conn: log, first: []byte("lines\n")}
	if n, err := c.Write([]byte("hello")); n != 5 || err != nil {
		t.Fatalf("Write = %d, %v", n, err)
	}
	c.holdNext()
	if n, err := c.Write([]byte("fin")); n != 3 || err != nil {
		t.Fatalf("held Write = %d, %v", n, err)
	}
	if len(log.writes) != 1 {
		t.Fatalf("%d writes after the held one, want 1", len(log.writes))
	}
	if n, err := c.Write([]byte("auth")); n != 4 || err != nil {
		t.Fatalf("Write = %d, %v", n, err)
	}
	if err := c.flush(); err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("data"))
	want := [][]byte{[]byte("lines\nhello"), []byte("finauth"), []byte("data")}
	if len(log.writes) != len(want) {
		t.Fatalf("writes %q, want %q", log.writes, want)
	}
	for i := range want {
		if !bytes.Equal(log.writes[i], want[i]) {
			t.Fatalf("writes %q, want %q", log.writes, want)
		}
	}

	// Held and then flushed, or closed.
	log2 := &writeLog{}
	c2 := &firstWriteConn{Conn: log2}
	c2.holdNext()
	c2.Write([]byte("fin"))
	if err := c2.flush(); err != nil || len(log2.writes) != 1 || string(log2.writes[0]) != "fin" {
		t.Fatalf("flush: %v, writes %q", err, log2.writes)
	}
	c2.holdNext()
	c2.Write([]byte("alert"))
	c2.Close()
	if !log2.closed || len(log2.writes) != 2 || string(log2.writes[1]) != "alert" {
		t.Fatalf("Close: closed %v, writes %q", log2.closed, log2.writes)
	}
}
