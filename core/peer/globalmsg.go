package peer

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/aemp-go/dataconn/core/wire"
)

// The node-port requests of the global protocol and of remote port
// monitoring, which the peer machine parses itself (wire.ParseNodeMsg
// leaves them to a minimal node as NodeMsgIgnored).
const (
	tagGGlobal  = "g_global"
	tagGSlave   = "g_slave"
	tagGSet     = "g_set"
	tagGUpd     = "g_upd"
	tagGFind    = "g_find"
	tagGFound   = "g_found"
	tagGMon1    = "g_mon1"
	tagGMon0    = "g_mon0"
	tagGChg1    = "g_chg1"
	tagGChg2    = "g_chg2"
	tagGReply   = "g_reply"
	tagGFamily  = "g_db_family"
	tagGKeys    = "g_db_keys"
	tagGValues  = "g_db_values"
	tagMon1     = "mon1"
	tagMon0     = "mon0"
	tagKil0     = "kil0"
	noSuchPort  = "no_such_port"
	noSuchPortT = "cannot monitor nonexistent port"
)

// dispatchGlobal handles the requests above; handled is false for every
// other tag.
func (m *Machine) dispatchGlobal(now time.Time, from string, args []any) (handled bool, err error) {
	if len(args) == 0 {
		return false, nil
	}
	tag, ok := wire.AsString(args[0])
	if !ok {
		return false, nil
	}
	if m.cfg.Minimal && strings.HasPrefix(tag, "g_") {
		return false, nil
	}
	rest := args[1:]
	p := m.peer(from)
	arg := func(i int) any {
		if i < len(rest) {
			return rest[i]
		}
		return nil
	}
	str := func(i int, what string) (string, error) {
		s, ok := wire.AsString(arg(i))
		if !ok {
			return "", &wire.NodeMsgError{Tag: tag, Rule: fmt.Sprintf("%s (argument %d) is a %T, not a string", what, i+1, arg(i))}
		}
		return s, nil
	}
	untrusted := func() error {
		return fmt.Errorf("%w: %s from %s (tls_anon) would write to the database", ErrUntrusted, tag, from)
	}
	switch tag {
	case tagGGlobal:
		if p.untrusted {
			// Tell it our db (a read), but do not record it: being a
			// global is a write to 'g.
			m.sendNode(now, from, wire.Message{"", tagGSet, m.slavesDB()})
			return true, untrusted()
		}
		if m.g.slaves[from] {
			m.dbDropShard(now, from)
			delete(m.g.slaves, from)
		}
		m.g.globals[from] = true
		m.dbApply(now, m.self, FamilyGlobals, map[string]any{from: nil}, nil, false)
		m.sendNode(now, from, wire.Message{"", tagGSet, m.slavesDB()})
		return true, nil
	case tagGSlave:
		if len(rest) == 0 || rest[0] == nil {
			return true, nil // "run the global service": we do already
		}
		db, err := m.parseDB(tag, from, rest[0])
		if err != nil {
			return true, err
		}
		if p.untrusted {
			return true, untrusted()
		}
		if err := m.checkLimits(from, db); err != nil {
			return true, err
		}
		m.g.slaves[from] = true
		m.dbReplace(now, from, db)
		return true, nil
	case tagGSet:
		db, err := m.parseDB(tag, from, arg(0))
		if err != nil {
			return true, err
		}
		if p.untrusted {
			return true, untrusted()
		}
		if err := m.checkLimits(from, db); err != nil {
			return true, err
		}
		m.dbReplace(now, from, db)
		// Copy the sender's own 'l into our local db, as Perl does: the
		// other globals hear of it through us.
		if v, ok := db[FamilyListeners][from]; ok {
			m.dbApply(now, m.self, FamilyListeners, map[string]any{from: v}, nil, true)
		}
		return true, nil
	case tagGUpd:
		fam, err := str(0, "family")
		if err != nil {
			return true, err
		}
		set, err := asMap(tag, "set (argument 2)", arg(1))
		if err != nil {
			return true, err
		}
		del, err := asKeys(tag, arg(2))
		if err != nil {
			return true, err
		}
		if p.untrusted {
			return true, untrusted()
		}
		next := m.shardCopy(from)
		f := next[fam]
		if f == nil {
			f = map[string]any{}
		}
		for _, k := range del {
			delete(f, k)
		}
		maps.Copy(f, set)
		next[fam] = f
		if err := m.checkLimits(from, next); err != nil {
			return true, err
		}
		m.dbApply(now, from, fam, set, del, true)
		return true, nil
	case tagGFind:
		node, err := str(0, "node id")
		if err != nil {
			return true, err
		}
		var found any
		if addrs, ok := m.Listeners(node); ok {
			found = stringsToAny(addrs) // only the strings of the entry
		} else if p := m.peers[node]; p != nil && len(p.addrs) > 0 {
			found = stringsToAny(p.addrs)
		}
		return true, m.SendTo(now, from, wire.Message{"", tagGFound, node, found})
	case tagGFound:
		node, err := str(0, "node id")
		if err != nil {
			return true, err
		}
		if arg(1) == nil {
			return true, nil
		}
		l, ok := arg(1).([]any)
		if !ok {
			return true, &wire.NodeMsgError{Tag: tag, Rule: fmt.Sprintf("address list (argument 2) is a %T, not a list", arg(1))}
		}
		var addrs []string
		for _, e := range l {
			if s, ok := wire.AsString(e); ok {
				addrs = append(addrs, s)
			}
		}
		m.AddPeer(node, addrs...)
		return true, nil
	case tagGMon1:
		fam, err := str(0, "family")
		if err != nil {
			return true, err
		}
		if !m.g.fmons[fam][from] {
			n := 1
			for _, set := range m.g.fmons {
				if set[from] {
					n++
				}
			}
			if n > m.cfg.MaxDBFamilies {
				return true, &DBLimitError{Peer: from, Limit: "MaxDBFamilies", Max: m.cfg.MaxDBFamilies, Got: n, monitored: true}
			}
		}
		if m.g.fmons[fam] == nil {
			m.g.fmons[fam] = map[string]bool{}
		}
		m.g.fmons[fam][from] = true
		var db any
		if f := m.mergedFamily(fam); f != nil {
			db = f
		}
		return true, m.SendTo(now, from, wire.Message{"", tagGChg1, fam, db})
	case tagGMon0:
		fam, err := str(0, "family")
		if err != nil {
			return true, err
		}
		delete(m.g.fmons[fam], from)
		if len(m.g.fmons[fam]) == 0 {
			delete(m.g.fmons, fam)
		}
		return true, nil
	case tagGFamily, tagGKeys, tagGValues:
		fam, err := str(0, "family")
		if err != nil {
			return true, err
		}
		if len(rest) < 2 {
			return true, &wire.NodeMsgError{Tag: tag, Rule: "missing request id (argument 2)"}
		}
		f := m.mergedFamily(fam)
		keys := slices.Sorted(maps.Keys(f))
		var res any
		switch tag {
		case tagGFamily:
			if f == nil {
				f = map[string]any{}
			}
			res = f
		case tagGKeys:
			res = stringsToAny(keys)
		default:
			vals := make([]any, 0, len(keys))
			for _, k := range keys {
				vals = append(vals, f[k])
			}
			res = vals
		}
		return true, m.SendTo(now, from, wire.Message{"", tagGReply, rest[1], res})
	case tagGChg1, tagGChg2:
		// We are our own master and monitor no family remotely, so these
		// change nothing in the database (Perl sends stale ones: see
		// seed_mon_stale). Listener entries are still taken as dial hints.
		fam, err := str(0, "family")
		if err != nil {
			return true, err
		}
		if fam != FamilyListeners {
			return true, nil
		}
		set, _ := asMap(tag, "set", arg(1))
		for _, id := range slices.Sorted(maps.Keys(set)) {
			if l, ok := set[id].([]any); ok {
				for _, e := range l {
					if s, ok := wire.AsString(e); ok {
						m.AddPeer(id, s)
					}
				}
			}
		}
		return true, nil
	case tagGReply:
		return true, nil // we send no g_db_* request
	case tagMon1:
		name, err := str(0, "port id")
		if err != nil {
			return true, err
		}
		lp := m.ports[name]
		if lp == nil || name == "" {
			return true, m.SendTo(now, from, wire.Message{"", tagKil0, name, noSuchPort, noSuchPortT, m.self + "#" + name})
		}
		if lp.remote == nil {
			lp.remote = map[string]bool{}
		}
		lp.remote[from] = true
		return true, nil
	case tagMon0:
		name, err := str(0, "port id")
		if err != nil {
			return true, err
		}
		if lp := m.ports[name]; lp != nil {
			delete(lp.remote, from)
		}
		return true, nil
	case tagKil0:
		name, err := str(0, "port id")
		if err != nil {
			return true, err
		}
		m.fireRemote(from, name, rest[1:])
		return true, nil
	}
	return false, nil
}

