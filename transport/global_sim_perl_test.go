package transport_test

// The scripted Perl nodes of the global simulations (global_sim_test.go,
// global_sim_mixed_test.go): a Perl slave or a Perl global from start-up
// that answers as the Perl nodes of the recorded transcripts do, message
// for message, without Perl's Global module behind it.
//
//   - Seeding (seed_retry.txt, seed_down.txt): it dials its seed with
//     Perl's backoff (r = 0.6·(1+u) s; attempts at 0, 2r, 6r, 14r, 30r,
//     then every 30 s), and after losing it draws a new r and retries at
//     once.
//   - A slave (seed_db.txt, seed_down.txt: C, D) greets its seed with
//     g_slave and its 'l, and g_find of the seed.
//   - A global from start-up (seed_three.txt, seed_down.txt: A) greets
//     its seed, its master, with g_slave of its 'l and 'g, g_mon1 'g,
//     g_global and a bare g_slave. It says g_global to every node it
//     meets; on g_global from X it sends X its g_set and its master
//     g_upd 'g {X:null}; on g_set from X it mirrors X's own 'l to its
//     master; it keeps what g_set, g_upd, g_chg1 and g_chg2 tell it, and
//     dials every member of 'g it is not connected to (Perl's keepalive).
//
// The data-connection side is in global_sim_dc_test.go.

import (
	"context"
	"fmt"
	"hash/fnv"
	"io"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/aemp-go/dataconn/core/wire"
	"github.com/aemp-go/dataconn/memnet"
	"github.com/aemp-go/dataconn/transport"
)

// scriptedPerl is one scripted Perl node of a simulation.
type scriptedPerl struct {
	id, addr string
	seed     string // its seed's node id (memnet host seed, port 1)
	global   bool   // a global from start-up (else a slave)
	p        *perlNode
	stop     chan struct{}
	rng      *rand.Rand // its backoff draws (seeded by its id: deterministic)

	mu      sync.Mutex
	found   map[string]any
	pc      *perlConn // to its seed, while up
	done    <-chan error
	expects map[string]bool // data-connection ids announced to it
	echoes  chan string     // answers of its snd round trips
	errs    []error         // failures of its serving side
	ups     []time.Time     // when its seed connection came up
	peers   map[string]*perlConn
	dialing map[string]bool
	db      map[string]map[string]any // what it was told ('l, 'g, ...)
	kil0s   []string                  // the kil0 messages it got (JSON)

	sendMu sync.Mutex // one writer at a time on any of its connections
}

// startPerlSlave starts the Perl slave id, listening on id:1, seeding to
// the memnet node seed.
func startPerlSlave(t *testing.T, w *memnet.World, id, seed string) *scriptedPerl {
	return startScriptedPerl(t, w, id, seed, false)
}

// startPerlGlobal starts the Perl node id, global from start-up, with the
// memnet node seed as its seed and master.
func startPerlGlobal(t *testing.T, w *memnet.World, id, seed string) *scriptedPerl {
	return startScriptedPerl(t, w, id, seed, true)
}

func startScriptedPerl(t *testing.T, w *memnet.World, id, seed string, global bool) *scriptedPerl {
	t.Helper()
	p := newPerlNode(t, w.Host(id), id)
	h := fnv.New64a()
	io.WriteString(h, id)
	s := &scriptedPerl{id: id, seed: seed, global: global, p: p, addr: p.listen(id + ":1"),
		stop: make(chan struct{}), rng: rand.New(rand.NewPCG(h.Sum64(), 15)),
		found: map[string]any{}, expects: map[string]bool{}, echoes: make(chan string, 64),
		peers: map[string]*perlConn{}, dialing: map[string]bool{}, db: map[string]map[string]any{}}
	go s.servePerl(p, s.stop)
	s.done = goScript(id, s.seedLoop)
	t.Cleanup(func() {
		close(s.stop)
		s.mu.Lock()
		for _, pc := range s.peers {
			pc.raw.Close()
		}
		s.mu.Unlock()
		<-s.done
	})
	return s
}

// send writes msgs on pc; a connection that is gone is not an error here
// (its peer crashed or closed: the reader sees it).
func (s *scriptedPerl) send(pc *perlConn, msgs ...string) {
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	for _, m := range msgs {
		io.WriteString(pc.w, m)
	}
}

// stopped reports whether the test is over.
func (s *scriptedPerl) stopped() bool {
	select {
	case <-s.stop:
		return true
	default:
		return false
	}
}

