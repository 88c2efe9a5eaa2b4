package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/aemp-go/dataconn/core/wire"
	"github.com/aemp-go/dataconn/transport"
)

// recvInitFunc is the init function of `aemp node` that receives files.
const recvInitFunc = "aemp::recv"

// recvIdleTimeout drops a receiving stream on which nothing arrived for
// this long.
const recvIdleTimeout = 2 * time.Minute

// maxNameLen bounds a received file name, in bytes.
const maxNameLen = 255

func nodeCommand(e *env) (*flag.FlagSet, func(context.Context, []string) error) {
	fs := newFlagSet(e, "node", "aemp node [flags]",
		`Run a node until SIGINT or SIGTERM. It listens on the --bind addresses
(default 127.0.0.1:0, a free loopback port), connects to every --seed
(retrying with Perl's backoff, so either node may start first) and
announces its listeners there as a global node does, and accepts data connections for the init
function aemp::recv: the stream is stored in --recv-dir under the name given
as the first init datum (or discarded without --recv-dir), and after the
sender's end of stream the 32-byte SHA-256 of what arrived is written back.
Names that would leave the directory (absolute, "..", separators, empty)
are refused: the stream is closed and a "refused" event is printed.

Events (with --json one JSON object per line on stdout): listening,
node_up, node_down, dataconn_opened, dataconn_failed, refused, received,
stats (every --stats interval), stopped.`)
	var nf nodeFlags
	nf.e = e
	nf.register(fs)
	recvDir := fs.String("recv-dir", "", "store received streams in `DIR` (created if missing); default: discard them")
	statsEvery := fs.Duration("stats", 0, "print a stats event (the node's load: set-ups queued and in flight, handshakes, refusals and failures by rule) every `INTERVAL`; 0: never")
	return fs, func(ctx context.Context, args []string) error {
		if len(args) > 0 {
			return usagef("unexpected arguments: %q", args)
		}
		s, err := nf.build([]string{"127.0.0.1:0"})
		if err != nil {
			return err
		}
		defer s.close()
		rep := &reporter{w: e.stdout, json: nf.jsonOut}
		if *statsEvery > 0 {
			stop := reportStats(ctx, s.node, rep, *statsEvery)
			defer stop()
		}
		return runNode(ctx, s, rep, *recvDir)
	}
}

func runNode(ctx context.Context, s *setup, rep *reporter, recvDir string) error {
	n := s.node
	r, err := newReceiver(recvDir, rep, s.log)
	if err != nil {
		return err
	}
	defer r.close()
	n.HandleDataConn(recvInitFunc, r.handle)

	tr := &nodeTracker{n: n, rep: rep, state: map[string]bool{}}
	tr.cancel = n.MonitorNodes(tr.report)
	defer tr.stop()

	addrs, err := s.listen(ctx)
	for _, a := range addrs {
		rep.emit(event{Event: "listening", Node: n.ID(), Addr: a,
			Text: fmt.Sprintf("node %s listening on %s", n.ID(), a)})
	}
	if err != nil {
		return err
	}
	// Seeding runs in the node (Config.Seeds): it retries until the
	// seeds answer, whichever node starts first.
	if err := n.Start(); err != nil {
		return err
	}

	<-ctx.Done()
	r.shutdown()
	n.Close()
	rep.emit(event{Event: "stopped", Node: n.ID(), Text: fmt.Sprintf("node %s stopped", n.ID())})
	return nil
}

// nodeTracker reports node_up and node_down events from
// Node.MonitorNodes.
type nodeTracker struct {
	n      *transport.Node
	rep    *reporter
	cancel func()

	mu      sync.Mutex
	state   map[string]bool
	stopped bool
}

