package transport_test

// Transport-level replay of transcripts/node_requests.txt (the peer
// machine replays it in core/peer/testdata/perl_node_requests.txt).

import (
	"fmt"
	"slices"
	"testing"
)

// TestPerlNodeRequestsReplay: transcripts/node_requests.txt with our node
// as A, over memnet and TCP: the Perl node B joins A as its seed and sends
// every node-port request. A answers g_find (B's announced listeners, null
// for a node nobody knows) and the snd ordering echo; it sends nothing for
// can, time and eval (a Perl A answers them; ours never runs eval),
// devnull and the empty keepalive, a call of an unknown function, a
// message for a port that does not exist, kil1 of an unknown port, and
// kil0 and mon0 of ports not monitored. kil1 of the node port is refused:
// unlike the Perl A, whose node port dies and which then ignores every
// request, ours still answers, and the connection stays up.
func TestPerlNodeRequestsReplay(t *testing.T) {
	onReplayNets(t, 74, func(t *testing.T, rn *replayNet) {
		a, aAddr := rn.goNode(t, "A", true, nil)
		b := rn.perl(t, "B", true)
		script := goScript("B", func() {
			// [0.0013] B joins A as its seed.
			bc := joinSlave(b, "A", aAddr, b.addr)
			bc.settled("joined")
			bc.send(`["","g_find","B"]`)
			bc.expectBurst(fmt.Sprintf(`["","g_found","B",[%q]]`, b.addr))
			// [0.4979-0.9973] can, time, eval: nothing from our node.
			bc.send(`["","can","g_find","B#5cRZzyr9Gb"]`, `["","can","No::Such::func","B#5cRZzyr9Gc"]`,
				`["","time","B#5cRZzyr9Gd"]`, `["","eval","6*7","B#5cRZzyr9Ge"]`)
			bc.settled("requests")
			// [0.7974-1.4967] keepalives, an unknown function, a message
			// for no port, kil1 of an unknown port, kil0 and mon0 of
			// ports not monitored: nothing.
			bc.send(`["","devnull",1,2]`, `["",""]`, `["","No::Such::func",1]`, `["nosuchport","hello"]`,
				`["","kil1","nosuchport","x"]`, `["","kil0","notmonitored","x"]`, `["","mon0","notmonitored"]`)
			bc.settled("ignored")
			// [1.5972] the ordering echo, [1.6970] g_find of an unknown node.
			bc.send(`["","snd","B#5cRZzyr9Gf"]`, `["","g_find","Z"]`)
			bc.expectBurst(`["5cRZzyr9Gf"]`, `["","g_found","Z",null]`)
			// [1.8977] kil1 of the node port: refused; requests still work.
			bc.send(`["","kil1",""]`, `["","g_find","A"]`)
			bc.expectBurst(fmt.Sprintf(`["","g_found","A",[%q]]`, aAddr))
			bc.settled("after")
		})
		waitScript(t, script)
		if p := a.Peers(); !slices.Equal(p, []string{"B"}) {
			t.Errorf("A's peers are %v, want [B]", p)
		}
		if l, known := a.Listeners("B"); !known || !slices.Equal(l, []string{b.addr}) {
			t.Errorf("A knows B's listeners as %v (known=%v)", l, known)
		}
		if _, known := a.Listeners("Z"); known {
			t.Error("A knows listeners of Z, which nobody announced")
		}
	})
}
