// Package peer is the messaging state machine of one AEMP node: what it
// does with the messaging connections to other nodes, the messages sent
// on them and the node-port requests that arrive. Like the handshake and
// rendezvous machines of package core it is pure: it opens no socket,
// reads no clock, draws no random number and starts no goroutine. Time
// comes in with every input, and what must be done comes out as actions.
// The transport runs the actions, as etcd-io/raft's node.go runs a
// RawNode.
//
// # Inputs
//
// A Machine is made by New from a Config. The caller serialises its
// inputs and, after each, calls Poll until it returns nil:
//
//   - Send, SendTo, Kill, Connect: the application sends a message, kills
//     a port, or wants a connection to a node;
//   - Greeted: an incoming messaging handshake has the peer's greeting
//     (the machine admits or refuses it);
//   - ConnUp, ConnDown: a handshake succeeded (peer ID, who dialed, Go or
//     Perl peer, framing), or a connection or greeted handshake ended;
//   - DialFailed: a Dial the machine asked for failed;
//   - Received, Heard: a message (or part of one) arrived; ReadClosed: the
//     peer ended its side of a connection cleanly;
//   - FrameWritten: the writer wrote the frames up to a sequence number;
//   - OpenPort, KillPort, MonitorPort, MonitorNode, MonitorNodes,
//     Unmonitor, RegisterFunc, AddPeer, SetListeners: local bookkeeping;
//   - Tick(now): time passed; Deadline says when it is due next;
//   - Close: the node shuts down.
//
// # Actions
//
// Dial, Write (one encoded frame), CloseWrite (a retired connection is
// drained), Close, PauseRead and ResumeRead (flow control of held-back
// messages), NodeUp, NodeDown, Unreachable (messages waiting for a
// connection were dropped), Writable (a refused sender may go on),
// Deliver (to a local port), Call (a registered function), PortKilled
// (with its monitors) and DataConn (an _expect or _connect for the
// rendezvous machine).
//
// # Rules
//
// Tie-break. When two nodes dial each other at once, only the
// connection dialed by the lower node ID is kept, so no message can
// overtake another on a second connection. At the greeting (Greeted) the
// lower node refuses the higher's connection while it dials the higher or
// holds a connection it dialed itself (ErrConnReplaced). When two
// connections come up anyway, ConnUp keeps the one dialed by the lower ID
// (from the same dialer, the newer) and retires the other.
//
// Retire and drain. A retired connection takes no new message. What it
// had not yet handed to its writer moves, in order, to the front of the
// winner's queue (re-encoded when the winner chose another framing);
// what it had handed out is written, then it half-closes
// (CloseWrite) and is read until the peer closes (ReadClosed), so nothing
// in flight is lost. Frames are handed out within a write window
// (Config.WriteWindow), which is what keeps them movable. On the receiving
// side, messages that arrive on the winner while the retired connection
// is still being read are held back (beyond MaxHeld of them the caller
// is asked to PauseRead the winner) and dispatched
// when it ends, so the switch does not reorder what the peer sent. After a
// fault the two ends may disagree on which connection is current (one
// side timed out a connection the other still holds); messages on a
// connection we retired without using it are held back the same way.
//
// Keepalive and peer timeout (timers, below). A connection on which
// nothing was handed to the writer for KeepAlive gets ["", "devnull"]; one
// on which nothing arrived for PeerTimeout is closed with ErrPeerTimeout,
// and one whose frames stay unwritten for PeerTimeout with
// ErrWriteStalled. Either way the node goes down.
//
// The queue for a connection not up yet. A message for a node without a
// connection waits (at most MaxPending messages) while the machine dials
// it; the connection gets 2 × HandshakeTimeout to come up, then the
// messages are dropped (Unreachable). A greeted incoming handshake from
// the node counts as a connection being made.
//
// Backpressure. Limits bound an attacker, never an honest sender. A send
// that would exceed a bound (MaxPending messages waiting, MaxSendQueue
// bytes queued and in flight on a connection) is refused with a
// *QueueFullError naming the limit; the connection stays up, and a
// Writable action for the node says when to send again.
//
// The dial-back guess. A dial whose handshake the peer closed
// (core.ErrPeerClosed), when the peer has the lower ID, most likely lost
// the tie-break against the peer's own dial: its connection arrives
// within a handshake, so the machine waits HandshakeTimeout for it before
// dropping what waited.
//
// Dispatch. [NAME, data...] is delivered to local port NAME (dropped,
// ErrUnknownPort, when there is none). ["", TAG, args...] is a node-port
// request, parsed by core.ParseNodeMsg: snd is relayed (the ordering
// echo), kil1 kills a local port (never the node port ""), a data-connection
// kill without a text gets one, _expect and _connect go to the
// rendezvous machine, g_slave and g_found record addresses, g_find is
// answered, other tags call a registered function; the requests a
// minimal node ignores return ErrIgnored.
//
// Monitors. Node monitors (one node's, every node's) are named in NodeUp
// and NodeDown; port monitors in PortKilled. IDs are handed out in order,
// and actions list them in registration order.
//
// # Timers
//
// Every deadline is one entry of a table keyed by a named kind
// (TimerKeepalive, TimerPeerTimeout, TimerWriteStall, TimerConnect,
// TimerDialBack) and the connection or peer it belongs to. Deadline is the
// minimum over the table, Timers lists it (a test prints what is
// pending), and Tick fires the due entries earliest first.
//
// # The caller's part
//
// The transport keeps one machine per node under one lock and runs the
// actions of each input in order, outside it (or on one goroutine, like
// raft's node.go). Per connection it runs a reader and a writer:
//
//   - the writer writes each Write's frame in order and reports
//     FrameWritten with its Seq; CloseWrite half-closes; Close closes;
//   - the reader reports each decoded message with Received, bytes that
//     did not complete one with Heard, a clean end of stream with
//     ReadClosed and any other end (read or write error) with ConnDown;
//     after PauseRead it decodes nothing more until ResumeRead;
//   - one clock timer is kept at Deadline and calls Tick when it fires;
//   - Dial runs the handshakes of the addresses (happy eyeballs) and ends
//     in ConnUp or DialFailed; an incoming messaging handshake reports
//     Greeted at the peer's greeting and ConnUp or ConnDown at its end.
//
// Node.Send, Connect, Kill, MonitorNode and the port API map to the
// inputs of the same names; NodeUp and Unreachable resolve Connect
// waiters; NodeDown also fails the peer's data connections.
//
// # Layout
//
// The package lives beside core, not in it, so that each machine's names
// say whose they are (peer.Dial, peer.ErrQueueFull) and the shared wire
// formats (core.Message, core.NodeMsg, core.KillReason, the codecs) stay
// in one place that all machines import. Files by concern: machine.go
// (state, Config, queries), conns.go (connections: tie-break, retire,
// writes, reads), send.go (sends, dials, the pending queue, kills),
// dispatch.go (node-port requests), ports.go (ports, functions,
// monitors), timers.go (the timer table), actions.go, errors.go (the
// rules, one sentinel each).
//
// The tests are data-driven scripts in testdata (see
// core/internal/script): each command to the machine is followed by the
// actions it produced; go test ./core/peer -rewrite regenerates them.
// The scripts perl_*.txt replay recorded Perl transcripts with the
// machine in our node's role.
package peer