// parseDB parses {F: {K: V}} (null: empty).
func (m *Machine) parseDB(tag, from string, v any) (map[string]map[string]any, error) {
	top, err := asMap(tag, "database (argument 1)", v)
	if err != nil {
		return nil, err
	}
	db := make(map[string]map[string]any, len(top))
	for fam, fv := range top {
		f, err := asMap(tag, fmt.Sprintf("family %q", fam), fv)
		if err != nil {
			return nil, err
		}
		if f == nil {
			f = map[string]any{}
		}
		db[fam] = f
	}
	return db, nil
}

func asMap(tag, what string, v any) (map[string]any, error) {
	switch x := v.(type) {
	case nil:
		return nil, nil
	case map[string]any:
		return x, nil
	case []any:
		if len(x) == 0 {
			return nil, nil // an empty Perl hash may encode as []
		}
	}
	return nil, &wire.NodeMsgError{Tag: tag, Rule: fmt.Sprintf("%s is a %T, not a map", what, v)}
}

func asKeys(tag string, v any) ([]string, error) {
	if v == nil {
		return nil, nil
	}
	l, ok := v.([]any)
	if !ok {
		return nil, &wire.NodeMsgError{Tag: tag, Rule: fmt.Sprintf("deleted keys (argument 3) are a %T, not a list", v)}
	}
	out := make([]string, 0, len(l))
	for _, e := range l {
		s, ok := wire.AsString(e)
		if !ok {
			return nil, &wire.NodeMsgError{Tag: tag, Rule: fmt.Sprintf("deleted key is a %T, not a string", e)}
		}
		out = append(out, s)
	}
	sort.Strings(out)
	return out, nil
}

