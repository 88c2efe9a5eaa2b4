package quic_test

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// memPackets is an in-memory UDP network for tests in a testing/synctest
// bubble: every datagram reaches its destination socket exactly delay
// after it was sent (one timer per destination keeps them in order), so
// quic-go's own timers and the link both run in virtual time, and a
// set-up's duration is a whole number of one-way delays when nothing
// else waits. Sockets are plain net.PacketConns (no OOB, no GSO), so
// quic-go takes its basic path.
type memPackets struct {
	delay time.Duration

	mu       sync.Mutex
	socks    map[netip.AddrPort]*memSock
	nextPort uint16
	sent     int // datagrams handed to the link
	dropped  int // datagrams dropped at a full queue or a missing socket
	// filter, if set, rewrites each datagram sent from one socket to
	// another (nil drops it): hostile tests play a peer on the path.
	filter func(from, to netip.AddrPort, p []byte) []byte
}

// setFilter sets the link's filter (see memPackets.filter).
func (m *memPackets) setFilter(f func(from, to netip.AddrPort, p []byte) []byte) {
	m.mu.Lock()
	m.filter = f
	m.mu.Unlock()
}

// memQueue bounds, per socket, the datagrams in flight toward it plus
// those waiting to be read; beyond it datagrams are dropped, as by a full
// router queue.
const memQueue = 4096

func newMemPackets(delay time.Duration) *memPackets {
	return &memPackets{delay: delay, socks: map[netip.AddrPort]*memSock{}, nextPort: 40000}
}

// listen opens a socket at addr ("127.0.0.1:port"; port 0 or addr ""
// picks a free port on 127.0.0.1). It is the listen function of
// quic.NewWithPacketConns.
func (m *memPackets) listen(addr string) (net.PacketConn, error) {
	ap := netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), 0)
	if addr != "" {
		var err error
		if ap, err = netip.ParseAddrPort(addr); err != nil {
			return nil, err
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if ap.Port() == 0 {
		for m.socks[netip.AddrPortFrom(ap.Addr(), m.nextPort)] != nil {
			m.nextPort++
		}
		ap = netip.AddrPortFrom(ap.Addr(), m.nextPort)
		m.nextPort++
	}
	if m.socks[ap] != nil {
		return nil, errors.New("mempackets: address in use")
	}
	s := &memSock{net: m, addr: net.UDPAddrFromAddrPort(ap), notify: make(chan struct{}, 1), done: make(chan struct{})}
	m.socks[ap] = s
	return s, nil
}

// stats returns how many datagrams were sent and dropped so far.
func (m *memPackets) stats() (sent, dropped int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.sent, m.dropped
}

type memDatagram struct {
	due  time.Time
	data []byte
	from *net.UDPAddr
}

// memSock is one socket of a memPackets network.
type memSock struct {
	net    *memPackets
	addr   *net.UDPAddr
	notify chan struct{} // a datagram arrived, the deadline moved, or closed
	done   chan struct{} // closed by Close

	mu       sync.Mutex
	closed   bool
	inflight []memDatagram // on the link toward this socket, in due order
	timer    *time.Timer   // fires at inflight[0].due
	arrived  []memDatagram // waiting for ReadFrom
	deadline time.Time
}

func (s *memSock) wake() {
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

// ReadFrom returns the next datagram that arrived.
func (s *memSock) ReadFrom(p []byte) (int, net.Addr, error) {
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return 0, nil, net.ErrClosed
		}
		if len(s.arrived) > 0 {
			d := s.arrived[0]
			s.arrived[0] = memDatagram{}
			s.arrived = s.arrived[1:]
			s.mu.Unlock()
			return copy(p, d.data), d.from, nil
		}
		var t *time.Timer
		var expire <-chan time.Time
		if !s.deadline.IsZero() {
			wait := time.Until(s.deadline)
			if wait <= 0 {
				s.mu.Unlock()
				return 0, nil, os.ErrDeadlineExceeded
			}
			t = time.NewTimer(wait)
			expire = t.C
		}
		s.mu.Unlock()
		select {
		case <-s.notify:
		case <-expire:
		case <-s.done:
		}
		if t != nil {
			t.Stop()
		}
	}
}

// WriteTo sends a copy of p to addr, to arrive after the link's delay.
func (s *memSock) WriteTo(p []byte, addr net.Addr) (int, error) {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return 0, net.ErrClosed
	}
	ua, ok := addr.(*net.UDPAddr)
	if !ok {
		return 0, errors.New("mempackets: not a UDP address")
	}
	ap := ua.AddrPort()
	ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	m := s.net
	m.mu.Lock()
	dst := m.socks[ap]
	filter := m.filter
	m.sent++
	if dst == nil {
		m.dropped++
	}
	m.mu.Unlock()
	data := append([]byte(nil), p...)
	if filter != nil {
		if data = filter(s.addr.AddrPort(), ap, data); data == nil {
			return len(p), nil
		}
	}
	if dst != nil && !dst.enqueue(memDatagram{due: time.Now().Add(m.delay), data: data, from: s.addr}) {
		m.mu.Lock()
		m.dropped++
		m.mu.Unlock()
	}
	return len(p), nil
}

