package transport

// growForTLS calls growStack when a handshake on a stream of nw may run
// TLS on this goroutine: the node has a certificate and nw does not
// secure its streams itself (QUIC runs its TLS on its own goroutines).
func (n *endpoint) growForTLS(nw Network) {
	if n.cfg.TLS == nil {
		return
	}
	if _, secure := nw.(SecureNetwork); secure {
		return
	}
	growStack()
}

// growStack makes the calling goroutine's stack big enough for a TLS
// handshake (see the callers) at once, while it is still nearly empty.
//
// A goroutine starts with a small stack that the runtime doubles, by
// copying it and adjusting every frame, whenever a call needs more. A
// TLS 1.3 handshake with X25519MLKEM768 and ECDSA certificates runs deep
// with large frames, so a fresh goroutine that ran one copied its stack
// several times, each time deep inside the handshake: in
// node-connect-tls, 30 µs of CPU per connection (both ends together),
// about 3% of it. One frame of handshakeStack bytes makes the runtime
// grow the stack once, to the size that fits the handshake (32 KiB),
// while there is almost nothing to copy. That is the memory the handshake
// would have taken anyway; the goroutines that call it end with their
// handshake, run an accepted data connection's init function, or wait a
// while to accept again (a bounded few, see maxIdleServers), and the
// garbage collector shrinks a stack again when it stays small.
//
//go:noinline
func growStack() {
	var frame [handshakeStack]byte
	stackSink(&frame)
}

// handshakeStack is the frame that makes the stack grow to fit a TLS
// handshake: a stack is a power of two in size, and 16 KiB of frame on a
// new goroutine gives it 32 KiB.
const handshakeStack = 16 << 10

// stackSink keeps growStack's frame from being optimized away.
//
//go:noinline
func stackSink(*[handshakeStack]byte) {}
