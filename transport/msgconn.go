package transport

import (
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/aemp-go/dataconn/core/handshake"
	"github.com/aemp-go/dataconn/core/peer"
	"github.com/aemp-go/dataconn/core/rendezvous"
	"github.com/aemp-go/dataconn/core/wire"
)

// Sizes of a messaging connection's read buffer.
const (
	minReadBuf = 512
	maxReadBuf = 32 << 10
)

// msgConn is the I/O of one established messaging connection: a reader
// goroutine that decodes frames into Received inputs, and a writer
// goroutine, running only while frames are queued, that writes the
// machine's Write actions in order and reports FrameWritten. Its fields
// after conn are guarded by n.mu.
type msgConn struct {
	n      *Node
	id     peer.ConnID
	peerID string
	conn   net.Conn
	res    *handshake.Result
	// direct is the network for direct data streams to the peer on this
	// connection, nil when not allowed (see datastream.go).
	direct MuxNetwork
	// window is the data-connection window the peer announced (0: none).
	window int

	wq         [][]byte // frames to write, in order
	lastSeq    uint64   // Seq of the last frame in wq
	writing    bool     // a writer goroutine runs
	closeWrite bool     // half-close once wq is written
	halfClosed bool
	closed     bool
	paused     bool          // PauseRead: decode nothing until ResumeRead
	resume     chan struct{} // closed by ResumeRead while the reader waits
}

// queueLocked takes one Write action.
func (mc *msgConn) queueLocked(seq uint64, b []byte) {
	if mc.closed {
		return
	}
	mc.wq = append(mc.wq, b)
	mc.lastSeq = seq
	mc.kickLocked()
}

func (mc *msgConn) closeWriteLocked() {
	mc.closeWrite = true
	mc.kickLocked()
}

// closedLocked marks mc closed by the machine (its Close action).
func (mc *msgConn) closedLocked(err error) {
	mc.closed = true
	mc.wq = nil
	if mc.resume != nil {
		close(mc.resume)
		mc.resume = nil
	}
}

// kickLocked starts the writer unless one runs. An idle connection has
// no writer: it costs no goroutine.
func (mc *msgConn) kickLocked() {
	if mc.writing || mc.closed {
		return
	}
	mc.writing = true
	mc.n.wg.Add(1)
	go mc.writeLoop()
}

// writeLoop writes what is queued until the queue is empty, then ends; a
// half-close asked for (CloseWrite) is done once everything before it is
// written.
func (mc *msgConn) writeLoop() {
	n := mc.n
	defer n.wg.Done()
	for {
		n.mu.Lock()
		q, seq := mc.wq, mc.lastSeq
		mc.wq = nil
		if mc.closed || len(q) == 0 {
			mc.writing = false
			half := mc.closeWrite && !mc.halfClosed && !mc.closed
			if half {
				mc.halfClosed = true
			}
			n.mu.Unlock()
			if half {
				if cw, ok := mc.conn.(CloseWriter); ok {
					cw.CloseWrite()
				} else {
					mc.conn.Close()
				}
			}
			return
		}
		n.mu.Unlock()
		bufs := net.Buffers(q)
		if _, err := bufs.WriteTo(mc.conn); err != nil {
			n.mu.Lock()
			mc.writing = false
			n.mu.Unlock()
			mc.conn.Close()
			n.input(mc.peerID, func(now time.Time) error {
				return n.m.ConnDown(now, mc.id, fmt.Errorf("aemp: write to %s: %w", mc.peerID, err))
			})
			return
		}
		n.input(mc.peerID, func(now time.Time) error { return n.m.FrameWritten(now, mc.id, seq) })
	}
}

