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

// DriveOptions tells Drive how to perform the parts of a handshake that
// need the outside world.
type DriveOptions struct {
	// Deprecated: Clock is ignored: the machine is fed time.Now, the
	// clock of the socket deadlines Drive derives from its deadline
	// (under testing/synctest both are the bubble's). It goes with
	// Config.Clock.
	Clock Clock
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

	buf := make([]byte, handshakeReadSize)
	fail := func(err error) (net.Conn, *handshake.Result, error) {
		conn.Close()
		if ctx.Err() != nil {
			return nil, nil, fmt.Errorf("aemp handshake: %w", context.Cause(ctx))
		}
		return nil, nil, err
	}
	var pending handshake.Action // an action polled while coalescing writes
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
			setDeadline(conn.SetWriteDeadline, m.Deadline())
			if _, err := conn.Write(data); err != nil {
				if isTimeout(err) && ctx.Err() == nil {
					m.Tick(time.Now())
				} else {
					m.PeerClosed(time.Now(), err)
				}
			}
		case handshake.StartTLS:
			if opt.TLS == nil {
				m.TLSFailed(time.Now(), errors.New("TLS requested but no certificate is configured"))
				continue
			}
			tctx, cancel := context.WithDeadline(ctx, m.Deadline())
			tc, err := upgradeTLS(tctx, opt, WithPending(raw, a.Pending), a)
			cancel()
			if err != nil {
				m.TLSFailed(time.Now(), err)
				continue
			}
			st := tc.ConnectionState()
			conn = tc
			m.TLSEstablished(time.Now(), handshake.TLSInfo{Exporter: ChannelBindingOf(st)})
		case handshake.PeerGreeting:
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
			setDeadline(conn.SetReadDeadline, m.Deadline())
			n, err := conn.Read(buf)
			if n > 0 {
				m.Receive(time.Now(), buf[:n])
			}
			if err != nil {
				if isTimeout(err) && ctx.Err() == nil {
					m.Tick(time.Now())
				} else {
					m.PeerClosed(time.Now(), err)
				}
			}
		default:
			return fail(fmt.Errorf("aemp handshake: unknown action %T", act))
		}
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}