// seedLoop keeps the node connected to its seed on Perl's schedule.
func (s *scriptedPerl) seedLoop() {
	for !s.stopped() {
		r := time.Duration(float64(600*time.Millisecond) * (1 + s.rng.Float64()))
		wait := 2 * r
		var pc *perlConn
		for pc == nil {
			pc = s.trySeed()
			if pc != nil {
				break
			}
			select {
			case <-s.stop:
				return
			case <-time.After(wait):
			}
			wait = min(2*wait, 30*time.Second)
		}
		s.mu.Lock()
		s.pc = pc
		s.peers[s.seed] = pc
		s.ups = append(s.ups, time.Now())
		s.mu.Unlock()
		if s.global {
			s.send(pc, fmt.Sprintf(`["","g_slave",{"'g":{%q:null},"'l":{%q:[%q]}}]`, s.id, s.id, s.addr),
				`["","g_mon1","'g"]`, `["","g_global"]`, `["","g_slave"]`)
		} else {
			s.send(pc, fmt.Sprintf(`["","g_slave",{"'l":{%q:[%q]}}]`, s.id, s.addr), fmt.Sprintf(`["","g_find",%q]`, s.seed))
		}
		s.serveMsgs(pc)
		s.mu.Lock()
		s.pc = nil
		s.dropPeerLocked(s.seed, pc)
		s.mu.Unlock()
	}
}

// trySeed is one seeding attempt: nil when the seed is not there.
func (s *scriptedPerl) trySeed() *perlConn {
	ctx, cancel := context.WithTimeout(context.Background(), perlStepLimit)
	defer cancel()
	c, err := s.p.nw.Dial(ctx, s.seed+":1")
	if err != nil {
		return nil
	}
	s.p.track(c)
	pc, err := s.p.handshake(c, perlHS{role: perlDialed})
	if err != nil {
		return nil
	}
	return pc
}

func (s *scriptedPerl) dropPeerLocked(id string, pc *perlConn) {
	if s.peers[id] == pc {
		delete(s.peers, id)
	}
}

// ask sends g_find of node on the slave's connection to its seed.
func (s *scriptedPerl) ask(t *testing.T, node string) {
	t.Helper()
	s.mu.Lock()
	pc := s.pc
	s.mu.Unlock()
	if pc == nil {
		t.Fatalf("Perl node %s has no connection to its seed: %v", s.id, scriptState(s.done))
	}
	s.send(pc, fmt.Sprintf(`["","g_find",%q]`, node))
}

func (s *scriptedPerl) foundOf(node string) any {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.found[node]
}

// toSeed sends msg to its seed (false when not connected).
func (s *scriptedPerl) toSeed(msg string) bool {
	s.mu.Lock()
	pc := s.pc
	s.mu.Unlock()
	if pc == nil {
		return false
	}
	s.send(pc, msg)
	return true
}

// kills returns the kil0 messages it got, as JSON.
func (s *scriptedPerl) kills() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.kil0s...)
}

// onMonitorMsg handles remote monitoring as Perl's Kernel does
// (monitor.txt): the node has no ports of its own, so mon1 is answered
// at once with kil0 no_such_port; a kil0 is recorded.
func (s *scriptedPerl) onMonitorMsg(pc *perlConn, m wire.Message) {
	if len(m) < 3 {
		return
	}
	name, _ := wire.AsString(m[2])
	switch tagOf(m) {
	case "mon1":
		s.send(pc, jsonMsg("", "kil0", name, "no_such_port", "cannot monitor nonexistent port", s.id+"#"+name))
	case "kil0":
		s.mu.Lock()
		s.kil0s = append(s.kil0s, canonical([]any(m)))
		s.mu.Unlock()
	}
}

// upTimes returns when its seed connection came up, in order.
func (s *scriptedPerl) upTimes() []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Time(nil), s.ups...)
}

// knows returns the listeners of node as the global was told them, and
// whether it has an entry.
func (s *scriptedPerl) knows(node string) ([]string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.db["'l"][node]
	if !ok {
		return nil, false
	}
	return strList(v), true
}

// globalsKnown returns the members of 'g the node was told of.
func (s *scriptedPerl) globalsKnown() map[string]bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := map[string]bool{}
	for k := range s.db["'g"] {
		g[k] = true
	}
	return g
}

// connected reports whether the node has a messaging connection to id.
func (s *scriptedPerl) connected(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peers[id] != nil
}

