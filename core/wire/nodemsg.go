package wire

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Tags of node-port messages this package parses into their own types
// (kil is the 1.x name of kil1).
const (
	NodeMsgTagSnd     = "snd"
	NodeMsgTagKill    = "kil1"
	NodeMsgTagKillV1  = "kil"
	NodeMsgTagDevNull = "devnull"
	NodeMsgTagExpect  = "AnyEvent::MP::DataConn::_expect"
	NodeMsgTagConnect = "AnyEvent::MP::DataConn::_connect"
	NodeMsgTagGSlave  = "g_slave"
	NodeMsgTagGFind   = "g_find"
	NodeMsgTagGFound  = "g_found"
)

// NodeMsgListenerFam is the family of the Perl 2.x global table that holds
// each node's listener addresses.
const NodeMsgListenerFam = "'l"

// NodeMsg is the typed view of a message to the node port,
// ["", TAG, args...]. It is one of the NodeMsg* structs of this package.
type NodeMsg interface{ nodeMsg() }

// NodeMsgSnd is ["", "snd", PORT, data...]: send [data...] to PORT (a full
// NODEID#NAME id). With no data it is the echo used as a round trip.
type NodeMsgSnd struct {
	Port string
	Data []any
}

// NodeMsgKill is ["", "kil1", NAME, reason...] (1.x: "kil"): kill the
// receiver's local port NAME with that reason.
type NodeMsgKill struct {
	Port   string
	Reason []any
}

// NodeMsgKeepalive is [""], ["", ""] or ["", "devnull", ...]: ignored.
type NodeMsgKeepalive struct{}

// NodeMsgExpect is ["", "AnyEvent::MP::DataConn::_expect", ID, PORT,
// TIMEOUT, INITFUNC, INITDATA...]: a peer announces a data connection.
type NodeMsgExpect struct {
	ID       string
	Port     string
	Timeout  float64 // seconds, finite and >= 0
	InitFunc string
	InitData []any
}

// NodeMsgConnect is ["", "AnyEvent::MP::DataConn::_connect", ID, NODE]:
// the receiver should dial NODE's listeners for data connection ID.
type NodeMsgConnect struct {
	ID   string
	Node string
}

// NodeMsgGSlave is ["", "g_slave", {"'l": {"NODEID": ["host:port", ...]}}]:
// a node announcing listener addresses. Families other than "'l" are
// ignored. Listeners is empty (possibly nil) when none were given.
type NodeMsgGSlave struct {
	Listeners map[string][]string
}

// NodeMsgGFind is ["", "g_find", NODEID]: a request for a node's listeners.
type NodeMsgGFind struct {
	Node string
}

// NodeMsgGFound is ["", "g_found", NODEID, [addrs] | null]: the answer to
// g_find. Found is false when the peer sent null.
type NodeMsgGFound struct {
	Node  string
	Addrs []string
	Found bool
}

// NodeMsgCall is any other tag: a call of the registered function Func
// with Args.
type NodeMsgCall struct {
	Func string
	Args []any
}

// NodeMsgIgnored is a built-in request a minimal node may ignore (port
// monitoring, the global table except g_slave/g_find/g_found, can, eval,
// time, AnyEvent::MP::_spawn).
type NodeMsgIgnored struct {
	Tag string
}

func (NodeMsgSnd) nodeMsg()       {}
func (NodeMsgKill) nodeMsg()      {}
func (NodeMsgKeepalive) nodeMsg() {}
func (NodeMsgExpect) nodeMsg()    {}
func (NodeMsgConnect) nodeMsg()   {}
func (NodeMsgGSlave) nodeMsg()    {}
func (NodeMsgGFind) nodeMsg()     {}
func (NodeMsgGFound) nodeMsg()    {}
func (NodeMsgCall) nodeMsg()      {}
func (NodeMsgIgnored) nodeMsg()   {}

