// Package wire holds the formats that the machines of core (handshake,
// rendezvous, peer) and the transport share, parsed and built without
// I/O:
//
//   - greeting.go: the greeting line (ParseGreeting splits as Perl does,
//     Greeting.Encode), its keys (KeyTLS, KeyGo, ...), protocols and the
//     auth method names (AuthHMAC, AuthTLS, ...), MaxLineLen;
//   - codec*.go: the msgpack and json framings (CodecByName) and the
//     value model of a Message;
//   - nodemsg.go: node-port messages (_expect, _connect, kil1, snd,
//     g_slave, ...), parsed by ParseNodeMsg and built by SndMsg, KillMsg,
//     ExpectMsg, ...;
//   - reason.go: kill reasons (KillReason, DataConnReason);
//   - datastream.go: the header of a direct data stream (QUIC);
//   - dialplan.go: DialPlan, the happy-eyeballs schedule of dials to a
//     list of addresses (DefaultDialStagger), which the rendezvous
//     machine follows for data connections and the transport for
//     messaging connections.
//
// A malformed input is a typed error naming its rule: *FrameError
// (ErrFrameTooLarge, ErrFrameMalformed, ErrFrameUnencodable),
// *NodeMsgError (ErrNodeMsgMalformed), *DataStreamError
// (ErrDataStreamHeader). Which rule a kill reason's text names is decided
// by the rendezvous machine (rendezvous.ClassifyKillReason).
package wire
