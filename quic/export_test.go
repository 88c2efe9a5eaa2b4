package quic

import "net"

// NewWithPacketConns returns a Network whose sockets come from listen
// instead of the system's UDP (addr "" asks for one to dial from), so
// that tests can run quic-go over an in-memory link in a testing/synctest
// bubble. The PacketConns' LocalAddr must be a *net.UDPAddr.
func NewWithPacketConns(cfg Config, listen func(addr string) (net.PacketConn, error)) *Network {
	n := New(cfg)
	n.listenPacket = listen
	return n
}

// NewOldWithPacketConns is NewWithPacketConns for a Network that behaves
// as a version before ALPNGreetFirst: it offers and selects ALPN only.
func NewOldWithPacketConns(cfg Config, listen func(addr string) (net.PacketConn, error)) *Network {
	n := newNetwork(cfg, true)
	n.listenPacket = listen
	return n
}

// NewOld is New for a Network that behaves as a version before
// ALPNGreetFirst.
func NewOld(cfg Config) *Network { return newNetwork(cfg, true) }
