package handshake

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aemp-go/dataconn/internal/script"

	"github.com/aemp-go/dataconn/core/wire"
)

var rewrite = flag.Bool("rewrite", false, "rewrite the expected outputs of testdata/*.txt with what the machine does")

// perlSecret is the shared secret of the recorded Perl transcripts
// (testdata/transcripts).
const perlSecret = "s3cr3t"

// TestHandshakeScripts runs the scripts in testdata: each drives
// one handshake machine (our side) with the commands of hsDriver.run and
// prints the actions it asks for.
func TestHandshakeScripts(t *testing.T) {
	script.Run(t, "testdata/*.txt", *rewrite, func(t *testing.T) script.Handler {
		d := &hsDriver{now: script.Start}
		return d.run
	})
}

// TestScriptsMatchTranscripts checks the scripts made from a recorded
// Perl transcript against it: a script whose first line is
// "# transcript: FILE" may print no written line ("write ...", "send ...")
// that FILE does not record, so the machine demonstrably sends what the
// Perl-era peer sent.
func TestScriptsMatchTranscripts(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.txt")
	more, _ := filepath.Glob("../rendezvous/testdata/*.txt")
	files = append(files, more...)
	checked := 0
	for _, f := range files {
		text, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		first, _, _ := strings.Cut(string(text), "\n")
		name, ok := strings.CutPrefix(first, "# transcript: ")
		if !ok {
			continue
		}
		rec, err := os.ReadFile(filepath.Join("../../testdata/transcripts", strings.Fields(name)[0]))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		recorded := map[string]bool{}
		for _, l := range strings.Split(string(rec), "\n") {
			// "[  0.0001] G(51294)->B(17001)  GREETING1 line"
			if f := strings.Fields(l); len(f) >= 5 && strings.HasPrefix(l, "[") {
				recorded[normGreeting(strings.Join(f[4:], " "))] = true
			}
		}
		sc := bufio.NewScanner(strings.NewReader(string(text)))
		sc.Buffer(nil, 1<<20)
		prev, cmd := "", ""
		for n := 1; sc.Scan(); n++ {
			var line string
			l := sc.Text()
			if l == "----" {
				cmd = prev
			}
			prev = l
			switch {
			case cmd == "tls-up":
				continue // inside TLS: not recorded
			case strings.HasPrefix(l, "write "):
				line = strings.TrimPrefix(l, "write ")
			case strings.HasPrefix(l, "send "):
				_, line, _ = strings.Cut(strings.TrimPrefix(l, "send "), " ")
			default:
				continue
			}
			checked++
			if !recorded[normGreeting(line)] {
				t.Errorf("%s:%d: %q is not in the transcript %s", f, n, line, name)
			}
		}
	}
	if checked == 0 {
		t.Fatal("no script names a transcript")
	}
}

// normGreeting returns a greeting line with its key=value fields sorted
// (Perl writes them in hash order); other lines as they are.
func normGreeting(l string) string {
	f := strings.Split(l, ";")
	if len(f) < 6 || f[1] != "1" {
		return l
	}
	kv := slices.Clone(f[5:])
	slices.Sort(kv)
	return strings.Join(append(f[:5:5], kv...), ";")
}

// hsDriver holds one handshake script's machine and clock.
type hsDriver struct {
	h   *Machine
	now time.Time
}

