package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"

	"github.com/aemp-go/dataconn/transport"
)

// version is the version of the aemp command.
const version = "0.1.0"

// Exit codes of the command, as documented in doc.go.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// errUsage marks errors caused by how the command was called; they exit
// with status 2.
var errUsage = errors.New("usage")

// usageError is an error in the command line: bad flags, missing or extra
// arguments, flags that exclude each other.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

// Is makes usage errors match errUsage.
func (e *usageError) Is(target error) bool { return target == errUsage }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// env is what a command sees of the process: its standard streams, its
// environment and whether stderr is a terminal. Tests could replace all of
// it; main uses the real ones.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
	lookupEnv      func(string) (string, bool)
	stderrTTY      bool
}

// command is one subcommand of aemp.
type command struct {
	name    string
	summary string
	// flags builds the command's flag set; run is called with the parsed
	// options and remaining arguments.
	flags func(e *env) (*flag.FlagSet, func(ctx context.Context, args []string) error)
}

func commands() []command {
	return []command{
		{"node", "run a long-lived node that receives data connections", nodeCommand},
		{"send", "send a file to a node over a data connection", sendCommand},
		{"ping", "measure connection set-up and message round trips to a node", pingCommand},
		{"demo", "run two nodes in this process and measure every transport", demoCommand},
		{"version", "print the version", versionCommand},
		{"help", "show help for a command", nil},
	}
}

func main() {
	e := &env{
		stdin:     os.Stdin,
		stdout:    os.Stdout,
		stderr:    os.Stderr,
		getenv:    os.Getenv,
		lookupEnv: os.LookupEnv,
		stderrTTY: isTerminal(os.Stderr),
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// After the first signal the command shuts down; a second one kills.
	context.AfterFunc(ctx, stop)
	code := run(ctx, e, os.Args[1:])
	stop()
	os.Exit(code)
}

// run executes the command line args and returns the exit status.
func run(ctx context.Context, e *env, args []string) int {
	if len(args) == 0 {
		printMainUsage(e.stderr)
		return exitUsage
	}
	name, rest := args[0], args[1:]
	switch name {
	case "help", "-h", "-help", "--help":
		if name == "help" && len(rest) > 0 {
			return helpFor(e, rest[0])
		}
		printMainUsage(e.stdout)
		return exitOK
	}
	for _, c := range commands() {
		if c.name != name || c.flags == nil {
			continue
		}
		fs, runFn := c.flags(e)
		if err := fs.Parse(rest); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return exitOK
			}
			// The flag package has printed the error and the usage.
			return exitUsage
		}
		err := runFn(ctx, fs.Args())
		if err == nil {
			return exitOK
		}
		fmt.Fprintf(e.stderr, "aemp %s: %s\n", name, tidyError(err))
		if errors.Is(err, errUsage) {
			fmt.Fprintf(e.stderr, "Run 'aemp help %s' for usage.\n", name)
			return exitUsage
		}
		return exitFailure
	}
	fmt.Fprintf(e.stderr, "aemp: unknown command %q\n", name)
	printMainUsage(e.stderr)
	return exitUsage
}

func helpFor(e *env, name string) int {
	for _, c := range commands() {
		if c.name == name && c.flags != nil {
			fs, _ := c.flags(e)
			fs.SetOutput(e.stdout)
			fs.Usage()
			return exitOK
		}
	}
	if name == "help" {
		printMainUsage(e.stdout)
		return exitOK
	}
	fmt.Fprintf(e.stderr, "aemp help: unknown command %q\n", name)
	printMainUsage(e.stderr)
	return exitUsage
}

func printMainUsage(w io.Writer) {
	fmt.Fprint(w, `aemp moves data between AnyEvent::MP nodes over authenticated data connections.

Usage:

	aemp <command> [flags] [arguments]

Commands:

`)
	for _, c := range commands() {
		fmt.Fprintf(w, "\t%-8s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, `
Run 'aemp help <command>' for the flags of a command.
Exit status: 0 success, 1 failure, 2 usage error.
`)
}

func versionCommand(e *env) (*flag.FlagSet, func(context.Context, []string) error) {
	fs := newFlagSet(e, "version", "aemp version", "Print the version of aemp, of Go and the provider string announced to peers.")
	return fs, func(_ context.Context, args []string) error {
		if len(args) > 0 {
			return usagef("unexpected arguments: %q", args)
		}
		fmt.Fprintf(e.stdout, "aemp %s (%s, %s/%s, provider %s)\n", version, runtime.Version(), runtime.GOOS, runtime.GOARCH, transport.Provider)
		return nil
	}
}

// newFlagSet returns a flag set that reports errors on e.stderr and prints
// the synopsis and description before the flags.
func newFlagSet(e *env, name, synopsis, description string) *flag.FlagSet {
	fs := flag.NewFlagSet("aemp "+name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, "Usage: %s\n\n%s\n", synopsis, description)
		n := 0
		fs.VisitAll(func(*flag.Flag) { n++ })
		if n > 0 {
			fmt.Fprintf(w, "\nFlags:\n")
			fs.PrintDefaults()
		}
	}
	return fs
}

func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	if err != nil {
		return false
	}
	return st.Mode()&os.ModeCharDevice != 0
}

// tidyError returns err's text with a repeated leading "X: " collapsed:
// the transport sometimes prefixes the node ID twice ("n: n: refused").
func tidyError(err error) string {
	msg := err.Error()
	if i := strings.Index(msg, ": "); i > 0 {
		prefix := msg[:i+2]
		for strings.HasPrefix(msg[len(prefix):], prefix) {
			msg = msg[len(prefix):]
		}
	}
	return msg
}
