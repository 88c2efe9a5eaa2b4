// Package peer is the messaging state machine of one AEMP node: what it
// does with the messaging connections to other nodes, the messages sent
// on them and the node-port requests that arrive. Like the handshake and
// rendezvous machines beside it (core/handshake, core/rendezvous) it is
// pure: it opens no socket, reads no clock, draws no random number and
// starts no goroutine. Time comes in with every input, and what must be done comes out as actions.
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
//   - MonitorPortID: a monitor of any port, local or remote;
//   - DBSet, DBDel, DBMonitor: the embedder's side of the database;
//   - Start: seeding begins (Config.Seeds); SeedFailed: a DialSeed
//     failed; Drawn: the answer to a Draw (a random number);
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
// (with its monitors), DataConn (an _expect or _connect for the
// rendezvous machine), MonitorFired (a MonitorPortID monitor fired),
// DBChanged (a monitored family changed), DialSeed (dial a seed address)
// and Draw (the machine needs a random number).
//
// # Roles: every node is global
//
// A Perl AnyEvent::MP 2.x network keeps its directory (which node
// listens where, which nodes are global) in a database that its global
// nodes share; plain nodes ("slaves") ask a global, their master. A
// Perl seed turns global when its first node joins, and every Perl node
// that uses data connections turns global too. The machine is global
// and its own master unless Config.Minimal turns the role off (package
// transport sets Minimal unless its Config.Global is on: the role is
// opt-in there, so that a node keeps the wire of a Perl node without the
// Global module unless asked). So it can be
// the seed of a Perl network, and it learns addresses the way a Perl
// global does:
//
//   - at node-up it sends ["", "g_global"] to every node (and a bare
//     g_slave to a seed, which makes a Perl seed run its global service);
//   - g_slave DB makes the sender a slave and DB its shard; g_upd changes
//     the sender's shard (SET may be null, DEL missing); changes to a
//     slave's shard, ours included, go to every known global as g_upd;
//   - g_global from X: X's slave shard goes, X joins our 'g, X gets
//     g_set with our slaves' merged shards; g_set from X becomes X's
//     shard, and X's own 'l entry is copied into ours (the 'l echo);
//   - g_find is answered from the merged 'l (null when unknown, [] for a
//     node without listeners); g_mon1/g_mon0 subscribe a node to a
//     family (g_chg1 with the whole family or null, then g_chg2 per
//     change); g_db_family/keys/values get g_reply;
//   - g_found, and 'l entries in g_chg1/g_chg2, are dial hints only: we
//     monitor no family remotely, so stale g_chg2 (seed_mon_stale) change
//     nothing; g_reply is ignored;
//   - when a node goes down, its shard, our mirror of its 'l, its 'g
//     entry and its family monitors go, the deletions go out as g_upd and
//     g_chg2, and a global that left is redialed once.
//
// Listeners, DBFamily, Globals and Slaves read the result. Our own 'l
// entry is SetListeners' list, [] when there is none. The scripts
// perl_seed_*.txt replay the transcripts of Perl networks with our node
// in each role and compare every burst, as a set, with Perl's.
//
// # Database limits and trust
//
// A peer's shard holds at most Config.MaxDBFamilies families,
// MaxDBKeys keys and values of MaxDBValue JSON bytes (the families it
// monitors are bounded by MaxDBFamilies too); a write beyond them is
// refused whole with a *DBLimitError naming the limit. A peer whose
// ConnInfo says Untrusted (it authenticated with tls_anon) may read the
// database but not write it (ErrUntrusted). The embedder writes its own
// entries with DBSet and DBDel ('l and 'g are the node's) and follows a
// family with DBMonitor.
//
// # Remote port monitors
//
// MonitorPortID watches a port of any node. The first monitor of a
// (node, port) sends ["", "mon1", NAME], the removal of the last
// ["", "mon0", NAME]. The node answers a port's death with
// ["", "kil0", NAME, reason...] once; MonitorFired carries the reason to
// every monitor of that port, which are then spent. When the node goes
// down or cannot be reached, its port monitors fire with
// ["transport_error", NODE, MSG]. On our side mon1 of a local port
// registers the peer, its death sends kil0 with the reason, and mon1 of
// a port that does not exist is answered at once with
// ["no_such_port", "cannot monitor nonexistent port", "NODE#NAME"]. A
// kil1 of the node port "" is refused (ErrKillNodePort).
//
// # Seeds and retries
//
// Config.Seeds are addresses; a seed's node ID comes from its greeting.
// Start dials every seed (DialSeed) and asks for a Draw: with u the
// answer, r = 0.6·(1+u) s, and the seeds not connected are tried again
// at 2r, 6r, 14r, 30r, then at most every SeedRetryMax (30 s), as
// Perl's Kernel does. The timer (TimerSeedRetry) stops once every seed
// is connected; losing one draws a new r and retries at once. Members of
// 'g that are not connected are dialed the same way (TimerGlobalRedial,
// k = 0.3·(1+u) s), which is how a node without listeners reaches the
// others.
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
// side timed out a connection the other still holds), so the rule goes
// by the order in which connections came up, not by which one we used:
// what arrives on a connection waits while one that came up before it,
// winner or not, is still being read.
//
// Keepalive and peer timeout (timers, below). A connection on which
// nothing was handed to the writer for KeepAlive gets ["", "devnull"]; one
// to a Go peer on which nothing arrived for PeerTimeout is closed with
// ErrPeerTimeout (a Perl peer sends nothing when idle, so its
// connections have no peer timeout),
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
// (handshake.ErrPeerClosed), when the peer has the lower ID, most likely lost
// the tie-break against the peer's own dial: its connection arrives
// within a handshake, so the machine waits HandshakeTimeout for it before
// dropping what waited.
//
// Dispatch. [NAME, data...] is delivered to local port NAME (dropped,
// ErrUnknownPort, when there is none). ["", TAG, args...] is a node-port
// request: the global protocol (g_*) and mon1, mon0, kil0 are handled
// as described above; the rest is parsed by wire.ParseNodeMsg: snd is
// relayed (the ordering echo), kil1 kills a local port (never the node
// port ""), a data-connection kill without a text gets one, _expect and
// _connect go to the rendezvous machine, other tags call a registered
// function; can, eval, time and _spawn return ErrIgnored.
//
// Monitors. Node monitors (one node's, every node's) are named in NodeUp
// and NodeDown; port monitors in PortKilled. IDs are handed out in order,
// and actions list them in registration order.
//
// # Timers
//
// Every deadline is one entry of a table keyed by a named kind
// (TimerKeepalive, TimerPeerTimeout, TimerWriteStall, TimerConnect,
// TimerDialBack, TimerSeedRetry, TimerGlobalRedial) and the connection or peer it belongs to. Deadline is the
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
//   - Draw is answered at once with Drawn and a uniform random number;
//   - DialSeed runs the handshake with a seed address and ends in
//     ConnUp (Outbound, Seed, Attempt) or SeedFailed; ConnInfo.Untrusted
//     says the peer authenticated with tls_anon;
//   - Dial runs the handshakes of the addresses (happy eyeballs) and ends
//     in ConnUp or DialFailed; an incoming messaging handshake reports
//     Greeted at the peer's greeting and ConnUp or ConnDown at its end.
//
// Node.Send, Connect, Kill, MonitorNode and the port API map to the
// inputs of the same names (Node.Monitor(portID) to MonitorPortID, the
// database API to DBSet, DBDel, DBMonitor); NodeUp and Unreachable
// resolve Connect waiters; NodeDown also fails the peer's data
// connections; MonitorFired and DBChanged call the embedder's callbacks.
// The transport calls Start after SetListeners.
//
// # Layout
//
// The package lives under core, next to handshake and rendezvous, so that
// each machine's names say whose they are (peer.Dial, peer.ErrQueueFull) and the shared wire
// formats (wire.Message, wire.NodeMsg, wire.KillReason, the codecs) stay
// in one place that all machines import. Files by concern: machine.go
// (state, Config, queries), conns.go (connections: tie-break, retire,
// writes, reads), send.go (sends, dials, the pending queue, kills),
// dispatch.go (node-port requests), ports.go (ports, functions,
// monitors), global.go (the database and the global role),
// globalmsg.go (the global protocol's messages, the limits), rmon.go
// (remote port monitors), seeds.go (seeding and the redial of 'g),
// timers.go (its timer kinds, on the table of core/internal/timers),
// actions.go, errors.go (the rules, one sentinel each).
//
// The tests are data-driven scripts in testdata (see
// internal/script): each command to the machine is followed by the
// actions it produced; go test ./core/peer -rewrite regenerates them.
// The scripts perl_*.txt replay recorded Perl transcripts (copies in
// testdata/transcripts) with the machine in our node's role; the burst
// command compares what it wrote with what the Perl node sent, as a set.
// net_sim_test.go wires several machines and scripted Perl slaves
// through a lossless in-memory network.
package peer
