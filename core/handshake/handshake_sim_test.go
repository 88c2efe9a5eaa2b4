package handshake

import (
	"bytes"
	"fmt"
	"time"
)

// simSide is one end of two handshake machines wired back to back.
type simSide struct {
	name     string
	h        *Machine
	inbox    []byte // bytes in flight towards this side
	tlsReq   *StartTLS
	tlsUp    bool
	res      *Result
	err      error
	pg       *PeerGreeting
	payload  []byte // stream bytes this side writes right after Done
	stream   []byte // bytes this side received after Done (Pending + later)
	starts   int    // StartTLS actions seen
	authLine []byte // the auth line this side wrote
	writes   int
}

func (x *simSide) ended() bool { return x.res != nil || x.err != nil }

// sim runs two machines over a lossless, reordering-free byte pipe with
// transparent "TLS" (StartTLS just marks the pipe; both sides are told
// TLSEstablished once both asked for it).
type sim struct {
	a, b *simSide
	now  time.Time
	// tamper may rewrite a write of from before it enters the pipe.
	tamper func(from *simSide, data []byte) []byte
	// onPeerGreeting handles the PeerGreeting action (deferred greeting).
	onPeerGreeting func(x *simSide, pg PeerGreeting)
	// exporter is passed in TLSEstablished.
	exporter []byte
	// exporterB, when set, is what side b gets instead (a relay between
	// two TLS sessions).
	exporterB []byte
}

func newSim(ca, cb Config, na, nb string) (*sim, error) {
	ha, err := New(ca, na, t0)
	if err != nil {
		return nil, err
	}
	hb, err := New(cb, nb, t0)
	if err != nil {
		return nil, err
	}
	return &sim{a: &simSide{name: "A", h: ha}, b: &simSide{name: "B", h: hb}, now: t0}, nil
}

func (s *sim) peer(x *simSide) *simSide {
	if x == s.a {
		return s.b
	}
	return s.a
}

// pump drains x's actions into the pipe.
func (s *sim) pump(x *simSide) {
	p := s.peer(x)
	for i := 0; i < 100; i++ {
		act := x.h.Poll()
		if act == nil {
			return
		}
		switch a := act.(type) {
		case Write:
			data := bytes.Clone(a.Data)
			x.writes++
			if x.writes == 2 { // greeting lines, then the auth line
				x.authLine = bytes.Clone(data)
			}
			if s.tamper != nil {
				data = s.tamper(x, data)
			}
			p.inbox = append(p.inbox, data...)
		case StartTLS:
			x.starts++
			x.tlsReq = &a
			// Transparent TLS: what arrived after the nonce line is
			// plaintext of the peer, delivered once TLS is up.
			x.inbox = append(bytes.Clone(a.Pending), x.inbox...)
		case PeerGreeting:
			x.pg = &a
			if s.onPeerGreeting != nil {
				s.onPeerGreeting(x, a)
			}
		case Done:
			x.res = a.Result
			x.stream = append(x.stream, a.Result.Pending...)
			p.inbox = append(p.inbox, x.payload...)
		case Failed:
			x.err = a.Err
		}
	}
	panic("too many actions")
}

// canRecv reports whether x can take bytes now.
func (x *simSide) canRecv() bool {
	return len(x.inbox) > 0 && (x.tlsReq == nil || x.tlsUp)
}

func (s *sim) deliver(x *simSide, n int) {
	chunk := x.inbox[:n]
	x.inbox = x.inbox[n:]
	switch {
	case x.res != nil:
		x.stream = append(x.stream, chunk...)
	case x.err != nil:
	default:
		x.h.Receive(s.now, chunk)
		s.pump(x)
	}
}

// run drives both machines to the end. pick(n) returns a number in
// [0,n): it chooses the side to feed and the chunk size.
func (s *sim) run(pick func(n int) int) error {
	s.pump(s.a)
	s.pump(s.b)
	for step := 0; step < 1_000_000; step++ {
		s.now = s.now.Add(time.Microsecond)
		// TLS comes up once both asked for it.
		if s.a.tlsReq != nil && s.b.tlsReq != nil && !s.a.tlsUp {
			first, second := s.a, s.b
			if pick(2) == 1 {
				first, second = s.b, s.a
			}
			for _, x := range []*simSide{first, second} {
				x.tlsUp = true
				ekm := s.exporter
				if x == s.b && s.exporterB != nil {
					ekm = s.exporterB
				}
				x.h.TLSEstablished(s.now, TLSInfo{Exporter: ekm})
				s.pump(x)
			}
			continue
		}
		var ready []*simSide
		for _, x := range []*simSide{s.a, s.b} {
			if x.canRecv() {
				ready = append(ready, x)
			}
		}
		if len(ready) == 0 {
			stuck := false
			for _, x := range []*simSide{s.a, s.b} {
				if !x.ended() {
					stuck = true
					if s.peer(x).err != nil {
						// The peer gave up and closed the connection.
						x.h.PeerClosed(s.now, nil)
						s.pump(x)
					}
				}
			}
			if !stuck {
				return nil
			}
			if !s.a.ended() && !s.b.ended() {
				return fmt.Errorf("deadlock: neither side can progress")
			}
			continue
		}
		x := ready[pick(len(ready))]
		s.deliver(x, 1+pick(len(x.inbox)))
	}
	return fmt.Errorf("simulation did not finish")
}

// all returns pick functions that deliver everything at once.
func all(n int) int { return n - 1 }
