// Package quic is the QUIC network adapter of dataconn: a
// transport.SecureNetwork over github.com/quic-go/quic-go.
//
// Every AEMP connection, messaging or data, is one bidirectional QUIC
// stream, and the Node runs the full AEMP handshake on it exactly as over
// TCP. Streams to the same remote address share one QUIC connection, which
// Dial opens on first use and reuses while it is alive; a connection that
// dies is dropped from the pool and the next Dial opens a new one. One UDP
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
// verifies. The traffic is still encrypted, but an active attacker on the
// path can sit in the middle of the QUIC connection, so authentication then
// rests entirely on the AEMP handshake that runs on every stream
// (hmac_sha3_512 with the shared secret); TLSState reports ok=false, so
// the tls_* auth methods cannot be used.
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
