package transport_test

// The shared harness of the transport-level replays of the Perl network
// transcripts (core/peer/testdata/transcripts): every replay runs over
// memnet in a testing/synctest bubble and over real TCP on 127.0.0.1,
// with our transport.Node in the role of one Perl node and scripted Perl
// nodes (perl_test.go) in the others.

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aemp-go/dataconn/memnet"
	"github.com/aemp-go/dataconn/tcp"
	"github.com/aemp-go/dataconn/transport"
)

// replayNet is the network of one run of a replay.
type replayNet struct {
	w *memnet.World // nil on TCP
}

// onReplayNets runs f once on memnet (1 ms links, world seed seed, in a
// synctest bubble: virtual time) and once on real TCP on loopback.
func onReplayNets(t *testing.T, seed int64, f func(t *testing.T, rn *replayNet)) {
	t.Run("memnet", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			w := memnet.New(seed, memnet.WithDefaultLink(memnet.LinkConfig{Latency: time.Millisecond}), memnet.WithTrace(0))
			defer w.Close()
			f(t, &replayNet{w: w})
		})
	})
	t.Run("tcp", func(t *testing.T) { f(t, &replayNet{}) })
}

// virtual reports whether the run is on memnet, in virtual time (where
// the replay may check Perl's timings).
func (rn *replayNet) virtual() bool { return rn.w != nil }

// net returns the network of the node on host (one memnet host per node).
func (rn *replayNet) net(host string) transport.Network {
	if rn.w != nil {
		return rn.w.Host(host)
	}
	return tcp.New()
}

// bind returns the listen address of the node on host.
func (rn *replayNet) bind(host string) string {
	if rn.w != nil {
		return host + ":1"
	}
	return "127.0.0.1:0"
}

// goNode makes our node id (json only, as a Perl node negotiates with us)
// and, when listen, its listener; it returns the announced address.
func (rn *replayNet) goNode(t *testing.T, id string, listen bool, mod func(*transport.Config)) (*transport.Node, string) {
	t.Helper()
	cfg := transport.Config{NodeID: id, Secret: secret, Logger: quietLogger(), Framings: []string{"json"}, Global: true}
	if mod != nil {
		mod(&cfg)
	}
	n, err := transport.NewNode(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	n.AddNetwork(rn.net(id))
	if !listen {
		return n, ""
	}
	addr, err := n.Listen(context.Background(), rn.net(id), rn.bind(id))
	if err != nil {
		t.Fatal(err)
	}
	return n, addr
}

// perl makes the scripted Perl node id, listening when listen.
func (rn *replayNet) perl(t *testing.T, id string, listen bool) *perlNode {
	p := newPerlNode(t, rn.net(id), id)
	if listen {
		p.listen(rn.bind(id))
	}
	return p
}

// sync is the ordering echo of Perl's DataConn used as a barrier:
// ["", "snd", SELF#name] and wait for [name]; what our node sent before
// the echo is kept for the next expectBurst. After it, everything sent
// on this connection before has been handled by our node.
func (pc *perlConn) sync(name string) {
	pc.roundTrip(name)
}

// settled is sync, and checks that our node sent nothing else: the
// bursts read before were all it had to say.
func (pc *perlConn) settled(name string) {
	pc.roundTrip(name)
	if len(pc.skipped) != 0 {
		scriptFail("%s: our node also sent %v", pc.p.id, pc.skipped)
	}
}

// closeConn ends the connection as a Perl process that exits does.
func (pc *perlConn) closeConn() { pc.raw.Close() }
