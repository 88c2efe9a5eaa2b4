package transport

import (
	"net"
	"syscall"
	"unsafe"
)

// hasUnread reports whether bytes from the peer wait in c's kernel receive
// buffer (ioctl FIONREAD): a handshake whose greeting arrived but that no
// goroutine has read yet (a busy machine) is not silent. ok is false when
// c is not a socket this can ask.
func hasUnread(c net.Conn) (unread, ok bool) {
	sc, isSys := c.(syscall.Conn)
	if !isSys {
		return false, false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false, false
	}
	var n int32
	var errno syscall.Errno
	if err := rc.Control(func(fd uintptr) {
		_, _, errno = syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TIOCINQ, uintptr(unsafe.Pointer(&n)))
	}); err != nil || errno != 0 {
		return false, false
	}
	return n > 0, true
}