// ErrNodeMsgMalformed is the rule every *NodeMsgError wraps: a message to
// the node port with a known tag has the wrong arity or argument types.
var ErrNodeMsgMalformed = errors.New("malformed node-port message")

// NodeMsgError reports a malformed node-port message: its tag and the rule
// broken.
type NodeMsgError struct {
	Tag  string
	Rule string
}

// Error implements error.
func (e *NodeMsgError) Error() string {
	return fmt.Sprintf("%v %q: %s", ErrNodeMsgMalformed, e.Tag, e.Rule)
}

// Unwrap returns ErrNodeMsgMalformed.
func (e *NodeMsgError) Unwrap() error { return ErrNodeMsgMalformed }

// nodeMsgShort formats a peer-supplied value for an error text, bounded in
// length.
func nodeMsgShort(v any) string {
	const limit = 48
	s, ok := AsString(v)
	if ok {
		if len(s) > limit {
			s = s[:limit] + "..."
		}
		return strconv.Quote(s)
	}
	s = fmt.Sprintf("%v", v)
	if len(s) > limit {
		s = s[:limit] + "..."
	}
	return s
}

func nodeMsgErr(tag, format string, args ...any) error {
	return &NodeMsgError{Tag: tag, Rule: fmt.Sprintf(format, args...)}
}

// nodeMsgIsIgnored reports the built-ins a minimal node may ignore: port
// monitoring, can, eval, time, _spawn and every g_* tag not parsed above.
func nodeMsgIsIgnored(tag string) bool {
	switch tag {
	case "mon0", "mon1", "kil0", "can", "eval", "time", "AnyEvent::MP::_spawn":
		return true
	}
	return strings.HasPrefix(tag, "g_")
}

// ParseNodeMsg parses a message to the node port; args are the elements
// after the empty port name (msg[1:]). Numbers may arrive as strings and
// strings as []byte; both are accepted. A known tag with the wrong arity or
// argument types yields a *NodeMsgError (errors.Is ErrNodeMsgMalformed).
// The returned slices share elements with args.
func ParseNodeMsg(args []any) (NodeMsg, error) {
	if len(args) == 0 {
		return NodeMsgKeepalive{}, nil
	}
	if args[0] == nil {
		// Perl's undef tag stringifies to "": a keepalive.
		return NodeMsgKeepalive{}, nil
	}
	tag, ok := AsString(args[0])
	if !ok {
		return nil, nodeMsgErr(nodeMsgShort(args[0]), "tag is a %T, not a string", args[0])
	}
	rest := args[1:]
	str := func(i int, what string) (string, error) {
		if i >= len(rest) {
			return "", nodeMsgErr(tag, "missing %s (argument %d)", what, i+1)
		}
		s, ok := AsString(rest[i])
		if !ok {
			return "", nodeMsgErr(tag, "%s (argument %d) is a %T, not a string", what, i+1, rest[i])
		}
		return s, nil
	}
	switch tag {
	case "", NodeMsgTagDevNull:
		return NodeMsgKeepalive{}, nil
	case NodeMsgTagSnd:
		port, err := str(0, "port id")
		if err != nil {
			return nil, err
		}
		return NodeMsgSnd{Port: port, Data: rest[1:]}, nil
	case NodeMsgTagKill, NodeMsgTagKillV1:
		port, err := str(0, "port name")
		if err != nil {
			return nil, err
		}
		return NodeMsgKill{Port: port, Reason: rest[1:]}, nil
	case NodeMsgTagExpect:
		id, err := str(0, "id")
		if err != nil {
			return nil, err
		}
		port, err := str(1, "port id")
		if err != nil {
			return nil, err
		}
		if len(rest) < 3 {
			return nil, nodeMsgErr(tag, "missing timeout (argument 3)")
		}
		timeout, ok := AsFloat(rest[2])
		if !ok {
			return nil, nodeMsgErr(tag, "timeout (argument 3) %s is not a number", nodeMsgShort(rest[2]))
		}
		if math.IsNaN(timeout) || math.IsInf(timeout, 0) || timeout < 0 {
			return nil, nodeMsgErr(tag, "timeout (argument 3) %v is not a finite number >= 0", timeout)
		}
		fn, err := str(3, "init function")
		if err != nil {
			return nil, err
		}
		return NodeMsgExpect{ID: id, Port: port, Timeout: timeout, InitFunc: fn, InitData: rest[4:]}, nil
	case NodeMsgTagConnect:
		id, err := str(0, "id")
		if err != nil {
			return nil, err
		}
		node, err := str(1, "node id")
		if err != nil {
			return nil, err
		}
		return NodeMsgConnect{ID: id, Node: node}, nil
	case NodeMsgTagGSlave:
		return parseGSlave(rest)
	case NodeMsgTagGFind:
		node, err := str(0, "node id")
		if err != nil {
			return nil, err
		}
		return NodeMsgGFind{Node: node}, nil
	case NodeMsgTagGFound:
		node, err := str(0, "node id")
		if err != nil {
			return nil, err
		}
		if len(rest) < 2 || rest[1] == nil {
			return NodeMsgGFound{Node: node}, nil
		}
		addrs, err := asStringList(tag, "address list (argument 2)", rest[1])
		if err != nil {
			return nil, err
		}
		return NodeMsgGFound{Node: node, Addrs: addrs, Found: true}, nil
	}
	if nodeMsgIsIgnored(tag) {
		return NodeMsgIgnored{Tag: tag}, nil
	}
	return NodeMsgCall{Func: tag, Args: rest}, nil
}

