// Package transport binds the pure machines under core to real
// streams: it holds the interfaces a network adapter provides (Network,
// SecureNetwork), the driver that runs a handshake machine over a
// stream (Drive), the Node — the embedding API — and DataConns, which
// opens and accepts data connections.
//
// # The Node
//
// A Node has an ID, a shared secret and/or a TLS certificate, and listeners
// on any number of networks (tcp, quic, memnet) and addresses:
//
//	n, err := transport.NewNode(transport.Config{NodeID: "worker-1", Secret: secret})
//	addr, err := n.Listen(ctx, tcp.New(), "127.0.0.1:4040")
//
// One listener serves both protocols: the acceptor reads the peer's
// greeting first and, when the peer asks for aemp-dataconn, treats the
// stream as a data connection. The node opens one messaging connection
// per pair of nodes on demand; when two nodes dial each other at once,
// only the connection the lower ID dialed is kept, so no message can
// overtake another on a second connection. Messages to one node keep
// their order. Framing is negotiated per direction (msgpack first, json
// for Perl peers).
//
// These messaging rules (the tie-break, retiring and draining a losing
// connection, keepalive and peer timeout, the queue of messages for a
// connection being made, node-port dispatch, kills and monitors) are
// decided by the pure machine of package core/peer, one per Node. The
// transport feeds it inputs under one lock, runs its actions in order
// (peers.go), and keeps the I/O: sockets, handshakes, happy-eyeballs
// dialing (send.go), and per connection a reader goroutine and a writer
// goroutine that runs only while frames are queued (msgconn.go).
//
// With Config.Global the node plays the global (seed) role of a Perl
// AnyEvent::MP network. The role is opt-in, although a Perl seed turns
// global by default: off, the node does not announce itself as global
// (no ["", "g_global"] at node-up), like a Perl node that has not loaded
// the Global module, the wire the replays of the older Perl transcripts
// pin; a node that Perl
// nodes use as their seed must turn it on (aemp does). Config.Seeds and
// Start seed with Perl's retries,
// Listeners, Globals and Slaves read the network's database, DBSet, DBDel
// and DBMonitor are the embedder's side of it, and Monitor watches a port
// of any node (global.go, ports.go).
//
// Messages are arrays [port, data...]. Ports are created with NewPort,
// addressed as "NODE#NAME" (Send, Kill) and monitored with Port.Monitor;
// MonitorNode reports a peer up or down (a node of this project is down
// when nothing, keepalives included, arrived for Config.PeerTimeout; a
// Perl node, which sends nothing when idle, when a write fails or
// stalls). Functions
// registered with RegisterFunc are callable from other nodes by name.
//
// # Data connections
//
// HandleDataConn registers an init function; ConnectTo opens a stream to a
// node and runs that function there with the far end:
//
//	n.HandleDataConn("files::recv", func(from string, data []any, c net.Conn) { ... })
//	c, err := other.ConnectTo(ctx, "worker-1", 5*time.Second, "files::recv", "name.bin")
//
// On failure nothing runs on the target (except on a QUIC direct data
// stream, below: there an init function that did run sees its stream
// closed before any byte arrives) and the error is a
// *DataConnError whose text is the Perl kill message ("NODE: unable to
// establish connection within 5 seconds") and whose Reason is the full
// reason ["AnyEvent::MP::DataConn", message]. ConnectToPort is the
// port-flavoured form: on failure the calling port is killed with that
// reason.
//
// Between nodes of this project the set-up is faster and safer than the
// original: the initiator dials at once, concurrently with the expectation
// message, and the acceptor holds an early stream until its expectation
// arrives (bounded in time and count per peer); ids are 128-bit random,
// single use and bound to the node that announced them; and the acceptor
// confirms the match inside its authenticated greeting, so the initiator
// never reports success for a stream nobody will read. With a Perl peer
// the Perl flow is used (_expect, a snd round trip, then the dial).
//
// Over QUIC, between nodes of this project whose messaging connection is
// authenticated for its QUIC connection (hmac_sha3_512_cb or verified
// certificates on both ends), a data connection is a direct data stream: a
// new stream of that QUIC connection with a short header, no rendezvous
// and no handshake; the target runs the init function when the header
// arrives and answers accepted or refused (MuxNetwork, datastream.go, and
// the quic package doc for the header and the security argument). A
// ConnectTo that has to bring the messaging connection up first opens a
// direct data stream on it once it is up. Over
// TCP+TLS, between nodes of this project, data connections resume the TLS
// session with a ticket instead of a full certificate handshake
// (tlsresume.go).
//
// A framework that already has nodes and messaging embeds DataConns
// without a Node: it implements Host (send a control message, a round
// trip, listener addresses, a network for an address), feeds the control
// messages it receives to DataConns.HandleControl and the streams its
// listener accepts to DataConns.ServeConn.
//
// # Simulation
//
// Every goroutine of a Node waits on channels, timers or conditions, never
// on a clock of its own, so a cluster of nodes on memnet runs inside a
// testing/synctest bubble with virtual time: latencies of seconds cost
// nothing, and the same seed gives the same network behaviour (see package
// memnet).
//
// # Files
//
// By concern: node.go (Config, Node), endpoint.go (what every handshake
// of a node needs, dialing one), listener.go (accepting and admitting
// handshakes), peers.go (running the peer machine), msgconn.go (a
// messaging connection's reader and writer), send.go (sends, dials,
// round trips), ports.go, global.go; dataconn.go (the DataConns API),
// dataconn_run.go (running the rendezvous machine's actions, in order,
// with one record per connection handle and per request),
// dataconn_accept.go (the acceptor and target side), dataconn_host.go
// (the Node as a Host), dataconn_flow.go (windows, stats, which fault a
// failed dial was for the machine's redial rule), datastream.go (opening,
// reading and writing direct data streams, as rendezvous.DirectSetup and
// rendezvous.DirectServe decide); driver.go (Drive); tls.go (TLS config,
// upgrade, peer verification), tls_load.go (loading PEM files),
// tlsresume.go.
package transport
