// Package quic is the QUIC network adapter of dataconn: a
// transport.SecureNetwork over github.com/quic-go/quic-go.
//
// Every AEMP connection, messaging or data, is one bidirectional QUIC
// stream, and the Node runs the full AEMP handshake on it exactly as over
// TCP. Streams to the same remote address share one QUIC connection, which
// Dial opens on first use and reuses while it is alive — or, when the peer
// dialed first, the connection it opened to us; a connection that dies is
// dropped from the pool and the next Dial opens a new one. One UDP
// port per node serves everything: a listening Network accepts on it and
// dials from it. The ALPN protocol is "aemp". Addresses are announced as
// "quic://host:port".
//
// What QUIC adds: encryption of everything, including the AEMP handshake;
// many streams over one connection without head-of-line blocking between
// them; one handshake per peer instead of one per stream (a new stream
// costs no round trip); connection migration and keep-alives; detection of
// a vanished peer by the idle timeout (Config.IdleTimeout), after which
// every Read and Write on its streams fails instead of hanging.
//
// What QUIC does not add: it is not AEMP authentication, and it does not
// make streams messages. The AEMP handshake (greetings, nonces, auth) still
// runs on every stream. Perl AnyEvent::MP nodes do not speak QUIC; this
// network is for Go nodes of this project only.
//
// With Config.TLS set, both ends present their certificate and verify the
// other's chain against the configured CAs (client certificates required),
// and TLSState reports the connection's TLS state, so the tls_sha3_512 auth
// method and TLS channel binding can be used; the Node does not start TLS a
// second time inside the stream.
//
// With Config.TLS nil, peers are NOT authenticated by QUIC itself: each
// Network presents a throw-away self-signed certificate that nobody
// verifies. The traffic is still encrypted, and TLSState reports ok=false,
// so the tls_* auth methods cannot be used; authentication rests on the
// AEMP handshake that runs on every stream. The Network still reports the
// session's exporter through ChannelBinding (see Security).
//
// # Security
//
// What an attacker who holds neither the shared secret nor a certificate
// the nodes trust can and cannot do.
//
// With Config.TLS nil:
//
//   - It can open QUIC connections to a listening node and streams on
//     them. Each connection costs the node a QUIC handshake (key exchange
//     and a signature); at most Config.MaxIncomingConns of them are open
//     or handshaking at once (further attempts are refused without a
//     handshake, and past half the cap they must first prove their source
//     address with a Retry). Each stream starts an AEMP handshake on the node: at most
//     Config.MaxIncomingStreams open streams per connection, at most the
//     Node's MaxHandshakes unproven handshakes in progress per listener (a
//     data connection that presents an id announced over an authenticated
//     messaging connection is proven and never dropped; when full, a
//     silent handshake is dropped or the listener waits), each bounded by the Node's
//     HandshakeTimeout and the 4096-byte line limit.
//   - It can read what a node says before authentication: its greeting
//     (node ID, auth methods, framings, provider, the address it sees).
//   - It cannot pass the AEMP authentication: the auth line is an HMAC,
//     keyed with the secret, over both sides' greetings and fresh nonces,
//     so it can neither compute one nor replay or reflect one (a node
//     refuses its own ID on every connection, and hmac_sha3_512_cb also
//     covers the roles and both node IDs). Without authentication it
//     cannot send messages, call functions, or open or claim data
//     connections (their ids are unguessable and bound to the node that
//     announced them).
//   - On the path but passive, it sees only encrypted QUIC packets: their
//     sizes and timing, not their contents.
//   - On the path and active (a man in the middle), it can terminate QUIC
//     towards each node with its own throw-away certificate and relay the
//     streams. Between nodes of this project that authenticate with
//     hmac_sha3_512_cb (the default: offered first unless
//     DisableChannelBinding or PerlCompat is set on either node) this
//     fails: the MAC covers the exporter of the QUIC session it travels
//     in (transport.ChannelBinder), and the two sessions of a relay have
//     different exporters. Editing the greetings to remove
//     hmac_sha3_512_cb fails too, since both auth lines cover the greetings
//     as each side saw them. If either node authenticates with plain
//     hmac_sha3_512, the relayed handshake succeeds, and the relay then
//     reads every byte of every stream (messages and data connections) in
//     clear and can alter, inject, drop or cut them undetected: after the
//     handshake AEMP adds no integrity of its own. So with Config.TLS nil,
//     an authenticated stream cannot be read or altered only if it was
//     authenticated with hmac_sha3_512_cb.
//   - On the path, it can always drop packets: the streams then fail
//     with ErrConnectionLost after Config.IdleTimeout instead of hanging.
//
// With Config.TLS set (on both the quic.Config and the transport.Config),
// every QUIC handshake verifies both certificates against the configured
// CAs (client certificates are required). The attacker cannot complete a
// QUIC handshake, so it opens no stream and never sees a greeting (only
// the node's certificate, which a server sends first); it cannot sit in
// the middle; TLSState reports the verified session, whose exporter
// hmac_sha3_512_cb covers, and tls_sha3_512 works without a secret. What
// remains is the cost of handshake attempts and, on the path, dropping
// packets. Note
// that the certificate is checked against the CAs only, not against the
// node ID: every certificate the CAs issued authenticates as any node ID
// with tls_sha3_512 (as with Perl nodes sharing one certificate), so the
// CA's private key is then the shared secret.
//
// Streams (type Stream) are net.Conns: deadlines map to the stream's;
// CloseWrite sends a FIN and leaves reading open; Close stops reading
// (STOP_SENDING with CodeStreamClosed) and finishes writing with a FIN. A
// dialed stream becomes visible to the peer's Accept when the dialer first
// writes to it; AEMP sides write their greeting immediately.
//
// UDP socket buffers keep quic-go's defaults (it wants 7 MiB each way).
// This package raises them itself before quic-go sees the socket and, if
// the system does not allow it, logs one warning per Network through
// Config.Logger and continues. quic-go then also prints its own warning
// once per process through the standard log package; a program that wants
// only the Config.Logger line sets QUIC_GO_DISABLE_RECEIVE_BUFFER_WARNING=1
// in its environment (this package does not change the process
// environment).
package quic
