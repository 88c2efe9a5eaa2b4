package handshake_test

import (
	"fmt"
	"time"

	"github.com/aemp-go/dataconn/core/handshake"
	"github.com/aemp-go/dataconn/core/wire"
)

// Example wires two handshake machines back to back: every Write of one
// is fed to the other's Receive until both report Done.
func Example() {
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	secret := []byte("shared secret")
	a, err := handshake.New(handshake.Config{
		NodeID:   "alice",
		Protocol: wire.ProtocolDataConn,
		Secret:   secret,
		Extra:    []wire.KV{{Key: wire.KeyDataConnID, Value: "1@alice"}},
	}, "nonce-from-alice", now)
	if err != nil {
		panic(err)
	}
	b, err := handshake.New(handshake.Config{
		NodeID:       "bob",
		Secret:       secret,
		SendFramings: []string{"json"},
	}, "nonce-from-bob", now)
	if err != nil {
		panic(err)
	}

	results := map[*handshake.Machine]*handshake.Result{}
	peer := map[*handshake.Machine]*handshake.Machine{a: b, b: a}
	// step drains h's actions, delivering writes to its peer.
	var step func(h *handshake.Machine)
	step = func(h *handshake.Machine) {
		for act := h.Poll(); act != nil; act = h.Poll() {
			switch act := act.(type) {
			case handshake.Write:
				p := peer[h]
				p.Receive(now, act.Data)
				step(p)
			case handshake.Done:
				results[h] = act.Result
			case handshake.Failed:
				fmt.Println("failed:", act.Err)
			}
		}
	}
	step(a)
	step(b)

	ra, rb := results[a], results[b]
	fmt.Println("alice:", ra.Protocol, ra.PeerNodeID, ra.SentAuth, "sends", ra.SendFraming, "receives", ra.RecvFraming)
	fmt.Println("bob:  ", rb.Protocol, rb.PeerNodeID, rb.SentAuth, "sends", rb.SendFraming, "receives", rb.RecvFraming)
	id, _ := rb.Peer.Get(wire.KeyDataConnID)
	fmt.Println("dataconn id:", id)
	// Output:
	// alice: aemp-dataconn bob hmac_sha3_512 sends msgpack receives json
	// bob:   aemp-dataconn alice hmac_sha3_512 sends json receives msgpack
	// dataconn id: 1@alice
}
