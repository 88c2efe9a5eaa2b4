package rendezvous

import (
	"strings"
	"time"
)

// Redialing a data connection's dial that failed without the acceptor
// acting on it. During an honest burst a listener whose backlog
// overflowed refuses new connections on some stacks (memnet, BSD), and a
// listener at its handshake cap may drop a connection it has not read
// yet, so that the initiator sees the stream close before the acceptor's
// greeting (handshake.Error's Unanswered: the acceptor did nothing with
// it). Such a dial is made again, with a doubling backoff, instead of
// failing the set-up: a refused one for up to RedialRefusedFor, an
// unanswered one for up to RedialUnansweredFor (counted from the first
// failure of that address), always within the set-up's own timeout. A
// refusal the acceptor answers (a wrong secret, TLS required) still fails
// at once.
const (
	// RedialRefusedFor bounds the redials of a refused connection.
	RedialRefusedFor = time.Second
	// RedialUnansweredFor bounds the redials of an unanswered one: far
	// beyond what a busy listener makes an honest initiator wait (a
	// handshake cap frees slots within a quarter of the handshake
	// timeout), and short enough that a target that never answers fails
	// with its cause rather than the timeout (the fast flow falls back
	// to the round trip once, so twice this, well within the default
	// 10 s).
	RedialUnansweredFor = 3 * time.Second
	// RedialFirst is the first backoff; each next one doubles, up to
	// RedialMaxDelay.
	RedialFirst    = 5 * time.Millisecond
	RedialMaxDelay = 100 * time.Millisecond
)

// DialFault is what the transport saw of a failed dial, as the redial
// rule reads it.
type DialFault uint8

const (
	// DialOther: any other failure; the dial counts as failed.
	DialOther DialFault = iota
	// DialRefused: the connection was refused (ECONNREFUSED).
	DialRefused
	// DialUnanswered: the stream closed before the acceptor's greeting
	// (handshake.Error.Unanswered).
	DialUnanswered
)

// rvRedial is the backoff of one address of a dial plan that is being
// redialed (it stays in flight in the plan meanwhile).
type rvRedial struct {
	addr  string
	since time.Time // its first failure
	delay time.Duration
}

// redialTimer keys the TimerRedial of addr in the plan of id: its ID is
// "ID ADDR".
func redialTimer(id, addr string) rvTimerKey { return idTimer(TimerRedial, id+" "+addr) }

// DialFaulted reports that the dial of addr for id failed with err, as
// fault: a refused or unanswered dial is made again after a backoff
// (TimerRedial, then Dial) while its bound allows; otherwise, or for
// DialOther, it is DialFailed.
func (r *Machine) DialFaulted(now time.Time, id, addr string, fault DialFault, err error) {
	r.now = now
	if p := r.planOf(id); p != nil && fault != DialOther && p.Dialing(addr) {
		limit := RedialRefusedFor
		if fault == DialUnanswered {
			limit = RedialUnansweredFor
		}
		i := p.redialOf(addr)
		if i < 0 {
			p.redials = append(p.redials, rvRedial{addr: addr, since: now, delay: RedialFirst})
			i = len(p.redials) - 1
		}
		rd := &p.redials[i]
		if now.Sub(rd.since)+rd.delay <= limit {
			r.timers.Set(redialTimer(id, addr), now.Add(rd.delay))
			rd.delay = min(2*rd.delay, RedialMaxDelay)
			return
		}
		p.endRedial(r, addr)
	}
	r.DialFailed(now, id, addr, err)
}

// redialDue dials again the address of a TimerRedial that fell due.
func (r *Machine) redialDue(key string) {
	id, addr, _ := strings.Cut(key, " ")
	if p := r.planOf(id); p != nil && p.Dialing(addr) {
		r.emit(Dial{ID: p.id, Addr: addr, Node: p.node})
	}
}

func (p *rvDialPlan) redialOf(addr string) int {
	for i := range p.redials {
		if p.redials[i].addr == addr {
			return i
		}
	}
	return -1
}

// endRedial forgets the backoff of addr (its dial ended).
func (p *rvDialPlan) endRedial(r *Machine, addr string) {
	if i := p.redialOf(addr); i >= 0 {
		r.timers.Stop(redialTimer(p.id, addr))
		p.redials = append(p.redials[:i], p.redials[i+1:]...)
	}
}

// stopRedials stops every redial of p (its set-up ended).
func (r *Machine) stopRedials(p *rvDialPlan) {
	if p == nil {
		return
	}
	for _, rd := range p.redials {
		r.timers.Stop(redialTimer(p.id, rd.addr))
	}
	p.redials = nil
}
