//go:build !linux

package quic

import "net"

// platformSizeBuffers asks for wantBufferSize; this platform gives no
// portable way to read the result back, so it reports nothing.
func platformSizeBuffers(c *net.UDPConn) string {
	_ = c.SetReadBuffer(wantBufferSize)
	_ = c.SetWriteBuffer(wantBufferSize)
	return ""
}
