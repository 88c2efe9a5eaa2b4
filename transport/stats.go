package transport

// Stats is a snapshot of a node's load, so an operator can see the
// backpressure: data-connection set-ups queued, in flight and held,
// handshakes in progress, and refusals and failures by rule.
type Stats struct {
	DataConnStats
	// HandshakesInProgress are incoming handshakes on the listeners;
	// HandshakesUnproven those of them that count against MaxHandshakes.
	HandshakesInProgress, HandshakesUnproven int
	// ListenerPauses counts how often a listener stopped accepting at the
	// cap; HandshakesDropped the silent handshakes it dropped to make
	// room; AcceptErrors the temporary Accept errors (descriptor
	// exhaustion...) it survived.
	ListenerPauses, HandshakesDropped, AcceptErrors int64
	// Peers is the number of established messaging connections.
	Peers int
}

// Stats returns a snapshot of the node's load and counters.
func (n *Node) Stats() Stats {
	s := Stats{DataConnStats: n.dc.Stats()}
	n.mu.Lock()
	ls := append([]*listener(nil), n.listeners...)
	s.Peers = len(n.m.Peers())
	n.mu.Unlock()
	for _, l := range ls {
		l.mu.Lock()
		s.HandshakesInProgress += len(l.pending)
		s.HandshakesUnproven += len(l.unproven)
		l.mu.Unlock()
		s.ListenerPauses += l.paused.Load()
		s.HandshakesDropped += l.evicted.Load()
		s.AcceptErrors += l.acceptErrors.Load()
	}
	return s
}
