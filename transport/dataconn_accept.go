package transport

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/aemp-go/dataconn/core/handshake"
	"github.com/aemp-go/dataconn/core/rendezvous"
	"github.com/aemp-go/dataconn/core/wire"
)

// HandleControl feeds a control message addressed to this node's node port
// (already parsed) from node `from`. It reports whether the message was a
// data-connection message.
func (d *DataConns) HandleControl(from string, m wire.NodeMsg) bool {
	switch m := m.(type) {
	case wire.NodeMsgExpect:
		d.expect(from, m)
	case wire.NodeMsgConnect:
		d.connectBack(from, m)
	default:
		return false
	}
	return true
}

// expect hands an _expect to the machine, which refuses one for an init
// function that is not registered (rendezvous.Config.RequireInit).
func (d *DataConns) expect(from string, m wire.NodeMsgExpect) {
	d.do(func(now time.Time) { d.rv.Expect(now, from, m) })
}

func (d *DataConns) connectBack(from string, m wire.NodeMsgConnect) {
	addrs := d.host.ListenerAddrs(m.Node)
	d.do(func(now time.Time) { d.rv.ConnectBack(now, from, m, addrs) })
}

// PeerDown tells DataConns that the messaging connection to node is lost.
func (d *DataConns) PeerDown(node string, err error) {
	d.do(func(now time.Time) { d.rv.PeerDown(now, node, err) })
}

// incomingGreeting decides on an accepted stream whose peer asked for
// aemp-dataconn; it may hold the stream until its expectation arrives.
func (d *DataConns) incomingGreeting(ctx context.Context, g wire.Greeting) (rendezvous.ConnRef, []wire.KV, error) {
	return d.incomingGreetingProven(ctx, g, nil)
}

// incomingGreetingProven is incomingGreeting that calls proven (when not
// nil), before any wait, if the stream's id matches an expectation or
// dial-back of its peer (rendezvous.Machine.Proven).
func (d *DataConns) incomingGreetingProven(ctx context.Context, g wire.Greeting, proven func()) (rendezvous.ConnRef, []wire.KV, error) {
	h := make(chan holdDecision, 1)
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return 0, nil, ErrClosed
	}
	ref := d.newRefLocked(nil)
	d.handles[ref] = dcHandle{hold: h}
	d.mu.Unlock()
	isProven := false
	d.do(func(now time.Time) {
		d.rv.IncomingGreeting(now, ref, g)
		isProven = d.rv.Proven(ref)
	})
	if isProven && proven != nil {
		proven()
	}
	select {
	case hd := <-h:
		return ref, hd.extra, hd.err
	case <-ctx.Done():
		d.mu.Lock()
		d.takeHoldLocked(ref)
		d.mu.Unlock()
		return ref, nil, ctx.Err()
	}
}

func (d *DataConns) incomingDone(ref rendezvous.ConnRef, c net.Conn, res *handshake.Result) {
	if run := d.incomingDoneInline(ref, c, res); run != nil {
		go run()
	}
}

// incomingDoneInline is incomingDone that returns the init function's
// run (see doInline) instead of starting a goroutine for it, when this
// goroutine ran the actions; the caller runs it.
func (d *DataConns) incomingDoneInline(ref rendezvous.ConnRef, c net.Conn, res *handshake.Result) func() {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		c.Close()
		return nil
	}
	h := d.handles[ref]
	h.conn = c
	d.handles[ref] = h
	d.mu.Unlock()
	if res.Untrusted {
		// The machine closes it and releases its claim.
		d.do(func(now time.Time) { d.rv.IncomingUntrusted(now, ref, res.Peer) }, closeUntaken{ref})
		return nil
	}
	// A stream the machine did not take is closed.
	return d.doInline("", ref, func(now time.Time) { d.rv.IncomingDone(now, ref) }, closeUntaken{ref})
}

func (d *DataConns) incomingFailed(ref rendezvous.ConnRef, err error) {
	d.do(func(now time.Time) { d.rv.IncomingFailed(now, ref, err) })
}

// ServeConn runs the acceptor's side of the handshake on a stream that a
// framework's listener accepted, for data connections only: a peer asking
// for plain messaging (aemp) is refused. nw is the network the stream came
// from (nil when unknown). It returns when the handshake has ended; on
// success the init function runs in its own goroutine.
func (d *DataConns) ServeConn(ctx context.Context, nw Network, c net.Conn) error {
	nonce, err := d.ep.nonce()
	if err != nil {
		c.Close()
		return err
	}
	m, err := handshake.New(d.ep.handshakeConfig(wire.ProtocolMessaging, nil, true, nw, c), nonce, time.Now())
	if err != nil {
		c.Close()
		return err
	}
	opts := d.ep.driveOptions(nw)
	var ref rendezvous.ConnRef
	opts.OnPeerGreeting = func(ctx context.Context, g wire.Greeting, protocol string) ([]wire.KV, error) {
		if protocol != wire.ProtocolDataConn {
			return nil, fmt.Errorf("aemp: %q refused: this endpoint serves data connections only", protocol)
		}
		var extra []wire.KV
		var err error
		ref, extra, err = d.incomingGreeting(ctx, g)
		return extra, err
	}
	conn, res, err := Drive(ctx, c, m, opts)
	if err != nil {
		if ref != 0 {
			d.incomingFailed(ref, err)
		}
		return err
	}
	d.incomingDone(ref, conn, res)
	return nil
}
