package transport

import (
	"context"
	"crypto/tls"
	"net"
)

// Network is what an adapter (tcp, quic, memnet) provides to a Node: a way
// to listen on an address and to dial one. Addresses are strings in the
// adapter's own syntax ("host:port" for tcp and quic, a name for memnet).
//
// Implementations must be safe for concurrent use.
type Network interface {
	// Scheme names the network in announced addresses: "tcp", "quic", "mem".
	// A TCP address is announced without a scheme (as Perl nodes do); every
	// other network's address is announced as "scheme://addr".
	Scheme() string
	// Listen opens a listener on addr. Listener.Addr().String() reports the
	// address actually bound (":0" reports the chosen port).
	Listen(ctx context.Context, addr string) (net.Listener, error)
	// Dial opens a stream to addr. It honours ctx's deadline and
	// cancellation.
	Dial(ctx context.Context, addr string) (net.Conn, error)
}

// SecureNetwork is implemented by networks whose streams are already
// encrypted and mutually authenticated by the transport itself (QUIC). The
// AEMP handshake still runs on them, but the Node never asks them to start
// TLS a second time; TLSState reports the transport's TLS state instead, so
// that tls_* auth methods and channel binding can use it.
type SecureNetwork interface {
	Network
	TLSState(c net.Conn) (tls.ConnectionState, bool)
}

// ChannelBinder is implemented by networks whose streams are encrypted by
// the transport even when the peer's certificate is not verified (QUIC
// with throw-away certificates). ChannelBinding returns the session's
// RFC 9266 exporter value for the stream, which the channel-binding auth
// method (handshake.AuthHMACCB) covers, so a relay that terminates the
// encryption on both sides is detected. It must not be used to enable
// tls_* auth methods: only SecureNetwork.TLSState does that.
type ChannelBinder interface {
	ChannelBinding(c net.Conn) []byte
}

// MessagingDialer is implemented by networks that can open the stream of
// a new messaging connection in a faster way than Dial (QUIC: a stream
// the server opened at 0.5-RTT, on which its greeting has already
// arrived). A Node dials its messaging connections with DialMessaging,
// its data connections with Dial. The stream is used as Dial's is: this
// side is the connecting side of the AEMP handshake.
type MessagingDialer interface {
	DialMessaging(ctx context.Context, addr string) (net.Conn, error)
}

// EarlyGreeter is implemented by accepted streams on which this side
// speaks first (a QUIC stream the server opened, see MessagingDialer).
// When GreetsFirst is true, the Node's acceptor sends its greeting at
// once instead of waiting for the peer's (handshake.Config.EarlyGreeting),
// takes only a messaging connection on it, and does not look for a
// direct data stream header.
type EarlyGreeter interface {
	GreetsFirst() bool
}

// PeerGreeter is implemented by dialed streams on which the peer speaks
// first (the stream DialMessaging returns when the server greets first).
// When PeerGreetsFirst is true, the connecting side reads the peer's
// lines before it writes its own, so that its greeting and the auth line
// that answers the peer's go out in one write.
type PeerGreeter interface {
	PeerGreetsFirst() bool
}

// GreetFirstListener is implemented by listeners that can hand out
// streams on which this side greets first (EarlyGreeter) but do so only
// when told: a Node tells the listeners it serves, since it handles them.
type GreetFirstListener interface {
	EnableGreetFirst()
}

// CloseWriter is implemented by streams that can half-close (send EOF while
// still reading), such as *net.TCPConn, *tls.Conn and the memnet and QUIC
// streams.
type CloseWriter interface {
	CloseWrite() error
}
