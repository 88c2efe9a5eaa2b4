package rendezvous

import (
	"strings"

	"github.com/aemp-go/dataconn/core/wire"
)

// killReasonTexts is the one place kill-reason text is read: the texts a
// data-connection kill carries, the rule each names, and who words it.
// The first entry whose text the message contains wins.
var killReasonTexts = []struct {
	text string
	rule error
}{
	// Perl's DataConn (and ours, rvTimeoutText): the initiator's own
	// timeout, "NODE: unable to establish connection within N seconds".
	{"unable to establish connection within", ErrTimeout},
	// Perl's DataConn (and ours, Connect): neither node has listeners.
	{"no listeners found", ErrNoListeners},
	// A target of this project: "NODE: no init function \"F\"".
	{"no init function", ErrNoInitFunc},
	// A set-up of ours given up by its context: "NODE: context canceled".
	{"context canceled", ErrCancelled},
}

// ClassifyKillReason names the rule a data-connection kill reason (from
// the target, or one of ours) reports, by the table of known texts:
// [ErrTimeout], [ErrNoListeners], [ErrNoInitFunc] or [ErrCancelled]. Any
// other text, an empty one included, is a plain remote kill: ErrKilled.
func ClassifyKillReason(r *wire.KillReason) error {
	if r != nil {
		for _, k := range killReasonTexts {
			if strings.Contains(r.Message, k.text) {
				return k.rule
			}
		}
	}
	return ErrKilled
}
