package handshake

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"testing"

	"github.com/aemp-go/dataconn/core/wire"
)

type authVector struct {
	Description  string `json:"description"`
	SecretHex    string `json:"secret_hex"`
	SecretLen    int    `json:"secret_len"`
	L1           string `json:"lgreeting1"`
	L2           string `json:"lgreeting2"`
	R1           string `json:"rgreeting1"`
	R2           string `json:"rgreeting2"`
	LauthHMAC    string `json:"lauth_hmac_sha3_512"`
	RauthHMAC    string `json:"rauth_hmac_sha3_512"`
	LauthTLS     string `json:"lauth_tls_sha3_512"`
	RauthTLS     string `json:"rauth_tls_sha3_512"`
	Cleartext    string `json:"cleartext_auth"`
	AuthLineHMAC string `json:"auth_line_hmac"`
	secret       []byte
}

func loadAuthVectors(t testing.TB) []authVector {
	t.Helper()
	data, err := os.ReadFile("../../testdata/vectors/auth.json")
	if err != nil {
		t.Fatal(err)
	}
	var vs []authVector
	if err := json.Unmarshal(data, &vs); err != nil {
		t.Fatal(err)
	}
	if len(vs) != 12 {
		t.Fatalf("auth.json: %d cases, want 12", len(vs))
	}
	for i := range vs {
		s, err := hex.DecodeString(vs[i].SecretHex)
		if err != nil || len(s) != vs[i].SecretLen {
			t.Fatalf("%s: bad secret_hex", vs[i].Description)
		}
		vs[i].secret = s
	}
	return vs
}

func TestAuthVectors(t *testing.T) {
	for _, v := range loadAuthVectors(t) {
		t.Run(v.Description, func(t *testing.T) {
			// What the local side sends.
			got, err := AuthData(wire.AuthHMAC, v.secret, v.L1, v.L2, v.R1, v.R2)
			if err != nil || got != v.LauthHMAC {
				t.Errorf("lauth hmac = %q, %v; want %q", got, err, v.LauthHMAC)
			}
			got, err = AuthData(wire.AuthTLS, v.secret, v.L1, v.L2, v.R1, v.R2)
			if err != nil || got != v.LauthTLS {
				t.Errorf("lauth tls = %q, %v; want %q", got, err, v.LauthTLS)
			}
			// What the local side expects = what the remote side sends
			// from its own point of view.
			got, _ = AuthData(wire.AuthHMAC, v.secret, v.R1, v.R2, v.L1, v.L2)
			if got != v.RauthHMAC {
				t.Errorf("rauth hmac = %q; want %q", got, v.RauthHMAC)
			}
			got, _ = AuthData(wire.AuthTLS, v.secret, v.R1, v.R2, v.L1, v.L2)
			if got != v.RauthTLS {
				t.Errorf("rauth tls = %q; want %q", got, v.RauthTLS)
			}
			if hex.EncodeToString(v.secret) != v.Cleartext {
				t.Errorf("cleartext vector inconsistent")
			}

			// Verification from the local side's point of view.
			if len(v.secret) > 0 {
				if err := VerifyAuth(wire.AuthHMAC, v.RauthHMAC, v.secret, v.L1, v.L2, v.R1, v.R2, false); err != nil {
					t.Errorf("verify rauth hmac: %v", err)
				}
				if err := VerifyAuth(wire.AuthCleartext, v.Cleartext, v.secret, v.L1, v.L2, v.R1, v.R2, false); err != nil {
					t.Errorf("verify cleartext: %v", err)
				}
				// Our own lauth must not verify as the peer's (reflection).
				if err := VerifyAuth(wire.AuthHMAC, v.LauthHMAC, v.secret, v.L1, v.L2, v.R1, v.R2, false); !errors.Is(err, ErrAuthFailed) {
					t.Errorf("reflected lauth accepted: %v", err)
				}
				if err := VerifyAuth(wire.AuthHMAC, v.RauthHMAC, append([]byte{'x'}, v.secret...), v.L1, v.L2, v.R1, v.R2, false); !errors.Is(err, ErrAuthFailed) {
					t.Errorf("wrong secret accepted: %v", err)
				}
			} else {
				// Like Perl, an empty secret can never authenticate hmac
				// (Perl refuses to handshake; we refuse to verify too).
				if err := VerifyAuth(wire.AuthHMAC, v.RauthHMAC, v.secret, v.L1, v.L2, v.R1, v.R2, false); !errors.Is(err, ErrAuthFailed) {
					t.Errorf("empty secret hmac verified: %v", err)
				}
				if err := VerifyAuth(wire.AuthCleartext, "", v.secret, v.L1, v.L2, v.R1, v.R2, false); !errors.Is(err, ErrAuthFailed) {
					t.Errorf("empty secret cleartext verified: %v", err)
				}
			}
			if err := VerifyAuth(wire.AuthTLS, v.RauthTLS, v.secret, v.L1, v.L2, v.R1, v.R2, true); err != nil {
				t.Errorf("verify rauth tls: %v", err)
			}
			if err := VerifyAuth(wire.AuthTLS, v.RauthTLS, v.secret, v.L1, v.L2, v.R1, v.R2, false); !errors.Is(err, ErrAuthNotOffered) {
				t.Errorf("tls_sha3_512 without TLS: %v", err)
			}
			// Full auth line as Perl would send it (framing: first of the
			// remote's list Perl supports = cbor here).
			g := wire.ParseGreeting(v.R1)
			if line := wire.AuthHMAC + ";" + v.LauthHMAC + ";" + g.Framings[0]; line != v.AuthLineHMAC {
				t.Errorf("auth line = %q, want %q", line, v.AuthLineHMAC)
			}
		})
	}
}

