// Package core is the pure heart of dataconn: three state machines, one
// per protocol layer of Perl's AnyEvent::MP 2.x and its aemp-dataconn
// extension, and the wire formats they share. The package itself holds
// only this description; the code lives in its sub-packages:
//
//   - core/handshake: one side of the AEMP version 1 transport handshake
//     of a stream, messaging or data connection alike (handshake.Machine,
//     handshake.Done, handshake.ErrAuthFailed), with the auth methods;
//   - core/rendezvous: pairing data connections with the requests that
//     asked for them, on the initiator, the target and the acceptor side
//     (rendezvous.Machine, rendezvous.Dial, rendezvous.ErrTimeout), with
//     the classification of kill reasons;
//   - core/peer: the messaging connections of one node, its ports,
//     monitors, node-port requests and the global database (peer.Machine,
//     peer.Dial, peer.ErrQueueFull);
//   - core/wire: the formats all of them share: greeting lines, codecs,
//     node messages, kill reasons, the data stream header; and the
//     happy-eyeballs dial plan that data and messaging connections
//     follow.
//
// Nothing under core does I/O, reads a clock, draws random numbers or
// starts goroutines: time, nonces and bytes are inputs, and everything the
// caller must do comes out as actions, drained with Poll after every
// input. Package transport runs the actions, as etcd-io/raft's node.go
// runs a RawNode.
//
// # Why this layout
//
// One package per machine, so that names say whose they are:
// rendezvous.Dial and peer.Dial, handshake.ErrTimeout and
// rendezvous.ErrTimeout, each machine's Machine, New, Config, Action and
// TimerKind. A rule is a sentinel of the package of the machine that
// decides it, so a reader looks for it in one place. The wire formats are
// a package of their own because every machine and the transport need
// them and none owns them; they depend on nothing else here. The imports
// go one way: wire at the bottom, handshake and rendezvous on wire, peer
// on wire and handshake (for handshake.ErrPeerClosed, which its dial
// guess reads); the peer and rendezvous machines do not know each other:
// the transport hands the rendezvous machine the _expect and _connect
// requests the peer machine reports. The auth methods live with the
// handshake, whose rules their failures are; the kill-reason table lives
// with the rendezvous machine, which decides the rules it names.
//
// # Timers
//
// Each machine keeps its deadlines in a small table of named kinds
// (handshake.TimerKind, rendezvous.TimerKind, peer.TimerKind); Deadline
// is the minimum over the table, Tick fires what is due, and Timers lists
// what is pending, so a test can print it. The table is one generic type
// for all three (core/internal/timers: an indexed min-heap keyed by each
// machine's own key); each machine names its kinds and fires its rules.
//
// # Rules
//
// Every refusal or failure names its rule as a sentinel of the package of
// the machine that decides it: handshake.Err*, rendezvous.Err*, peer.Err*,
// and wire.Err* for malformed input. Package transport wraps them with
// context and gives some of them a second name
// (transport.ErrDataConnTimeout is rendezvous.ErrTimeout), so errors.Is
// matches either name. Text is read in one place only: a kill reason from
// another node, classified by rendezvous.ClassifyKillReason against a
// table of the known texts; any other text is a plain remote kill
// (rendezvous.ErrKilled).
//
// # Interaction scripts
//
// Each machine's testdata holds data-driven scripts (internal/script, in
// the style of raft's interaction tests): each command to a machine is
// followed by the actions it produced, and
// "go test ./core/handshake ./core/rendezvous ./core/peer -rewrite"
// regenerates them. The perl_* scripts replay the recorded Perl
// transcripts of ../testdata/transcripts; for the handshakes, every line
// our machine writes is checked against the recording
// (handshake.TestScriptsMatchTranscripts), HMACs included.
package core
