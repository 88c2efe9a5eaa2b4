// Package quic is the QUIC network adapter of dataconn: a
// transport.SecureNetwork over github.com/quic-go/quic-go.
//
// Every AEMP connection, messaging or data, is one bidirectional QUIC
// stream. A messaging stream runs the full AEMP handshake exactly as over
// TCP; a data connection between nodes of this project on an
// authenticated QUIC connection is a direct data stream without a
// handshake (see Direct data streams); other data connections run the
// handshake too. Streams to the same remote address share one QUIC connection, which
// Dial opens on first use and reuses while it is alive — or, when the peer
// dialed first, the connection it opened to us; a connection that dies is
// dropped from the pool and the next Dial opens a new one. One UDP
// port per node serves everything: a listening Network accepts on it and
// dials from it. The ALPN protocol is "aemp-sg1" (ALPNGreetFirst: the
// server opens the messaging stream, see Server greets first) or "aemp"
// (ALPN: the client opens every stream). Addresses are announced as
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
// make streams messages. The AEMP handshake (greetings, nonces, auth)
// runs on every messaging stream, and a data stream relies on one that
// succeeded on the same connection. (With certificates verified on both
// ends and no shared secret, the auth lines are left out between nodes
// of this project; see Security.) Perl AnyEvent::MP nodes do not speak QUIC; this
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
// AEMP handshake that runs on every messaging stream (and on which direct
// data streams rely, see below). The Network still reports the
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
//     address with a Retry). Each stream starts an AEMP handshake on the node
//     (or, for a direct data stream, waits for one on its connection): at most
//     Config.MaxIncomingStreams open streams per connection (plus the
//     greeting stream the server opens on each connection, whose handshake
//     counts as silent until the client's first bytes have been read, so
//     it is the first dropped at the cap), at most the
//     Node's MaxHandshakes unproven handshakes in progress per listener (a
//     data connection that presents an id announced over an authenticated
//     messaging connection is proven and never dropped; when full, a
//     silent handshake is dropped or the listener waits), each bounded by the Node's
//     HandshakeTimeout and the 4096-byte line limit.
//   - It can read what a node says before authentication: its greeting
//     (node ID, auth methods, framings, provider, the address it sees),
//     which a listening node sends in its first flight, before the
//     client's QUIC handshake is complete (Server greets first); nothing
//     else before that, and nothing at all without Config.TLS nil.
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
//     handshake AEMP adds no integrity of its own. (Direct data streams
//     are never used after such a handshake.) So with Config.TLS nil,
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
// packets.
//
// Without a secret, the messaging handshake between nodes of this project
// on such a connection sends no auth lines: both greetings list
// handshake.ExtChannelAuth ("chanauth" in aempgo; a node lists it only
// when the stream's connection verified both certificates, it has no
// secret and transport.Config.DisableTLSBind is not set), and both end on
// the peer's nonce line (auth tls_channel). The tls_sha3_512 line they
// replace is a hash of the four greeting lines with no key in it: over
// TCP it proves that the lines sent in clear before TLS are the ones both
// ends saw, but here the greetings travel inside the verified QUIC
// connection, where nobody but the two ends can write, and the QUIC
// handshake (no 0-RTT) already proved that both are live. So the acceptor
// is done when it has sent its greeting, half a round trip earlier, and
// nothing is weaker: a side with a secret never lists the extension
// (hmac_sha3_512_cb runs as before), a peer that does not list it gets the
// auth lines, and echo, self and nonce checks run as before. The argument
// in full is in core/handshake/chanauth.go. Note
// that the certificate is checked against the CAs only, not against the
// node ID: every certificate the CAs issued authenticates as any node ID
// with tls_sha3_512 (as with Perl nodes sharing one certificate), so the
// CA's private key is then the shared secret.
//
// # Direct data streams
//
// Between nodes of this project (greeting key aempgo listing "qstream",
// transport.ExtDataStream), a data connection to a peer whose messaging
// connection runs on a QUIC connection is a new stream of that QUIC
// connection. The initiator writes a header and waits for one answer; the
// target runs the init function as soon as the header arrives: 1 round
// trip for ConnectTo, 0.5 until the init function runs, no greeting, no
// nonce, no HMAC per stream. A peer that does not list "qstream" (an older
// version, or a node that cannot accept streams on that connection because
// it dialed from a socket without a listener) gets the rendezvous and the
// per-stream handshake as before; so does a request whose header would
// not fit (init data of about 64 KiB and more).
//
// The header (codec in package core/wire, fuzzed by fuzz.FuzzDataStreamHeader):
//
//	0xA5                 magic: never the first byte of a greeting ("aemp;")
//	0x01                 version
//	L                    uint16 big-endian, 1 to 65535: length of the body
//	body, L bytes        one msgpack array [from, to, initFunc, initData...]:
//	                     from, to, initFunc non-empty UTF-8 strings of at
//	                     most 4096 bytes; initData any values the msgpack
//	                     framing carries, nested at most 64 deep
//
// The answer is one byte 0x00 (accepted: the stream now belongs to the init
// function, and the initiator may write), or 0x01, a uint16 big-endian
// length M (at most 1024) and M bytes of UTF-8: the message of the kill
// reason ["AnyEvent::MP::DataConn", message], for example
// `b: no init function "x"`; the target then closes the stream. The
// initiator writes nothing after the header until it has the answer; a
// target refuses a stream with bytes after the header. There is no QUIC
// or TLS 0-RTT anywhere in this package (quic-go's Allow0RTT stays off and
// Dial never uses DialEarly; with Config.TLS nil the listener is an early
// listener only so that the server can send 0.5-RTT data), so nothing can
// be replayed.
//
// The security argument. A header carries no credential: the target
// accepts it only for the peer node ID that completed a messaging
// handshake on the same QUIC connection, and only when that handshake
// binds the connection: the peer authenticated with hmac_sha3_512_cb
// (whose MAC covers this QUIC session's exporter, so it cannot have been
// relayed from a connection to someone else), or both ends verified
// certificates (so nobody is in the middle), and never for tls_anon. A
// stream that arrives before that handshake has ended is held for at most
// the Node's HandshakeTimeout, counted among its MaxHandshakes, then
// refused; a header whose from is not a node bound to the connection, or
// whose to is not the target, is refused. So an attacker without the
// secret or a trusted certificate opens no accepted data stream: on its
// own QUIC connection no messaging handshake succeeds, and it cannot
// inject a stream into another node's QUIC connection (QUIC authenticates
// every packet with that connection's keys). With plain hmac_sha3_512 (or
// DisableChannelBinding) a relay could have passed the messaging
// handshake between two QUIC sessions, so direct streams are not used and
// every data connection runs its own handshake, as before. A certificate
// alone is never bound to a node ID: a data stream belongs to the node
// whose messaging handshake succeeded on its connection.
//
// Failures keep one outcome each: ConnectTo returns the stream, or a
// *transport.DataConnError with the Perl-style reason (refused: the
// target's message, wrapping transport.ErrDataConnKilled; no answer within
// the timeout: "unable to establish connection within N seconds"). Since
// the init function starts half a round trip before the initiator hears
// the answer, the promise on failure is: when ConnectTo fails, an init
// function that did run sees its stream closed before any byte arrives.
//
// # Server greets first
//
// On a QUIC connection with Config.TLS nil on both ends, the AEMP server
// (the QUIC server) greets first: the QUIC handshake and the messaging
// handshake overlap by one round trip.
//
//	0     client: ClientHello (ALPN offer "aemp-sg1", "aemp")
//	0.5   server: its flight up to its Finished, and, as 0.5-RTT data on
//	      stream 1, which it opens itself, its greeting and nonce lines
//	1     client: handshake complete; the greeting is there: its Finished,
//	      its greeting, nonce and auth line (hmac_sha3_512_cb) in one flight
//	1.5   server: handshake complete, client's lines read and checked, its
//	      own auth line sent: the node is up on the server
//	2     client: the server's auth line: Connect returns
//
// With the client opening the stream (ALPN "aemp"), the server learns of
// it only with the client's greeting at 1.5 and is up at 2.5 (the client
// at 2 either way). A raw QUIC handshake plus a one-byte echo takes 2.
//
// Negotiation. A Network with Config.TLS nil offers "aemp-sg1" before
// "aemp" as a client, and its listeners select "aemp-sg1" when offered
// once a transport.Node serves them (Listener.EnableGreetFirst; Listen
// alone keeps streams opened by peers only); a version before it offers
// and selects "aemp" only, so either end of an older version gives the
// client-opened stream. The client learns the choice from the negotiated
// protocol. Then DialMessaging, which a Node uses for messaging
// connections, returns the server's stream on a connection it opens (the
// server writes on it first, so it arrives with the handshake); Dial and
// every later stream are opened by the client, as before, and a greeting
// stream no messaging connection took is refused. The Node's acceptor
// sends its greeting at once on such a stream (transport.EarlyGreeter,
// handshake.Config.EarlyGreeting: the greeting cannot depend on the
// client's, so only messaging connections, which need no extra keys, use
// it), but still decides on the client's greeting (the tie-break between
// two connections of one pair) before it answers. The AEMP roles are
// unchanged: the client is the connecting side, the server the accepting
// side, with the same MACs.
//
// Security. Sending the greeting early gives an unauthenticated client
// nothing it could not have had by completing the handshake (Config.TLS
// nil authenticates no client). Nothing the client sends is used before
// its QUIC handshake is complete: crypto/tls hands quic-go the keys that
// decrypt the client's 1-RTT data only after verifying its Finished (RFC
// 9001, 5.7), and the greeting stream's Read fails should data ever come
// before HandshakeComplete; the connection joins the pool, and streams the
// client opens reach Accept, only once it is complete; 0-RTT stays off. So
// no auth line, direct data stream or message of a client is read before
// its Finished (TestGreetFirstHandshakeNotComplete: a client that knows
// the secret and withholds its Finished gets the greeting and nothing
// else). hmac_sha3_512_cb binds the exporter (RFC 9266): the server takes
// it from the TLS session as soon as it sent its Finished (crypto/tls
// derives it then, from the transcript up to that Finished, RFC 8446
// 7.5), which is the value the client derives; the client's auth line
// covers it, so a relay between two QUIC sessions still fails. A client
// that never completes its handshake costs the server its key exchange and
// signature, as before, plus one handshake on the greeting stream that
// counts as silent at the Node's MaxHandshakes (dropped first when the cap
// is full, TestGreetFirstSilentDropped) and ends with the QUIC handshake
// timeout; spoofed source addresses are bounded by Config.MaxIncomingConns
// and the Retry past half of it, as before.
//
// With Config.TLS set, "aemp" only is offered and selected: a greeting
// sent before the client's certificate is verified would reach clients
// the CAs never issued a certificate to. There chanauth (Security) already
// brings the server up at 1.5.
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
