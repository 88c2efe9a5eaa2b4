package peer_test

import (
	"fmt"
	"time"

	"github.com/aemp-go/dataconn/core/peer"
)

// The transport's loop around the machine: feed an input, then carry out
// every action Poll returns. Here node a sends to b before any connection
// exists, the dial succeeds, and the waiting message is written, then
// the announcement every node gets from a global one (g_global).
func Example() {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	m, _ := peer.New(peer.Config{NodeID: "a"})
	m.AddPeer("b", "10.0.0.2:4040")

	run := func() {
		for a := m.Poll(); a != nil; a = m.Poll() {
			switch a := a.(type) {
			case peer.Dial:
				fmt.Println("dial", a.Peer, a.Addrs)
			case peer.NodeUp:
				fmt.Println("up", a.Peer)
			case peer.Write:
				fmt.Printf("write on %d: %s\n", a.Conn, a.Frame)
			}
		}
	}
	m.Send(now, "b#inbox", "hello")
	run()
	// The handshake of the dial succeeded (the transport picked ID 1).
	m.ConnUp(now, peer.ConnInfo{Conn: 1, Peer: "b", Outbound: true, Attempt: 1, SendFraming: "json"})
	run()
	at, _ := m.Deadline()
	fmt.Println("next tick in", at.Sub(now))
	// Output:
	// dial b [10.0.0.2:4040]
	// up b
	// write on 1: ["inbox","hello"]
	// write on 1: ["","g_global"]
	// next tick in 10s
}
