package fuzz

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/aemp-go/dataconn/core/handshake"
	"github.com/aemp-go/dataconn/core/wire"
)

var hsT0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// hsRules are the sentinels a failed handshake may name.
var hsRules = []error{
	handshake.ErrVersionMismatch, handshake.ErrUnparsableGreeting, handshake.ErrEchoAttack,
	handshake.ErrNoCommonAuth, handshake.ErrNoCommonFraming, handshake.ErrAuthFailed,
	handshake.ErrNoTLSNoSecret, handshake.ErrTLSRequired, handshake.ErrLineTooLong,
	handshake.ErrTimeout, handshake.ErrSelfConnect, handshake.ErrAuthNotOffered,
	handshake.ErrTLSFailed, handshake.ErrPeerClosed, handshake.ErrEarlyData, handshake.ErrBadConfig,
}

func checkHSError(t *testing.T, err error) {
	t.Helper()
	var he *handshake.Error
	if !errors.As(err, &he) {
		t.Fatalf("handshake failed with untyped error %T: %v", err, err)
	}
	for _, r := range hsRules {
		if errors.Is(err, r) {
			if he.Error() == "" {
				t.Fatalf("empty error text for rule %v", r)
			}
			return
		}
	}
	t.Fatalf("handshake error %v names no known rule", err)
}

// hsSide drives one handshake machine the way the transport driver does,
// but in memory: writes go to out, TLS requests are answered at once.
type hsSide struct {
	t       *testing.T
	m       *handshake.Machine
	out     []byte // bytes written to the other side, not yet delivered
	failTLS bool
	done    *handshake.Result
	err     error
	refeed  []byte // StartTLS pending bytes, re-fed after TLSEstablished
}

// pump drains the machine's actions and checks the action protocol.
func (s *hsSide) pump(now time.Time) {
	for guard := 0; guard < 64; guard++ {
		a := s.m.Poll()
		if a == nil {
			if s.m.Ended() != s.m.Deadline().IsZero() {
				s.t.Fatalf("Ended()=%v but Deadline()=%v", s.m.Ended(), s.m.Deadline())
			}
			if s.m.Ended() && s.done == nil && s.err == nil {
				s.t.Fatal("machine ended without a Done or Failed action")
			}
			return
		}
		if s.done != nil || s.err != nil {
			s.t.Fatalf("action %T after the final action", a)
		}
		switch a := a.(type) {
		case handshake.Write:
			s.out = append(s.out, a.Data...)
		case handshake.StartTLS:
			if s.failTLS {
				s.m.TLSFailed(now, errors.New("fuzz: TLS refused"))
				continue
			}
			s.m.TLSEstablished(now, handshake.TLSInfo{Exporter: []byte("exporter")})
			if len(a.Pending) > 0 {
				p := bytes.Clone(a.Pending)
				s.m.Receive(now, p)
			}
		case handshake.PeerGreeting:
			s.m.SendGreeting(now, []wire.KV{{Key: "x", Value: "y"}})
		case handshake.Done:
			if a.Result == nil {
				s.t.Fatal("Done without result")
			}
			s.done = a.Result
		case handshake.Failed:
			checkHSError(s.t, a.Err)
			s.err = a.Err
		default:
			s.t.Fatalf("unknown action %T", a)
		}
	}
	s.t.Fatal("machine produced more than 64 actions for one input")
}

// feed delivers p in fuzz-chosen chunks.
func (s *hsSide) feed(now time.Time, p []byte, ch *chunker) {
	for len(p) > 0 && !s.m.Ended() {
		n := ch.next(len(p))
		s.m.Receive(now, p[:n])
		p = p[n:]
		s.pump(now)
	}
}

