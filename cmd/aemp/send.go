package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/aemp-go/dataconn/transport"
)

func sendCommand(e *env) (*flag.FlagSet, func(context.Context, []string) error) {
	fs := newFlagSet(e, "send", "aemp send --to NODE[@ADDR] [flags] FILE|-",
		`Open a data connection to NODE and stream FILE (or standard input for -)
into it. NODE's address comes from @ADDR, --peer NODE=ADDR or the --seed
nodes. The far side runs the init function --initfunc (default aemp::recv)
with the init data --initdata (default: the base name of FILE, "stdin" for
-). After the end of the file the stream is half-closed; with aemp::recv the
receiver answers with the SHA-256 of what it got, which must match.

On success it prints the bytes sent, the SHA-256, the time and the
throughput; on failure the reason (for data connections the kill reason the
Perl node would give) on stderr, with exit status 1.`)
	var nf nodeFlags
	nf.e = e
	nf.register(fs)
	to := fs.String("to", "", "target `NODE[@ADDR]` (required)")
	initFunc := fs.String("initfunc", recvInitFunc, "init function `NAME` to run on the target")
	initData := fs.String("initdata", "", "init data as a `JSON` array (default: [basename of FILE])")
	timeout := fs.Duration("timeout", 10*time.Second, "time allowed to set the data connection up, and to wait for the receiver's SHA-256")
	return fs, func(ctx context.Context, args []string) error {
		if len(args) != 1 {
			return usagef("want exactly one FILE (or - for standard input), got %d arguments", len(args))
		}
		if *to == "" {
			return usagef("--to NODE[@ADDR] is required")
		}
		if *timeout <= 0 {
			return usagef("--timeout must be positive")
		}
		target, addr, err := splitTarget(*to)
		if err != nil {
			return usagef("--to %q: %v", *to, err)
		}
		if target == "" {
			return usagef("--to %q: missing node ID", *to)
		}
		file := args[0]
		var data []any
		if *initData != "" {
			data, err = parseInitData(*initData)
			if err != nil {
				return usagef("--initdata: %v", err)
			}
		} else if file == "-" {
			data = []any{"stdin"}
		} else {
			data = []any{filepath.Base(file)}
		}

		s, err := nf.build(nil)
		if err != nil {
			return err
		}
		defer s.close()
		var in io.Reader
		size := int64(-1)
		if file == "-" {
			in = e.stdin
		} else {
			f, err := os.Open(file)
			if err != nil {
				return err
			}
			defer f.Close()
			if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
				size = st.Size()
			}
			in = f
		}

		rep := &reporter{w: e.stdout, json: nf.jsonOut}
		res, err := sendFile(ctx, s, sendRequest{
			target: target, addr: addr, timeout: *timeout,
			initFunc: *initFunc, initData: data,
			in: in, size: size,
			progress: e.stderrTTY && !nf.verbose, progressOut: e.stderr,
		})
		if err != nil {
			if nf.jsonOut {
				rep.emit(event{Event: "send_failed", Peer: target, Init: *initFunc, Reason: err.Error()})
			}
			return err
		}
		ev := event{Event: "sent", Node: s.node.ID(), Peer: target, Init: *initFunc, Bytes: ptr(res.bytes),
			SHA256: hex.EncodeToString(res.sum), Seconds: ptr(res.elapsed.Seconds()),
			SetupSeconds: ptr(res.setup.Seconds()), BytesPerSecond: ptr(rate(res.bytes, res.elapsed))}
		// Only aemp::recv writes a checksum back; any other function (and a
		// Perl target, which reports no error for an unknown function) leaves
		// the transfer unchecked, and --json says so rather than omitting it.
		ev.Verified = ptr(false)
		check := "not checked (init function is not " + recvInitFunc + ")"
		if res.checked {
			ev.Verified = ptr(true)
			check = "verified by the receiver"
		}
		ev.Text = fmt.Sprintf("sent %d bytes (%s) to %s in %s (set-up %s): %s\nsha256 %s %s",
			res.bytes, formatBytes(res.bytes), target, formatDuration(res.elapsed), formatDuration(res.setup),
			formatRate(res.bytes, res.elapsed), ev.SHA256, check)
		rep.emit(ev)
		return nil
	}
}

// parseInitData decodes a JSON array; integral numbers become int64.
func parseInitData(s string) ([]any, error) {
	dec := json.NewDecoder(bytes.NewReader([]byte(s)))
	dec.UseNumber()
	var v []any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("want a JSON array: %v", err)
	}
	if dec.More() {
		return nil, errors.New("want a single JSON array")
	}
	if v == nil {
		return nil, errors.New("want a JSON array, got null")
	}
	for i := range v {
		v[i] = fromJSON(v[i])
	}
	return v, nil
}

