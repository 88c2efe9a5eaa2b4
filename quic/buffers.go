package quic

import "net"

// wantBufferSize is the UDP socket buffer size quic-go asks for on Linux
// and most other systems (7 MiB), so that it finds the buffers already
// large enough and stays quiet.
const wantBufferSize = 7 << 20

// sizeBuffers raises the receive and send buffers of c to wantBufferSize
// before quic-go sees the socket, the way quic-go itself would. It returns
// a description of what could not be done, or "" if both buffers are large
// enough (or the platform offers no way to tell).
func sizeBuffers(c *net.UDPConn) string {
	return platformSizeBuffers(c)
}
