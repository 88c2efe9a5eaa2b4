package rendezvous

import (
	"testing"

	"github.com/aemp-go/dataconn/core/wire"
)

func TestClassifyKillReason(t *testing.T) {
	for _, c := range []struct {
		msg  string
		want error
	}{
		{"B: unable to establish connection within 5 seconds", ErrTimeout},
		{"B: no listeners found", ErrNoListeners},
		{`B: no init function "main::x"`, ErrNoInitFunc},
		{"B: context canceled", ErrCancelled},
		{"B: data connection from A not established within 3 seconds", ErrKilled},
		{"", ErrKilled},
		{"die: something else", ErrKilled},
	} {
		if got := ClassifyKillReason(wire.DataConnReason("%s", c.msg)); got != c.want {
			t.Errorf("ClassifyKillReason(%q) = %v, want %v", c.msg, got, c.want)
		}
	}
	if got := ClassifyKillReason(nil); got != ErrKilled {
		t.Errorf("ClassifyKillReason(nil) = %v, want ErrKilled", got)
	}
}