// shardCopy returns a shallow two-level copy of node's shard.
func (m *Machine) shardCopy(node string) map[string]map[string]any {
	out := map[string]map[string]any{}
	for fam, f := range m.g.shards[node] {
		out[fam] = maps.Clone(f)
	}
	return out
}

// checkLimits says whether db may become node's shard: at most
// MaxDBFamilies families, MaxDBKeys keys over all of them, and no key
// with its value over MaxDBValue bytes in JSON.
func (m *Machine) checkLimits(node string, db map[string]map[string]any) error {
	fams, keys := 0, 0
	for fam, f := range db {
		if len(f) == 0 {
			continue
		}
		fams++
		keys += len(f)
		for k, v := range f {
			b, err := dbCodec.AppendMessage(nil, wire.Message{k, v})
			if err != nil {
				return fmt.Errorf("%w: %s/%s from %s: %v", ErrDBValue, fam, k, node, err)
			}
			if len(b) > m.cfg.MaxDBValue {
				return &DBLimitError{Peer: node, Limit: "MaxDBValue", Max: m.cfg.MaxDBValue, Got: len(b), Family: fam, Key: k}
			}
		}
	}
	if fams > m.cfg.MaxDBFamilies {
		return &DBLimitError{Peer: node, Limit: "MaxDBFamilies", Max: m.cfg.MaxDBFamilies, Got: fams}
	}
	if keys > m.cfg.MaxDBKeys {
		return &DBLimitError{Peer: node, Limit: "MaxDBKeys", Max: m.cfg.MaxDBKeys, Got: keys}
	}
	return nil
}