// FuzzHandshake feeds a handshake machine arbitrary peer bytes in
// arbitrary chunks, either raw (bit 0 of flags clear) or as the output of
// an honest peer machine with one byte tampered and extra bytes appended
// (bit 0 set). It checks that the machine never panics, that it ends
// Done or Failed (typed error) or waits with a non-zero deadline, that a
// tampered handshake byte never yields Done, that a waiting machine
// holds no more than 4096 bytes of an unfinished line (1 MiB without LF
// fails with ErrLineTooLong within 4096 bytes), and that the deadline,
// when reached, fails it with handshake.ErrTimeout.
func FuzzHandshake(f *testing.F) {
	f.Add(uint8(0x01), []byte("s3cr3t"), []byte{}, []byte{}, uint16(0), uint8(0), uint8(0))
	f.Add(uint8(0x13), []byte("s3cr3t"), []byte("after-auth"), []byte{3, 200, 1}, uint16(0), uint8(0), uint8(1))
	f.Add(uint8(0x49), []byte("s3cr3t"), []byte{}, []byte{0}, uint16(40), uint8(0x20), uint8(2))
	f.Add(uint8(0x00), []byte("s3cr3t"), []byte("aemp;1;B;hmac_sha3_512;json\nnonce\nhmac_sha3_512;00;json\n"), []byte{5}, uint16(0), uint8(0), uint8(0))
	f.Fuzz(func(t *testing.T, flags uint8, secret, peer, chunks []byte, tamperAt uint16, tamperXor uint8, end uint8) {
		cfg := handshake.Config{
			NodeID:        "A",
			Secret:        secret,
			TLS:           flags&0x02 != 0,
			TLSRequired:   flags&0x06 == 0x06,
			DeferGreeting: flags&0x08 != 0,
			Timeout:       30 * time.Second,
		}
		if flags&0x40 != 0 {
			cfg.Protocol = wire.ProtocolDataConn
		}
		if end&0x10 != 0 {
			cfg.AcceptAuths = []string{wire.AuthTLS, wire.AuthHMAC, wire.AuthTLSAnon, wire.AuthCleartext}
		}
		m, err := handshake.New(cfg, "nonce-of-A", hsT0)
		if err != nil {
			t.Fatalf("valid config refused: %v", err)
		}
		me := &hsSide{t: t, m: m, failTLS: flags&0x20 != 0 && flags&0x02 != 0}
		me.pump(hsT0)
		ch := &chunker{sizes: chunks}
		now := hsT0
		tampered := false
		if flags&0x01 == 0 {
			// Raw peer bytes.
			me.out = nil
			me.feed(now, peer, ch)
		} else {
			pcfg := handshake.Config{NodeID: "B", Secret: secret, TLS: flags&0x10 != 0, Timeout: 30 * time.Second}
			if flags&0x80 != 0 {
				pcfg.Protocol = wire.ProtocolDataConn
			}
			pm, err := handshake.New(pcfg, "nonce-of-B", hsT0)
			if err != nil {
				t.Fatalf("valid peer config refused: %v", err)
			}
			pe := &hsSide{t: t, m: pm}
			pe.pump(hsT0)
			sent := 0 // peer handshake bytes delivered to me so far
			for round := 0; round < 16 && (len(me.out) > 0 || len(pe.out) > 0); round++ {
				now = now.Add(time.Millisecond)
				toPeer := me.out
				me.out = nil
				pe.feed(now, toPeer, &chunker{})
				toMe := pe.out
				pe.out = nil
				if tamperXor != 0 && int(tamperAt) >= sent && int(tamperAt) < sent+len(toMe) {
					toMe = bytes.Clone(toMe)
					toMe[int(tamperAt)-sent] ^= tamperXor
					tampered = true
				}
				sent += len(toMe)
				if pe.m.Ended() && len(peer) > 0 {
					toMe = append(toMe, peer...)
					peer = nil
				}
				me.feed(now, toMe, ch)
			}
			if tampered && me.done != nil {
				t.Fatalf("handshake succeeded although peer byte %d was tampered", tamperAt)
			}
			if !tampered && me.done != nil && pe.done != nil {
				if me.done.SendFraming != pe.done.RecvFraming || me.done.RecvFraming != pe.done.SendFraming ||
					me.done.SentAuth != pe.done.PeerAuth || me.done.PeerLines != pe.done.LocalLines {
					t.Fatalf("results disagree: %+v vs %+v", me.done, pe.done)
				}
			}
		}
		if me.done != nil {
			l1, l2 := m.LocalLines()
			if me.done.LocalLines != [2]string{l1, l2} || me.done.PeerNodeID != me.done.Peer.NodeID || me.done.PeerNodeID == "A" {
				t.Fatalf("inconsistent result %+v", me.done)
			}
			return
		}
		if me.err != nil {
			return
		}
		// Still waiting: the deadline must be set.
		dl := m.Deadline()
		if dl.IsZero() || !dl.After(hsT0) {
			t.Fatalf("waiting machine has deadline %v", dl)
		}
		switch end & 3 {
		case 1:
			m.Tick(dl.Add(-time.Nanosecond))
			me.pump(dl)
			if m.Ended() {
				t.Fatal("machine ended before its deadline")
			}
			m.Tick(dl)
			me.pump(dl)
			if !errors.Is(me.err, handshake.ErrTimeout) {
				t.Fatalf("at the deadline: %v, want handshake.ErrTimeout", me.err)
			}
		case 2:
			m.PeerClosed(now, nil)
			me.pump(now)
			if !errors.Is(me.err, handshake.ErrPeerClosed) {
				t.Fatalf("after EOF: %v, want ErrPeerClosed", me.err)
			}
		default:
			// 1 MiB without LF must fail with ErrLineTooLong before 4 KiB.
			flood := bytes.Repeat([]byte{'x'}, 1<<20)
			fed, before := 0, 0
			for fed < len(flood) && !m.Ended() {
				n := min(ch.next(len(flood)-fed), 1000)
				m.Receive(now, flood[fed:fed+n])
				before = fed
				fed += n
				me.pump(now)
			}
			if !errors.Is(me.err, handshake.ErrLineTooLong) {
				t.Fatalf("after a flood without LF: %v, want ErrLineTooLong", me.err)
			}
			// The machine accepted `before` bytes of the line without
			// failing: that is what it held.
			if before >= wire.MaxLineLen {
				t.Fatalf("line too long detected only after %d bytes", before)
			}
		}
	})
}
