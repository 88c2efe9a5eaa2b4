//go:build linux

package quic

import (
	"fmt"
	"net"
	"strings"
	"syscall"
)

// platformSizeBuffers sets SO_RCVBUF and SO_SNDBUF to wantBufferSize,
// falling back to the privileged SO_RCVBUFFORCE and SO_SNDBUFFORCE, and
// reads the result back (Linux reports twice the requested size).
func platformSizeBuffers(c *net.UDPConn) string {
	raw, err := c.SyscallConn()
	if err != nil {
		return "cannot inspect UDP socket buffers: " + err.Error()
	}
	var problems []string
	for _, b := range []struct {
		name       string
		opt, force int
		set        func(int) error
	}{
		{"receive", syscall.SO_RCVBUF, syscall.SO_RCVBUFFORCE, c.SetReadBuffer},
		{"send", syscall.SO_SNDBUF, syscall.SO_SNDBUFFORCE, c.SetWriteBuffer},
	} {
		get := func() (int, error) {
			var size int
			var gerr error
			if err := raw.Control(func(fd uintptr) {
				size, gerr = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, b.opt)
			}); err != nil {
				return 0, err
			}
			return size, gerr
		}
		size, err := get()
		if err != nil {
			problems = append(problems, fmt.Sprintf("cannot read UDP %s buffer size: %v", b.name, err))
			continue
		}
		if size >= wantBufferSize {
			continue
		}
		_ = b.set(wantBufferSize)
		if size, err = get(); err == nil && size < wantBufferSize {
			_ = raw.Control(func(fd uintptr) {
				_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, b.force, wantBufferSize)
			})
			size, err = get()
		}
		switch {
		case err != nil:
			problems = append(problems, fmt.Sprintf("cannot read UDP %s buffer size: %v", b.name, err))
		case size < wantBufferSize:
			problems = append(problems, fmt.Sprintf("UDP %s buffer is %d kiB, wanted %d kiB", b.name, size/1024, wantBufferSize/1024))
		}
	}
	return strings.Join(problems, "; ")
}
