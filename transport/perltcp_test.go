package transport_test

import "testing"

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
