package tcp_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aemp-go/dataconn/tcp"
	"github.com/aemp-go/dataconn/transport"
)

// Data connections across hosts: two network namespaces joined by a veth
// pair, one node in each (a child process: this test binary re-executed
// inside the namespace, running TestNetnsHelper).

// Environment of a helper process; without netnsEnvRole the helper test
// does nothing.
const (
	netnsEnvRole     = "AEMP_NETNS_ROLE"      // "a" or "b"
	netnsEnvListen   = "AEMP_NETNS_LISTEN"    // our listen address
	netnsEnvPeerAddr = "AEMP_NETNS_PEER_ADDR" // the other node's address
	netnsEnvSecret   = "AEMP_NETNS_SECRET"    // shared secret, hex
)

// netnsSize is what each node sends to the other.
const netnsSize = 10 << 20

// netnsPort is the port both nodes listen on, each on its own address
// inside a namespace of its own.
const netnsPort = "7342"

// netnsTimeout bounds the whole test, children included.
const netnsTimeout = 90 * time.Second

// netnsIPs are the addresses of the veth ends (a /30 of its own).
var netnsIPs = map[string]string{"a": "10.213.0.1", "b": "10.213.0.2"}

func netnsNodeID(role string) string { return "netns-" + role }

func netnsOther(role string) string {
	if role == "a" {
		return "b"
	}
	return "a"
}

// netnsEvent is one JSON line a helper prints on stdout.
type netnsEvent struct {
	Kind       string `json:"kind"` // "sent" or "received"
	Node       string `json:"node"`
	Peer       string `json:"peer"`   // the other node's ID
	Remote     string `json:"remote"` // the stream's remote address
	ConnType   string `json:"conn_type"`
	Bytes      int64  `json:"bytes"`
	SHA256     string `json:"sha256"`                // of what was sent or received
	PeerSHA256 string `json:"peer_sha256,omitempty"` // "sent": what the far end answered
	Err        string `json:"err,omitempty"`
}

