//go:build linux

package tcp_test

import (
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/aemp-go/dataconn/tcp"
)

// sockopt reads an integer socket option of c.
func sockopt(t *testing.T, c *net.TCPConn, level, opt int) int {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var v int
	var gerr error
	if err := rc.Control(func(fd uintptr) { v, gerr = syscall.GetsockoptInt(int(fd), level, opt) }); err != nil {
		t.Fatal(err)
	}
	if gerr != nil {
		t.Fatal(gerr)
	}
	return v
}

func TestSocketOptions(t *testing.T) {
	off := false
	on := true
	cases := []struct {
		name      string
		net       *tcp.Network
		noDelay   bool
		keepAlive bool
		idle      time.Duration
	}{
		{"default", tcp.New(), true, true, tcp.DefaultKeepAlive},
		{"nodelay-on-explicit", &tcp.Network{NoDelay: &on}, true, true, tcp.DefaultKeepAlive},
		{"nodelay-off", &tcp.Network{NoDelay: &off}, false, true, tcp.DefaultKeepAlive},
		{"keepalive-7s", &tcp.Network{KeepAlive: 7 * time.Second}, true, true, 7 * time.Second},
		{"keepalive-disabled", &tcp.Network{KeepAlive: -1}, true, false, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d, a, _ := pair(t, tc.net, "127.0.0.1:0")
			for side, c := range map[string]*net.TCPConn{"dialed": d, "accepted": a} {
				if got := sockopt(t, c, syscall.IPPROTO_TCP, syscall.TCP_NODELAY) != 0; got != tc.noDelay {
					t.Errorf("%s: TCP_NODELAY = %v, want %v", side, got, tc.noDelay)
				}
				if got := sockopt(t, c, syscall.SOL_SOCKET, syscall.SO_KEEPALIVE) != 0; got != tc.keepAlive {
					t.Errorf("%s: SO_KEEPALIVE = %v, want %v", side, got, tc.keepAlive)
				}
				if tc.keepAlive {
					if got := time.Duration(sockopt(t, c, syscall.IPPROTO_TCP, syscall.TCP_KEEPIDLE)) * time.Second; got != tc.idle {
						t.Errorf("%s: TCP_KEEPIDLE = %v, want %v", side, got, tc.idle)
					}
				}
			}
		})
	}
}