// run executes one command. The commands:
//
//	new NODE nonce=N [proto=P] [secret=S|perl] [accept=A,B] [offer=A,B]
//	    [framings=F,G] [send-framings=F,G] [tls] [tls-required] [defer]
//	    [verified] (Config.VerifiedChannel)
//	    [timeout=D] [extra=K=V;K=V] [binding=TEXT]
//	recv "BYTES"        bytes from the peer (Go string escapes: \n ends a line)
//	peer-auth METHOD FRAMING   the auth line an honest peer sends (AuthData)
//	junk N              N bytes 'x' from the peer, no line end
//	closed [TEXT]       the peer closed the stream (TEXT: the read error)
//	secured             TLSEstablished before the nonce (an already secure transport)
//	tls-up [exporter=TEXT] [bound=TEXT|@]   tls-fail TEXT
//	                    (bound: the ALPN value TLS negotiated; @ is the
//	                    one the machine asked for in StartTLS.Bind)
//	greet [K=V;K=V]     SendGreeting with extra keys (defer only)
//	abort [TEXT]        tick [+D]          timers
//
// After each command the actions are printed, one a line: written lines
// ("write LINE"), "start-tls", "peer-greeting", "done", "failed".
func (d *hsDriver) run(c *script.Cmd) (string, error) {
	if c.Name != "new" && d.h == nil {
		return "", errors.New("the first command must be new")
	}
	pos := c.Positional()
	text := func(def string) (string, error) {
		if len(pos) == 0 {
			return def, nil
		}
		return script.Unquote(pos[0])
	}
	switch c.Name {
	case "new":
		cfg, nonce, err := hsConfig(c)
		if err != nil {
			return "", err
		}
		h, err := New(cfg, nonce, d.now)
		if err != nil {
			return "error: " + err.Error(), nil
		}
		d.h = h
	case "recv":
		s, err := text("")
		if err != nil {
			return "", err
		}
		d.h.Receive(d.now, []byte(s))
	case "peer-auth":
		// The auth line an honest peer with our secret sends: AuthData
		// over its lines (ours as received) and ours.
		if len(pos) != 2 {
			return "", errors.New("peer-auth takes METHOD FRAMING")
		}
		data, err := AuthData(pos[0], d.h.cfg.Secret, d.h.r1, d.h.r2, d.h.l1, d.h.l2)
		if err != nil {
			return "", err
		}
		d.h.Receive(d.now, []byte(pos[0]+";"+data+";"+pos[1]+"\n"))
	case "junk":
		n, err := strconv.Atoi(arg0(pos))
		if err != nil {
			return "", err
		}
		d.h.Receive(d.now, bytes.Repeat([]byte{'x'}, n))
	case "closed":
		s, err := text("")
		if err != nil {
			return "", err
		}
		var rerr error
		if s != "" {
			rerr = errors.New(s)
		}
		d.h.PeerClosed(d.now, rerr)
	case "secured":
		d.h.TLSEstablished(d.now, TLSInfo{})
	case "tls-up":
		e, _ := c.Arg("exporter")
		b, _ := c.Arg("bound")
		if b == "@" { // what the machine asked the TLS layer for
			b = d.h.bind
		}
		d.h.TLSEstablished(d.now, TLSInfo{Exporter: []byte(e), Bound: b})
	case "tls-fail":
		s, err := text("handshake failure")
		if err != nil {
			return "", err
		}
		d.h.TLSFailed(d.now, errors.New(s))
	case "greet":
		// Every argument is a key (K=V, or K=V;K=V).
		var extra []wire.KV
		for _, a := range c.Args {
			extra = append(extra, parseKVs(a)...)
		}
		d.h.SendGreeting(d.now, extra)
	case "abort":
		s, err := text("")
		if err != nil {
			return "", err
		}
		var aerr error
		if s != "" {
			aerr = errors.New(s)
		}
		d.h.Abort(d.now, aerr)
	case "tick":
		var err error
		if d.now, err = script.Advance(d.now, pos, d.h.Deadline()); err != nil {
			return "", err
		}
		d.h.Tick(d.now)
		out := "now " + script.Rel(d.now)
		if acts := d.drain(); acts != "" {
			out += "\n" + acts
		}
		return out, nil
	case "timers":
		var b strings.Builder
		for _, tm := range d.h.Timers() {
			fmt.Fprintf(&b, "%s at %s\n", tm.Kind, script.Rel(tm.At))
		}
		if b.Len() == 0 {
			return "none", nil
		}
		return b.String(), nil
	default:
		return "", fmt.Errorf("unknown command %q", c.Name)
	}
	return d.drain(), nil
}