// register makes pc the node's connection to its peer, as Perl refuses a
// second one ("already connected"): false when there is one already.
func (s *scriptedPerl) register(pc *perlConn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.peers[pc.peer.NodeID] != nil {
		return false
	}
	s.peers[pc.peer.NodeID] = pc
	return true
}

// serveMsgConn runs a messaging connection pc that is not the one to its
// seed: a global says g_global first; then the messages.
func (s *scriptedPerl) serveMsgConn(pc *perlConn) {
	if !s.register(pc) {
		pc.raw.Close()
		return
	}
	if s.global {
		s.send(pc, `["","g_global"]`)
	}
	s.serveMsgs(pc)
	s.mu.Lock()
	s.dropPeerLocked(pc.peer.NodeID, pc)
	s.mu.Unlock()
	s.redialGlobals()
}

// redialGlobals dials, once each, the members of 'g the global is not
// connected to (Perl's keepalive).
func (s *scriptedPerl) redialGlobals() {
	if !s.global || s.stopped() {
		return
	}
	s.mu.Lock()
	var todo []string
	for g := range s.db["'g"] {
		if g != s.id && s.peers[g] == nil && !s.dialing[g] {
			if addrs := strList(s.db["'l"][g]); len(addrs) > 0 {
				s.dialing[g] = true
				todo = append(todo, g, addrs[0])
			}
		}
	}
	s.mu.Unlock()
	for i := 0; i < len(todo); i += 2 {
		g, addr := todo[i], todo[i+1]
		go func() {
			defer func() {
				s.mu.Lock()
				delete(s.dialing, g)
				s.mu.Unlock()
			}()
			ctx, cancel := context.WithTimeout(context.Background(), perlStepLimit)
			defer cancel()
			_, a := transport.SplitAddr(addr)
			c, err := s.p.nw.Dial(ctx, a)
			if err != nil {
				return
			}
			s.p.track(c)
			pc, err := s.p.handshake(c, perlHS{role: perlDialed})
			if err != nil {
				return
			}
			s.serveMsgConn(pc)
		}()
	}
}

// onGlobalMsg handles what a Perl global does with the database messages
// of pc (the connection to its master or to another global).
func (s *scriptedPerl) onGlobalMsg(pc *perlConn, m wire.Message) {
	from := pc.peer.NodeID
	s.mu.Lock()
	master := s.pc
	s.mu.Unlock()
	switch tagOf(m) {
	case "g_global":
		s.send(pc, fmt.Sprintf(`["","g_set",{"'g":{%q:null},"'l":{%q:[%q]}}]`, s.id, s.id, s.addr))
		if master != nil {
			s.send(master, fmt.Sprintf(`["","g_upd","'g",{%q:null}]`, from))
		}
	case "g_set":
		if len(m) < 3 {
			return
		}
		db, _ := m[2].(map[string]any)
		s.mu.Lock()
		for f, fam := range db {
			kv, _ := fam.(map[string]any)
			for k, v := range kv {
				s.setLocked(f, k, v)
			}
		}
		s.mu.Unlock()
		if l, ok := db["'l"].(map[string]any); ok && master != nil {
			if own, ok := l[from]; ok {
				s.send(master, jsonMsg("", "g_upd", "'l", map[string]any{from: own}))
			}
		}
	case "g_upd", "g_chg2":
		if len(m) < 4 {
			return
		}
		f, _ := wire.AsString(m[2])
		set, _ := m[3].(map[string]any)
		var del []any
		if len(m) > 4 {
			del, _ = m[4].([]any)
		}
		s.mu.Lock()
		for k, v := range set {
			s.setLocked(f, k, v)
		}
		for _, k := range del {
			if ks, ok := wire.AsString(k); ok && ks != s.id {
				delete(s.db[f], ks)
			}
		}
		s.mu.Unlock()
	case "g_chg1":
		if len(m) < 4 {
			return
		}
		f, _ := wire.AsString(m[2])
		fam, _ := m[3].(map[string]any)
		s.mu.Lock()
		s.db[f] = map[string]any{}
		for k, v := range fam {
			s.setLocked(f, k, v)
		}
		s.mu.Unlock()
	default:
		return
	}
	s.redialGlobals()
}

func (s *scriptedPerl) setLocked(f, k string, v any) {
	if s.db[f] == nil {
		s.db[f] = map[string]any{}
	}
	s.db[f][k] = v
}
