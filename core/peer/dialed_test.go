package peer

import (
	"errors"
	"strings"
	"testing"
)

// A dialed address that authenticates as the node dialed passes; any
// other node ID is ErrWrongPeer, naming the address and both IDs.
func TestCheckDialed(t *testing.T) {
	if err := CheckDialed("b:1", "b", "b"); err != nil {
		t.Fatalf("right peer: %v", err)
	}
	err := CheckDialed("b:1", "b", "c")
	if !errors.Is(err, ErrWrongPeer) {
		t.Fatalf("wrong peer: %v, want ErrWrongPeer", err)
	}
	for _, s := range []string{"b:1", `"c"`, `"b"`} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("%q does not name %s", err, s)
		}
	}
}
