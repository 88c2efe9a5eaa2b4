// Package script runs data-driven interaction tests: text files in which
// each command to a state machine is followed by the output it produced,
// in the style of etcd-io/raft's interaction tests. A file reads like a
// story and is its own golden file:
//
//	# Comment lines and blank lines are kept as they are.
//	send b#p "hello"
//	----
//	dial b [tcp://b:1] attempt=1
//
// A block is one command line, a line "----" and the expected output,
// which ends at the next blank line (or the end of the file). A command
// with nothing to report prints "ok", so outputs are never empty.
//
// Run feeds each command to a handler and compares what it returns with
// the expected output. With rewrite set (tests pass their -rewrite flag)
// it writes the files back with the outputs it got instead, keeping
// comments and commands: review the diff, then commit it.
package script

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Cmd is one command of a script.
type Cmd struct {
	// Name is the first word of the line, Args the remaining words (a
	// word is unbroken by spaces, except inside "..." and matching
	// [...] or {...}, so JSON values stay whole).
	Name string
	Args []string
	// Line is the command line, Pos "file:line" of it.
	Line string
	Pos  string
}

// Arg returns the value of a "key=value" argument.
func (c *Cmd) Arg(key string) (string, bool) {
	for _, a := range c.Args {
		if k, v, ok := strings.Cut(a, "="); ok && k == key {
			return v, true
		}
	}
	return "", false
}

// Positional returns the arguments that are not "key=value".
func (c *Cmd) Positional() []string {
	var out []string
	for _, a := range c.Args {
		if k, _, ok := strings.Cut(a, "="); ok && !strings.ContainsAny(k, "\"[{") {
			continue
		}
		out = append(out, a)
	}
	return out
}

// Handler runs one command and returns its output (without a trailing
// newline). An error fails the test at the command's position: it is for
// a broken script (unknown command, bad argument), not for an outcome of
// the machine, which belongs in the output.
type Handler func(c *Cmd) (string, error)

// block is one command with its expected output, plus the comment lines
// before it.
type block struct {
	lead []string // comment and blank lines before the command
	cmd  *Cmd
	want string
}

// parse splits a script into blocks; comment lines after the last block
// are returned as tail.
func parse(path, text string) (blocks []block, tail []string, err error) {
	var lead []string
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		t := strings.TrimSpace(line)
		if t == "" || strings.HasPrefix(t, "#") {
			lead = append(lead, line)
			continue
		}
		cmd, err := parseCmd(t, fmt.Sprintf("%s:%d", path, n))
		if err != nil {
			return nil, nil, err
		}
		if !sc.Scan() || sc.Text() != "----" {
			return nil, nil, fmt.Errorf("%s: command without a ---- line", cmd.Pos)
		}
		n++
		var out []string
		for sc.Scan() {
			n++
			if sc.Text() == "" {
				break
			}
			out = append(out, sc.Text())
		}
		blocks = append(blocks, block{lead: lead, cmd: cmd, want: strings.Join(out, "\n")})
		lead = nil
	}
	return blocks, lead, sc.Err()
}

func parseCmd(line, pos string) (*Cmd, error) {
	words, err := split(line)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", pos, err)
	}
	return &Cmd{Name: words[0], Args: words[1:], Line: line, Pos: pos}, nil
}

// split breaks a line into words, keeping "..." strings and bracketed
// values whole.
func split(line string) ([]string, error) {
	var words []string
	var cur strings.Builder
	depth, inStr, esc := 0, false, false
	for _, r := range line {
		switch {
		case inStr:
			cur.WriteRune(r)
			if esc {
				esc = false
			} else if r == '\\' {
				esc = true
			} else if r == '"' {
				inStr = false
			}
			continue
		case r == '"':
			inStr = true
		case r == '[' || r == '{':
			depth++
		case r == ']' || r == '}':
			depth--
		case (r == ' ' || r == '\t') && depth == 0:
			if cur.Len() > 0 {
				words = append(words, cur.String())
				cur.Reset()
			}
			continue
		}
		cur.WriteRune(r)
	}
	if inStr || depth != 0 {
		return nil, fmt.Errorf("unbalanced quotes or brackets in %q", line)
	}
	if cur.Len() > 0 {
		words = append(words, cur.String())
	}
	if len(words) == 0 {
		return nil, fmt.Errorf("empty command")
	}
	return words, nil
}

// Run runs every script matching glob as a subtest named after the file;
// newHandler makes a fresh handler (a fresh machine) per file. A glob
// that matches nothing fails the test.
func Run(t *testing.T, glob string, rewrite bool, newHandler func(t *testing.T) Handler) {
	t.Helper()
	files, err := filepath.Glob(glob)
	if err != nil || len(files) == 0 {
		t.Fatalf("script: no files match %q (%v)", glob, err)
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), filepath.Ext(f)), func(t *testing.T) {
			RunFile(t, f, rewrite, newHandler(t))
		})
	}
}

// RunFile runs one script with h.
func RunFile(t *testing.T, path string, rewrite bool, h Handler) {
	t.Helper()
	diffs, err := runFile(path, rewrite, h)
	for _, d := range diffs {
		t.Error(d)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// runFile runs one script and returns a text per block whose output
// differs from the expected one (none when rewriting).
func runFile(path string, rewrite bool, h Handler) (diffs []string, err error) {
	text, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	blocks, tail, err := parse(path, string(text))
	if err != nil {
		return nil, err
	}
	var buf strings.Builder
	for _, b := range blocks {
		got, err := h(b.cmd)
		if err != nil {
			return diffs, fmt.Errorf("%s: %s: %v", b.cmd.Pos, b.cmd.Line, err)
		}
		got = strings.TrimRight(got, "\n")
		if got == "" {
			got = "ok"
		}
		// An output line that is blank would end the block early.
		got = strings.ReplaceAll(got, "\n\n", "\n.\n")
		for _, l := range b.lead {
			buf.WriteString(l + "\n")
		}
		buf.WriteString(b.cmd.Line + "\n----\n" + got + "\n\n")
		if !rewrite && got != b.want {
			diffs = append(diffs, fmt.Sprintf("%s: %s\n--- want\n%s\n--- got\n%s", b.cmd.Pos, b.cmd.Line, b.want, got))
		}
	}
	for _, l := range tail {
		buf.WriteString(l + "\n")
	}
	if rewrite {
		out := strings.TrimRight(buf.String(), "\n") + "\n"
		if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
			return nil, err
		}
	}
	return diffs, nil
}

// Start is the time of every script's first command; scripts print times
// relative to it (Rel).
var Start = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// Rel prints t relative to Start, e.g. "+3s".
func Rel(t time.Time) string { return "+" + t.Sub(Start).String() }

// Unquote returns s, unquoted when it is a Go-quoted string.
func Unquote(s string) (string, error) {
	if !strings.HasPrefix(s, `"`) {
		return s, nil
	}
	return strconv.Unquote(s)
}

// Advance returns now moved by "+D" (pos[0]) or, without one, to deadline
// when that is later than now: the clock step of a "tick" command.
func Advance(now time.Time, pos []string, deadline time.Time) (time.Time, error) {
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
