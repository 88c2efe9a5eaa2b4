package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aemp-go/dataconn/transport/testca"
)

// aempBin is the command under test, built once by TestMain.
var aempBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "aemp-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	aempBin = filepath.Join(dir, "aemp")
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	build := exec.Command(goTool, "build", "-o", aempBin, ".")
	build.Stderr = os.Stderr
	build.Stdout = os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building aemp:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// result is what a finished aemp run produced.
type result struct {
	code           int
	stdout, stderr string
}

// runAemp runs the command to completion (bounded by limit) with extra
// environment variables.
func runAemp(t *testing.T, limit time.Duration, env []string, stdin []byte, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, aempBin, args...)
	cmd.Env = append(cleanEnv(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("aemp %s: did not finish within %s\nstdout: %s\nstderr: %s", strings.Join(args, " "), limit, out.String(), errb.String())
	}
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("aemp %s: %v", strings.Join(args, " "), err)
		}
		code = ee.ExitCode()
	}
	return result{code: code, stdout: out.String(), stderr: errb.String()}
}

// cleanEnv is the environment of the subprocesses: without AEMP_SECRET and
// with a config file path that does not exist, so the tester's own
// settings never leak in.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "AEMP_SECRET=") || strings.HasPrefix(kv, "PERL_ANYEVENT_MP_RC=") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "PERL_ANYEVENT_MP_RC=/nonexistent/aemp-test-rc")
}

// jsonEvent is an event line of --json output as the tests read it.
type jsonEvent struct {
	Event    string         `json:"event"`
	Node     string         `json:"node"`
	Peer     string         `json:"peer"`
	Addr     string         `json:"addr"`
	File     string         `json:"file"`
	Bytes    *int64         `json:"bytes"`
	SHA256   string         `json:"sha256"`
	Reason   string         `json:"reason"`
	Error    string         `json:"error"`
	Verified *bool          `json:"verified"`
	RTT      []float64      `json:"rtt_seconds"`
	Setup    *float64       `json:"setup_seconds"`
	Init     string         `json:"initfunc"`
	Stats    map[string]any `json:"stats"`
}

// nodeProc is a running `aemp node --json`.
type nodeProc struct {
	t      *testing.T
	cmd    *exec.Cmd
	events chan jsonEvent
	done   chan struct{} // closed when stdout is drained
	addr   string
	id     string
	mu     sync.Mutex
	stderr bytes.Buffer
}

func (p *nodeProc) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.Write(b)
}

func (p *nodeProc) stderrText() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.String()
}

// startNode starts a node with --json and waits for its first listening
// event.
func startNode(t *testing.T, env []string, args ...string) *nodeProc {
	t.Helper()
	args = append([]string{"node", "--json"}, args...)
	cmd := exec.Command(aempBin, args...)
	cmd.Env = append(cleanEnv(), env...)
	p := &nodeProc{t: t, cmd: cmd, events: make(chan jsonEvent, 256), done: make(chan struct{})}
	cmd.Stderr = p
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(p.done)
		defer close(p.events)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			var ev jsonEvent
			if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
				ev = jsonEvent{Event: "unparsable", Error: sc.Text()}
			}
			select {
			case p.events <- ev:
			default: // a test that stops reading must not block the node
			}
		}
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-p.done
		cmd.Wait()
	})
	ev := p.wait("listening", 15*time.Second)
	p.addr, p.id = ev.Addr, ev.Node
	return p
}

// wait returns the next event of the given kind, failing the test after
// limit. Other events are skipped.
func (p *nodeProc) wait(kind string, limit time.Duration) jsonEvent {
	p.t.Helper()
	timer := time.NewTimer(limit)
	defer timer.Stop()
	for {
		select {
		case ev, ok := <-p.events:
			if !ok {
				p.t.Fatalf("node exited while waiting for %q; stderr:\n%s", kind, p.stderrText())
			}
			if ev.Event == "unparsable" {
				p.t.Fatalf("node printed a line that is not JSON: %q", ev.Error)
			}
			if ev.Event == kind {
				return ev
			}
		case <-timer.C:
			p.t.Fatalf("no %q event within %s; stderr:\n%s", kind, limit, p.stderrText())
		}
	}
}

