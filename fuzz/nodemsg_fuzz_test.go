package fuzz

import (
	"errors"
	"math"
	"reflect"
	"slices"
	"testing"

	"github.com/aemp-go/dataconn/core/wire"
)

// FuzzParseNodeMsg decodes arbitrary msgpack frames into messages (as the
// messaging connection does) and gives each to the node-port dispatcher's
// parser, wire.ParseNodeMsg. It must not panic; failures are typed
// (*wire.NodeMsgError, errors.Is ErrNodeMsgMalformed); and a parsed
// request rebuilt with the core builders parses to the same request.
func FuzzParseNodeMsg(f *testing.F) {
	codec, _ := wire.CodecByName("msgpack")
	for _, m := range seedMessages() {
		b, _ := codec.AppendMessage(nil, m)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		dec := codec.NewDecoder(1 << 16)
		dec.Feed(data) // errors are the decoder's business (FuzzMsgpackDecoder)
		for n := 0; n < 1024; n++ {
			msg, ok, err := dec.Next()
			if err != nil || !ok {
				return
			}
			checkNodeMsg(t, msg)
			if len(msg) > 0 {
				checkNodeMsg(t, msg[1:])
			}
		}
	})
}

func checkNodeMsg(t *testing.T, args []any) {
	t.Helper()
	nm, err := wire.ParseNodeMsg(args)
	if err != nil {
		var ne *wire.NodeMsgError
		if !errors.As(err, &ne) || !errors.Is(err, wire.ErrNodeMsgMalformed) || nm != nil {
			t.Fatalf("ParseNodeMsg(%#v) = %#v, %T %v", args, nm, err, err)
		}
		if len(err.Error()) > 4096 {
			t.Fatalf("error text of %d bytes: peer values must be bounded", len(err.Error()))
		}
		return
	}
	if nm == nil {
		t.Fatalf("ParseNodeMsg(%#v) returned neither a message nor an error", args)
	}
	var rebuilt wire.Message
	switch m := nm.(type) {
	case wire.NodeMsgExpect:
		if math.IsNaN(m.Timeout) || math.IsInf(m.Timeout, 0) || m.Timeout < 0 {
			t.Fatalf("expect with timeout %v", m.Timeout)
		}
		rebuilt = wire.ExpectMsg(m.ID, m.Port, m.Timeout, m.InitFunc, m.InitData...)
	case wire.NodeMsgSnd:
		rebuilt = wire.SndMsg(m.Port, m.Data...)
	case wire.NodeMsgKill:
		rebuilt = wire.KillMsg(m.Port, m.Reason...)
	case wire.NodeMsgConnect:
		rebuilt = wire.ConnectMsg(m.ID, m.Node)
	case wire.NodeMsgGFind:
		rebuilt = wire.GFindMsg(m.Node)
	case wire.NodeMsgGFound:
		if !m.Found || len(m.Addrs) == 0 {
			return
		}
		rebuilt = wire.GFoundMsg(m.Node, m.Addrs)
	case wire.NodeMsgCall:
		if m.Func == "" {
			t.Fatalf("call of the empty tag %#v (that is a keepalive)", args)
		}
		return
	case wire.NodeMsgGSlave, wire.NodeMsgKeepalive, wire.NodeMsgIgnored:
		return
	default:
		t.Fatalf("unknown node message type %T", nm)
	}
	if len(rebuilt) == 0 || rebuilt[0] != "" {
		t.Fatalf("builder for %T gave %#v, not a node-port message", nm, rebuilt)
	}
	// Through the wire and back, as a peer would receive it.
	codec, _ := wire.CodecByName("msgpack")
	b, err := codec.AppendMessage(nil, rebuilt)
	if err != nil {
		t.Fatalf("rebuilt %T does not encode: %v", nm, err)
	}
	dec := codec.NewDecoder(0)
	if err := dec.Feed(b); err != nil {
		t.Fatal(err)
	}
	decoded, ok, err := dec.Next()
	if !ok || err != nil {
		t.Fatalf("rebuilt %T does not decode: %v", nm, err)
	}
	again, err := wire.ParseNodeMsg(decoded[1:])
	if err != nil {
		t.Fatalf("rebuilt %#v does not parse: %v", decoded, err)
	}
	if !nodeMsgEqual(nm, again) {
		t.Fatalf("rebuilt message parses differently:\n%#v\n%#v", nm, again)
	}
}

func nodeMsgEqual(a, b wire.NodeMsg) bool {
	switch x := a.(type) {
	case wire.NodeMsgExpect:
		y, ok := b.(wire.NodeMsgExpect)
		return ok && x.ID == y.ID && x.Port == y.Port && x.Timeout == y.Timeout && x.InitFunc == y.InitFunc &&
			valueEqual(anySlice(x.InitData), anySlice(y.InitData))
	case wire.NodeMsgSnd:
		y, ok := b.(wire.NodeMsgSnd)
		return ok && x.Port == y.Port && valueEqual(anySlice(x.Data), anySlice(y.Data))
	case wire.NodeMsgKill:
		y, ok := b.(wire.NodeMsgKill)
		return ok && x.Port == y.Port && valueEqual(anySlice(x.Reason), anySlice(y.Reason))
	case wire.NodeMsgGFound:
		y, ok := b.(wire.NodeMsgGFound)
		return ok && x.Node == y.Node && x.Found == y.Found && slices.Equal(x.Addrs, y.Addrs)
	}
	return reflect.DeepEqual(a, b)
}

// anySlice makes nil and empty the same list.
func anySlice(l []any) []any {
	if l == nil {
		return []any{}
	}
	return l
}
