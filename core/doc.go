// Package core holds the pure state machines and wire formats of dataconn.
// There are three machines, one per protocol layer of Perl's AnyEvent::MP
// 2.x and its aemp-dataconn extension:
//
//   - the handshake (Handshake, this package): one side of the AEMP
//     version 1 transport handshake of a stream, messaging or data
//     connection alike;
//   - the rendezvous (Rendezvous, this package): pairing data connections
//     with the requests that asked for them, on the initiator, the target
//     and the acceptor side (_expect, the snd round trip, _connect);
//   - the peer (package core/peer): the messaging connections of one
//     node, its ports, monitors, node-port requests and the global
//     database.
//
// Nothing here does I/O, reads a clock, draws random numbers or starts
// goroutines: time, nonces and bytes are inputs, and everything the caller
// must do comes out as actions, drained with Poll after every input.
// Package transport runs the actions, as etcd-io/raft's node.go runs a
// RawNode.
//
// # Layout
//
// The machines, each with its inputs, actions, rules and timers:
//
//   - handshake.go: the handshake machine; errors.go its rules (Err*
//     sentinels, *HandshakeError carrying Perl's text).
//   - rendezvous.go (initiator, target, acceptor, dial plans),
//     rendezvous_flow.go (windows and queues of set-ups),
//     rendezvous_timers.go (its timer table), rendezvous_types.go (config,
//     defaults, Rv* actions, ErrRv* rules, *RvError).
//
// The wire formats the machines and package peer share:
//
//   - greeting.go, greeting_num.go: the greeting line (ParseGreeting
//     splits as Perl does) and Perl's number parsing;
//   - auth.go, auth_cb.go: the auth methods (hmac_sha3_512, tls_sha3_512,
//     tls_anon, cleartext, and the channel-bound hmac of this project);
//   - codec*.go: the msgpack and json framings and the value model;
//   - nodemsg.go: node-port messages (_expect, _connect, kil1, snd,
//     g_slave, ...), parsed and built;
//   - reason.go: kill reasons, and ClassifyKillReason, the one place a
//     reason's text is read;
//   - datastream.go: the header of a direct data stream (QUIC);
//   - dialplan.go: DialPlan, the happy-eyeballs schedule of dials to a
//     list of addresses.
//
// # Timers
//
// Each machine keeps its deadlines in a small table of named kinds
// (HandshakeTimerKind, RvTimerKind, peer.TimerKind); Deadline is the
// minimum over the table, Tick fires what is due, and Timers lists what is
// pending, so a test can print it.
//
// # Rules
//
// Every refusal or failure names its rule as a sentinel of the package of
// the machine that decides it: Err* for the handshake, ErrRv* for the
// rendezvous, peer.Err* for messaging. Package transport wraps them with
// context and gives some of them a second name (transport.ErrDataConnTimeout
// is ErrRvTimeout), so errors.Is matches either name. Text is read in one
// place only: a kill reason from another node, classified by
// ClassifyKillReason against a table of the known texts; any other text is
// a plain remote kill (ErrRvKilled).
//
// # Interaction scripts
//
// testdata/handshake and testdata/rendezvous hold data-driven scripts
// (internal/script, in the style of raft's interaction tests): each
// command to a machine is followed by the actions it produced, and
// "go test ./core -rewrite" regenerates them. The perl_* scripts replay
// the recorded Perl transcripts of ../testdata/transcripts; for the
// handshakes, every line our machine writes is checked against the
// recording (TestScriptsMatchTranscripts), HMACs included.
//
// # Planned package split
//
// The flat namespace is a stage: the handshake and rendezvous machines
// move to core/handshake and core/rendezvous, next to core/peer, and the
// shared wire formats (greeting, auth, codecs, node messages, reasons,
// data stream header) to core/wire. Names then say whose they are
// (handshake.Done, rendezvous.Dial, rendezvous.ErrTimeout instead of
// core.Done, core.RvDial, core.ErrRvTimeout). The split waits until the
// transport has been rewired to core/peer, because it renames everything
// the transport uses.
//
// # The handshake machine
//
// NewHandshake creates one side of a handshake from a HandshakeConfig, a
// nonce line chosen by the caller, and the current time. The machine is
// then driven by events:
//
//   - Receive(now, p): bytes read from the peer, in any chunking;
//   - PeerClosed(now, err): EOF or a read error;
//   - TLSEstablished(now, info) / TLSFailed(now, err): the outcome of a
//     StartTLS request (TLSEstablished before the peer's nonce line
//     declares an already secured transport such as QUIC);
//   - SendGreeting(now, extra): with DeferGreeting, send our lines after
//     having seen the peer's first line (PeerGreeting);
//   - Abort(now, err): the caller refuses the peer;
//   - Tick(now): time passes; Deadline says when Tick is due next.
//
// After every event the caller calls Poll until it returns nil and
// carries out each Action in order:
//
//   - Write: send these bytes;
//   - StartTLS: flush, then run TLS in the given role over the raw
//     stream, first feeding it StartTLS.Pending (raw bytes that already
//     arrived); later Receive calls carry the decrypted stream;
//   - PeerGreeting (DeferGreeting only): the peer's first line was
//     accepted; call SendGreeting or Abort;
//   - Done: the stream is authenticated; Result.Pending holds the bytes
//     that followed the peer's auth line and belong to the stream;
//   - Failed: the handshake failed; the error is a *HandshakeError whose
//     Rule (ErrAuthFailed, ErrLineTooLong, ...) works with errors.Is and
//     whose text is the one a Perl node uses where it has one.
//
// Done and Failed are final: later events are ignored. Poll only hands
// out what the inputs decided; it changes no state.
//
// The wire sequence on each side is: greeting line and nonce line (sent at
// once), the peer's two lines (protocol upgrade, version, self-connect and
// echo checks), optional TLS (the side with the byte-wise lower nonce line
// is the client), then one auth line "METHOD;AUTHDATA;FRAMING" each way
// (AuthData, VerifyAuth). Lines end with LF (a CR before it is stripped)
// and may not exceed MaxLineLen bytes; the limit is enforced as bytes
// arrive, so an endless line costs at most MaxLineLen bytes of memory.
// Greeting lines are parsed exactly like Perl does (ParseGreeting).
//
// # The rendezvous machine
//
// NewRendezvous creates the machine of one node. Its inputs are, on the
// initiator side, Connect, RoundTripDone, DialDone, DialFailed and
// Cancel; on the target side Expect and ConnectBack (an _expect or
// _connect from an authenticated messaging connection); on the acceptor
// side IncomingGreeting, IncomingDone and IncomingFailed; PeerDown and
// Tick. Its actions: RvSend (a node message), RvRoundTrip, RvDial,
// RvDeliver or RvFail (exactly one per Connect), RvAdmit or RvRefuse (an
// accepted stream, before our greeting), RvCallInit (target-side success)
// and RvClose. Its timers: RvTimerConnect, RvTimerExpect,
// RvTimerEarlyHold, RvTimerDialStagger.
package core