func fromJSON(v any) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i
		}
		f, _ := x.Float64()
		return f
	case []any:
		for i := range x {
			x[i] = fromJSON(x[i])
		}
		return x
	case map[string]any:
		for k := range x {
			x[k] = fromJSON(x[k])
		}
		return x
	}
	return v
}

type sendRequest struct {
	target, addr string
	timeout      time.Duration
	initFunc     string
	initData     []any
	in           io.Reader
	size         int64
	progress     bool
	progressOut  io.Writer
}

type sendResult struct {
	bytes   int64
	sum     []byte
	setup   time.Duration
	elapsed time.Duration // from the first byte to the confirmation
	checked bool
}

// sendFile opens the data connection and streams the input through it.
func sendFile(ctx context.Context, s *setup, req sendRequest) (*sendResult, error) {
	if _, err := s.listen(ctx); err != nil {
		return nil, err
	}
	if err := s.resolveTarget(ctx, req.target, req.addr, req.timeout); err != nil {
		return nil, err
	}
	t0 := time.Now()
	conn, err := s.node.ConnectTo(ctx, req.target, req.timeout, req.initFunc, req.initData...)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	res := &sendResult{setup: time.Since(t0)}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()

	bar := newProgress(req.progressOut, req.progress, req.size, "sending")
	t1 := time.Now()
	h := sha256.New()
	n, err := pump(conn, req.in, h, bar.add)
	res.bytes = n
	if err != nil {
		bar.abort()
		var ie *inputError
		if errors.As(err, &ie) {
			return nil, ie
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%s: interrupted after %d bytes", req.target, n)
		}
		return nil, fmt.Errorf("%s: stream broken after %d bytes: %v (the receiver refused the transfer or failed; see its log)", req.target, n, err)
	}
	bar.finish()
	res.sum = h.Sum(nil)
	if err := closeWrite(conn); err != nil {
		return nil, fmt.Errorf("%s: half-close after %d bytes: %v (the receiver refused the transfer or failed; see its log)", req.target, n, err)
	}
	conn.SetReadDeadline(time.Now().Add(req.timeout))
	if req.initFunc == recvInitFunc {
		got := make([]byte, sha256.Size)
		k, err := io.ReadFull(conn, got)
		if err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("%s: interrupted while waiting for the SHA-256", req.target)
			}
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return nil, fmt.Errorf("%s: no SHA-256 from the receiver within %s", req.target, req.timeout)
			}
			return nil, fmt.Errorf("%s: %w (got %d of %d bytes: %v)", req.target, errShortHash, k, sha256.Size, err)
		}
		if subtle.ConstantTimeCompare(got, res.sum) != 1 {
			return nil, fmt.Errorf("%s: SHA-256 mismatch: sent %x, receiver got %x", req.target, res.sum, got)
		}
		res.checked = true
	} else {
		// Wait for the far side to close so that nothing we sent is lost
		// to a reset; what it sends back is discarded.
		if _, err := io.Copy(io.Discard, io.LimitReader(conn, 1<<30)); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			s.log.Debug("reading after half-close", "err", err)
		}
	}
	res.elapsed = time.Since(t1)
	return res, nil
}

// pump copies in to conn, hashing into h and reporting progress.
func pump(conn net.Conn, in io.Reader, h io.Writer, progress func(int)) (int64, error) {
	buf := make([]byte, copyBufSize)
	var total int64
	for {
		k, rerr := in.Read(buf)
		if k > 0 {
			h.Write(buf[:k])
			if _, err := conn.Write(buf[:k]); err != nil {
				return total, err
			}
			total += int64(k)
			progress(k)
		}
		if rerr == io.EOF {
			return total, nil
		}
		if rerr != nil {
			return total, &inputError{rerr}
		}
	}
}

// inputError is a failure to read the file being sent.
type inputError struct{ err error }

func (e *inputError) Error() string { return "read input: " + e.err.Error() }

// Unwrap returns the read error.
func (e *inputError) Unwrap() error { return e.err }

// closeWrite half-closes conn, or fails if it cannot.
func closeWrite(conn net.Conn) error {
	if cw, ok := conn.(transport.CloseWriter); ok {
		return cw.CloseWrite()
	}
	return fmt.Errorf("stream %T cannot half-close", conn)
}
