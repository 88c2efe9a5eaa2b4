package handshake

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha3"
	"encoding/hex"
	"errors"
	"hash"
	"strings"
	"sync"
	"testing"

	"github.com/aemp-go/dataconn/core/wire"
)

// A MAC made from a MACKey is crypto/hmac's HMAC-SHA3-512, for keys
// shorter than, as long as and longer than the block (72 bytes: a longer
// key is hashed first) and messages around the block size and past the
// message buffer of a machine; making it leaves the key as it was.
func TestMACKeyIsHMAC(t *testing.T) {
	for _, kl := range []int{0, 1, 6, 71, 72, 73, 200} {
		secret := []byte(strings.Repeat("k", kl))
		for i := range secret {
			secret[i] += byte(i)
		}
		k := NewMACKey(secret)
		m := &macer{key: k}
		for _, ml := range []int{0, 1, 71, 72, 73, 500, 2000} {
			msg := bytes.Repeat([]byte{'m', 0x80}, ml)[:ml]
			ref := hmac.New(func() hash.Hash { return sha3.New512() }, secret)
			ref.Write(msg)
			want := ref.Sum(nil)
			for range 2 {
				m.msg = msg
				if got := m.hexMAC(); got != hex.EncodeToString(want) {
					t.Fatalf("key %d bytes, message %d bytes: MAC %x, crypto/hmac %x", kl, ml, got, want)
				}
			}
		}
	}
}

// Config.MACKey is used only for the secret it was prepared for: a key of
// another secret changes nothing (the machine prepares its own), so the
// handshake's outcome is the secret's alone.
func TestMACKeyOfOtherSecretIgnored(t *testing.T) {
	other := NewMACKey([]byte("another secret"))
	right := NewMACKey(testSecret)
	for _, tc := range []struct {
		name   string
		key    *MACKey
		secret []byte
		ok     bool
	}{
		{"shared key", right, testSecret, true},
		{"key of another secret", other, testSecret, true},
		{"right key, wrong secret", right, []byte("wrong"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, method := range []string{AuthHMACCB, wire.AuthHMAC} {
				a, b := cfgNode("A"), cfgNode("B")
				a.AcceptAuths, a.OfferAuths = []string{method}, []string{method}
				b.AcceptAuths, b.OfferAuths = []string{method}, []string{method}
				a.MACKey, a.Secret = tc.key, tc.secret
				b.MACKey = right
				s, err := newSim(a, b, "nonce-a", "nonce-b")
				if err != nil {
					t.Fatal(err)
				}
				if err := s.run(all); err != nil {
					t.Fatal(err)
				}
				if tc.ok && (s.a.err != nil || s.b.err != nil) {
					t.Fatalf("%s: %v / %v", method, s.a.err, s.b.err)
				}
				if !tc.ok && !errors.Is(s.b.err, ErrAuthFailed) {
					t.Fatalf("%s: B accepted A with the wrong secret: %v", method, s.b.err)
				}
			}
		})
	}
}

// One MACKey serves machines on many goroutines at once (run with -race).
func TestMACKeySharedAcrossGoroutines(t *testing.T) {
	k := NewMACKey(testSecret)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 20 {
				a, b := cbConfigs()
				a.MACKey, b.MACKey = k, k
				s, err := newSim(a, b, "nonce-a"+strings.Repeat("x", g), "nonce-b"+strings.Repeat("y", i))
				if err == nil {
					err = s.run(all)
				}
				if err == nil && (s.a.err != nil || s.b.err != nil) {
					err = errors.Join(s.a.err, s.b.err)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// BenchmarkMAC compares one hmac_sha3_512_cb MAC over greeting lines of
// the size of a data connection's, from a shared MACKey, with the secret
// prepared for each MAC (as AuthDataCB does).
func BenchmarkMAC(b *testing.B) {
	l1 := "aemp-dataconn;1;a;hmac_sha3_512_cb,tls_sha3_512,hmac_sha3_512;msgpack,json;provider=aemp-go/0.1;aempgo=1;peeraddr=127.0.0.1:46531;dataconn_id=hPmHRhEgAPyB9XiniF4ddA@a"
	r1 := "aemp;1;b;hmac_sha3_512_cb,tls_sha3_512,hmac_sha3_512;msgpack,json;provider=aemp-go/0.1;aempgo=1;peeraddr=127.0.0.1:60402;aempgo_dcw=256;dcm=1"
	l2, r2 := strings.Repeat("n", 88), strings.Repeat("N", 88)
	m := &macer{key: NewMACKey(testSecret)}
	b.Run("shared-key", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			authDataCB(m, "a", "b", nil, l1, l2, r1, r2)
		}
	})
	b.Run("key-per-mac", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			AuthDataCB(testSecret, "a", "b", nil, l1, l2, r1, r2)
		}
	})
}
