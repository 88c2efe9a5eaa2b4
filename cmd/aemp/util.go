package main

import (
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
)

// copyBufSize is the buffer size of the copy loops: large enough for TLS
// and QUIC to send full records and packets trains.
const copyBufSize = 256 << 10

// parseSize parses a byte count: a plain number of bytes or a number with a
// unit. KiB, MiB, GiB, TiB and the single letters K, M, G, T are powers of
// 1024; kB, MB, GB, TB are powers of 1000; B is a byte. Units are not case
// sensitive except that "kB"/"KB"/"kb" all mean 1000.
func parseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	i := 0
	for i < len(s) && (s[i] >= '0' && s[i] <= '9' || s[i] == '.') {
		i++
	}
	num, unit := s[:i], strings.ToLower(strings.TrimSpace(s[i:]))
	if num == "" {
		return 0, fmt.Errorf("size %q: no number", s)
	}
	mult := map[string]float64{
		"": 1, "b": 1,
		"k": 1 << 10, "kib": 1 << 10, "kb": 1e3,
		"m": 1 << 20, "mib": 1 << 20, "mb": 1e6,
		"g": 1 << 30, "gib": 1 << 30, "gb": 1e9,
		"t": 1 << 40, "tib": 1 << 40, "tb": 1e12,
	}[unit]
	if mult == 0 {
		return 0, fmt.Errorf("size %q: unknown unit %q (use B, KiB, MiB, GiB, TiB, kB, MB, GB, TB)", s, s[i:])
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, fmt.Errorf("size %q: %v", s, err)
	}
	v := f * mult
	if v > math.MaxInt64/2 || math.IsNaN(v) {
		return 0, fmt.Errorf("size %q: too large", s)
	}
	if v != math.Trunc(v) {
		return 0, fmt.Errorf("size %q: not a whole number of bytes", s)
	}
	return int64(v), nil
}

// formatBytes prints a byte count with a binary unit.
func formatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	f := float64(n)
	for _, u := range []string{"KiB", "MiB", "GiB", "TiB"} {
		f /= unit
		if f < unit || u == "TiB" {
			return fmt.Sprintf("%.1f %s", f, u)
		}
	}
	return fmt.Sprintf("%d B", n)
}

// formatRate prints a throughput in MiB/s and Gbit/s.
func formatRate(bytes int64, d time.Duration) string {
	if d <= 0 {
		return "n/a"
	}
	bps := float64(bytes) / d.Seconds()
	return fmt.Sprintf("%.1f MiB/s (%.2f Gbit/s)", bps/(1<<20), bps*8/1e9)
}

// rate returns bytes per second.
func rate(bytes int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(bytes) / d.Seconds()
}

// formatDuration rounds a duration for display.
func formatDuration(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return d.Round(time.Microsecond).String()
	case d < time.Second:
		return d.Round(10 * time.Microsecond).String()
	default:
		return d.Round(time.Millisecond).String()
	}
}

// progress is a byte progress bar on a terminal, or nothing.
type progress struct {
	bar *progressbar.ProgressBar
	w   io.Writer
}

// newProgress returns a progress bar writing to w when show is set; total
// -1 means unknown.
func newProgress(w io.Writer, show bool, total int64, desc string) *progress {
	if !show {
		return &progress{}
	}
	return &progress{w: w, bar: progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(desc),
		progressbar.OptionShowBytes(true),
		progressbar.OptionUseIECUnits(true),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionShowCount(),
		progressbar.OptionClearOnFinish(),
		progressbar.OptionSpinnerType(14),
	)}
}

func (p *progress) add(n int) {
	if p.bar != nil {
		p.bar.Add(n)
	}
}

// finish completes the bar (and clears it).
func (p *progress) finish() {
	if p.bar != nil {
		p.bar.Finish()
	}
}

// abort leaves the bar where it stopped.
func (p *progress) abort() {
	if p.bar != nil {
		p.bar.Exit()
		fmt.Fprintln(p.w)
	}
}

// errShortHash means the far side closed the stream before sending the
// 32-byte SHA-256 of what it received.
var errShortHash = errors.New("receiver closed the stream without confirming the SHA-256 (it refused the transfer or failed; see its log)")
