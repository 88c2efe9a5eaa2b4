package rendezvous

import (
	"errors"
	"flag"
	"fmt"

	"github.com/aemp-go/dataconn/core/handshake"
)

var rewrite = flag.Bool("rewrite", false, "rewrite the expected outputs of testdata/*.txt with what the machine does")

// showErr prints an error with the rule it names: "TEXT (rule: RULE)".
func showErr(err error) string {
	var he *handshake.Error
	var re *Error
	switch {
	case errors.As(err, &he) && he.Rule != nil:
		return fmt.Sprintf("%q (rule: %s)", he.Error(), he.Rule)
	case errors.As(err, &re) && re.Rule == ErrKilled && re.Cause != nil:
		return fmt.Sprintf("%q (rule: %s; the reason names: %s)", re.Error(), re.Rule, re.Cause)
	case errors.As(err, &re) && re.Rule != nil:
		return fmt.Sprintf("%q (rule: %s)", re.Error(), re.Rule)
	case err == nil:
		return "<nil>"
	}
	return fmt.Sprintf("%q", err.Error())
}