func (t *nodeTracker) report(id string, up bool, err error) {
	t.mu.Lock()
	if t.stopped || t.state[id] == up {
		t.mu.Unlock()
		return
	}
	t.state[id] = up
	t.mu.Unlock()
	if up {
		t.rep.emit(event{Event: "node_up", Peer: id, Text: "node up: " + id})
		return
	}
	ev := event{Event: "node_down", Peer: id, Text: "node down: " + id}
	if err != nil {
		ev.Error = err.Error()
		ev.Text += ": " + err.Error()
	}
	t.rep.emit(ev)
}

func (t *nodeTracker) stop() {
	t.mu.Lock()
	t.stopped = true
	t.mu.Unlock()
	t.cancel()
}

// receiver is the aemp::recv init function: it stores or discards incoming
// streams and confirms them with their SHA-256.
type receiver struct {
	root *os.Root // nil: discard
	dir  string
	rep  *reporter
	log  *slog.Logger

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

func newReceiver(dir string, rep *reporter, log *slog.Logger) (*receiver, error) {
	r := &receiver{dir: dir, rep: rep, log: log, conns: map[net.Conn]struct{}{}}
	if dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("--recv-dir: %w", err)
		}
		root, err := os.OpenRoot(dir)
		if err != nil {
			return nil, fmt.Errorf("--recv-dir: %w", err)
		}
		r.root = root
	}
	return r, nil
}

// shutdown closes every stream being received and refuses new ones; it
// waits until their handlers have returned.
func (r *receiver) shutdown() {
	r.mu.Lock()
	r.closed = true
	for c := range r.conns {
		c.Close()
	}
	r.mu.Unlock()
	r.wg.Wait()
}

func (r *receiver) close() {
	r.shutdown()
	if r.root != nil {
		r.root.Close()
	}
}

func (r *receiver) track(c net.Conn) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return false
	}
	r.conns[c] = struct{}{}
	r.wg.Add(1)
	return true
}

func (r *receiver) untrack(c net.Conn) {
	r.mu.Lock()
	delete(r.conns, c)
	r.mu.Unlock()
	r.wg.Done()
}

// errBadName is the rule a refused file name broke.
var errBadName = errors.New("file name would leave the receive directory")

