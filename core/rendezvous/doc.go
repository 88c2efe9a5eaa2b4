// Package rendezvous is the pure state machine that pairs the data
// connections of one node with the requests that asked for them, on the
// three sides of the aemp-dataconn extension: the initiator (ConnectTo:
// _expect, or Perl's snd round trip, then dialing), the target (an
// _expect or _connect from a peer, then accepting or dialing back) and
// the acceptor (an incoming data connection's greeting names its id).
// Like every machine under core it does no I/O, reads no clock and draws
// no random number.
//
// # Inputs and actions
//
// New creates the Machine of one node from a Config. Its inputs are, on
// the initiator side, Connect, RoundTripDone, DialDone, DialFailed,
// DialFaulted (a refused or unanswered dial, which it redials),
// DialUntrusted, Killed (the target killed the request's port), Cancel
// and Expire (the caller gave up, or its own deadline passed); on the
// target side Expect and ConnectBack (an _expect or _connect from an
// authenticated messaging connection); on the acceptor
// side IncomingGreeting, IncomingDone, IncomingUntrusted and
// IncomingFailed (the Untrusted inputs: the peer authenticated with
// tls_anon, so the stream is closed with ErrUntrusted); PeerDown and
// Tick. After every input the caller calls Poll until it returns nil.
// Its actions: Watch (the request's port, just before its expectation
// is sent), Send (a node message), RoundTrip, Dial, Deliver or Fail
// (exactly one per Connect), Admit or Refuse (an accepted stream, before
// our greeting), CallInit (target-side success) and Close. Its timers:
// TimerConnect, TimerExpect, TimerEarlyHold, TimerDialStagger,
// TimerRedial.
//
// # Direct data streams
//
// Over a multiplexed network (QUIC) a data connection can instead be a
// new stream of the authenticated messaging connection (datastream.go):
// DirectAuth says when (qstream listed, hmac_sha3_512_cb or verified
// certificates, never tls_anon or PerlCompat); DirectServe is the
// target's side (read the header, hold the stream until the connection
// is authenticated for its sender within the handshake timeout, accept
// or refuse: unknown init function, another node, not authenticated);
// DirectSetup the initiator's (its deadline, the same tie rule as the
// Machine's set-ups, the target's refusal as a kill, ErrStreamFailed).
// Scripts direct_auth, direct_serve, direct_setup.
//
// # Timers
//
// The machine keeps its deadlines in a table of named kinds (TimerKind);
// Deadline is the minimum over it, Tick fires what is due, and Timers
// lists what is pending, so a test can print it.
//
// # Rules
//
// Every refusal or failure is a *Error whose Rule is one of the Err*
// sentinels (ErrTimeout, ErrNoListeners, ErrWrongPeer, ...). A kill
// reason from the target is read in one place: ClassifyKillReason, with a
// table of the known texts; any other text is a plain remote kill
// (ErrKilled). At or after a set-up's deadline every failure is the
// timeout, whatever input came first at that instant (the deadline wins
// ties; script connect_deadline_tie). The defaults of Config (DefaultEarlyHold,
// DefaultMaxExpectPerPeer, ...) are defined here once.
//
// # Files
//
// rendezvous.go (initiator, target, acceptor), rendezvous_flow.go
// (windows and queues of set-ups), rendezvous_timers.go (its timer kinds
// and index, on the table of core/internal/timers), rendezvous_types.go
// (Config, defaults, actions, rules, *Error), reason.go
// (ClassifyKillReason), datastream.go (direct data streams), redial.go (when a
// refused or unanswered dial is made again), messaging.go
// (MessagingFailed: a set-up whose messaging connection could not be
// made; no route is Perl's "no listeners found"). Dials
// follow wire.DialPlan, the happy-eyeballs schedule of dials to a list of
// addresses.
//
// # Scripts
//
// testdata holds data-driven scripts (internal/script);
// "go test ./core/rendezvous -rewrite" regenerates them. The perl_*
// scripts replay the recorded Perl transcripts.
package rendezvous
