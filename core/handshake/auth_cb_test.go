package handshake

import (
	"errors"
	"testing"

	"github.com/aemp-go/dataconn/core/wire"
)

func cbConfigs() (Config, Config) {
	a, b := cfgNode("A"), cfgNode("B")
	for _, c := range []*Config{&a, &b} {
		c.AcceptAuths = []string{AuthHMACCB, wire.AuthTLS, wire.AuthHMAC}
		c.OfferAuths = []string{AuthHMACCB, wire.AuthTLS, wire.AuthHMAC}
		c.TLS = true
	}
	return a, b
}

func TestAuthCBChosenAndVerified(t *testing.T) {
	a, b := cbConfigs()
	s, err := newSim(a, b, "nonce-a", "nonce-b")
	if err != nil {
		t.Fatal(err)
	}
	s.exporter = []byte("same-session")
	if err := s.run(all); err != nil {
		t.Fatal(err)
	}
	if s.a.err != nil || s.b.err != nil {
		t.Fatalf("errors: %v / %v", s.a.err, s.b.err)
	}
	if s.a.res.SentAuth != AuthHMACCB || s.b.res.PeerAuth != AuthHMACCB {
		t.Fatalf("methods %s/%s", s.a.res.SentAuth, s.b.res.PeerAuth)
	}
}

// A relay that terminates two TLS sessions and passes the AEMP lines
// between them: each end sees a different exporter. The channel-bound
// method fails on both ends; plain hmac_sha3_512 does not notice.
func TestAuthRelayAttack(t *testing.T) {
	t.Run("hmac_sha3_512_cb refuses", func(t *testing.T) {
		a, b := cbConfigs()
		s, err := newSim(a, b, "nonce-a", "nonce-b")
		if err != nil {
			t.Fatal(err)
		}
		s.exporter, s.exporterB = []byte("session A-M"), []byte("session M-B")
		if err := s.run(all); err != nil {
			t.Fatal(err)
		}
		if !errors.Is(s.a.err, ErrAuthFailed) || !errors.Is(s.b.err, ErrAuthFailed) {
			t.Fatalf("relay not detected: %v / %v", s.a.err, s.b.err)
		}
	})
	t.Run("hmac_sha3_512 is fooled", func(t *testing.T) {
		a, b := cfgNode("A"), cfgNode("B")
		a.TLS, b.TLS = true, true
		a.AcceptAuths, b.AcceptAuths = []string{wire.AuthHMAC}, []string{wire.AuthHMAC}
		s, err := newSim(a, b, "nonce-a", "nonce-b")
		if err != nil {
			t.Fatal(err)
		}
		s.exporter, s.exporterB = []byte("session A-M"), []byte("session M-B")
		if err := s.run(all); err != nil {
			t.Fatal(err)
		}
		if s.a.err != nil || s.b.err != nil {
			t.Fatalf("plain hmac failed unexpectedly: %v / %v", s.a.err, s.b.err)
		}
	})
}

func TestAuthCBBindsRoleAndIDs(t *testing.T) {
	sec := []byte("k")
	l1, l2, r1, r2 := "aemp;1;A;x;json", "n1", "aemp;1;B;x;json", "n2"
	d := AuthDataCB(sec, "A", "B", nil, l1, l2, r1, r2)
	if err := VerifyAuthCB(d, sec, "B", "A", nil, r1, r2, l1, l2); err != nil {
		t.Fatalf("valid line refused: %v", err)
	}
	// Reflected to its author, a different receiver, another exporter, or
	// another secret: refused.
	cases := map[string]error{
		"reflected":      VerifyAuthCB(d, sec, "A", "B", nil, l1, l2, r1, r2),
		"other receiver": VerifyAuthCB(d, sec, "C", "A", nil, r1, r2, l1, l2),
		"other exporter": VerifyAuthCB(d, sec, "B", "A", []byte{1}, r1, r2, l1, l2),
		"other secret":   VerifyAuthCB(d, []byte("j"), "B", "A", nil, r1, r2, l1, l2),
		"empty secret":   VerifyAuthCB(d, nil, "B", "A", nil, r1, r2, l1, l2),
	}
	for name, err := range cases {
		if !errors.Is(err, ErrAuthFailed) {
			t.Errorf("%s: err = %v, want ErrAuthFailed", name, err)
		}
	}
}
