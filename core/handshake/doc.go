// Package handshake is the pure state machine of one side of the AEMP
// version 1 transport handshake, for a messaging, data or stream
// connection alike: the greeting and nonce lines, the optional TLS
// upgrade, and the auth line each way. Like every machine under core it
// does no I/O, reads no clock and draws no random number: time and the
// nonce line come in as inputs, and what the caller must do comes out as
// actions.
//
// # Inputs and actions
//
// New creates one side of a handshake (a Machine) from a Config, a
// nonce line chosen by the caller, and the current time. The machine is
// then driven by events:
//
//   - Receive(now, p): bytes read from the peer, in any chunking;
//   - PeerClosed(now, err): EOF or a read error;
//   - TLSEstablished(now, info) / TLSFailed(now, err): the outcome of a
//     StartTLS request (TLSEstablished before the peer's nonce line
//     declares an already secured transport such as QUIC);
//   - SendGreeting(now, extra): with DeferGreeting, send our lines after
//     having seen the peer's first line (PeerGreeting); with
//     EarlyGreeting too, our lines went out at New and this is the
//     go-ahead to answer the peer (extra empty);
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
//   - PeerGreeting (DeferGreeting only, with or without EarlyGreeting):
//     the peer's first line was accepted; call SendGreeting or Abort;
//   - Done: the stream is authenticated; Result.Pending holds the bytes
//     that followed the peer's auth line and belong to the stream;
//   - Failed: the handshake failed; the error is a *Error whose
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
// and may not exceed wire.MaxLineLen bytes; the limit is enforced as bytes
// arrive, so an endless line costs at most wire.MaxLineLen bytes of memory.
// Greeting lines are parsed exactly like Perl does (wire.ParseGreeting).
//
// # Auth
//
// AuthData and VerifyAuth compute and check the auth data of every method
// (wire.AuthHMAC, wire.AuthTLS, wire.AuthTLSAnon, wire.AuthCleartext);
// AuthDataCB and VerifyAuthCB the channel-bound hmac of this project
// (AuthHMACCB). Their failures are handshake rules (ErrAuthFailed,
// ErrAuthNotOffered), which is why they live here and not in package
// wire. Every comparison of auth data is constant time
// (TestConstantTimeComparisons checks the sources). NewMACKey prepares a
// secret once for the HMAC-SHA3-512s (an immutable MACKey, shared by a
// node's machines through Config.MACKey); a machine makes its MACs in a
// buffer of its own.
//
// Four additions between nodes of this project change no byte a Perl peer
// sees. Machine.Prepare, called by a driver before it waits for the
// peer's auth line, computes that line's expected value in advance, so
// the line is checked by one comparison when it comes (auth_prepared.go).
// And when both greetings list ExtTLSBind (TLS, no secret), StartTLS.Bind
// asks the TLS layer to carry the binding of the four lines as an ALPN
// value instead of the tls_sha3_512 auth lines, and TLSInfo.Bound reports
// what it negotiated (tlsbind.go has the format and the argument). And
// inside a channel that verified both certificates (Config.VerifiedChannel,
// QUIC with certificates), when both greetings list ExtChannelAuth (no
// secret), no auth line is sent at all: both sides end on the peer's nonce
// line (chanauth.go has the argument). And an acceptor whose lines can
// reach the peer first (Config.EarlyGreeting: a QUIC server that opens the
// messaging stream and greets in 0.5-RTT data, negotiated by ALPN in
// package quic, which also has the security argument) sends them at New,
// still reports PeerGreeting and answers only after SendGreeting; the
// lines, MACs and roles are those of a deferring acceptor, so only the
// order on the wire changes.
//
// # Timers
//
// The machine has one timer, TimerTimeout (the whole handshake,
// Config.Timeout or DefaultTimeout); Timers lists it and Deadline
// returns it.
//
// # Rules
//
// Every failure is a *Error whose Rule is one of the Err* sentinels
// (ErrAuthFailed, ErrLineTooLong, ErrTimeout, ...), so errors.Is works
// with the rule, and whose text is the one a Perl node uses where it has
// one.
//
// # Scripts
//
// testdata holds data-driven scripts (internal/script): each command to
// the machine is followed by the actions it produced, and
// "go test ./core/handshake -rewrite" regenerates them. The perl_* scripts
// replay the recorded Perl transcripts of ../../testdata/transcripts, and
// every line our machine writes is checked against the recording
// (TestScriptsMatchTranscripts), HMACs included; the check covers the
// rendezvous scripts too.
package handshake