// ipCmd runs the ip command and returns its error with its output.
func ipCmd(ctx context.Context, args ...string) error {
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

func TestNetns(t *testing.T) {
	if os.Geteuid() != 0 {
		skipOrFail(t, "creating network namespaces needs root (CI runs this test as root)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		skipOrFail(t, "the ip command (iproute2) is not installed; .ci/run installs it")
	}
	ctx, cancel := context.WithTimeout(context.Background(), netnsTimeout)
	defer cancel()

	pid := os.Getpid()
	ns := map[string]string{"a": fmt.Sprintf("aemp-test-a-%d", pid), "b": fmt.Sprintf("aemp-test-b-%d", pid)}
	veth := map[string]string{"a": fmt.Sprintf("aea%d", pid), "b": fmt.Sprintf("aeb%d", pid)}

	// Cleanup uses its own context: ctx may be over by then.
	cleanupIP := func(args ...string) {
		cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer ccancel()
		_ = ipCmd(cctx, args...)
	}
	for i, role := range []string{"a", "b"} {
		if err := ipCmd(ctx, "netns", "add", ns[role]); err != nil {
			if i == 0 && (strings.Contains(err.Error(), "Operation not permitted") || strings.Contains(err.Error(), "Permission denied")) {
				skipOrFail(t, "this environment does not allow network namespaces even as root: %v", err)
			}
			t.Fatal(err)
		}
		t.Cleanup(func() { cleanupIP("netns", "del", ns[role]) })
	}
	if err := ipCmd(ctx, "link", "add", veth["a"], "type", "veth", "peer", "name", veth["b"]); err != nil {
		t.Fatal(err)
	}
	// Deleting either end removes the pair; once the ends are in the
	// namespaces, deleting those removes it too and this finds nothing.
	t.Cleanup(func() { cleanupIP("link", "del", veth["a"]) })
	for _, role := range []string{"a", "b"} {
		steps := [][]string{
			{"link", "set", veth[role], "netns", ns[role]},
			{"-n", ns[role], "addr", "add", netnsIPs[role] + "/30", "dev", veth[role]},
			{"-n", ns[role], "link", "set", veth[role], "up"},
			{"-n", ns[role], "link", "set", "lo", "up"},
		}
		for _, s := range steps {
			if err := ipCmd(ctx, s...); err != nil {
				t.Fatal(err)
			}
		}
	}

	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	key := make([]byte, 32)
	rand.Read(key)
	type child struct {
		cmd    *exec.Cmd
		stdout bytes.Buffer
		stderr bytes.Buffer
		err    error
	}
	children := map[string]*child{}
	var wg sync.WaitGroup
	// Runs before the namespaces are deleted (cleanups run last first).
	// ip netns exec replaces itself with the helper, so this kills it.
	t.Cleanup(func() {
		for _, ch := range children {
			ch.cmd.Process.Kill() // an error only says it has already exited
		}
		wg.Wait()
	})
	for _, role := range []string{"a", "b"} {
		ch := &child{}
		ch.cmd = exec.CommandContext(ctx, "ip", "netns", "exec", ns[role], exe,
			"-test.run=^TestNetnsHelper$", "-test.count=1", "-test.timeout="+netnsTimeout.String())
		ch.cmd.Env = append(os.Environ(),
			netnsEnvRole+"="+role,
			netnsEnvListen+"="+net.JoinHostPort(netnsIPs[role], netnsPort),
			netnsEnvPeerAddr+"="+net.JoinHostPort(netnsIPs[netnsOther(role)], netnsPort),
			netnsEnvSecret+"="+hex.EncodeToString(key),
		)
		ch.cmd.Stdout = &ch.stdout
		ch.cmd.Stderr = &ch.stderr
		ch.cmd.WaitDelay = 5 * time.Second
		if err := ch.cmd.Start(); err != nil {
			t.Fatalf("starting the helper in %s: %v", ns[role], err)
		}
		children[role] = ch
		wg.Add(1)
		go func() {
			defer wg.Done()
			ch.err = ch.cmd.Wait()
		}()
	}
	wg.Wait()

	events := map[string]map[string]netnsEvent{} // role → kind → event
	for _, role := range []string{"a", "b"} {
		ch := children[role]
		if ch.err != nil || ctx.Err() != nil {
			t.Errorf("helper %s: %v (test context: %v)\nstdout:\n%s\nstderr:\n%s", role, ch.err, ctx.Err(), ch.stdout.String(), ch.stderr.String())
		}
		events[role] = map[string]netnsEvent{}
		sc := bufio.NewScanner(bytes.NewReader(ch.stdout.Bytes()))
		for sc.Scan() {
			line := sc.Bytes()
			if !bytes.HasPrefix(line, []byte("{")) {
				continue
			}
			var ev netnsEvent
			if err := json.Unmarshal(line, &ev); err != nil {
				t.Fatalf("helper %s printed %q: %v", role, line, err)
			}
			if _, dup := events[role][ev.Kind]; dup {
				t.Fatalf("helper %s reported %q twice", role, ev.Kind)
			}
			events[role][ev.Kind] = ev
		}
	}
	for _, role := range []string{"a", "b"} {
		other := netnsOther(role)
		sent, ok1 := events[role]["sent"]
		recv, ok2 := events[other]["received"]
		if !ok1 || !ok2 {
			t.Errorf("%s → %s: missing results (sent %v, received %v)", role, other, ok1, ok2)
			continue
		}
		if sent.Err != "" || recv.Err != "" {
			t.Errorf("%s → %s: sender error %q, receiver error %q", role, other, sent.Err, recv.Err)
			continue
		}
		if sent.Bytes != netnsSize || recv.Bytes != netnsSize {
			t.Errorf("%s → %s: sent %d bytes, received %d, want %d", role, other, sent.Bytes, recv.Bytes, netnsSize)
		}
		if sent.SHA256 == "" || sent.SHA256 != recv.SHA256 || sent.PeerSHA256 != recv.SHA256 {
			t.Errorf("%s → %s: SHA-256 sent %s, received %s, answered %s", role, other, sent.SHA256, recv.SHA256, sent.PeerSHA256)
		}
		if recv.Peer != netnsNodeID(role) || sent.Peer != netnsNodeID(other) {
			t.Errorf("%s → %s: receiver saw initiator %q, sender reached %q", role, other, recv.Peer, sent.Peer)
		}
		// The stream crossed the veth pair: each end sees the other
		// namespace's address.
		if h, _, _ := net.SplitHostPort(sent.Remote); h != netnsIPs[other] {
			t.Errorf("%s → %s: sender's remote address %s, want %s", role, other, sent.Remote, netnsIPs[other])
		}
		if h, _, _ := net.SplitHostPort(recv.Remote); h != netnsIPs[role] {
			t.Errorf("%s → %s: receiver's remote address %s, want %s", role, other, recv.Remote, netnsIPs[role])
		}
		if sent.ConnType != "*net.TCPConn" || recv.ConnType != "*net.TCPConn" {
			t.Errorf("%s → %s: streams %s and %s, want *net.TCPConn", role, other, sent.ConnType, recv.ConnType)
		}
		t.Logf("%s → %s: %d bytes from %s to %s, SHA-256 %s on both ends", role, other, recv.Bytes, recv.Remote, sent.Remote, recv.SHA256)
	}
}

// TestNetnsHelper is one node of TestNetns, run inside a namespace; it
// returns at once unless TestNetns started it.
func TestNetnsHelper(t *testing.T) {
	role := os.Getenv(netnsEnvRole)
	if role == "" {
		return
	}
	if role != "a" && role != "b" {
		t.Fatalf("%s=%q", netnsEnvRole, role)
	}
	key, err := hex.DecodeString(os.Getenv(netnsEnvSecret))
	if err != nil || len(key) == 0 {
		t.Fatalf("%s: %v", netnsEnvSecret, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), netnsTimeout-15*time.Second)
	defer cancel()

	var outMu sync.Mutex
	emit := func(ev netnsEvent) {
		b, err := json.Marshal(ev)
		if err != nil {
			panic(err) // a plain struct of strings and ints always marshals
		}
		outMu.Lock()
		defer outMu.Unlock()
		os.Stdout.Write(append(b, '\n'))
	}

	self, peer := netnsNodeID(role), netnsNodeID(netnsOther(role))
	n, err := transport.NewNode(transport.Config{NodeID: self, Secret: key, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	received := make(chan struct{})
	n.HandleDataConn("netns::hash", func(from string, _ []any, c net.Conn) {
		defer close(received)
		defer c.Close()
		ev := netnsEvent{Kind: "received", Node: self, Peer: from, Remote: c.RemoteAddr().String(), ConnType: fmt.Sprintf("%T", c)}
		c.SetDeadline(time.Now().Add(netnsTimeout / 2))
		h := sha256.New()
		var rerr error
		ev.Bytes, rerr = io.Copy(h, c)
		sum := h.Sum(nil)
		ev.SHA256 = hex.EncodeToString(sum)
		if rerr == nil {
			_, rerr = c.Write(sum)
		}
		if rerr != nil {
			ev.Err = rerr.Error()
		}
		emit(ev)
	})
	if _, err := n.Listen(ctx, tcp.New(), os.Getenv(netnsEnvListen)); err != nil {
		t.Fatal(err)
	}
	n.AddPeer(peer, os.Getenv(netnsEnvPeerAddr))

	// The other node may not listen yet: retry while the peer refuses.
	var c net.Conn
	for attempt := 0; ; attempt++ {
		c, err = n.ConnectTo(ctx, peer, 10*time.Second, "netns::hash")
		// Only a refused dial is worth retrying (the text, because the
		// DataConnError does not carry its cause).
		if err == nil || attempt == 100 || ctx.Err() != nil || !strings.Contains(err.Error(), "refused") {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("ConnectTo(%s): %v", peer, err)
	}
	data := payload(uint64(role[0]), netnsSize)
	sum := sha256.Sum256(data)
	ev := netnsEvent{Kind: "sent", Node: self, Peer: peer, Remote: c.RemoteAddr().String(), ConnType: fmt.Sprintf("%T", c),
		SHA256: hex.EncodeToString(sum[:])}
	answer, err := exchange(c, data)
	c.Close()
	if err != nil {
		ev.Err = err.Error()
	} else {
		ev.Bytes = netnsSize
		ev.PeerSHA256 = hex.EncodeToString(answer[:])
	}
	emit(ev)

	select {
	case <-received:
	case <-ctx.Done():
		t.Fatal(errors.New("no data connection arrived from the other node"))
	}
}