func (d *hsDriver) drain() string {
	var b strings.Builder
	for a := d.h.Poll(); a != nil; a = d.h.Poll() {
		switch a := a.(type) {
		case Write:
			for _, l := range strings.SplitAfter(string(a.Data), "\n") {
				if l != "" {
					fmt.Fprintf(&b, "write %s\n", strings.TrimSuffix(l, "\n"))
				}
			}
		case StartTLS:
			fmt.Fprintf(&b, "start-tls client=%v pending=%q", a.Client, a.Pending)
			if a.Bind != "" {
				fmt.Fprintf(&b, " bind=%s", a.Bind)
			}
			b.WriteByte('\n')
		case PeerGreeting:
			fmt.Fprintf(&b, "peer-greeting %s protocol=%s\n", a.Greeting.NodeID, a.Protocol)
		case Done:
			r := a.Result
			fmt.Fprintf(&b, "done peer=%s protocol=%s send=%s recv=%s auth=%s peer-auth=%s tls=%v untrusted=%v pending=%q\n",
				r.PeerNodeID, r.Protocol, r.SendFraming, r.RecvFraming, r.SentAuth, r.PeerAuth, r.TLS, r.Untrusted, r.Pending)
		case Failed:
			fmt.Fprintf(&b, "failed %s\n", showErr(a.Err))
		}
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// showErr prints an error with the rule it names: "TEXT (rule: RULE)".
func showErr(err error) string {
	var he *Error
	switch {
	case errors.As(err, &he) && he.Rule != nil:
		return fmt.Sprintf("%q (rule: %s)", he.Error(), he.Rule)
	case err == nil:
		return "<nil>"
	}
	return fmt.Sprintf("%q", err.Error())
}

func hsConfig(c *script.Cmd) (Config, string, error) {
	var pos []string
	for _, p := range c.Positional() {
		if p != "tls" && p != "tls-required" && p != "defer" && p != "verified" {
			pos = append(pos, p)
		}
	}
	if len(pos) != 1 {
		return Config{}, "", errors.New("new takes our node ID")
	}
	cfg := Config{NodeID: pos[0]}
	nonce, _ := c.Arg("nonce")
	list := func(key string) []string {
		if v, ok := c.Arg(key); ok {
			return strings.Split(v, ",")
		}
		return nil
	}
	cfg.Protocol, _ = c.Arg("proto")
	if s, ok := c.Arg("secret"); ok {
		if s == "perl" {
			s = perlSecret
		}
		cfg.Secret = []byte(s)
	}
	cfg.AcceptAuths, cfg.OfferAuths = list("accept"), list("offer")
	cfg.AcceptFramings, cfg.SendFramings = list("framings"), list("send-framings")
	for _, a := range c.Args {
		switch a {
		case "tls":
			cfg.TLS = true
		case "tls-required":
			cfg.TLSRequired = true
		case "defer":
			cfg.DeferGreeting = true
		case "verified":
			cfg.VerifiedChannel = true
		}
	}
	if v, ok := c.Arg("timeout"); ok {
		d, err := time.ParseDuration(v)
		if err != nil {
			return cfg, "", err
		}
		cfg.Timeout = d
	}
	if v, ok := c.Arg("extra"); ok {
		cfg.Extra = parseKVs(v)
	}
	if v, ok := c.Arg("binding"); ok {
		cfg.ChannelBinding = []byte(v)
	}
	return cfg, nonce, nil
}

// parseKVs parses "K=V;K=V" (a key without '=' has an empty value).
func parseKVs(s string) []wire.KV {
	var out []wire.KV
	for _, f := range strings.Split(s, ";") {
		k, v, _ := strings.Cut(f, "=")
		out = append(out, wire.KV{Key: k, Value: v})
	}
	return out
}

func arg0(pos []string) string {
	if len(pos) == 0 {
		return ""
	}
	return pos[0]
}
