package main

import (
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/aemp-go/dataconn/transport"
)

// event is one line of --json output. Fields that do not apply are left
// out.
type event struct {
	Time    string   `json:"time"`
	Event   string   `json:"event"`
	Node    string   `json:"node,omitempty"`
	Peer    string   `json:"peer,omitempty"`
	Addr    string   `json:"addr,omitempty"`
	Addrs   []string `json:"addrs,omitempty"`
	Port    string   `json:"port,omitempty"`
	Init    string   `json:"initfunc,omitempty"`
	File    string   `json:"file,omitempty"`
	Bytes   *int64   `json:"bytes,omitempty"`
	SHA256  string   `json:"sha256,omitempty"`
	Reason  string   `json:"reason,omitempty"`
	Error   string   `json:"error,omitempty"`
	Seconds *float64 `json:"seconds,omitempty"`
	// BytesPerSecond is the throughput of a transfer.
	BytesPerSecond *float64 `json:"bytes_per_second,omitempty"`
	SetupSeconds   *float64 `json:"setup_seconds,omitempty"`
	// ConnectSeconds is the messaging connection time of a demo row.
	ConnectSeconds *float64  `json:"connect_seconds,omitempty"`
	Verified       *bool     `json:"verified,omitempty"`
	RTTSeconds     []float64 `json:"rtt_seconds,omitempty"`
	// Text is the human-readable line printed instead when --json is off.
	Text string `json:"-"`
	// Transport and Auth describe a demo row.
	Transport string `json:"transport,omitempty"`
	Auth      string `json:"auth,omitempty"`
	// Stats is the node's load (aemp node --stats).
	Stats *transport.Stats `json:"stats,omitempty"`
}

// reporter prints events: as JSON lines, or as their Text. It is safe for
// concurrent use, so events of concurrent transfers never interleave.
type reporter struct {
	mu   sync.Mutex
	w    io.Writer
	json bool
}

func (r *reporter) emit(ev event) {
	ev.Time = time.Now().UTC().Format(time.RFC3339Nano)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.json {
		b, err := json.Marshal(ev)
		if err != nil {
			fmt.Fprintf(r.w, "{\"event\":\"error\",\"error\":%q}\n", err.Error())
			return
		}
		r.w.Write(append(b, '\n'))
		return
	}
	if ev.Text != "" {
		fmt.Fprintln(r.w, ev.Text)
	}
}

func ptr[T any](v T) *T { return &v }
