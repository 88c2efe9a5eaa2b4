package transport_test

import (
	"context"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/aemp-go/dataconn/core/wire"
	"github.com/aemp-go/dataconn/tcp"
	"github.com/aemp-go/dataconn/transport"
)

// TestPerlTCPReplay runs every replay of perl_test.go (the transcripts of
// real Perl AnyEvent::MP 2.02 sessions, TLS with a Perl-style PEM
// included) over real TCP sockets on 127.0.0.1, with the scripted Perl node
// on the other end of every connection.
func TestPerlTCPReplay(t *testing.T) {
	for _, s := range perlScenarios() {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			onTCP(t, s.run)
		})
	}
}

// BenchmarkPerlTCPDataConnSetup measures ConnectTo to the scripted Perl
// node over loopback TCP: the Perl flow (_expect, snd round trip on the
// messaging connection, then a dial and an aemp-dataconn handshake), with
// hmac_sha3_512 and with TLS (tls_sha3_512, one Perl-style PEM) on a warm
// messaging connection. One op is a whole set-up plus a 1-byte write and
// the Perl side's close.
func BenchmarkPerlTCPDataConnSetup(b *testing.B) {
	for _, withTLS := range []bool{false, true} {
		name := "hmac"
		if withTLS {
			name = "tls"
		}
		b.Run(name, func(b *testing.B) {
			nw := tcp.New()
			e := &perlEnv{goNet: nw, perlNet: nw, goAddr: "127.0.0.1:0", perlAddr: "127.0.0.1:0"}
			var tlsCfg *transport.TLSConfig
			if withTLS {
				tlsCfg = perlTLSConfig(b, "B")
			}
			g := e.goNode(b, false, func(c *transport.Config) { c.TLS = tlsCfg })
			p := e.perl(b, "B", true)
			p.tls = tlsCfg
			g.AddPeer("B", p.addr)
			stop := make(chan struct{})
			script := goScript("B", func() {
				pc := p.mustHandshake(p.nextConn(), perlHS{role: perlAccepted})
				for {
					m, err := pc.next(time.Hour)
					if err != nil {
						select {
						case <-stop:
							return
						default:
							scriptFail("messaging: %v", err)
						}
					}
					switch tagOf(m) {
					case wire.NodeMsgTagSnd:
						pc.answerSnd(m)
						dc := p.mustHandshake(p.nextConn(), perlHS{role: perlAccepted})
						dc.readAll()
						dc.close()
					}
				}
			})
			ctx := context.Background()
			one := []byte{1}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				c, err := g.ConnectTo(ctx, "B", 5*time.Second, "main::receiver")
				if err != nil {
					b.Fatal(err)
				}
				c.Write(one)
				closeWrite(c)
				c.SetReadDeadline(time.Now().Add(perlStepLimit))
				io.Copy(io.Discard, c)
				c.Close()
			}
			b.StopTimer()
			close(stop)
			g.Close()
			waitScript(b, script)
		})
	}
}

// TestPerlTCPLargeGoToPerl: issue 15's "Go → Perl ... 200 MB" over real
// TCP: json_only.txt's flow with a 200 MiB payload, streamed, checked by
// length and SHA-256 on the scripted Perl side, with hmac_sha3_512 and
// with TLS.
func TestPerlTCPLargeGoToPerl(t *testing.T) {
	for _, withTLS := range []bool{false, true} {
		t.Run(fmt.Sprintf("tls=%v", withTLS), func(t *testing.T) {
			onTCP(t, replayGoToPerl(goToPerl{file: "json_only.txt", timeout: 3 * time.Second,
				data: []any{"hello", int64(42)}, tls: withTLS, size: 200 << 20}))
		})
	}
}