func parseGSlave(rest []any) (NodeMsg, error) {
	const tag = NodeMsgTagGSlave
	if len(rest) == 0 || rest[0] == nil {
		// Perl sends a bare ["", "g_slave"] while it sets up.
		return NodeMsgGSlave{}, nil
	}
	fams, ok := rest[0].(map[string]any)
	if !ok {
		return nil, nodeMsgErr(tag, "table (argument 1) is a %T, not a map", rest[0])
	}
	out := NodeMsgGSlave{}
	lv, ok := fams[NodeMsgListenerFam]
	if !ok || lv == nil {
		return out, nil
	}
	nodes, ok := lv.(map[string]any)
	if !ok {
		return nil, nodeMsgErr(tag, "family %q is a %T, not a map", NodeMsgListenerFam, lv)
	}
	out.Listeners = make(map[string][]string, len(nodes))
	for node, av := range nodes {
		if av == nil {
			out.Listeners[node] = nil
			continue
		}
		addrs, err := asStringList(tag, fmt.Sprintf("listeners of %q", node), av)
		if err != nil {
			return nil, err
		}
		out.Listeners[node] = addrs
	}
	return out, nil
}

func asStringList(tag, what string, v any) ([]string, error) {
	switch l := v.(type) {
	case []string:
		return append([]string(nil), l...), nil
	case []any:
		out := make([]string, 0, len(l))
		for i, e := range l {
			s, ok := AsString(e)
			if !ok {
				return nil, nodeMsgErr(tag, "%s element %d is a %T, not a string", what, i, e)
			}
			out = append(out, s)
		}
		return out, nil
	}
	return nil, nodeMsgErr(tag, "%s is a %T, not a list", what, v)
}

// AsString returns v as a string when it is a string or a []byte (CBOR and
// msgpack byte strings).
func AsString(v any) (string, bool) {
	switch s := v.(type) {
	case string:
		return s, true
	case []byte:
		return string(s), true
	}
	return "", false
}

// AsFloat returns v as a float64 when it is any Go numeric kind or a string
// (or []byte) holding a decimal number, as Perl nodes sometimes send.
func AsFloat(v any) (float64, bool) {
	switch n := v.(type) {
	case float64:
		return n, true
	case float32:
		return float64(n), true
	case int64:
		return float64(n), true
	case uint64:
		return float64(n), true
	case int:
		return float64(n), true
	case int8:
		return float64(n), true
	case int16:
		return float64(n), true
	case int32:
		return float64(n), true
	case uint:
		return float64(n), true
	case uint8:
		return float64(n), true
	case uint16:
		return float64(n), true
	case uint32:
		return float64(n), true
	case string, []byte:
		s, _ := AsString(v)
		return parseNumString(s)
	}
	return 0, false
}

