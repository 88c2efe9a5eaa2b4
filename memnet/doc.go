// Package memnet is a deterministic in-memory network for tests and
// benchmarks of dataconn nodes.
//
// # Model
//
// A [World] is one simulated network, created with [New] from a seed. Each
// node runs on its own [Host] (w.Host("a")), which implements
// transport.Network with the scheme "mem". Addresses are "name:port":
// Listen accepts "name:port", ":port" (the host's own name) and "name:0" or
// ":0" (a free port is picked; Listener.Addr reports it); Dial takes
// "name:port". An optional "mem://" prefix is ignored.
//
// Streams are full-duplex, ordered, reliable byte streams. Each direction
// holds at most a fixed number of bytes that were written but not yet read
// (256 KiB by default, see [WithBuffer]); a Write blocks while that window is
// full, like TCP flow control, so memory stays bounded whatever the reader
// does. Every Write becomes one chunk (or several, when it does not fit the
// window) that is delivered to the reader after the link's one-way latency
// plus a jitter in [0, Jitter), never earlier than the previous chunk of the
// same direction: delivery = max(previous delivery, now+latency+jitter), so
// bytes are never reordered.
//
// Connection set-up costs one round trip: Dial returns after
// latency+jitter (SYN) plus latency+jitter (SYN-ACK). At that moment the
// stream exists at both ends and the listener's Accept returns it, i.e.
// Accept also sees the stream one round trip after Dial started (not 1.5
// round trips as in TCP; data the dialer writes right away still arrives at
// 1.5 round trips, as in TCP). A listener queues at most [WithBacklog]
// streams that were not yet accepted; a dial that finds the queue full is
// refused.
//
// Conns implement net.Conn with read and write deadlines (errors satisfy
// errors.Is(err, os.ErrDeadlineExceeded) and net.Error.Timeout), Close
// (the peer reads the data still in flight, then io.EOF; the peer's writes
// then fail with EPIPE at once) and CloseWrite (half close: the peer reads
// io.EOF, the reverse direction keeps working). Errors are *net.OpError
// values wrapping the errno a TCP socket would report
// (syscall.ECONNREFUSED, syscall.ECONNRESET, syscall.EPIPE,
// syscall.EADDRINUSE), net.ErrClosed, os.ErrDeadlineExceeded, the dial
// context's error, or one of this package's sentinel errors.
//
// # Time
//
// memnet uses the time package only (time.Now, timers, channels). Inside a
// testing/synctest bubble that is the bubble's virtual clock, so a
// simulation with hours of latency runs instantly; outside one the latency
// is real. Every blocking wait is a select over channels owned by the World,
// a conn, a listener, a deadline or the caller's context, so goroutines
// blocked in memnet are "durably blocked" for synctest. Create the World
// inside the bubble that uses it: its channels belong to the bubble they
// are created in.
//
// There is no goroutine per chunk: each direction of a stream has at most
// one pending timer (for its earliest undelivered chunk), and with zero
// latency chunks are delivered inline by Write. After every conn and
// listener is closed, or after [World.Close], no memnet goroutine or timer
// remains.
//
// # Faults
//
// [World.SetLink] sets a link's latency, jitter and connection loss
// (symmetric; [WithDefaultLink] sets the default). [World.Refuse] makes
// dials to an address fail at once with ECONNREFUSED, like dialing a port
// nobody listens on. [World.SetDialLoss] loses connection attempts: a lost
// attempt hangs until the dial context is done, like a SYN sent into a
// black hole. [World.ResetConn] and [World.ResetLinks] reset streams: both
// ends' pending and future Reads and Writes fail with ECONNRESET and data
// in flight is discarded. [World.Partition] stops every byte between two
// groups of hosts (data in flight is held, writers fill their window and
// block, dials across wait) until [World.Heal]. [World.Crash] closes all
// listeners of a host and resets all its streams; dials to it are refused
// and it cannot dial or listen until [World.Restart].
//
// # Determinism
//
// All randomness (jitter, loss) is derived from the seed by hashing the
// seed with what is being decided: the ordered host pair, the stream number
// on that pair (the number of dial attempts from the dialer's host to the
// listener's host before this one), the direction and the chunk sequence
// number. No shared random stream exists, so goroutine interleaving cannot
// change what is drawn.
//
// Every connect, refused or lost dial, delivered chunk (with its length and
// a fixed 64-bit hash of its bytes), delivered end of stream, close, reset,
// partition, heal, crash and restart is recorded as an [Event] with its
// time relative to the World's creation. [World.Trace] returns them in a
// canonical order (by time, then by every other field) and
// [World.TraceDigest] a SHA-256 over that list. The same seed and the same
// deterministic scenario, run under testing/synctest, give the same trace;
// a different seed gives a different one as soon as jitter or loss is
// drawn. A scenario is deterministic when its own decisions do not depend
// on goroutine interleaving: in particular, concurrent dials on the same
// ordered host pair at the same instant get their stream numbers in
// arrival order, and a reader that drains a full window at the same instant
// a writer refills it can change how a Write is split into chunks. Tracing
// costs a hash of every byte written; turn it off with WithTrace(0) for
// benchmarks.
package memnet