// enqueue puts d on the link toward s, or reports false when the queue
// is full or s is closed.
func (s *memSock) enqueue(d memDatagram) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || len(s.inflight)+len(s.arrived) >= memQueue {
		return false
	}
	s.inflight = append(s.inflight, d)
	if len(s.inflight) == 1 {
		s.armLocked()
	}
	return true
}

// armLocked starts the timer for the first datagram in flight.
func (s *memSock) armLocked() {
	wait := time.Until(s.inflight[0].due)
	if s.timer == nil {
		s.timer = time.AfterFunc(wait, s.deliver)
	} else {
		s.timer.Reset(wait)
	}
}

// deliver moves the datagrams that are due from the link to the socket.
func (s *memSock) deliver() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	now := time.Now()
	k := 0
	for k < len(s.inflight) && !s.inflight[k].due.After(now) {
		k++
	}
	if k > 0 {
		s.arrived = append(s.arrived, s.inflight[:k]...)
		s.inflight = append(s.inflight[:0], s.inflight[k:]...)
		s.wake()
	}
	if len(s.inflight) > 0 {
		s.armLocked()
	}
}

// Close closes the socket: pending and later reads fail, datagrams in
// flight toward it are dropped.
func (s *memSock) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return net.ErrClosed
	}
	s.closed = true
	if s.timer != nil {
		s.timer.Stop()
	}
	s.inflight, s.arrived = nil, nil
	close(s.done)
	s.mu.Unlock()
	m := s.net
	m.mu.Lock()
	ap := s.addr.AddrPort()
	if m.socks[ap] == s {
		delete(m.socks, ap)
	}
	m.mu.Unlock()
	return nil
}

func (s *memSock) LocalAddr() net.Addr { return s.addr }

func (s *memSock) SetDeadline(t time.Time) error { return s.SetReadDeadline(t) }

func (s *memSock) SetReadDeadline(t time.Time) error {
	s.mu.Lock()
	s.deadline = t
	s.mu.Unlock()
	s.wake()
	return nil
}

// SetWriteDeadline does nothing: writes never block.
func (s *memSock) SetWriteDeadline(time.Time) error { return nil }

// SetReadBuffer and SetWriteBuffer accept any size (the queue is
// memQueue datagrams), so quic-go does not warn about buffer sizes.
func (s *memSock) SetReadBuffer(int) error  { return nil }
func (s *memSock) SetWriteBuffer(int) error { return nil }

// TestMemPackets: a datagram arrives intact exactly one delay after it
// was sent, a burst keeps its order, a deadline and Close end a blocked
// read, a full queue drops, and a closed socket's address is free again.
func TestMemPackets(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const delay = 7 * time.Millisecond
		m := newMemPackets(delay)
		open := func(addr string) net.PacketConn {
			t.Helper()
			c, err := m.listen(addr)
			if err != nil {
				t.Fatal(err)
			}
			return c
		}
		a, b := open(""), open("127.0.0.1:9")
		if _, err := m.listen("127.0.0.1:9"); err == nil {
			t.Fatal("a second socket on 127.0.0.1:9 was opened")
		}
		buf := make([]byte, 64)
		start := time.Now()
		for i := range 5 {
			if _, err := a.WriteTo([]byte{byte(i)}, b.LocalAddr()); err != nil {
				t.Fatal(err)
			}
			time.Sleep(time.Millisecond)
		}
		for i := range 5 {
			n, from, err := b.ReadFrom(buf)
			if err != nil || n != 1 || buf[0] != byte(i) || from.String() != a.LocalAddr().String() {
				t.Fatalf("read %d: %v %v from %v, want [%d] from %v", i, buf[:n], err, from, i, a.LocalAddr())
			}
			if got, want := time.Since(start), delay+time.Duration(i)*time.Millisecond; got != want {
				t.Fatalf("datagram %d arrived after %v, want exactly %v", i, got, want)
			}
		}
		_ = b.SetReadDeadline(time.Now().Add(time.Second))
		if _, _, err := b.ReadFrom(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("read past the deadline: %v, want os.ErrDeadlineExceeded", err)
		}
		_ = b.SetReadDeadline(time.Time{})
		for range memQueue + 10 {
			_, _ = a.WriteTo([]byte{1}, b.LocalAddr())
		}
		if sent, dropped := m.stats(); sent != 5+memQueue+10 || dropped != 10 {
			t.Fatalf("sent %d, dropped %d; want %d and 10", sent, dropped, 5+memQueue+10)
		}
		go func() {
			time.Sleep(time.Hour)
			_ = b.Close()
		}()
		n := 0
		for {
			if _, _, err := b.ReadFrom(buf); err != nil {
				if !errors.Is(err, net.ErrClosed) {
					t.Fatalf("read after Close: %v, want net.ErrClosed", err)
				}
				break
			}
			n++
		}
		if n != memQueue {
			t.Fatalf("read %d queued datagrams, want %d", n, memQueue)
		}
		_ = open("127.0.0.1:9").Close()
		_ = a.Close()
	})
}
