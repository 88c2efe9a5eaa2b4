package perlrc

import (
	"errors"
	"net"
	"testing"
)

func TestSplitHostPort(t *testing.T) {
	tests := []struct{ in, host, port string }{
		{"doomed:4041", "doomed", "4041"},
		{"10.0.0.2", "10.0.0.2", "4040"},
		{"*", "*", "4040"},
		{"*:*", "*", "*"},
		{"*:5000", "*", "5000"},
		{"host:*", "host", "*"},
		{"host:0", "host", "0"},
		{"[::1]:4040", "::1", "4040"},
		{"[::1]", "::1", "4040"},
		{"[fe80::1%eth0]:*", "fe80::1%eth0", "*"},
		{"::1", "::1", "4040"},
		{"2001:db8::7", "2001:db8::7", "4040"},
		{"::1 88", "::1", "88"},
		{"host 65535", "host", "65535"},
	}
	for _, tt := range tests {
		host, port, err := SplitHostPort(tt.in)
		if err != nil || host != tt.host || port != tt.port {
			t.Errorf("SplitHostPort(%q) = %q, %q, %v; want %q, %q", tt.in, host, port, err, tt.host, tt.port)
		}
	}
	for _, in := range []string{"", ":4040", "host:", "host:65536", "host:-1", "host:+1", "host:http", "[::1", "[::1]x", "[]:1", " 80"} {
		if h, p, err := SplitHostPort(in); !errors.Is(err, ErrBadAddress) {
			t.Errorf("SplitHostPort(%q) = %q, %q, %v; want ErrBadAddress", in, h, p, err)
		}
	}
}

func TestListenAddress(t *testing.T) {
	tests := []struct{ in, want string }{
		{"*", ":4040"},
		{"*:*", ":0"},
		{"*:5000", ":5000"},
		{"127.0.0.1:*", "127.0.0.1:0"},
		{"[::1]:7", "[::1]:7"},
		{"localhost", "localhost:4040"},
	}
	for _, tt := range tests {
		if got, err := ListenAddress(tt.in); err != nil || got != tt.want {
			t.Errorf("ListenAddress(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	if _, err := ListenAddress("h:x"); !errors.Is(err, ErrBadAddress) {
		t.Errorf("ListenAddress(h:x) err = %v", err)
	}
}

func TestListenAddressOnLoopback(t *testing.T) {
	addr, err := ListenAddress("127.0.0.1:*")
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("net.Listen(%q): %v", addr, err)
	}
	defer l.Close()
	if port := l.Addr().(*net.TCPAddr).Port; port == 0 {
		t.Errorf("listener on %q got port 0", addr)
	}
}
