package perlrc

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
)

// DefaultPort is the port Perl nodes assume when a "binds" or "seeds" entry
// names none.
const DefaultPort = "4040"

// ErrBadAddress: a "binds" or "seeds" entry is not in a form SplitHostPort
// understands.
var ErrBadAddress = errors.New("perlrc: address is not host[:port]")

// SplitHostPort splits a "binds" or "seeds" entry the way Perl's
// AnyEvent::Socket::parse_hostport does (with default port 4040), for the
// forms the aemp tool documents:
//
//	"host:port"  "[ipv6]:port"  "host port"
//	"host"  "ipv6" (bare, two or more colons)     port 4040
//
// host may be "*" (all local addresses) and port may be "*" (any port);
// both are returned as written. Otherwise the port must be decimal and at
// most 65535 (service names are not resolved). The host is not resolved
// either. Errors wrap ErrBadAddress.
func SplitHostPort(addr string) (host, port string, err error) {
	bad := func(why string) (string, string, error) {
		return "", "", fmt.Errorf("%w: %q: %s", ErrBadAddress, addr, why)
	}
	switch {
	case addr == "":
		return bad("empty")
	case strings.HasPrefix(addr, "["):
		end := strings.Index(addr, "]")
		if end < 0 {
			return bad("missing ]")
		}
		host, rest := addr[1:end], addr[end+1:]
		switch {
		case rest == "":
			port = DefaultPort
		case rest[0] == ':' || rest[0] == ' ':
			port = rest[1:]
		default:
			return bad("junk after ]")
		}
		if host == "" {
			return bad("empty host")
		}
		return checkPort(addr, host, port)
	case strings.Contains(addr, " "):
		host, port, _ = strings.Cut(addr, " ")
		if host == "" {
			return bad("empty host")
		}
		return checkPort(addr, host, strings.TrimLeft(port, " "))
	case strings.Count(addr, ":") >= 2:
		return addr, DefaultPort, nil // bare IPv6 address
	case strings.Contains(addr, ":"):
		host, port, _ = strings.Cut(addr, ":")
		if host == "" {
			return bad("empty host")
		}
		return checkPort(addr, host, port)
	default:
		return addr, DefaultPort, nil
	}
}

func checkPort(addr, host, port string) (string, string, error) {
	if port == "*" {
		return host, port, nil
	}
	_, err := strconv.ParseUint(port, 10, 16)
	if err != nil || port == "" || port[0] == '+' {
		return "", "", fmt.Errorf("%w: %q: port %q is not * or a number 0..65535", ErrBadAddress, addr, port)
	}
	return host, port, nil
}

// ListenAddress turns a "binds" entry into an address for net.Listen: a
// host of "*" becomes all local addresses (the empty host) and a port of
// "*" becomes 0 (any port). "*" alone is ":4040"; "*:*" is ":0".
func ListenAddress(bind string) (string, error) {
	host, port, err := SplitHostPort(bind)
	if err != nil {
		return "", err
	}
	if host == "*" {
		host = ""
	}
	if port == "*" {
		port = "0"
	}
	return net.JoinHostPort(host, port), nil
}
