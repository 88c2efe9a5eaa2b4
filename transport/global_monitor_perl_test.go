package transport_test

// The scripted Perl node of the monitor property (global_monitor_prop_test.go):
// a slave of the seed with a listener and a few ports, answering remote
// monitoring as Perl's Kernel does on the wire (monitor.txt): mon1
// registers the connection as a monitor of a port, or is answered at once
// with kil0 no_such_port; mon0 unregisters; kil1 kills the port; a dead
// port sends kil0 with its reason, once, on every connection that
// monitors it.

import (
	"context"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"pgregory.net/rapid"

	"github.com/aemp-go/dataconn/core/wire"
	"github.com/aemp-go/dataconn/memnet"
	"github.com/aemp-go/dataconn/transport"
)

type propPerl struct {
	id   string
	p    *perlNode
	mu   sync.Mutex
	live map[string]bool               // port names
	mons map[string]map[*perlConn]bool // port name -> connections monitoring it
	errs []error

	sendMu sync.Mutex // one writer at a time on any of its connections
}

// send writes msg on pc; a connection that is gone is not an error (its
// peer crashed or closed).
func (pp *propPerl) send(pc *perlConn, msg string) {
	pp.sendMu.Lock()
	defer pp.sendMu.Unlock()
	io.WriteString(pc.w, msg)
}

// startPropPerl starts the Perl node id on its own memnet host with ports
// p0..p(ports-1); it joins the seed as a slave (g_slave with its 'l).
func startPropPerl(t *rapid.T, w *memnet.World, id, seed string, ports int) *propPerl {
	nw := w.Host(id)
	pp := &propPerl{id: id, p: &perlNode{id: id, secret: secret, nw: nw, accept: make(chan net.Conn, 16)},
		live: map[string]bool{}, mons: map[string]map[*perlConn]bool{}}
	for i := range ports {
		pp.live[fmt.Sprintf("p%d", i)] = true
	}
	ln, err := nw.Listen(context.Background(), id+":1")
	if err != nil {
		t.Fatal(err)
	}
	addr := transport.FormatAddr(nw, ln.Addr().String())
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		pp.p.mu.Lock()
		for _, c := range pp.p.conns {
			c.Close()
		}
		pp.p.mu.Unlock()
		wg.Wait()
	})
	serve := func(f func()) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := <-goScript(id, f); err != nil {
				pp.mu.Lock()
				pp.errs = append(pp.errs, err)
				pp.mu.Unlock()
			}
		}()
	}
	serve(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			pp.p.track(c)
			serve(func() {
				pc, err := pp.p.handshake(c, perlHS{role: perlAccepted})
				if err == nil {
					pp.serveMsgs(pc)
				}
			})
		}
	})
	serve(func() {
		pc := pp.p.mustHandshake(pp.p.dial(seedAddr(seed)), perlHS{role: perlDialed})
		pc.send(fmt.Sprintf(`["","g_slave",{"'l":{%q:[%q]}}]`, id, addr))
		pp.serveMsgs(pc)
	})
	return pp
}

// serveMsgs answers the monitoring requests of one connection.
func (pp *propPerl) serveMsgs(pc *perlConn) {
	for {
		m, err := pc.next(time.Hour)
		if err != nil {
			pp.mu.Lock()
			for _, cs := range pp.mons {
				delete(cs, pc)
			}
			pp.mu.Unlock()
			return
		}
		tag := tagOf(m)
		if len(m) < 3 || (tag != "mon1" && tag != "mon0" && tag != "kil1") {
			continue
		}
		name, _ := wire.AsString(m[2])
		switch tag {
		case "mon1":
			pp.mu.Lock()
			live := pp.live[name]
			if live {
				if pp.mons[name] == nil {
					pp.mons[name] = map[*perlConn]bool{}
				}
				pp.mons[name][pc] = true
			}
			pp.mu.Unlock()
			if !live {
				pp.send(pc, jsonMsg("", "kil0", name, "no_such_port", "cannot monitor nonexistent port", pp.id+"#"+name))
			}
		case "mon0":
			pp.mu.Lock()
			delete(pp.mons[name], pc)
			pp.mu.Unlock()
		case "kil1":
			pp.kill(name, m[3:])
		}
	}
}

// kill ends port name with reason: kil0 once to every connection that
// monitors it.
func (pp *propPerl) kill(name string, reason []any) {
	pp.mu.Lock()
	if !pp.live[name] {
		pp.mu.Unlock()
		return
	}
	delete(pp.live, name)
	cs := pp.mons[name]
	delete(pp.mons, name)
	pp.mu.Unlock()
	for pc := range cs {
		pp.send(pc, jsonMsg(append([]any{"", "kil0", name}, reason...)...))
	}
}

func (pp *propPerl) failures() []error {
	pp.mu.Lock()
	defer pp.mu.Unlock()
	return append([]error(nil), pp.errs...)
}
