package transport_test

// The data-connection side of the scripted Perl nodes of the global
// simulations (global_sim_perl_test.go): a node serves its listener as a
// Perl node with a DataConn does (messaging connections: _expect
// recorded, snd answered; aemp-dataconn connections with an expected
// id get "hello from ID"), and opens data connections itself the Perl
// way: the target's address from g_find at its seed (a slave) or from
// what it was told (a global), a messaging connection to it, _expect,
// the snd round trip, then the aemp-dataconn connection with the id.

import (
	"fmt"
	"io"
	"net"
	"time"

	"github.com/aemp-go/dataconn/core/wire"
)

// servePerl accepts the slave's connections until stop is closed.
func (s *scriptedPerl) servePerl(p *perlNode, stop <-chan struct{}) {
	for {
		select {
		case c := <-p.accept:
			go s.serveConn(p, c)
		case <-stop:
			return
		}
	}
}

// fail records a failure of the slave's serving side (checked by
// checkPerlServed).
func (s *scriptedPerl) fail(err error) {
	s.mu.Lock()
	s.errs = append(s.errs, err)
	s.mu.Unlock()
}

func (s *scriptedPerl) serveConn(p *perlNode, c net.Conn) {
	pc, err := p.handshake(c, perlHS{role: perlAccepted})
	if err != nil {
		return // a redial racing a connection that is up, or a node closing
	}
	if pc.proto != wire.ProtocolDataConn {
		s.serveMsgConn(pc)
		return
	}
	id, _ := pc.peer.Get(wire.KeyDataConnID)
	s.mu.Lock()
	ok := s.expects[id]
	delete(s.expects, id)
	s.mu.Unlock()
	if !ok {
		s.fail(fmt.Errorf("%s: data connection from %s with id %q it never expected", s.id, pc.peer.NodeID, id))
		c.Close()
		return
	}
	io.WriteString(pc.w, "hello from "+s.id)
	c.Close()
}

// serveMsgs handles what a Perl node's Kernel and DataConn do with the
// messages of one messaging connection: _expect is recorded, snd
// answered, the rest ignored.
func (s *scriptedPerl) serveMsgs(pc *perlConn) {
	for {
		m, err := pc.next(time.Hour)
		if err != nil {
			return
		}
		if len(m) == 1 {
			if name, ok := wire.AsString(m[0]); ok {
				select {
				case s.echoes <- name:
				default:
				}
			}
			continue
		}
		switch tagOf(m) {
		case wire.NodeMsgTagGFound:
			if len(m) == 4 {
				node, _ := wire.AsString(m[2])
				s.mu.Lock()
				s.found[node] = m[3]
				s.mu.Unlock()
			}
		case wire.NodeMsgTagExpect:
			if id, ok := wire.AsString(m[2]); ok {
				s.mu.Lock()
				s.expects[id] = true
				s.mu.Unlock()
			}
		case wire.NodeMsgTagSnd:
			if err := <-goScript(s.id, func() { pc.answerSnd(m) }); err != nil {
				s.fail(err)
			}
		case "mon1", "kil0":
			s.onMonitorMsg(pc, m)
		default:
			if s.global {
				s.onGlobalMsg(pc, m)
			}
		}
	}
}

// connectTo opens data connection number n from the node to node the
// Perl way, and returns what the target's init function wrote
// (sim::hello: "hello from NODE"). A slave finds node with g_find at its
// seed and dials it for messaging (unless it is the seed, seed set); a
// global takes node's address from what it was told ('l) and uses its
// connection to node.
func (s *scriptedPerl) connectTo(node string, n int, seed bool) (string, error) {
	p := s.p
	var got string
	err := <-goScript(s.id, func() {
		var addrs []string
		var mc *perlConn
		if s.global {
			addrs, _ = s.knows(node)
			s.mu.Lock()
			mc = s.peers[node]
			s.mu.Unlock()
			if len(addrs) == 0 || mc == nil {
				scriptFail("global %s: %s's listeners %v, connected %v", s.id, node, addrs, mc != nil)
			}
		} else {
			s.mu.Lock()
			pc := s.pc
			delete(s.found, node)
			s.mu.Unlock()
			if pc == nil {
				scriptFail("no connection to its seed")
			}
			s.send(pc, fmt.Sprintf(`["","g_find",%q]`, node))
			for range 200 {
				if f := s.foundOf(node); f != nil {
					addrs = strList(f)
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
			if len(addrs) == 0 {
				scriptFail("g_find %s: %v", node, s.foundOf(node))
			}
			mc = pc
			if !seed {
				// A Perl node uses the connection it has to node, or
				// opens one.
				s.mu.Lock()
				mc = s.peers[node]
				s.mu.Unlock()
				if mc == nil {
					mc = p.mustHandshake(p.dial(addrs[0]), perlHS{role: perlDialed})
					if !s.register(mc) {
						scriptFail("a second connection to %s", node)
					}
					go func() {
						s.serveMsgs(mc)
						s.mu.Lock()
						s.dropPeerLocked(node, mc)
						s.mu.Unlock()
					}()
				}
			}
		}
		id := fmt.Sprintf("%d@%s", n, s.id)
		rt := fmt.Sprintf("rt%d", n)
		s.send(mc, fmt.Sprintf(`["","AnyEvent::MP::DataConn::_expect",%q,"%s#dc%d",10,"sim::hello"]`, id, s.id, n),
			fmt.Sprintf(`["","snd","%s#%s"]`, s.id, rt))
		for echo := ""; echo != rt; {
			select {
			case echo = <-s.echoes:
			case <-time.After(perlStepLimit):
				scriptFail("no answer to the round trip with %s", node)
			}
		}
		dc := p.mustHandshake(p.dial(addrs[0]), perlHS{role: perlDataDialed, dataconnID: id})
		dc.raw.SetReadDeadline(time.Now().Add(perlStepLimit))
		b, err := io.ReadAll(dc.r)
		if err != nil {
			scriptFail("data connection to %s: %v after %q", node, err, b)
		}
		got = string(b)
		dc.raw.Close()
	})
	return got, err
}