func TestAuthFlippedByte(t *testing.T) {
	v := loadAuthVectors(t)[0]
	for i := 0; i < len(v.RauthHMAC); i++ {
		b := []byte(v.RauthHMAC)
		b[i] ^= 1
		if err := VerifyAuth(wire.AuthHMAC, string(b), v.secret, v.L1, v.L2, v.R1, v.R2, false); !errors.Is(err, ErrAuthFailed) {
			t.Fatalf("flip at %d accepted: %v", i, err)
		}
	}
	if err := VerifyAuth(wire.AuthHMAC, v.RauthHMAC[:127], v.secret, v.L1, v.L2, v.R1, v.R2, false); !errors.Is(err, ErrAuthFailed) {
		t.Fatalf("truncated accepted: %v", err)
	}
	if err := VerifyAuth(wire.AuthHMAC, v.RauthHMAC+"0", v.secret, v.L1, v.L2, v.R1, v.R2, false); !errors.Is(err, ErrAuthFailed) {
		t.Fatalf("extended accepted: %v", err)
	}
}

func TestAuthMethods(t *testing.T) {
	if d, err := AuthData(wire.AuthTLSAnon, nil, "a", "b", "c", "d"); err != nil || d != "" {
		t.Errorf("tls_anon data = %q, %v", d, err)
	}
	if err := VerifyAuth(wire.AuthTLSAnon, "", nil, "a", "b", "c", "d", true); err != nil {
		t.Errorf("tls_anon with TLS: %v", err)
	}
	if err := VerifyAuth(wire.AuthTLSAnon, "", nil, "a", "b", "c", "d", false); !errors.Is(err, ErrAuthNotOffered) {
		t.Errorf("tls_anon without TLS: %v", err)
	}
	if err := VerifyAuth(wire.AuthTLSAnon, "x", nil, "a", "b", "c", "d", true); !errors.Is(err, ErrAuthFailed) {
		t.Errorf("tls_anon with data: %v", err)
	}
	if _, err := AuthData(wire.AuthCleartext, []byte("s"), "a", "b", "c", "d"); !errors.Is(err, ErrAuthNotOffered) {
		t.Errorf("cleartext is never sent: %v", err)
	}
	if _, err := AuthData("hmac_md6_64_256", []byte("s"), "a", "b", "c", "d"); !errors.Is(err, ErrAuthNotOffered) {
		t.Errorf("unknown method: %v", err)
	}
	if err := VerifyAuth("hmac_md6_64_256", "", []byte("s"), "a", "b", "c", "d", true); !errors.Is(err, ErrAuthNotOffered) {
		t.Errorf("unknown method verify: %v", err)
	}
	var he *Error
	err := VerifyAuth(wire.AuthCleartext, "00", []byte("s"), "a", "b", "c", "d", false)
	if !errors.As(err, &he) || he.Error() != "authentication failure/shared secret mismatch" {
		t.Errorf("error text = %v", err)
	}
}
