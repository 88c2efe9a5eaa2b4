package transport

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"github.com/aemp-go/dataconn/core/handshake"
	"github.com/aemp-go/dataconn/core/wire"
)

// handshakeReadSize is the read buffer used while a handshake runs. Bytes
// read past the peer's auth line are handed back to the caller in front of
// the stream, so the size only trades system calls for copying.
const handshakeReadSize = 4096

// readBufs holds a node's handshake read buffers (*[]byte of
// handshakeReadSize): set-ups at a high rate would otherwise allocate and
// clear one per stream and side.
type readBufs struct{ p sync.Pool }

func (r *readBufs) get() *[]byte {
	if r != nil {
		if b, ok := r.p.Get().(*[]byte); ok {
			return b
		}
	}
	b := make([]byte, handshakeReadSize)
	return &b
}

func (r *readBufs) put(b *[]byte) {
	if r != nil {
		r.p.Put(b)
	}
}

// DriveOptions tells Drive how to perform the parts of a handshake that
// need the outside world.
type DriveOptions struct {
	// TLS is used when the machine asks to start TLS. Nil while the
	// machine asks for TLS is a failure (handshake.ErrTLSFailed).
	TLS *TLSConfig
	// Secure, when non-nil, is a transport that already encrypts and
	// authenticates the stream (QUIC). If it reports a TLS state for the
	// stream, the machine is told TLS is established without a second TLS
	// layer.
	Secure SecureNetwork
	// OnPeerGreeting is called for machines configured with
	// DeferGreeting when the peer's first line has been accepted. It
	// returns the extra greeting keys to send, or an error to refuse the
	// connection. It may block (for example to hold an early data
	// connection until its expectation arrives); ctx is the drive's
	// context.
	OnPeerGreeting func(ctx context.Context, g wire.Greeting, protocol string) ([]wire.KV, error)

	// resume is the node's TLS resumption state (tlsresume.go); nil
	// means full handshakes only.
	resume *tlsResumer
	// bufs is the node's pool of read buffers; nil allocates one.
	bufs *readBufs
}

