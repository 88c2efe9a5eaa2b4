package transport

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aemp-go/dataconn/core/peer"
	"github.com/aemp-go/dataconn/core/wire"
)

// TestLimitDefaults pins every default of the README's limits table (and
// the random source) to what a zero Config gets. The behaviour at each
// default is tested by the tests the table names.
func TestLimitDefaults(t *testing.T) {
	cfg := Config{NodeID: "n"}
	if err := cfg.setDefaults(); err != nil {
		t.Fatal(err)
	}
	rows := []struct {
		row       string
		got, want any
	}{
		{"handshake line, terminator included", wire.MaxLineLen, 4096},
		{"handshake time (HandshakeTimeout)", cfg.HandshakeTimeout, 10 * time.Second},
		{"concurrent handshakes per listener (MaxHandshakes)", cfg.MaxHandshakes, 256},
		{"one received message (MaxFrame)", cfg.MaxFrame, 16 << 20},
		{"bytes queued for one peer (MaxSendQueue)", cfg.MaxSendQueue, 64 << 20},
		{"messages queued while connecting (peer.DefaultMaxPending, the node leaves it to the machine)", peer.DefaultMaxPending, 4096},
		{"silence before a peer is down (PeerTimeout)", cfg.PeerTimeout, 30 * time.Second},
		{"keepalive (KeepAlive)", cfg.KeepAlive, 10 * time.Second},
		{"pending expectations per peer (DataConn.MaxExpectPerPeer)", cfg.DataConn.MaxExpectPerPeer, 256},
		{"early data connections held per peer (DataConn.MaxEarlyPerPeer)", cfg.DataConn.MaxEarlyPerPeer, 16},
		{"how long an early data connection is held (DataConn.EarlyHold)", cfg.DataConn.EarlyHold, 3 * time.Second},
		{"expectations waiting past the limit, per peer (DataConn.MaxExpectQueuePerPeer)", cfg.DataConn.MaxExpectQueuePerPeer, 16384},
		{"our set-ups queued for one target (DataConn.MaxQueuedPerTarget)", cfg.DataConn.MaxQueuedPerTarget, 100000},
	}
	for _, r := range rows {
		if r.got != r.want {
			t.Errorf("%s: default %v, README says %v", r.row, r.got, r.want)
		}
	}
	if cfg.Rand != rand.Reader {
		t.Errorf("default Rand is %T, want crypto/rand.Reader", cfg.Rand)
	}
}

// recordingRand is a Config.Rand that keeps every byte it handed out.
type recordingRand struct {
	mu  sync.Mutex
	r   io.Reader
	out []byte
}

func (r *recordingRand) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.mu.Lock()
	r.out = append(r.out, p[:n]...)
	r.mu.Unlock()
	return n, err
}

func (r *recordingRand) handedOut() []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return bytes.Clone(r.out)
}

// expectHost is a Host that records the control messages sent and never
// gets a data connection through.
type expectHost struct {
	mu   sync.Mutex
	sent []wire.Message
}

func (h *expectHost) SendControl(node string, msg wire.Message) error {
	h.mu.Lock()
	h.sent = append(h.sent, msg)
	h.mu.Unlock()
	return nil
}
func (h *expectHost) RoundTrip(ctx context.Context, node string) error {
	return errors.New("no round trip in this test")
}
func (h *expectHost) ListenerAddrs(node string) []string { return []string{"tcp:127.0.0.1:1"} }
func (h *expectHost) IsGoPeer(node string) bool          { return false }
func (h *expectHost) NetworkFor(addr string) (Network, string, error) {
	return nil, "", errors.New("no network in this test")
}
func (h *expectHost) Connected(ctx context.Context, node string) error { return nil }

// TestDataConnIDs128BitFromRand: a data-connection id is 16 bytes (128
// bits) read from Config.Rand, base64url-encoded, followed by "@" and the
// initiator's node ID; with the default Rand (crypto/rand) every id of
// many differs and every bit position takes both values.
func TestDataConnIDs128BitFromRand(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rr := &recordingRand{r: rand.Reader}
		h := &expectHost{}
		d, err := NewDataConns(Config{NodeID: "a", Secret: []byte("s"), Rand: rr}, h)
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		for range 3 {
			before := len(rr.handedOut())
			if _, err := d.ConnectTo(context.Background(), "b", time.Millisecond, "f"); !errors.Is(err, ErrDataConnTimeout) {
				t.Fatalf("ConnectTo: %v, want a timeout", err)
			}
			read := rr.handedOut()[before:]
			h.mu.Lock()
			last := h.sent[len(h.sent)-1]
			h.mu.Unlock()
			if len(last) < 3 || last[1] != wire.NodeMsgTagExpect {
				t.Fatalf("last control message %v, want an _expect", last)
			}
			id, _ := last[2].(string)
			raw, node, ok := strings.Cut(id, "@")
			b, err := base64.RawURLEncoding.DecodeString(raw)
			if !ok || node != "a" || err != nil || len(b) != 16 {
				t.Fatalf("id %q: want base64url of 16 bytes, then @a (decoded %d bytes, %v)", id, len(b), err)
			}
			if !bytes.Equal(b, read) {
				t.Fatalf("id bytes %x are not the %d bytes read from Config.Rand for it (%x)", b, len(read), read)
			}
		}
	})

	// The default source: distinct ids, no stuck bit.
	n := &endpoint{cfg: Config{NodeID: "a"}}
	if err := n.cfg.setDefaults(); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	var ones [128]int
	const ids = 512
	for range ids {
		id, err := n.randomID()
		if err != nil {
			t.Fatal(err)
		}
		b, err := base64.RawURLEncoding.DecodeString(id)
		if err != nil || len(b) != 16 || seen[id] {
			t.Fatalf("id %q: %d bytes, %v, repeated %v", id, len(b), err, seen[id])
		}
		seen[id] = true
		for i := range 128 {
			ones[i] += int(b[i/8] >> (i % 8) & 1)
		}
	}
	// Binomial(512, 1/2): 128..384 is over 11 standard deviations wide.
	for i, c := range ones {
		if c < ids/4 || c > 3*ids/4 {
			t.Errorf("bit %d set in %d of %d ids", i, c, ids)
		}
	}
}
