package transport

import (
	"time"

	"github.com/aemp-go/dataconn/core/peer"
)

// The global role, the database and seeding: thin over the peer machine
// (core/peer decides; see its package doc), as Perl's AnyEvent::MP
// Global and Kernel do for a Perl node.

// Start begins seeding: every address of Config.Seeds is dialed, and the
// ones not connected are retried with Perl's backoff until they are (a
// seed lost later is retried at once, with a new random base). Call it
// after Listen, so that the seeds learn our listeners at once (later
// listeners reach them as updates). Start is idempotent; without seeds it
// does nothing.
func (n *Node) Start() error {
	return n.input(originLocal, func(now time.Time) error {
		return n.publicErr(n.m.Start(now))
	})
}

// Listeners returns the listener addresses of node id as the network's
// database knows them. known is false when there is no entry (the node
// is unknown); a known node may have none (an empty, non-nil list).
// Addresses given with AddPeer or learned from g_found are PeerAddrs'.
func (n *Node) Listeners(id string) (addrs []string, known bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if id == n.id {
		return append([]string{}, n.addrs...), true
	}
	return n.m.Listeners(id)
}

// Globals returns the IDs of the global nodes our node knows ('g).
func (n *Node) Globals() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.m.Globals()
}

// Slaves returns the IDs of the nodes that made our node their master
// (g_slave), sorted.
func (n *Node) Slaves() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.m.Slaves()
}

// DBSet sets key of family to value in our node's part of the network's
// database (Perl's db_set): every global hears of it, and so do the
// monitors of the family. The value must be encodable in JSON. The
// families 'l and 'g are the node's own (peer.ErrDBReserved).
func (n *Node) DBSet(family, key string, value any) error {
	return n.input(originLocal, func(now time.Time) error {
		return n.publicErr(n.m.DBSet(now, family, key, value))
	})
}

// DBDel deletes keys of family from our node's part of the database
// (Perl's db_del).
func (n *Node) DBDel(family string, keys ...string) error {
	return n.input(originLocal, func(now time.Time) error {
		return n.publicErr(n.m.DBDel(now, family, keys...))
	})
}

// DBFamily returns a copy of family as the database knows it (merged
// over the nodes), nil when empty.
func (n *Node) DBFamily(family string) map[string]any {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.m.DBFamily(family)
}

// DBMonitor calls f with every change of family (Perl's db_mon): the
// keys set with their new values, and the keys deleted. It returns the
// family as it is now, and a function that cancels the monitor. f runs
// after the change, on the goroutine that brought it: it must not block
// long.
func (n *Node) DBMonitor(family string, f func(family string, set map[string]any, del []string)) (now map[string]any, cancel func()) {
	n.mu.Lock()
	var id peer.MonitorID
	id, now = n.m.DBMonitor(family)
	n.dbMons[id] = f
	n.mu.Unlock()
	return now, n.unmonitor(id)
}
