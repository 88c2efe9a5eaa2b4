package peer

import (
	"github.com/aemp-go/dataconn/core/wire"
)

// Action is an output of the machine, returned by Poll: Dial, Write,
// CloseWrite, Close, PauseRead, ResumeRead, NodeUp, NodeDown,
// Unreachable, Writable, Deliver, Call, PortKilled, DataConn,
// MonitorFired, DBChanged, DialSeed or Draw. The
// caller carries out actions in the order Poll returns them.
type Action interface{ isAction() }

// Dial asks the caller to open a messaging connection to Peer, trying
// Addrs (already ordered by Config.Prefer). On success it reports ConnUp
// with Outbound set and this Attempt; on failure DialFailed with it.
type Dial struct {
	Peer    string
	Addrs   []string
	Attempt uint64
}

// Write asks the caller to write Frame (one encoded message) on Conn,
// after every earlier Write on it. When the frame (or any later one) is
// written, the caller reports FrameWritten with Seq. Keepalive marks the
// idle keepalive the machine sends on its own.
type Write struct {
	Conn      ConnID
	Seq       uint64
	Frame     []byte
	Keepalive bool
}

// CloseWrite says a retired connection has written everything it was
// given: the caller half-closes it (or, where the stream cannot
// half-close, closes it with ErrConnReplaced) and keeps reading; the
// peer's end of the stream is reported with ReadClosed, after which the
// machine asks for Close.
type CloseWrite struct {
	Conn ConnID
}

// Close asks the caller to close Conn. The machine has already forgotten
// it: a later ConnDown for it is ignored.
type Close struct {
	Conn ConnID
	Err  error
}

// PauseRead asks the caller to stop reading Conn for now: messages that
// arrive on it are held back behind an older connection of the same peer
// that is still being read, and MaxHeld of them are waiting. ResumeRead
// follows when they could be dispatched. The caller reports no further
// message of Conn until then: it keeps what it read, undecoded (one
// message it was already dispatching may still be reported).
type PauseRead struct {
	Conn ConnID
}

// ResumeRead lifts a PauseRead.
type ResumeRead struct {
	Conn ConnID
}

// NodeUp says the first messaging connection to Peer came up. Monitors
// are the node monitors to call (MonitorNode of Peer, then MonitorNodes),
// in this order.
type NodeUp struct {
	Peer     string
	Monitors []MonitorID
}

// NodeDown says the messaging connection to Peer ended with Err.
// Dropped messages were queued for it and are lost. Monitors are called
// as for NodeUp; the data connections of Peer fail too.
type NodeDown struct {
	Peer     string
	Err      error
	Dropped  int
	Monitors []MonitorID
}

// Unreachable says a connection to Peer, needed by a send or Connect,
// could not be made. Dropped messages that waited for it are lost.
type Unreachable struct {
	Peer    string
	Err     error
	Dropped int
}

// Writable says that a send to Peer refused with ErrQueueFull may be
// tried again: the queue it hit has room (or was emptied).
type Writable struct {
	Peer string
}

// Deliver asks the caller to run the handler of local port Port with
// Data, a message from node From.
type Deliver struct {
	Port string
	From string
	Data []any
}

// Call asks the caller to run the registered function Func with Args, a
// node-port call from node From.
type Call struct {
	Func string
	From string
	Args []any
}

// PortKilled says local port Port is gone with Reason; the caller calls
// Monitors (port monitors, in registration order) with it and forgets
// the port.
type PortKilled struct {
	Port     string
	Reason   []any
	Monitors []MonitorID
}

// DataConn hands a data-connection request from node From (a
// wire.NodeMsgExpect or wire.NodeMsgConnect) to the rendezvous machine.
type DataConn struct {
	From string
	Msg  wire.NodeMsg
}

func (Dial) isAction()        {}
func (Write) isAction()       {}
func (CloseWrite) isAction()  {}
func (Close) isAction()       {}
func (PauseRead) isAction()   {}
func (ResumeRead) isAction()  {}
func (NodeUp) isAction()      {}
func (NodeDown) isAction()    {}
func (Unreachable) isAction() {}
func (Writable) isAction()    {}
func (Deliver) isAction()     {}
func (Call) isAction()        {}
func (PortKilled) isAction()  {}
func (DataConn) isAction()    {}

// MonitorFired says a monitor of port Port ("NODE#NAME", MonitorPortID)
// fired with Reason: the kill reason its node sent (kil0), Perl's
// ["no_such_port", ...] for a port that does not exist, or
// ["transport_error", NODE, MSG] when the connection to NODE was lost or
// could not be made. Monitors are spent.
type MonitorFired struct {
	Port     string
	Reason   []any
	Monitors []MonitorID
}

// DBChanged says family Family of the merged database changed: Set holds
// the keys with their new values, Del the keys that are gone. Monitors
// are the DBMonitor monitors of the family.
type DBChanged struct {
	Family   string
	Set      map[string]any
	Del      []string
	Monitors []MonitorID
}

// DialSeed asks the caller to open a messaging connection to seed
// address Addr (whose node ID comes from its greeting). On success it
// reports ConnUp with Outbound, Seed = Addr and this Attempt; on failure
// SeedFailed.
type DialSeed struct {
	Addr    string
	Attempt uint64
}

// DrawKind names what a random draw is for.
type DrawKind uint8

// Draw kinds.
const (
	// DrawSeed: the base r of the seed retries.
	DrawSeed DrawKind = iota + 1
	// DrawGlobal: the base k of the redials of the globals in 'g.
	DrawGlobal
)

// String returns "seed" or "global".
func (k DrawKind) String() string {
	switch k {
	case DrawSeed:
		return "seed"
	case DrawGlobal:
		return "global"
	}
	return "draw?"
}

// Draw asks the caller for a uniform random number in [0,1), answered
// with Drawn(now, Kind, u) (the machine draws none itself).
type Draw struct {
	Kind DrawKind
}

func (MonitorFired) isAction() {}
func (DBChanged) isAction()    {}
func (DialSeed) isAction()     {}
func (Draw) isAction()         {}