// Drive runs the handshake machine m over conn until it is done or has
// failed. It writes what the machine asks, feeds it what arrives, honours its
// deadline and ctx, and performs the TLS upgrade when asked.
//
// On success it returns the authenticated stream, with the bytes that
// arrived after the peer's auth line served first (see WithPending), and the
// machine's result. On failure conn is closed and the error is the machine's
// typed error (a *handshake.Error) or the context's error.
func Drive(ctx context.Context, conn net.Conn, m *handshake.Machine, opt DriveOptions) (net.Conn, *handshake.Result, error) {
	// One clock for the machine and the socket deadlines: Drive hands
	// m.Deadline() to SetReadDeadline/SetWriteDeadline, which read
	// time.Now, so the machine is fed time.Now too.
	raw := conn
	// A cancelled context unblocks any read or write in progress. The
	// per-operation deadlines below must never undo that: both go through
	// dlMu, and once cancelled every deadline is in the past.
	var dlMu sync.Mutex
	cancelled := false
	past := time.Unix(1, 0)
	stop := context.AfterFunc(ctx, func() {
		dlMu.Lock()
		cancelled = true
		raw.SetDeadline(past)
		dlMu.Unlock()
	})
	defer stop()
	setDeadline := func(set func(time.Time) error, t time.Time) {
		dlMu.Lock()
		if cancelled {
			t = past
		}
		set(t)
		dlMu.Unlock()
	}
	if opt.Secure != nil {
		if st, ok := opt.Secure.TLSState(conn); ok {
			m.TLSEstablished(time.Now(), handshake.TLSInfo{Exporter: ChannelBindingOf(st)})
		}
	}

	// The read buffer is only read from here (the machine copies what it
	// keeps), so a node's handshakes share a pool of them.
	bp := opt.bufs.get()
	defer opt.bufs.put(bp)
	buf := *bp
	fail := func(err error) (net.Conn, *handshake.Result, error) {
		conn.Close()
		if ctx.Err() != nil {
			return nil, nil, fmt.Errorf("aemp handshake: %w", context.Cause(ctx))
		}
		return nil, nil, err
	}
	// arm sets the socket deadlines to the machine's (one deadline for
	// reads and writes, on the raw stream, which a TLS layer uses too),
	// only when it changed: each change moves a runtime timer.
	var armed time.Time
	arm := func() {
		if dl := m.Deadline(); !dl.Equal(armed) {
			armed = dl
			setDeadline(raw.SetDeadline, dl)
		}
	}
	// deadlineHit: err is the expiry of the deadline arm set (the
	// machine's), which Tick turns into the machine's timeout. Another
	// timeout, such as a QUIC connection's idle timeout, ends the stream
	// for good: it is the peer closing, or every later Read would fail
	// at once again and the loop would spin until the machine's deadline.
	deadlineHit := func(err error) bool {
		return isTimeout(err) && ctx.Err() == nil && !time.Now().Before(m.Deadline())
	}
	var pending handshake.Action // an action polled while coalescing writes
	// held is the part of a read not fed yet: a read is fed up to the end
	// of the peer's nonce line first (its second line), so that the auth
	// line that answers it goes out before the machine checks the peer's
	// auth line that may have come in the same read (the peer then checks
	// ours while we check theirs). lines counts the line ends fed.
	var held []byte
	lines := 0
	var preTLS []byte // our last lines, written with the TLS client's first flight
	// fw, when the TLS client's stream is wrapped, may hold our Finished
	// until the auth line that follows it: it is flushed before any read
	// and at the end.
	var fw *firstWriteConn
	flushHeld := func() {
		if fw != nil {
			if err := fw.flush(); err != nil {
				m.PeerClosed(time.Now(), err)
			}
		}
	}
	feed := func(p []byte) {
		if lines < 2 {
			for i, c := range p {
				if c != '\n' {
					continue
				}
				if lines++; lines == 2 && i+1 < len(p) {
					held = p[i+1:]
					p = p[:i+1]
					break
				}
			}
		}
		m.Receive(time.Now(), p)
	}
	// readOnce reads once and gives the machine what came, or the end.
	readOnce := func() {
		arm()
		n, err := conn.Read(buf)
		if n > 0 {
			if err != nil {
				m.Receive(time.Now(), buf[:n]) // all of it before the error
			} else {
				feed(buf[:n])
			}
		}
		if err != nil {
			if deadlineHit(err) {
				m.Tick(time.Now())
			} else {
				m.PeerClosed(time.Now(), err)
			}
		}
	}
	if pg, ok := conn.(PeerGreeter); ok && pg.PeerGreetsFirst() {
		// The peer's lines are already on their way (or here): take them
		// before writing ours, so that our auth line, which answers
		// them, leaves with our greeting in one write.
		readOnce()
	}
	for {
		act := pending
		pending = nil
		if act == nil {
			act = m.Poll()
		}
		switch a := act.(type) {
		case handshake.Write:
			// Consecutive writes (greeting, nonce, auth line) go out in
			// one system call and, on TCP, usually one segment.
			data := a.Data
			for {
				next := m.Poll()
				w, ok := next.(handshake.Write)
				if !ok {
					pending = next
					break
				}
				if len(data) == len(a.Data) {
					data = append([]byte(nil), data...)
				}
				data = append(data, w.Data...)
			}
			if st, ok := pending.(handshake.StartTLS); ok && st.Client && opt.TLS != nil && hasKey(st.Peer, wire.KeyGo) {
				// Our lines and the ClientHello that follows them go out
				// in one write (see firstWriteConn), for a peer of this
				// project: it reads them as it would two writes.
				preTLS = data
				continue
			}
			arm()
			_, err := conn.Write(data)
			if err != nil {
				if deadlineHit(err) {
					m.Tick(time.Now())
				} else {
					m.PeerClosed(time.Now(), err)
				}
			}
		case handshake.StartTLS:
			// Bytes after the nonce line belong to the TLS stream.
			a.Pending = append(a.Pending, held...)
			held = nil
			if opt.TLS == nil {
				m.TLSFailed(time.Now(), errors.New("TLS requested but no certificate is configured"))
				continue
			}
			tctx, cancel := context.WithDeadline(ctx, m.Deadline())
			under := WithPending(raw, a.Pending)
			if a.Client && hasKey(a.Peer, wire.KeyGo) {
				// Our lines go out with the ClientHello, and our Finished
				// with the auth line that follows it (firstWriteConn).
				if preTLS != nil {
					arm()
				}
				fw = &firstWriteConn{Conn: under, first: preTLS}
				under = fw
				preTLS = nil
			}
			tc, err := upgradeTLS(tctx, opt, under, a)
			cancel()
			armed = time.Time{} // the upgrade set and cleared deadlines of its own
			if err != nil {
				m.TLSFailed(time.Now(), err)
				continue
			}
			st := tc.ConnectionState()
			conn = tc
			info := handshake.TLSInfo{Bound: st.NegotiatedProtocol}
			if a.Bind == "" {
				// Only an auth line (hmac_sha3_512_cb) covers the
				// exporter; a bound handshake ends without one, so it
				// skips the three key derivations.
				info.Exporter = ChannelBindingOf(st)
			}
			m.TLSEstablished(time.Now(), info)
		case handshake.PeerGreeting:
			// With an early greeting (ours went out first) what follows
			// the peer's nonce line is its auth line: it waits in held
			// until our auth line is written, as when our greeting is not
			// deferred (see feed), so both ends check at once.
			if l1, _ := m.LocalLines(); len(held) > 0 && l1 == "" {
				// Bytes after the peer's nonce line while our greeting is
				// deferred: the machine refuses them (ErrEarlyData), as it
				// would have had they come in one piece.
				p := held
				held = nil
				m.Receive(time.Now(), p)
				if m.Ended() {
					continue
				}
			}
			var extra []wire.KV
			var err error
			if opt.OnPeerGreeting != nil {
				hctx, cancel := context.WithDeadline(ctx, m.Deadline())
				extra, err = opt.OnPeerGreeting(hctx, a.Greeting, a.Protocol)
				cancel()
			}
			if err != nil {
				m.Abort(time.Now(), err)
			} else {
				m.SendGreeting(time.Now(), extra)
			}
		case handshake.Done:
			if fw != nil {
				if err := fw.flush(); err != nil {
					return fail(err)
				}
			}
			if len(held) > 0 {
				// The machine ended on the peer's nonce line
				// (handshake.ExtChannelAuth): the rest of the read
				// belongs to the stream. held is in the pooled buffer.
				a.Result.Pending = append(a.Result.Pending, held...)
				held = nil
			}
			if !stop() {
				// The cancellation callback ran (or is running) and may
				// set a deadline in the past: the stream is not usable.
				return fail(context.Cause(ctx))
			}
			conn.SetDeadline(time.Time{})
			return WithPending(conn, a.Result.Pending), a.Result, nil
		case handshake.Failed:
			return fail(a.Err)
		case nil:
			if len(held) > 0 {
				p := held
				held = nil
				m.Receive(time.Now(), p)
				continue
			}
			// Nothing to do but wait for the peer: check its coming auth
			// line in advance.
			flushHeld()
			if m.Ended() {
				continue
			}
			m.Prepare()
			readOnce()
		default:
			return fail(fmt.Errorf("aemp handshake: unknown action %T", act))
		}
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

func hasKey(g wire.Greeting, key string) bool {
	_, ok := g.Get(key)
	return ok
}

// firstWriteConn is the stream under a TLS client's *tls.Conn between
// nodes of this project. It writes first in front of the first Write: the
// handshake lines that precede the client's first flight go out with it,
// in one system call and one segment, instead of two. And once told
// (holdNext, when the client's handshake has verified the server and
// only its last flight, the Finished, is left), it holds the next Write
// until the one after it or flush: the Finished goes out with the auth
// line that follows it, in one segment, so the server, whose handshake
// ends on the Finished, finds the auth line in the same read.
type firstWriteConn struct {
	net.Conn
	mu    sync.Mutex
	first []byte // nil once written
	hold  bool   // hold the next Write
	held  []byte // a held Write, not sent yet
}

func (c *firstWriteConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.hold {
		c.hold = false
		c.held = append([]byte(nil), p...)
		return len(p), nil
	}
	pre := c.first
	c.first = nil
	if c.held != nil {
		pre = append(pre, c.held...)
		c.held = nil
	}
	if pre == nil {
		return c.Conn.Write(p)
	}
	n, err := c.Conn.Write(append(pre, p...))
	n = max(n-len(pre), 0)
	return n, err
}

// holdNext makes the next Write wait for the one after it (or flush).
func (c *firstWriteConn) holdNext() {
	c.mu.Lock()
	c.hold = true
	c.mu.Unlock()
}

// flush writes what is held, and holds nothing more.
func (c *firstWriteConn) flush() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.hold = false
	held := c.held
	c.held = nil
	if held == nil {
		return nil
	}
	_, err := c.Conn.Write(held)
	return err
}

// Close sends what is held (a TLS alert, say) before it closes.
func (c *firstWriteConn) Close() error {
	_ = c.flush()
	return c.Conn.Close()
}

// Unwrap returns the stream underneath.
func (c *firstWriteConn) Unwrap() net.Conn { return c.Conn }
