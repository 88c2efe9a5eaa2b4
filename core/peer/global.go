package peer

import (
	"fmt"
	"maps"
	"reflect"
	"slices"
	"sort"
	"time"

	"github.com/aemp-go/dataconn/core/wire"
)

// The families every node keeps: 'l maps a node ID to its listeners
// (["host:port", ...], [] for none), 'g maps each global node ID to null.
const (
	FamilyListeners = "'l"
	FamilyGlobals   = "'g"
)

var dbCodec, _ = wire.CodecByName("json")

// Defaults of the database limits of Config.
const (
	DefaultMaxDBFamilies = 256
	DefaultMaxDBKeys     = 1 << 16
	DefaultMaxDBValue    = 64 << 10
)

// globalState is the global role: our local db (the shard of our own
// node), one shard per node that contributed one (slaves: g_slave DB,
// g_upd; globals: g_set), the known globals and the family monitors.
// The merged db, what g_find, g_db_*, g_chg* and DBFamily answer from, is
// computed from the shards: a key is present while any shard holds it,
// with the value of the first such shard (ours first, then by node ID).
type globalState struct {
	shards  map[string]map[string]map[string]any // node → family → key → value
	slaves  map[string]bool                      // nodes whose shard changes we forward (us included)
	globals map[string]bool                      // nodes that said g_global (not us)
	fmons   map[string]map[string]bool           // family → remote nodes monitoring it (g_mon1)
	lmons   map[string][]MonitorID               // family → local monitors (DBMonitor)
}

func newGlobalState(self string) globalState {
	g := globalState{
		shards:  map[string]map[string]map[string]any{self: {}},
		slaves:  map[string]bool{self: true},
		globals: map[string]bool{},
		fmons:   map[string]map[string]bool{},
		lmons:   map[string][]MonitorID{},
	}
	g.shards[self][FamilyListeners] = map[string]any{self: []any{}}
	g.shards[self][FamilyGlobals] = map[string]any{self: nil}
	return g
}

