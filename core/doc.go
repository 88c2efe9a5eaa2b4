// Package core holds the pure state machines and wire formats of dataconn:
// the AEMP transport handshake (version 1, as spoken by Perl's
// AnyEvent::MP 2.x), the aemp-dataconn extension's bookkeeping, and the
// message codecs. Nothing here does I/O, reads a clock, draws random
// numbers or starts goroutines: time, nonces and bytes are inputs, and
// everything the caller must do comes out as actions.
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
// Done and Failed are final: later events are ignored.
//
// The wire sequence on each side is: greeting line and nonce line (sent at
// once), the peer's two lines (protocol upgrade, version, self-connect and
// echo checks), optional TLS (the side with the byte-wise lower nonce line
// is the client), then one auth line "METHOD;AUTHDATA;FRAMING" each way
// (AuthData, VerifyAuth). Lines end with LF (a CR before it is stripped)
// and may not exceed MaxLineLen bytes; the limit is enforced as bytes
// arrive, so an endless line costs at most MaxLineLen bytes of memory.
// Greeting lines are parsed exactly like Perl does (ParseGreeting).
package core
