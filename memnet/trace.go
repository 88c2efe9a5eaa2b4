package memnet

import (
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"slices"
	"sync"
	"time"
)

// EventKind says what an Event records.
type EventKind string

// The kinds of trace events.
const (
	// EvConnect: a dial completed; From dialed To.
	EvConnect EventKind = "connect"
	// EvRefused: a dial from From to To was refused.
	EvRefused EventKind = "refused"
	// EvLost: a connection attempt from From to To was lost.
	EvLost EventKind = "lost"
	// EvData: a chunk of Bytes bytes (with their Hash) written by From was
	// delivered to To.
	EvData EventKind = "data"
	// EvEOF: the end of the From→To direction was delivered to To.
	EvEOF EventKind = "eof"
	// EvCloseWrite: From half-closed its end of the stream.
	EvCloseWrite EventKind = "closewrite"
	// EvClose: From closed its end of the stream.
	EvClose EventKind = "close"
	// EvReset: the stream between From (dialer) and To was reset.
	EvReset EventKind = "reset"
	// EvPartition: the hosts in From (comma separated) were cut off from
	// the hosts in To.
	EvPartition EventKind = "partition"
	// EvHeal: every partition was healed.
	EvHeal EventKind = "heal"
	// EvCrash: host From crashed.
	EvCrash EventKind = "crash"
	// EvRestart: host From was restarted.
	EvRestart EventKind = "restart"
)

// Event is one entry of a World's trace.
type Event struct {
	// At is the virtual time of the event, relative to the World's creation.
	At time.Duration
	// Kind says what happened.
	Kind EventKind
	// From and To are the hosts involved (sender and receiver for data).
	From, To string
	// Dialer and Stream name the stream: the host that dialed it and the
	// number of earlier dial attempts from Dialer to the listener's host.
	// They are empty for events that concern no stream.
	Dialer string
	Stream uint64
	// Seq is the chunk's sequence number in its direction (EvData, EvEOF).
	Seq uint64
	// Bytes is the chunk's length (EvData).
	Bytes int
	// Hash is a 64-bit hash of the chunk's bytes (EvData; see doc.go).
	Hash uint64
}

// String formats the event on one line.
func (e Event) String() string {
	return fmt.Sprintf("%d %s %s>%s %s#%d seq=%d n=%d h=%016x",
		int64(e.At), e.Kind, e.From, e.To, e.Dialer, e.Stream, e.Seq, e.Bytes, e.Hash)
}

// compareEvents is the canonical order of a trace.
func compareEvents(a, b Event) int {
	return cmp.Or(
		cmp.Compare(a.At, b.At),
		cmp.Compare(a.Kind, b.Kind),
		cmp.Compare(a.From, b.From),
		cmp.Compare(a.To, b.To),
		cmp.Compare(a.Dialer, b.Dialer),
		cmp.Compare(a.Stream, b.Stream),
		cmp.Compare(a.Seq, b.Seq),
		cmp.Compare(a.Bytes, b.Bytes),
		cmp.Compare(a.Hash, b.Hash),
	)
}

// tracer collects events up to a limit.
type tracer struct {
	limit   int
	mu      sync.Mutex
	events  []Event
	dropped uint64
}

func (t *tracer) on() bool { return t.limit > 0 }

func (t *tracer) add(e Event) {
	if t.limit <= 0 {
		return
	}
	t.mu.Lock()
	if len(t.events) < t.limit {
		t.events = append(t.events, e)
	} else {
		t.dropped++
	}
	t.mu.Unlock()
}

// Trace returns a copy of the recorded events in canonical order: by time,
// then by kind, hosts, stream, sequence number, length and hash.
func (w *World) Trace() []Event {
	w.tr.mu.Lock()
	ev := slices.Clone(w.tr.events)
	w.tr.mu.Unlock()
	slices.SortFunc(ev, compareEvents)
	return ev
}

// TraceDropped reports how many events were not recorded because the trace
// was full (see WithTrace).
func (w *World) TraceDropped() uint64 {
	w.tr.mu.Lock()
	defer w.tr.mu.Unlock()
	return w.tr.dropped
}

// TraceDigest returns the hex SHA-256 of the canonical trace (one
// Event.String line per event, then the number of dropped events).
func (w *World) TraceDigest() string {
	h := sha256.New()
	for _, e := range w.Trace() {
		fmt.Fprintln(h, e.String())
	}
	fmt.Fprintf(h, "dropped %d\n", w.TraceDropped())
	return hex.EncodeToString(h.Sum(nil))
}

// record adds an event at time t.
func (w *World) record(t time.Time, e Event) {
	if !w.tr.on() {
		return
	}
	e.At = t.Sub(w.start)
	w.tr.add(e)
}

// FNV-64a parameters.
const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

// hashBytes is a fast, fixed (unseeded) 64-bit hash of b: FNV-style
// multiply-xor over 8-byte words, then over the tail bytes, finalised by
// mix64. It only fingerprints trace events; it is not cryptographic.
func hashBytes(b []byte) uint64 {
	h := uint64(fnvOffset) ^ uint64(len(b))
	for len(b) >= 8 {
		h = (h ^ binary.LittleEndian.Uint64(b)) * 0x9e3779b97f4a7c15
		h ^= h >> 29
		b = b[8:]
	}
	for _, c := range b {
		h = (h ^ uint64(c)) * fnvPrime
	}
	return mix64(h)
}

// fnvString is the FNV-64a hash of s.
func fnvString(s string) uint64 {
	h := uint64(fnvOffset)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime
	}
	return h
}

// mix64 is the splitmix64 finaliser.
func mix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// Tags of the random draws, so that different decisions never share a
// value.
const (
	drawJitter uint64 = iota + 1
	drawSYN
	drawSYNACK
	drawLoss
)

// draw derives a pseudo-random value from the seed and everything that
// identifies the decision being made, so that it does not depend on the
// order in which goroutines run.
func (w *World) draw(tag uint64, a, b string, n1, n2 uint64) uint64 {
	x := mix64(uint64(w.seed) ^ mix64(tag))
	x = mix64(x ^ fnvString(a))
	x = mix64(x ^ fnvString(b))
	x = mix64(x ^ n1)
	return mix64(x ^ n2)
}

// drawDuration returns a duration in [0, max).
func (w *World) drawDuration(max time.Duration, tag uint64, a, b string, n1, n2 uint64) time.Duration {
	if max <= 0 {
		return 0
	}
	return time.Duration(w.draw(tag, a, b, n1, n2) % uint64(max))
}

// drawProb returns a number in [0, 1).
func (w *World) drawProb(tag uint64, a, b string, n1, n2 uint64) float64 {
	return float64(w.draw(tag, a, b, n1, n2)>>11) / (1 << 53)
}
