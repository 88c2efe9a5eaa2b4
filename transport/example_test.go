package transport_test

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/aemp-go/dataconn/core/wire"
	"github.com/aemp-go/dataconn/memnet"
	"github.com/aemp-go/dataconn/transport"
)

// Two nodes on an in-memory network: a opens a data connection to b,
// which runs its init function "greet" with the init data and its end of
// the stream.
func ExampleNode_ConnectTo() {
	w := memnet.New(1)
	defer w.Close()
	newNode := func(id string) *transport.Node {
		n, err := transport.NewNode(transport.Config{
			NodeID: id,
			Secret: []byte("shared secret"),
			Logger: slog.New(slog.DiscardHandler),
		})
		if err != nil {
			panic(err)
		}
		if _, err := n.Listen(context.Background(), w.Host(id), id+":4040"); err != nil {
			panic(err)
		}
		return n
	}
	a, b := newNode("a"), newNode("b")
	defer a.Close()
	defer b.Close()
	a.AddPeer("b", b.Addrs()...) // "mem://b:4040"

	done := make(chan struct{})
	b.HandleDataConn("greet", func(from string, data []any, c net.Conn) {
		defer close(done)
		defer c.Close()
		line, _ := bufio.NewReader(c).ReadString('\n')
		fmt.Printf("b: %s connected with %v and wrote %q\n", from, data, line)
		fmt.Fprintf(c, "hello %s\n", from)
	})

	c, err := a.ConnectTo(context.Background(), "b", 5*time.Second, "greet", "init data", int64(42))
	if err != nil {
		fmt.Println("a:", err)
		return
	}
	defer c.Close()
	fmt.Fprintf(c, "hello b\n")
	reply, _ := bufio.NewReader(c).ReadString('\n')
	<-done
	fmt.Printf("a: b answered %q\n", reply)
	// Output:
	// b: a connected with [init data 42] and wrote "hello b\n"
	// a: b answered "hello a\n"
}

// toyNode is a node of a toy framework that already has nodes and
// messaging (here Go channels) and uses data connections on its own terms:
// it implements transport.Host for a transport.DataConns, feeds it the
// control messages it receives, and hands it the streams its listener
// accepts.
type toyNode struct {
	id    string
	host  *memnet.Host
	inbox chan toyMsg
	dc    *transport.DataConns
	peers map[string]*toyNode // the framework's own view of the cluster
	wg    sync.WaitGroup
}

// toyMsg is a control message of the toy framework, or a round-trip probe
// when done is set.
type toyMsg struct {
	from string
	msg  wire.Message
	done chan struct{}
}

func (n *toyNode) SendControl(node string, msg wire.Message) error {
	p, ok := n.peers[node]
	if !ok {
		return transport.ErrNoRoute
	}
	p.inbox <- toyMsg{from: n.id, msg: msg}
	return nil
}

// RoundTrip relies on the inbox being processed in order: when the probe
// is answered, every control message sent before it has been handled.
func (n *toyNode) RoundTrip(ctx context.Context, node string) error {
	p, ok := n.peers[node]
	if !ok {
		return transport.ErrNoRoute
	}
	done := make(chan struct{})
	p.inbox <- toyMsg{from: n.id, done: done}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (n *toyNode) ListenerAddrs(node string) []string {
	return []string{"mem://" + node + ":7"}
}

func (n *toyNode) IsGoPeer(string) bool { return true }

func (n *toyNode) NetworkFor(addr string) (transport.Network, string, error) {
	_, a := transport.SplitAddr(addr)
	return n.host, a, nil
}

func (n *toyNode) Connected(ctx context.Context, node string) error {
	if _, ok := n.peers[node]; !ok {
		return transport.ErrNoRoute
	}
	return nil
}

// start runs the node's message loop and listener.
func (n *toyNode) start(l net.Listener) {
	n.wg.Go(func() {
		for m := range n.inbox {
			if m.done != nil {
				close(m.done)
				continue
			}
			if len(m.msg) == 0 || m.msg[0] != "" {
				continue // the framework's own messages would go here
			}
			if nm, err := wire.ParseNodeMsg(m.msg[1:]); err == nil {
				n.dc.HandleControl(m.from, nm)
			}
		}
	})
	n.wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			n.wg.Go(func() { n.dc.ServeConn(context.Background(), n.host, c) })
		}
	})
}

// A framework with its own nodes and messaging embeds data connections:
// DataConns does the handshakes and the rendezvous, the framework carries
// the control messages.
func ExampleNewDataConns() {
	w := memnet.New(2)
	defer w.Close()
	nodes := map[string]*toyNode{}
	listeners := map[string]net.Listener{}
	for _, id := range []string{"a", "b"} {
		n := &toyNode{id: id, host: w.Host(id), inbox: make(chan toyMsg, 64), peers: nodes}
		dc, err := transport.NewDataConns(transport.Config{
			NodeID: id,
			Secret: []byte("shared secret"),
			Logger: slog.New(slog.DiscardHandler),
		}, n)
		if err != nil {
			panic(err)
		}
		n.dc = dc
		l, err := n.host.Listen(context.Background(), id+":7")
		if err != nil {
			panic(err)
		}
		nodes[id], listeners[id] = n, l
	}
	for id, n := range nodes {
		n.start(listeners[id])
	}

	done := make(chan struct{})
	nodes["b"].dc.Register("toy::echo", func(from string, data []any, c net.Conn) {
		defer close(done)
		defer c.Close()
		line, _ := bufio.NewReader(c).ReadString('\n')
		fmt.Printf("b: stream from %s (%v): %q\n", from, data, line)
		fmt.Fprintf(c, "echo: %s", line)
	})
	c, err := nodes["a"].dc.ConnectTo(context.Background(), "b", 5*time.Second, "toy::echo", "job-1")
	if err != nil {
		fmt.Println("a:", err)
		return
	}
	fmt.Fprintf(c, "ping\n")
	reply, _ := bufio.NewReader(c).ReadString('\n')
	<-done
	c.Close()
	fmt.Printf("a: %q\n", reply)

	// Shut down: stop accepting, end data connections, then messaging.
	for id, n := range nodes {
		listeners[id].Close()
		n.dc.Close()
	}
	for _, n := range nodes {
		close(n.inbox)
		n.wg.Wait()
	}
	// Output:
	// b: stream from a ([job-1]): "ping\n"
	// a: "echo: ping\n"
}