// readLoop decodes what the peer sends and reports it to the machine.
// The read buffer grows while reads fill it and shrinks back once they do
// not, so an idle connection holds only the small one.
func (mc *msgConn) readLoop() {
	n := mc.n
	defer n.wg.Done()
	codec, ok := wire.CodecByName(mc.res.RecvFraming)
	if !ok {
		mc.conn.Close()
		n.input(mc.peerID, func(now time.Time) error {
			return n.m.ConnDown(now, mc.id, fmt.Errorf("aemp: peer framing %q unsupported", mc.res.RecvFraming))
		})
		return
	}
	dec := codec.NewDecoder(n.cfg.MaxFrame)
	small := make([]byte, minReadBuf)
	buf := small
	for {
		nr, err := mc.conn.Read(buf)
		if nr > 0 {
			ferr := dec.Feed(buf[:nr])
			heard := true
			// Messages completed before a framing error are delivered,
			// one at a time; after PauseRead the rest waits, undecoded.
			for {
				if !mc.waitResume() {
					return
				}
				msg, ok, derr := dec.Next()
				if !ok {
					if derr != nil && ferr == nil {
						ferr = derr
					}
					break
				}
				heard = false
				n.inputWait(mc.peerID, func(now time.Time) error {
					if err := n.m.Received(now, mc.id, msg); err != nil {
						n.logReceived(mc.peerID, err)
					}
					return nil
				})
			}
			if heard && ferr == nil {
				n.input(mc.peerID, func(now time.Time) error { return n.m.Heard(now, mc.id) })
			}
			if ferr != nil {
				mc.conn.Close()
				n.input(mc.peerID, func(now time.Time) error {
					return n.m.ConnDown(now, mc.id, fmt.Errorf("aemp: from %s: %w", mc.peerID, ferr))
				})
				return
			}
			switch {
			case nr == len(buf) && len(buf) < maxReadBuf:
				buf = make([]byte, 2*len(buf))
			case nr < len(buf)/8 && len(buf) > minReadBuf:
				buf = small
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				n.input(mc.peerID, func(now time.Time) error { return n.m.ReadClosed(now, mc.id) })
				return
			}
			mc.conn.Close()
			n.input(mc.peerID, func(now time.Time) error {
				if mc.closed {
					// The machine closed it (Node.Close, a lost tie
					// break) and forgot it: nothing to report, and no
					// error to format on the way out of Close.
					return nil
				}
				return n.m.ConnDown(now, mc.id, fmt.Errorf("aemp: connection to %s: %w", mc.peerID, err))
			})
			return
		}
	}
}

// waitResume blocks while mc is paused; false when it was closed.
func (mc *msgConn) waitResume() bool {
	n := mc.n
	for {
		n.mu.Lock()
		if mc.closed {
			n.mu.Unlock()
			return false
		}
		if !mc.paused {
			n.mu.Unlock()
			return true
		}
		if mc.resume == nil {
			mc.resume = make(chan struct{})
		}
		ch := mc.resume
		n.mu.Unlock()
		<-ch
	}
}

func (n *Node) logReceived(from string, err error) {
	switch {
	case errors.Is(err, peer.ErrUnknownConn), errors.Is(err, peer.ErrClosed):
	default:
		n.log.Debug("message not dispatched", "from", from, "err", err)
	}
}

// addConn hands an authenticated messaging connection to the machine.
// It returns false (and closes c) when the machine refuses it.
func (n *Node) addConn(id peer.ConnID, c net.Conn, res *handshake.Result, info peer.ConnInfo) error {
	return n.addConnOn(id, c, res, info, false)
}

// addConnOn is addConn; with handOff, node monitors that the connection
// brings up are called on a goroutine of their own (a Connect that dialed
// on its own goroutine returns without waiting for them, as it did when
// a dialing goroutine called them).
func (n *Node) addConnOn(id peer.ConnID, c net.Conn, res *handshake.Result, info peer.ConnInfo, handOff bool) error {
	mc := &msgConn{n: n, id: id, peerID: res.PeerNodeID, conn: c, res: res}
	mc.direct = n.directMux(c, res)
	_, isGo := res.Peer.Get(wire.KeyGo)
	info.Conn, info.Peer = id, res.PeerNodeID
	info.IsGo = isGo
	info.Untrusted = res.Untrusted
	info.SendFraming = res.SendFraming
	var err error
	n.mu.Lock()
	if n.closed {
		err = ErrClosed
	} else {
		n.mconns[id] = mc
		if err = n.m.ConnUp(time.Now(), info); err != nil {
			delete(n.mconns, id)
		} else {
			mc.window = rendezvous.AnnouncedWindow(res.Peer)
			n.wg.Add(1)
			go mc.readLoop()
		}
	}
	after := n.runActionsLocked()
	if handOff && len(after.direct) > 0 && !n.closed {
		n.wg.Add(1)
		n.mu.Unlock()
		go func() {
			defer n.wg.Done()
			n.finish(res.PeerNodeID, after, false)
		}()
	} else {
		n.mu.Unlock()
		n.finish(res.PeerNodeID, after, false)
	}
	if err != nil {
		c.Close()
		return n.publicErr(err)
	}
	return nil
}

// newConnID returns a fresh connection ID (n.mu held).
func (n *Node) newConnIDLocked() peer.ConnID {
	n.connSeq++
	return n.connSeq
}