// shardOrder lists the nodes with a shard: ours first, then sorted.
func (m *Machine) shardOrder() []string {
	out := make([]string, 0, len(m.g.shards))
	for id := range m.g.shards {
		if id != m.self {
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return append([]string{m.self}, out...)
}

// merged returns the merged value of family fam, key k.
func (m *Machine) merged(fam, k string) (any, bool) {
	for _, id := range m.shardOrder() {
		if v, ok := m.g.shards[id][fam][k]; ok {
			return v, true
		}
	}
	return nil, false
}

// mergedFamily returns a copy of the merged family fam (nil when empty).
func (m *Machine) mergedFamily(fam string) map[string]any {
	var out map[string]any
	order := m.shardOrder()
	for i := len(order) - 1; i >= 0; i-- {
		for k, v := range m.g.shards[order[i]][fam] {
			if out == nil {
				out = map[string]any{}
			}
			out[k] = v
		}
	}
	return out
}

// slavesDB merges the shards of our slaves (us included): what a g_set
// tells another global.
func (m *Machine) slavesDB() map[string]any {
	out := map[string]any{}
	order := m.shardOrder()
	for i := len(order) - 1; i >= 0; i-- {
		if !m.g.slaves[order[i]] {
			continue
		}
		for fam, kv := range m.g.shards[order[i]] {
			f, _ := out[fam].(map[string]any)
			if f == nil {
				f = map[string]any{}
				out[fam] = f
			}
			maps.Copy(f, kv)
		}
	}
	return out
}

// dbApply applies set and del to node's shard of family fam and sends
// what changed: g_chg2 to the family's monitors (DBChanged to local
// ones) for the merged db, and, when node is one of our slaves (we are
// our own), g_upd to every known global for the shard. With force, a
// key set to the value it has counts as a change: a Perl global passes
// on every g_upd and g_set it gets (seed_three: C's g_upd of its
// unchanged 'l is forwarded), while a db_set that changes nothing,
// ours included, sends nothing.
func (m *Machine) dbApply(now time.Time, node, fam string, set map[string]any, del []string, force bool) {
	if m.closed {
		return
	}
	sh := m.g.shards[node]
	if sh == nil {
		sh = map[string]map[string]any{}
		m.g.shards[node] = sh
	}
	type before struct {
		v  any
		ok bool
	}
	touched := map[string]before{}
	for k := range set {
		v, ok := m.merged(fam, k)
		touched[k] = before{v, ok}
	}
	for _, k := range del {
		if _, dup := touched[k]; !dup {
			v, ok := m.merged(fam, k)
			touched[k] = before{v, ok}
		}
	}
	f := sh[fam]
	shSet, shDel := map[string]any{}, []string{}
	for _, k := range slices.Sorted(maps.Keys(set)) {
		v := set[k]
		if old, ok := f[k]; ok && !force && reflect.DeepEqual(old, v) {
			continue // Perl: a db_set that changes nothing sends nothing
		}
		if f == nil {
			f = map[string]any{}
			sh[fam] = f
		}
		f[k] = v
		shSet[k] = v
	}
	for _, k := range del {
		if _, inSet := set[k]; inSet {
			continue
		}
		if _, ok := f[k]; ok {
			delete(f, k)
			shDel = append(shDel, k)
		}
	}
	if len(f) == 0 {
		delete(sh, fam)
	}
	if len(sh) == 0 && node != m.self {
		delete(m.g.shards, node)
	}
	if len(shSet) == 0 && len(shDel) == 0 {
		return
	}
	if m.g.slaves[node] {
		for _, gid := range slices.Sorted(maps.Keys(m.g.globals)) {
			m.sendNode(now, gid, wire.Message{"", "g_upd", fam, shSet, stringsToAny(shDel)})
		}
	}
	// What the monitors hear, as Perl sends it: every key the shard set
	// (even when another shard held the same value), and a deleted key
	// only when it left the merged db; when another shard still holds it
	// with a different value, that value goes out as a set.
	mSet, mDel := map[string]any{}, []string{}
	for k := range shSet {
		mSet[k], _ = m.merged(fam, k)
	}
	for _, k := range shDel {
		b := touched[k]
		v, ok := m.merged(fam, k)
		switch {
		case !ok:
			mDel = append(mDel, k)
		case !reflect.DeepEqual(b.v, v):
			mSet[k] = v
		}
	}
	if len(mSet) == 0 && len(mDel) == 0 {
		return
	}
	for _, id := range slices.Sorted(maps.Keys(m.g.fmons[fam])) {
		m.sendNode(now, id, wire.Message{"", "g_chg2", fam, mSet, stringsToAny(mDel)})
	}
	if mons := m.g.lmons[fam]; len(mons) > 0 {
		m.emit(DBChanged{Family: fam, Set: mSet, Del: mDel, Monitors: slices.Clone(mons)})
	}
	if fam == FamilyGlobals {
		m.armGlobalRedial(now)
	} else if fam == FamilyListeners {
		// A member of 'g whose listeners just became known.
		for k := range mSet {
			if _, isGlobal := m.merged(FamilyGlobals, k); isGlobal {
				m.armGlobalRedial(now)
				break
			}
		}
	}
}

// dbReplace makes db node's whole shard (g_slave DB, g_set).
func (m *Machine) dbReplace(now time.Time, node string, db map[string]map[string]any) {
	old := m.g.shards[node]
	fams := map[string]bool{}
	for f := range old {
		fams[f] = true
	}
	for f := range db {
		fams[f] = true
	}
	for _, fam := range slices.Sorted(maps.Keys(fams)) {
		var del []string
		for k := range old[fam] {
			if _, ok := db[fam][k]; !ok {
				del = append(del, k)
			}
		}
		sort.Strings(del)
		m.dbApply(now, node, fam, db[fam], del, true)
	}
}

// dbDropShard deletes node's shard, sending the deletions.
func (m *Machine) dbDropShard(now time.Time, node string) {
	sh := m.g.shards[node]
	for _, fam := range slices.Sorted(maps.Keys(sh)) {
		m.dbApply(now, node, fam, nil, slices.Sorted(maps.Keys(sh[fam])), false)
	}
	delete(m.g.shards, node)
}

// sendNode sends a message of the global protocol to a node that is up;
// to a node that is not, it is dropped (the global protocol never dials
// for its own messages).
func (m *Machine) sendNode(now time.Time, node string, msg wire.Message) {
	if p := m.peers[node]; p == nil || p.conn == 0 || node == m.self {
		return
	}
	_ = m.SendTo(now, node, msg) // a full queue drops it: the peer resyncs on reconnect
}

func stringsToAny(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}

// announce is what a node that comes up gets from us: g_global (every
// Go node is global), and, for a seed we dialed, a bare g_slave, which
// makes a Perl seed run its global service (it then answers with
// g_global, and the g_set exchange tells each side the other's db).
func (m *Machine) announce(now time.Time, p *peerState, seed bool) {
	if m.cfg.Minimal {
		return
	}
	if len(m.globalsMissing(true)) == 0 {
		m.stopTimer(TimerGlobalRedial, 0, "")
	}
	if seed {
		m.sendNode(now, p.id, wire.Message{"", "g_slave"})
	}
	m.sendNode(now, p.id, wire.Message{"", "g_global"})
}

// globalDown forgets what node id contributed when its connection ends:
// its shard, our mirror of its 'l, its 'g entry, its family monitors and
// its role (§2.6 of PERL-NODE.md).
func (m *Machine) globalDown(now time.Time, id string) {
	wasGlobal := m.g.globals[id]
	if wasGlobal {
		// Keep its listeners as dial hints: it is redialed at once.
		addrs, _ := m.Listeners(id)
		m.AddPeer(id, addrs...)
	}
	m.dbDropShard(now, id)
	delete(m.g.slaves, id)
	delete(m.g.globals, id)
	var del []string
	if _, ok := m.g.shards[m.self][FamilyListeners][id]; ok {
		del = append(del, id)
	}
	if len(del) > 0 {
		m.dbApply(now, m.self, FamilyListeners, nil, del, false)
	}
	if _, ok := m.g.shards[m.self][FamilyGlobals][id]; ok {
		m.dbApply(now, m.self, FamilyGlobals, nil, []string{id}, false)
	}
	for _, set := range m.g.fmons {
		delete(set, id)
	}
	if wasGlobal && !m.cfg.Minimal && !m.closing {
		// Perl redials a global that just left (the trailing dials in
		// seed_global, seed_three): it may only have restarted.
		if p := m.peers[id]; p != nil && p.conn == 0 && !p.connecting() && len(m.knownAddrs(p)) > 0 {
			m.startDial(now, p)
		}
		m.armGlobalRedial(now)
	}
}

// Listeners returns the listeners of node id from the merged 'l family:
// known is false when the database has no entry (unknown), and a known
// entry may be empty (the node has no listeners).
func (m *Machine) Listeners(id string) (addrs []string, known bool) {
	v, ok := m.merged(FamilyListeners, id)
	if !ok {
		return nil, false
	}
	l, _ := v.([]any)
	out := []string{}
	for _, e := range l {
		if s, ok := wire.AsString(e); ok && s != "" {
			out = append(out, s)
		}
	}
	return out, true
}

// knownAddrs is what a dial of id tries: its 'l entry, then the hints
// of AddPeer and g_found not already in it.
func (m *Machine) knownAddrs(p *peerState) []string {
	addrs, _ := m.Listeners(p.id)
	for _, a := range p.addrs {
		if !slices.Contains(addrs, a) {
			addrs = append(addrs, a)
		}
	}
	return addrs
}

// DBSet sets key of family to value in our local db (Perl's db_set):
// monitors of the family hear of it, and so does every global. A value
// must be encodable in JSON framing.
func (m *Machine) DBSet(now time.Time, family, key string, value any) error {
	if m.closed {
		return ErrClosed
	}
	if _, err := dbCodec.AppendMessage(nil, wire.Message{value}); err != nil {
		return fmt.Errorf("%w: value of %s/%s: %v", ErrDBValue, family, key, err)
	}
	if family == FamilyListeners || family == FamilyGlobals {
		return fmt.Errorf("%w: %s is kept by the node (SetListeners)", ErrDBReserved, family)
	}
	m.dbApply(now, m.self, family, map[string]any{key: value}, nil, false)
	return nil
}

// DBDel deletes keys of family from our local db (Perl's db_del).
func (m *Machine) DBDel(now time.Time, family string, keys ...string) error {
	if m.closed {
		return ErrClosed
	}
	if family == FamilyListeners || family == FamilyGlobals {
		return fmt.Errorf("%w: %s is kept by the node", ErrDBReserved, family)
	}
	m.dbApply(now, m.self, family, nil, keys, false)
	return nil
}

// DBMonitor registers a monitor of the merged family (Perl's db_mon): it
// returns the family as it is now, and every later change comes as a
// DBChanged action naming the monitor. Unmonitor ends it.
func (m *Machine) DBMonitor(family string) (MonitorID, map[string]any) {
	id := m.nextMonitor(monRef{kind: monFamily, name: family})
	m.g.lmons[family] = append(m.g.lmons[family], id)
	return id, m.mergedFamily(family)
}

// DBFamily returns a copy of the merged family (nil when empty).
func (m *Machine) DBFamily(family string) map[string]any { return m.mergedFamily(family) }

// Globals returns the nodes known to be global (not us), sorted.
func (m *Machine) Globals() []string { return slices.Sorted(maps.Keys(m.g.globals)) }

// Slaves returns the nodes that use us as their master (not us), sorted.
func (m *Machine) Slaves() []string {
	var out []string
	for id := range m.g.slaves {
		if id != m.self {
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out
}