// lastEvent parses the last JSON line of out.
func lastEvent(t *testing.T, out string) jsonEvent {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var ev jsonEvent
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &ev); err != nil {
		t.Fatalf("output is not a JSON line: %q (%v)", out, err)
	}
	return ev
}

// randomFile writes n pseudo-random bytes to dir/name and returns them.
func randomFile(t *testing.T, dir, name string, n int) (string, []byte) {
	t.Helper()
	b := make([]byte, n)
	var x uint64 = uint64(n)*0x9E3779B97F4A7C15 + 1
	for i := range b {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		b[i] = byte(x)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path, b
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

const testSecret = "aemp-test-secret"

func TestNodeAndSendOverTCP(t *testing.T) {
	dir := t.TempDir()
	recvDir := filepath.Join(dir, "recv")
	node := startNode(t, nil, "--id", "receiver", "--secret", testSecret, "--bind", "tcp://127.0.0.1:0", "--recv-dir", recvDir)
	if node.id != "receiver" || !strings.HasPrefix(node.addr, "127.0.0.1:") {
		t.Fatalf("listening event: id %q addr %q", node.id, node.addr)
	}

	path, data := randomFile(t, dir, "payload.bin", 3<<20+12345)
	want := sha(data)
	r := runAemp(t, 30*time.Second, nil, nil, "send", "--id", "sender", "--secret", testSecret, "--json",
		"--to", "receiver@"+node.addr, path)
	if r.code != 0 {
		t.Fatalf("send exit %d\nstderr: %s", r.code, r.stderr)
	}
	sent := lastEvent(t, r.stdout)
	if sent.Event != "sent" || sent.Bytes == nil || *sent.Bytes != int64(len(data)) || sent.SHA256 != want ||
		sent.Verified == nil || !*sent.Verified {
		t.Fatalf("send reported %+v, want %d bytes, sha256 %s, verified", sent, len(data), want)
	}

	opened := node.wait("dataconn_opened", 10*time.Second)
	if opened.Peer != "sender" || opened.File != "payload.bin" || opened.Init != "aemp::recv" {
		t.Errorf("dataconn_opened event %+v", opened)
	}
	got := node.wait("received", 10*time.Second)
	if got.Bytes == nil || *got.Bytes != int64(len(data)) || got.SHA256 != want || got.Peer != "sender" {
		t.Fatalf("received event %+v, want %d bytes sha256 %s from sender", got, len(data), want)
	}
	stored, err := os.ReadFile(filepath.Join(recvDir, "payload.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(stored, data) {
		t.Fatalf("stored file differs: %d bytes, sha256 %s", len(stored), sha(stored))
	}
	if ents, _ := os.ReadDir(recvDir); len(ents) != 1 {
		t.Errorf("receive directory holds %d entries, want only the file", len(ents))
	}

	// Standard input, human-readable output, and the secret from the
	// environment.
	small := []byte("hello from standard input\n")
	r = runAemp(t, 30*time.Second, []string{"AEMP_SECRET=" + testSecret}, small, "send",
		"--to", "receiver@"+node.addr, "--initdata", `["from-stdin.txt"]`, "-")
	if r.code != 0 {
		t.Fatalf("send from stdin: exit %d\nstderr: %s", r.code, r.stderr)
	}
	if !strings.Contains(r.stdout, "sent 26 bytes") || !strings.Contains(r.stdout, sha(small)+" verified by the receiver") {
		t.Errorf("send output %q lacks the byte count or the verified SHA-256", r.stdout)
	}
	got = node.wait("received", 10*time.Second)
	if got.SHA256 != sha(small) {
		t.Errorf("received %+v, want sha256 %s", got, sha(small))
	}
	if b, err := os.ReadFile(filepath.Join(recvDir, "from-stdin.txt")); err != nil || !bytes.Equal(b, small) {
		t.Errorf("stdin file: %q, %v", b, err)
	}

	// The node stops cleanly on SIGTERM.
	if err := node.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	node.wait("stopped", 10*time.Second)
	<-node.done
	if err := node.cmd.Wait(); err != nil {
		t.Fatalf("node exit after SIGTERM: %v\nstderr: %s", err, node.stderrText())
	}
}

func TestSendRefusedNames(t *testing.T) {
	dir := t.TempDir()
	recvDir := filepath.Join(dir, "inner", "recv")
	node := startNode(t, nil, "--id", "receiver", "--secret", testSecret, "--recv-dir", recvDir)
	path, _ := randomFile(t, dir, "payload.bin", 4096)

	for _, tc := range []struct{ initdata, name, reason string }{
		{`["../x"]`, "../x", "parent directory"},
		{`["/etc/x"]`, "/etc/x", "absolute path"},
		{`["a/b"]`, "a/b", "path separator"},
		{`[""]`, "", "empty file name"},
		{`[".."]`, "..", "parent directory"},
		{`[]`, "", "no file name"},
	} {
		t.Run(tc.initdata, func(t *testing.T) {
			r := runAemp(t, 30*time.Second, nil, nil, "send", "--secret", testSecret,
				"--to", "receiver@"+node.addr, "--initdata", tc.initdata, path)
			if r.code != 1 {
				t.Errorf("send exit %d, want 1\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
			}
			if !strings.Contains(r.stderr, "receiver") || !strings.Contains(r.stderr, "refused") {
				t.Errorf("send stderr %q does not say the receiver refused", r.stderr)
			}
			ev := node.wait("refused", 10*time.Second)
			if ev.File != tc.name || !strings.Contains(ev.Reason, tc.reason) || !strings.Contains(ev.Reason, "leave the receive directory") {
				t.Errorf("refused event %+v, want file %q and a reason with %q", ev, tc.name, tc.reason)
			}
		})
	}
	for _, p := range []string{filepath.Join(dir, "inner", "x"), filepath.Join(dir, "x"), filepath.Join(recvDir, "a")} {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("%s was created", p)
		}
	}
	if ents, _ := os.ReadDir(recvDir); len(ents) != 0 {
		t.Errorf("receive directory holds %d entries after refusals, want none", len(ents))
	}
}

func TestUnreachablePeer(t *testing.T) {
	port := closedPort(t)
	r := runAemp(t, 30*time.Second, nil, nil, "send", "--secret", testSecret, "--timeout", "3s",
		"--to", "ghost@"+port, os.Args[0])
	if r.code != 1 {
		t.Fatalf("send exit %d, want 1; stderr: %s", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, "ghost: ") || !strings.Contains(r.stderr, "refused") {
		t.Errorf("stderr %q lacks the kill reason (ghost: ... connection refused)", r.stderr)
	}
	r = runAemp(t, 30*time.Second, nil, nil, "ping", "--secret", testSecret, "--timeout", "3s", "ghost@"+port)
	if r.code != 1 || !strings.Contains(r.stderr, "refused") {
		t.Errorf("ping exit %d stderr %q, want 1 and the reason", r.code, r.stderr)
	}
	// No address known at all.
	r = runAemp(t, 30*time.Second, nil, nil, "send", "--secret", testSecret, "--to", "ghost", os.Args[0])
	if r.code != 1 || !strings.Contains(r.stderr, "ghost: no address known") {
		t.Errorf("send without address: exit %d stderr %q", r.code, r.stderr)
	}
}

func TestWrongSecretFails(t *testing.T) {
	node := startNode(t, nil, "--id", "receiver", "--secret", testSecret)
	r := runAemp(t, 30*time.Second, nil, nil, "send", "--secret", "not-the-secret", "--timeout", "3s",
		"--to", "receiver@"+node.addr, os.Args[0])
	// The reason names the rule (the authentication failure), not a
	// timeout: the handshake fails on the receiver's auth line.
	if r.code != 1 || !strings.Contains(r.stderr, "receiver: authentication failure") || strings.Contains(r.stderr, "unable to establish") {
		t.Errorf("send with a wrong secret: exit %d stderr %q, want 1 and the reason \"receiver: authentication failure...\"", r.code, r.stderr)
	}
}

func TestPing(t *testing.T) {
	node := startNode(t, nil, "--id", "receiver", "--secret", testSecret)
	r := runAemp(t, 30*time.Second, nil, nil, "ping", "--secret", testSecret, "--json", "--count", "4", "receiver@"+node.addr)
	if r.code != 0 {
		t.Fatalf("ping exit %d; stderr %s", r.code, r.stderr)
	}
	ev := lastEvent(t, r.stdout)
	if ev.Event != "ping" || ev.Peer != "receiver" || len(ev.RTT) != 4 || ev.Setup == nil || *ev.Setup <= 0 {
		t.Fatalf("ping summary %+v, want 4 round trips to receiver", ev)
	}
	for _, rtt := range ev.RTT {
		if rtt <= 0 || rtt > 10 {
			t.Errorf("round trip of %gs", rtt)
		}
	}
	// @ADDR pings whatever node listens there; a wrong NODE is an error.
	r = runAemp(t, 30*time.Second, nil, nil, "ping", "--secret", testSecret, "--count", "1", "@"+node.addr)
	if r.code != 0 || !strings.Contains(r.stdout, "connected to receiver") {
		t.Errorf("ping @addr: exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
	r = runAemp(t, 30*time.Second, nil, nil, "ping", "--secret", testSecret, "someone-else@"+node.addr)
	if r.code != 1 || !strings.Contains(r.stderr, `answered as node "receiver"`) {
		t.Errorf("ping wrong node: exit %d stderr %q", r.code, r.stderr)
	}
}

func TestNodeUpDownViaSeed(t *testing.T) {
	a := startNode(t, nil, "--id", "node-a", "--secret", testSecret)
	b := startNode(t, nil, "--id", "node-b", "--secret", testSecret, "--seed", a.addr)
	if ev := b.wait("node_up", 10*time.Second); ev.Peer != "node-a" {
		t.Errorf("b: node_up for %q, want node-a", ev.Peer)
	}
	if ev := a.wait("node_up", 10*time.Second); ev.Peer != "node-b" {
		t.Errorf("a: node_up for %q, want node-b", ev.Peer)
	}
	// b announced its listener to its seed: a can now send to b by ID.
	path, data := randomFile(t, t.TempDir(), "x.bin", 5000)
	r := runAemp(t, 30*time.Second, nil, nil, "send", "--secret", testSecret, "--json", "--seed", a.addr, "--to", "node-b", path)
	if r.code != 0 {
		t.Fatalf("send via seed lookup: exit %d stderr %s", r.code, r.stderr)
	}
	if ev := b.wait("received", 10*time.Second); ev.SHA256 != sha(data) {
		t.Errorf("b received %+v", ev)
	}
	if err := b.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	b.wait("stopped", 10*time.Second)
	// The sender's short-lived node comes and goes too: skip its events.
	for i := 0; ; i++ {
		ev := a.wait("node_down", 10*time.Second)
		if ev.Peer == "node-b" {
			break
		}
		if i == 3 {
			t.Fatalf("a: node_down for %q, want node-b", ev.Peer)
		}
	}
}

func TestProfileAndSeed(t *testing.T) {
	dir := t.TempDir()
	rc := filepath.Join(dir, "rc.json")
	conf := `{
		# a Perl-style config file: comments and trailing commas are fine
		"secret": "global-secret",
		"profile": {
			"recv": { "nodeid": "profiled", "binds": ["127.0.0.1:*"], },
			"send": { "nodeid": "anon/", },
		},
	}`
	if err := os.WriteFile(rc, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{"PERL_ANYEVENT_MP_RC=" + rc}
	node := startNode(t, env, "--profile", "recv", "--recv-dir", filepath.Join(dir, "recv"))
	if node.id != "profiled" || !strings.HasPrefix(node.addr, "127.0.0.1:") {
		t.Fatalf("profiled node listens as %q on %q", node.id, node.addr)
	}
	path, data := randomFile(t, dir, "p.bin", 100000)
	// The target's address comes from the seed (which is the target).
	r := runAemp(t, 30*time.Second, env, nil, "send", "--profile", "send", "--seed", node.addr, "--json", "--to", "profiled", path)
	if r.code != 0 {
		t.Fatalf("send exit %d stderr %s", r.code, r.stderr)
	}
	if ev := lastEvent(t, r.stdout); ev.SHA256 != sha(data) || ev.Verified == nil || !*ev.Verified {
		t.Errorf("send event %+v", ev)
	}
	if ev := node.wait("received", 10*time.Second); ev.SHA256 != sha(data) || !strings.HasPrefix(ev.Peer, "anon/") {
		t.Errorf("received event %+v", ev)
	}
}

func TestBadFlagsExit2(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"frobnicate"},
		{"send", "--bogus"},
		{"send", "--secret", "s", "file"},
		{"send", "--secret", "s", "--to", "x@127.0.0.1:1"},
		{"send", "--secret", "s", "--to", "x@127.0.0.1:1", "--initdata", "{}", "file"},
		{"send", "--secret", "s", "--secret-file", "f", "--to", "x@127.0.0.1:1", "file"},
		{"send", "--to", "x@127.0.0.1:1", "file"},
		{"node", "--secret", "s", "--bind", "udp://127.0.0.1:0"},
		{"node", "--secret", "s", "--peer", "nobody"},
		{"node", "--secret", "s", "extra"},
		{"ping", "--secret", "s", "--count", "-1", "x@127.0.0.1:1"},
		{"ping", "--secret", "s"},
		{"demo", "--size", "12XB"},
		{"demo", "--size"},
		{"help", "frobnicate"},
	} {
		r := runAemp(t, 20*time.Second, nil, nil, args...)
		if r.code != 2 {
			t.Errorf("aemp %q: exit %d, want 2\nstderr: %s", args, r.code, r.stderr)
			continue
		}
		if r.stderr == "" || r.stdout != "" {
			t.Errorf("aemp %q: usage error should go to stderr only; stdout %q stderr %q", args, r.stdout, r.stderr)
		}
	}
	r := runAemp(t, 20*time.Second, nil, nil, "send", "--bogus")
	if !strings.Contains(r.stderr, "flag provided but not defined: -bogus") || !strings.Contains(r.stderr, "Usage: aemp send") {
		t.Errorf("bad flag output %q lacks the error or the usage", r.stderr)
	}
	r = runAemp(t, 20*time.Second, nil, nil, "help", "send")
	if r.code != 0 || !strings.Contains(r.stdout, "Usage: aemp send --to NODE[@ADDR]") || !strings.Contains(r.stdout, "-initdata") {
		t.Errorf("help send: exit %d stdout %q", r.code, r.stdout)
	}
	r = runAemp(t, 20*time.Second, nil, nil, "version")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "aemp "+version) {
		t.Errorf("version: exit %d stdout %q", r.code, r.stdout)
	}
}

func TestDemo(t *testing.T) {
	r := runAemp(t, 50*time.Second, nil, nil, "demo", "--size", "8MiB")
	if r.code != 0 {
		t.Fatalf("demo exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	rows := map[string]string{}
	for _, line := range strings.Split(r.stdout, "\n") {
		f := strings.Fields(line)
		if len(f) > 0 {
			rows[f[0]] = line
		}
	}
	for _, tr := range []string{"tcp", "tcp+tls", "quic"} {
		line, ok := rows[tr]
		if !ok {
			t.Errorf("no %s row in\n%s", tr, r.stdout)
			continue
		}
		if !strings.HasSuffix(strings.TrimSpace(line), "yes") || !strings.Contains(line, "MiB/s") {
			t.Errorf("%s row not verified: %q", tr, line)
		}
	}
	if !strings.Contains(r.stdout, "8.0 MiB (8388608 bytes)") {
		t.Errorf("demo header lacks the size: %q", r.stdout)
	}
}

// closedPort returns a loopback address on which nothing listens.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := netListen()
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func TestTLSCertOverTCPAndQUIC(t *testing.T) {
	dir := t.TempDir()
	ca, err := testca.New("aemp test")
	if err != nil {
		t.Fatal(err)
	}
	pemData, err := ca.PerlPEM("shared")
	if err != nil {
		t.Fatal(err)
	}
	pemFile := filepath.Join(dir, "node.pem")
	if err := os.WriteFile(pemFile, pemData, 0o600); err != nil {
		t.Fatal(err)
	}
	// TLS only, no secret: the handshake must run TLS to authenticate.
	node := startNode(t, nil, "--id", "tls-node", "--tls-cert", pemFile, "--tls-required",
		"--bind", "127.0.0.1:0", "--bind", "quic://127.0.0.1:0", "--recv-dir", filepath.Join(dir, "recv"))
	quicAddr := node.wait("listening", 10*time.Second).Addr
	if !strings.HasPrefix(quicAddr, "quic://127.0.0.1:") {
		t.Fatalf("second listener %q, want quic://127.0.0.1:PORT", quicAddr)
	}
	path, data := randomFile(t, dir, "t.bin", 1<<20+3)
	for _, addr := range []string{node.addr, quicAddr} {
		r := runAemp(t, 30*time.Second, nil, nil, "send", "--tls-cert", pemFile, "--json",
			"--initdata", `["via-`+strings.SplitN(addr, ":", 2)[0]+`"]`, "--to", "tls-node@"+addr, path)
		if r.code != 0 {
			t.Fatalf("send over %s: exit %d stderr %s", addr, r.code, r.stderr)
		}
		if ev := lastEvent(t, r.stdout); ev.SHA256 != sha(data) || ev.Verified == nil || !*ev.Verified {
			t.Errorf("send over %s: %+v", addr, ev)
		}
		if ev := node.wait("received", 10*time.Second); ev.SHA256 != sha(data) {
			t.Errorf("received over %s: %+v", addr, ev)
		}
	}
	// Without the certificate (a secret only) the TLS-only node is unreachable.
	r := runAemp(t, 30*time.Second, nil, nil, "send", "--secret", "x", "--timeout", "3s", "--to", "tls-node@"+node.addr, path)
	if r.code != 1 || !strings.Contains(r.stderr, "tls-node: ") {
		t.Errorf("send without certificate: exit %d stderr %q", r.code, r.stderr)
	}
}

// TestNodeSeedStartsLater: b starts with a --seed where nothing listens
// yet; the node retries on Perl's schedule (Config.Seeds), so once the
// seed a starts on that address, b joins it, and a can send to b by ID.
func TestNodeSeedStartsLater(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	seedAddr := l.Addr().String()
	l.Close()
	b := startNode(t, nil, "--id", "node-b", "--secret", testSecret, "--seed", seedAddr)
	a := startNode(t, nil, "--id", "node-a", "--secret", testSecret, "--bind", seedAddr)
	// The retry bound: the attempt at most 30r (r < 1.2 s) into the
	// schedule, with room for a slow machine.
	if ev := b.wait("node_up", 60*time.Second); ev.Peer != "node-a" {
		t.Errorf("b: node_up for %q, want node-a", ev.Peer)
	}
	if ev := a.wait("node_up", 10*time.Second); ev.Peer != "node-b" {
		t.Errorf("a: node_up for %q, want node-b", ev.Peer)
	}
	path, data := randomFile(t, t.TempDir(), "late.bin", 3000)
	r := runAemp(t, 30*time.Second, nil, nil, "send", "--secret", testSecret, "--json", "--seed", a.addr, "--to", "node-b", path)
	if r.code != 0 {
		t.Fatalf("send via the late seed: exit %d stderr %s", r.code, r.stderr)
	}
	if ev := b.wait("received", 10*time.Second); ev.SHA256 != sha(data) {
		t.Errorf("b received %+v", ev)
	}
}