func parseNumString(s string) (float64, bool) {
	s = strings.TrimSpace(s)
	if s == "" || len(s) > 64 {
		return 0, false
	}
	// Reject Go-only syntaxes (hex, underscores, inf/nan words) that Perl
	// would not treat as the same number.
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c == '.' || c == '-' || c == '+' || c == 'e' || c == 'E') {
			return 0, false
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, false
	}
	return f, true
}

// AsInt returns v as an int64 when it is an integer of any Go kind that fits,
// a float64 with an integral value in range, or a string (or []byte)
// holding such a number.
func AsInt(v any) (int64, bool) {
	switch n := v.(type) {
	case int64:
		return n, true
	case int:
		return int64(n), true
	case int8:
		return int64(n), true
	case int16:
		return int64(n), true
	case int32:
		return int64(n), true
	case uint8:
		return int64(n), true
	case uint16:
		return int64(n), true
	case uint32:
		return int64(n), true
	case uint:
		if uint64(n) > math.MaxInt64 {
			return 0, false
		}
		return int64(n), true
	case uint64:
		if n > math.MaxInt64 {
			return 0, false
		}
		return int64(n), true
	case float32:
		return floatToInt(float64(n))
	case float64:
		return floatToInt(n)
	case string, []byte:
		s, _ := AsString(v)
		s = strings.TrimSpace(s)
		if i, err := strconv.ParseInt(s, 10, 64); err == nil {
			return i, true
		}
		f, ok := parseNumString(s)
		if !ok {
			return 0, false
		}
		return floatToInt(f)
	}
	return 0, false
}

func floatToInt(f float64) (int64, bool) {
	if f != math.Trunc(f) || f < -(1<<63) || f >= 1<<63 {
		return 0, false
	}
	return int64(f), true
}

// SndMsg builds ["", "snd", port, data...].
func SndMsg(port string, data ...any) Message {
	return append(Message{"", NodeMsgTagSnd, port}, data...)
}

// KillMsg builds ["", "kil1", portName, reason...].
func KillMsg(portName string, reason ...any) Message {
	return append(Message{"", NodeMsgTagKill, portName}, reason...)
}

// ExpectMsg builds ["", "AnyEvent::MP::DataConn::_expect", id, port,
// timeout, initFunc, initData...].
func ExpectMsg(id, port string, timeout float64, initFunc string, initData ...any) Message {
	return append(Message{"", NodeMsgTagExpect, id, port, timeout, initFunc}, initData...)
}

// ConnectMsg builds ["", "AnyEvent::MP::DataConn::_connect", id, node].
func ConnectMsg(id, node string) Message {
	return Message{"", NodeMsgTagConnect, id, node}
}

func stringsToAny(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}

// GSlaveMsg builds ["", "g_slave", {"'l": {node: addrs}}], which announces
// node's listener addresses to a Perl 2.x node.
func GSlaveMsg(node string, addrs []string) Message {
	return Message{"", NodeMsgTagGSlave, map[string]any{
		NodeMsgListenerFam: map[string]any{node: stringsToAny(addrs)},
	}}
}

// GFindMsg builds ["", "g_find", node].
func GFindMsg(node string) Message {
	return Message{"", NodeMsgTagGFind, node}
}

// GFoundMsg builds ["", "g_found", node, addrs]; nil addrs is sent as null
// (node unknown), a non-nil empty slice as [].
func GFoundMsg(node string, addrs []string) Message {
	if addrs == nil {
		return Message{"", NodeMsgTagGFound, node, nil}
	}
	return Message{"", NodeMsgTagGFound, node, stringsToAny(addrs)}
}
