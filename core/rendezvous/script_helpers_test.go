package rendezvous

import (
	"errors"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/aemp-go/dataconn/core/handshake"
)

var rewrite = flag.Bool("rewrite", false, "rewrite the expected outputs of testdata/*.txt with what the machine does")

// scriptStart is the time of every script's first command; the scripts
// print times relative to it.
var scriptStart = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

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

func unquote(s string) (string, error) {
	if !strings.HasPrefix(s, `"`) {
		return s, nil
	}
	return strconv.Unquote(s)
}

// advance returns now moved by "+D" (pos[0]) or, without one, to the
// machine's deadline.
func advance(now time.Time, pos []string, deadline time.Time) (time.Time, error) {
	if len(pos) == 0 {
		if deadline.After(now) {
			return deadline, nil
		}
		return now, nil
	}
	d, err := time.ParseDuration(strings.TrimPrefix(pos[0], "+"))
	if err != nil || !strings.HasPrefix(pos[0], "+") {
		return now, fmt.Errorf("tick takes +DURATION, got %q", pos[0])
	}
	return now.Add(d), nil
}

// rel prints t relative to the script's start, e.g. "+3s".
func rel(t time.Time) string { return "+" + t.Sub(scriptStart).String() }
