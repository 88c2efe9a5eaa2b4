// Package burst drives bursts of data-connection set-ups between
// transport.Nodes, for the load tests and benchmarks of the tcp and quic
// packages: N goroutines each call ConnectTo once, send 5 bytes on the
// stream and read a 1-byte answer.
package burst

import (
	"context"
	"fmt"
	"io"
	"net"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/aemp-go/dataconn/transport"
)

// InitFunc is the name of the init function Serve registers.
const InitFunc = "burst"

// Calls counts the init calls a target received, by initiator and index.
type Calls struct {
	mu sync.Mutex
	m  map[string]int
}

// Serve registers InitFunc on n: it reads 5 bytes, answers one and counts
// the call under "FROM/INDEX" (INDEX is the init data).
func Serve(n *transport.Node) *Calls {
	c := &Calls{m: map[string]int{}}
	n.HandleDataConn(InitFunc, func(from string, data []any, conn net.Conn) {
		defer conn.Close()
		key := from + "/" + fmt.Sprint(data...)
		c.mu.Lock()
		c.m[key]++
		c.mu.Unlock()
		conn.SetDeadline(time.Now().Add(30 * time.Second))
		var b [5]byte
		if _, err := io.ReadFull(conn, b[:]); err != nil {
			return
		}
		conn.Write([]byte{'k'})
	})
	return c
}

// Check returns an error unless every one of per set-ups from each sender
// ran its init function exactly once, and nothing else ran.
func (c *Calls) Check(senders []*transport.Node, per int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range senders {
		for i := range per {
			if n := c.m[fmt.Sprintf("%s/%d", s.ID(), i)]; n != 1 {
				return fmt.Errorf("init function for %s/%d called %d times", s.ID(), i, n)
			}
		}
	}
	if len(c.m) != len(senders)*per {
		return fmt.Errorf("%d init calls, want %d", len(c.m), len(senders)*per)
	}
	return nil
}

// Reset forgets the counted calls.
func (c *Calls) Reset() {
	c.mu.Lock()
	c.m = map[string]int{}
	c.mu.Unlock()
}

// Result is the outcome of a burst.
type Result struct {
	OK, Failed int
	// Errors counts the failures by error text.
	Errors map[string]int
	Took   time.Duration
}

// String summarises the result, the commonest errors first.
func (r Result) String() string {
	s := fmt.Sprintf("%d ok, %d failed in %v", r.OK, r.Failed, r.Took.Round(time.Millisecond))
	type kv struct {
		k string
		v int
	}
	var es []kv
	for k, v := range r.Errors {
		es = append(es, kv{k, v})
	}
	sort.Slice(es, func(i, j int) bool { return es[i].v > es[j].v })
	var parts []string
	for i, e := range es {
		if i == 3 {
			break
		}
		parts = append(parts, fmt.Sprintf("%d × %q", e.v, e.k))
	}
	if len(parts) > 0 {
		s += ": " + strings.Join(parts, ", ")
	}
	return s
}

// One runs one set-up from n to target: ConnectTo, write 5 bytes, read
// the answer.
func One(ctx context.Context, n *transport.Node, target string, timeout time.Duration, i int) error {
	c, err := n.ConnectTo(ctx, target, timeout, InitFunc, i)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write([]byte("hello")); err != nil {
		return err
	}
	var b [1]byte
	if _, err := io.ReadFull(c, b[:]); err != nil {
		return fmt.Errorf("answer: %w", err)
	}
	return nil
}

// Run makes sure each sender has a messaging connection to target, then
// starts per set-ups from every sender at once and waits for them all.
func Run(ctx context.Context, senders []*transport.Node, target string, per int, timeout time.Duration) (Result, error) {
	for _, s := range senders {
		cctx, cancel := context.WithTimeout(ctx, timeout)
		err := s.Connect(cctx, target)
		cancel()
		if err != nil {
			return Result{}, fmt.Errorf("%s: messaging connection to %s: %w", s.ID(), target, err)
		}
	}
	var mu sync.Mutex
	res := Result{Errors: map[string]int{}}
	var wg sync.WaitGroup
	start := time.Now()
	for _, s := range senders {
		for i := range per {
			wg.Go(func() {
				err := One(ctx, s, target, timeout, i)
				mu.Lock()
				if err == nil {
					res.OK++
				} else {
					res.Failed++
					res.Errors[err.Error()]++
				}
				mu.Unlock()
			})
		}
	}
	wg.Wait()
	res.Took = time.Since(start)
	return res, nil
}