// checkName validates the first init datum as a file name inside the
// receive directory.
func checkName(data []any) (string, error) {
	if len(data) == 0 {
		return "", fmt.Errorf("%w: no file name in the init data", errBadName)
	}
	name, ok := wire.AsString(data[0])
	if !ok {
		return "", fmt.Errorf("%w: file name is not a string (%T)", errBadName, data[0])
	}
	switch {
	case name == "":
		return "", fmt.Errorf("%w: empty file name", errBadName)
	case strings.HasPrefix(name, "/") || strings.HasPrefix(name, `\`) || filepath.IsAbs(name):
		return "", fmt.Errorf("%w: absolute path %q", errBadName, name)
	case name == "." || name == ".." || strings.HasPrefix(name, "../") || strings.HasPrefix(name, `..\`):
		return "", fmt.Errorf("%w: %q refers to a parent directory", errBadName, name)
	case strings.ContainsAny(name, `/\`):
		return "", fmt.Errorf("%w: %q contains a path separator", errBadName, name)
	case strings.ContainsRune(name, 0) || strings.ContainsAny(name, "\r\n"):
		return "", fmt.Errorf("%w: %q contains a control character", errBadName, name)
	case len(name) > maxNameLen:
		return "", fmt.Errorf("%w: name longer than %d bytes", errBadName, maxNameLen)
	case strings.HasPrefix(name, partPrefix):
		return "", fmt.Errorf("%w: %q uses the prefix reserved for partial files", errBadName, name)
	case !filepath.IsLocal(name):
		return "", fmt.Errorf("%w: %q is not a local name", errBadName, name)
	}
	return name, nil
}

// partPrefix starts the names of files still being received.
const partPrefix = ".aemp-part-"

// handle is the init function aemp::recv.
func (r *receiver) handle(from string, data []any, conn net.Conn) {
	if !r.track(conn) {
		conn.Close()
		return
	}
	defer r.untrack(conn)
	defer conn.Close()
	start := time.Now()

	name := ""
	if len(data) > 0 {
		name, _ = wire.AsString(data[0])
	}
	var sink io.Writer = io.Discard
	var part *os.File
	var partName string
	if r.root != nil {
		checked, err := checkName(data)
		if err != nil {
			r.rep.emit(event{Event: "refused", Peer: from, Init: recvInitFunc, File: name, Reason: err.Error(),
				Text: fmt.Sprintf("refused data connection from %s: %v", from, err)})
			return
		}
		name = checked
		partName = partPrefix + randomSuffix()
		part, err = r.root.OpenFile(partName, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err != nil {
			r.fail(from, name, 0, fmt.Errorf("create %s: %w", partName, err))
			return
		}
		sink = part
		defer func() {
			if part != nil {
				part.Close()
				r.root.Remove(partName)
			}
		}()
	}
	r.rep.emit(event{Event: "dataconn_opened", Peer: from, Init: recvInitFunc, File: name,
		Text: fmt.Sprintf("data connection from %s (%s %q)", from, recvInitFunc, name)})

	h := sha256.New()
	buf := make([]byte, copyBufSize)
	var total int64
	for {
		conn.SetReadDeadline(time.Now().Add(recvIdleTimeout))
		k, err := conn.Read(buf)
		if k > 0 {
			h.Write(buf[:k])
			if _, werr := sink.Write(buf[:k]); werr != nil {
				r.fail(from, name, total, fmt.Errorf("write: %w", werr))
				return
			}
			total += int64(k)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			r.fail(from, name, total, fmt.Errorf("read: %w", err))
			return
		}
	}
	conn.SetReadDeadline(time.Time{})
	if part != nil {
		err := part.Close()
		part = nil
		if err == nil {
			err = r.root.Rename(partName, name)
		}
		if err != nil {
			r.root.Remove(partName)
			r.fail(from, name, total, fmt.Errorf("store: %w", err))
			return
		}
	}
	sum := h.Sum(nil)
	conn.SetWriteDeadline(time.Now().Add(recvIdleTimeout))
	if _, err := conn.Write(sum); err != nil {
		r.log.Warn("could not confirm the SHA-256 to the sender", "peer", from, "err", err)
	}
	d := time.Since(start)
	ev := event{Event: "received", Peer: from, Init: recvInitFunc, File: name, Bytes: ptr(total),
		SHA256: hex.EncodeToString(sum), Seconds: ptr(d.Seconds()), BytesPerSecond: ptr(rate(total, d))}
	where := "discarded"
	if r.root != nil {
		where = "stored as " + filepath.Join(r.dir, name)
		ev.File = filepath.Join(r.dir, name)
	}
	ev.Text = fmt.Sprintf("received %d bytes from %s in %s, sha256 %s, %s", total, from, formatDuration(d), ev.SHA256, where)
	r.rep.emit(ev)
}

func (r *receiver) fail(from, name string, total int64, err error) {
	r.rep.emit(event{Event: "dataconn_failed", Peer: from, Init: recvInitFunc, File: name, Bytes: ptr(total), Reason: err.Error(),
		Text: fmt.Sprintf("data connection from %s failed after %d bytes: %v", from, total, err)})
}

// reportStats emits a stats event every interval until ctx ends or stop
// is called.
func reportStats(ctx context.Context, n *transport.Node, rep *reporter, every time.Duration) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				st := n.Stats()
				rep.emit(event{Event: "stats", Node: n.ID(), Stats: &st, Text: fmt.Sprintf(
					"stats: %d peers; set-ups %d queued, %d in flight; expectations %d (+%d waiting), %d held; handshakes %d (%d unproven); refused %v; failed %v",
					st.Peers, st.Queued, st.InFlight, st.Expectations, st.ExpectWaiting, st.HeldEarly,
					st.HandshakesInProgress, st.HandshakesUnproven, st.Refused, st.Failed)})
			}
		}
	}()
	return func() { cancel(); <-done }
}
