package perlrc

import (
	"os"
	"reflect"
	"strings"
	"testing"
)

// TestReadmeSeedProfile parses the Perl profile that README.md's Perl
// section shows for a Perl node taking a Go node as its seed, so that the
// README shows a file this package (and so the key names Perl uses, as
// the recorded files of testdata have them) reads as documented.
func TestReadmeSeedProfile(t *testing.T) {
	data, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	i := strings.Index(s, "## Joining a Perl AnyEvent::MP network")
	if i < 0 {
		t.Fatal("README.md has no Perl section")
	}
	s = s[i:]
	j := strings.Index(s, "```json\n")
	if j < 0 {
		t.Fatal("the Perl section shows no JSON profile")
	}
	s = s[j+len("```json\n"):]
	block := s[:strings.Index(s, "```")]
	p, err := Parse([]byte(block), "README.md", "perlnode")
	if err != nil {
		t.Fatalf("the README's profile: %v", err)
	}
	if want := []string{"goseedhost:4040"}; !reflect.DeepEqual(p.Seeds, want) {
		t.Errorf("seeds %q, want %q", p.Seeds, want)
	}
	if want := []string{"*:*"}; !reflect.DeepEqual(p.Binds, want) {
		t.Errorf("binds %q, want %q", p.Binds, want)
	}
	if !p.HasSecret || string(p.Secret) != "the secret" {
		t.Errorf("secret %q (has %v), want the README's", p.Secret, p.HasSecret)
	}
}
