package memnet

import (
	"errors"
	"net"
	"strconv"
	"strings"
)

// Scheme is the name of this network in announced addresses ("mem://a:1").
const Scheme = "mem"

// Sentinel errors of memnet. They are wrapped in *net.OpError values; test
// for them with errors.Is.
var (
	// ErrHostDown is returned when a crashed host tries to listen or dial
	// before World.Restart.
	ErrHostDown = errors.New("memnet: host is crashed (World.Restart it first)")
	// ErrWorldClosed is returned by every operation after World.Close.
	ErrWorldClosed = errors.New("memnet: world is closed")
	// ErrForeignConn is returned by World.ResetConn for a conn that is not a
	// stream of this World.
	ErrForeignConn = errors.New("memnet: conn is not a stream of this world")
)

// Addr is the address of a listener or of one end of a stream: a host name
// and a port.
type Addr struct {
	Host string
	Port int
}

// Network returns "mem".
func (a Addr) Network() string { return Scheme }

// String returns "host:port".
func (a Addr) String() string { return a.Host + ":" + strconv.Itoa(a.Port) }

// validName reports whether name can name a host: not empty, at most 255
// bytes, and free of the separators of the address syntax and of spaces.
func validName(name string) bool {
	if name == "" || len(name) > 255 {
		return false
	}
	return !strings.ContainsAny(name, ":/ \t\r\n")
}

// errBadName is the rule a host name must follow.
const errBadName = "memnet: host name must be 1-255 bytes without ':', '/' or spaces"

// parseAddr splits "name:port" (with an optional "mem://" prefix). An empty
// name is returned as "" for the caller to fill in.
func parseAddr(addr string) (string, int, error) {
	s := strings.TrimPrefix(addr, Scheme+"://")
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return "", 0, &net.AddrError{Err: "memnet: address must be name:port", Addr: addr}
	}
	name, ps := s[:i], s[i+1:]
	port, err := strconv.Atoi(ps)
	if err != nil || port < 0 || port > 65535 || ps == "" || ps[0] == '+' || ps[0] == '-' {
		return "", 0, &net.AddrError{Err: "memnet: port must be a number in 0-65535", Addr: addr}
	}
	if name != "" && !validName(name) {
		return "", 0, &net.AddrError{Err: errBadName, Addr: addr}
	}
	return name, port, nil
}
