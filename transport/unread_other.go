//go:build !linux

package transport

import "net"

// hasUnread cannot ask the kernel on this system: ok is false.
func hasUnread(net.Conn) (unread, ok bool) { return false, false }
