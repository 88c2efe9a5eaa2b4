package handshake

import (
	"bytes"
	"slices"
	"strings"
	"time"

	"github.com/aemp-go/dataconn/core/internal/timers"
	"github.com/aemp-go/dataconn/core/wire"
)

// DefaultTimeout bounds a handshake whose config has no Timeout.
const DefaultTimeout = 30 * time.Second

// protocolVersion is the AEMP transport protocol version spoken here.
const protocolVersion = "1"

// Config configures one side of an AEMP v1 handshake.
type Config struct {
	// NodeID is our node ID (non-empty; no ';', CR or LF).
	NodeID string
	// Protocol is our protocol; "" means ProtocolMessaging.
	Protocol string
	// Secret is the shared secret; empty means none (hmac impossible, as
	// in Perl).
	Secret []byte
	// MACKey, when not nil, is Secret prepared by NewMACKey, which the
	// machine's MACs start from instead of preparing it again; a node
	// shares one among its handshakes. A key prepared for another secret
	// is ignored.
	MACKey *MACKey
	// AcceptAuths is announced in our greeting: the methods we accept,
	// in order of preference. Empty means [tls_sha3_512, hmac_sha3_512].
	AcceptAuths []string
	// OfferAuths lists the methods we are willing to send. Empty means
	// [tls_sha3_512, hmac_sha3_512]. cleartext is never sent even if
	// listed; unknown names are ignored.
	OfferAuths []string
	// AcceptFramings is announced: the framings we accept to receive.
	// Empty means ["msgpack", "json"].
	AcceptFramings []string
	// SendFramings lists the framings we can produce. Empty means
	// ["msgpack", "json"].
	SendFramings []string
	// TLS: we can speak TLS (have a certificate); announce tls=1.0.
	TLS bool
	// TLSRequired: refuse peers that cannot do TLS (requires TLS).
	TLSRequired bool
	// Extra holds extra greeting keys, in order (provider, peeraddr,
	// dataconn_id, aempgo, ...). The tls key is managed by the machine
	// and must not appear here.
	Extra []wire.KV
	// Timeout bounds the whole handshake; 0 means DefaultTimeout.
	Timeout time.Duration
	// DeferGreeting: don't send our greeting until SendGreeting is called
	// (after the PeerGreeting action). Used by acceptors that decide on
	// the peer's greeting. Our line then still names Protocol (not the
	// upgraded protocol), as a Perl acceptor's does.
	DeferGreeting bool
	// EarlyGreeting (with DeferGreeting): an acceptor that greets first.
	// Our lines are the first action, as without DeferGreeting, but the
	// machine still reports the peer's greeting with PeerGreeting and
	// answers nothing (its nonce line and what follows wait, at most one
	// line more) until SendGreeting(now, nil) gives the go-ahead, so the
	// caller decides on the peer's greeting as with a deferred one. No
	// extra key can be added any more: SendGreeting with extra keys fails
	// with ErrBadConfig. For a stream on which the acceptor's lines can
	// reach the peer before the peer's (a QUIC connection on which the
	// server opens the messaging stream, see package quic); the roles
	// stay those of a deferring acceptor (tlsClient).
	EarlyGreeting bool
	// ChannelBinding is the exporter value of an encrypted transport
	// layer whose peer identity is not verified (QUIC with throw-away
	// certificates). AuthHMACCB covers it; it does not make TLS active.
	// An exporter reported by TLSEstablished takes precedence.
	ChannelBinding []byte
	// VerifiedChannel declares that the stream runs inside a channel
	// that is encrypted and integrity-protected end to end, in which we
	// verified the peer's certificate against our CAs and presented our
	// own, which the peer required (QUIC with certificates on both
	// ends), and on which nothing was accepted before its handshake
	// completed (no 0-RTT). TLS then counts as active from the start, as
	// after an early TLSEstablished, and our greeting may list
	// ExtChannelAuth (chanauth.go).
	VerifiedChannel bool
}

// TLSInfo describes an established TLS layer.
type TLSInfo struct {
	// Exporter is an optional TLS exporter value for channel binding
	// (may be nil).
	Exporter []byte
	// Bound is the ALPN protocol the TLS layer negotiated, when
	// StartTLS asked for a binding (StartTLS.Bind; see tlsbind.go).
	Bound string
}

// Action is an output of the handshake machine, returned by Poll.
type Action interface{ isAction() }

// Write asks the caller to write Data to the peer, in order, and before
// acting on any later StartTLS.
type Write struct{ Data []byte }

// StartTLS asks the caller to flush earlier writes and start TLS in the
// given role on the raw stream, then report TLSEstablished or TLSFailed.
// Pending holds bytes already received that belong to the TLS stream.
// Client is true when our nonce line is the lower one, except between
// nodes of this project when exactly one greeting carries KeyTLSTicket:
// then that side is the client. Peer is the peer's greeting (who the TLS
// session is with).
type StartTLS struct {
	Client  bool
	Pending []byte
	Peer    wire.Greeting
	// Bind, when set, is the ALPN protocol that binds the greetings to
	// the TLS session instead of auth lines (tlsbind.go): the client
	// offers only it, the server accepts only it, and TLSEstablished
	// reports the negotiated one in TLSInfo.Bound.
	Bind string
}

// PeerGreeting (DeferGreeting only) reports the peer's accepted first
// line; Protocol is our protocol after upgrade. The machine then waits
// for SendGreeting (or Abort).
type PeerGreeting struct {
	Greeting wire.Greeting
	Protocol string
}

// Done reports a successful handshake. It is the last action.
type Done struct{ Result *Result }

// Failed reports a failed handshake. It is the last action.
type Failed struct{ Err error }

func (Write) isAction()        {}
func (StartTLS) isAction()     {}
func (PeerGreeting) isAction() {}
func (Done) isAction()         {}
func (Failed) isAction()       {}

// Result is the outcome of a successful handshake.
type Result struct {
	// Protocol is our protocol after upgrade (aemp -> aemp-NAME when the
	// peer asked for it).
	Protocol string
	// Peer is the peer's parsed greeting.
	Peer wire.Greeting
	// PeerNodeID is the peer's node ID.
	PeerNodeID string
	// SendFraming is the framing we send (first of the peer's list we can
	// produce).
	SendFraming string
	// RecvFraming is the framing the peer announced in its auth line.
	RecvFraming string
	// SentAuth is the method we sent, PeerAuth the one the peer sent.
	SentAuth, PeerAuth string
	// Untrusted is set when the peer authenticated with tls_anon.
	Untrusted bool
	// TLS reports whether TLS is active.
	TLS bool
	// TLSInfo is what TLSEstablished reported (zero without TLS).
	TLSInfo TLSInfo
	// LocalLines and PeerLines are the greeting and nonce lines as sent
	// and received, without terminators.
	LocalLines, PeerLines [2]string
	// Pending holds bytes that arrived after the peer's auth line; they
	// belong to the stream.
	Pending []byte
}

type hsState uint8

const (
	stGreeting hsState = iota // waiting for the peer's first line
	stDeferred                // peer's first line accepted, waiting for SendGreeting
	stNonce                   // waiting for the peer's nonce line
	stTLSWait                 // StartTLS queued, waiting for TLSEstablished
	stAuth                    // waiting for the peer's auth line
	stEnded                   // Done or Failed queued
)

// Machine is the pure state machine of one side of an AEMP v1
// handshake. It does no I/O and reads no clock: feed it events
// (Receive, PeerClosed, TLSEstablished, TLSFailed, SendGreeting, Abort,
// Tick) and drain its actions with Poll after each event. It is not safe
// for concurrent use.
type Machine struct {
	cfg      Config
	proto    string
	accAuths []string
	offAuths []string
	accFram  []string
	sndFram  []string

	nonce     string
	lineProto string // protocol named in our first line
	l1, l2    string
	sent      bool                    // our lines are queued
	timers    timers.Table[TimerKind] // pending deadlines; empty once ended

	state   hsState
	buf     []byte // unfinished line, < MaxLineLen bytes
	actions []Action

	r1, r2 string
	haveR2 bool // nonce line received while deferred
	// goAhead: SendGreeting was called (EarlyGreeting); early: bytes
	// after the peer's nonce line received before it, < MaxLineLen.
	goAhead     bool
	early       []byte
	selfID      bool // the peer's first line is ours (echo or self)
	preTLS      bool // the transport was secured before the handshake
	peer        wire.Greeting
	rAuthsRaw   string
	rFramRaw    string
	tls         bool
	tlsInfo     TLSInfo
	sendAuth    string
	sendFraming string
	// ourGo and ourTicket: our greeting carries KeyGo, KeyTLSTicket.
	ourGo, ourTicket bool
	// ourBind: our greeting lists ExtTLSBind; bind is the binding asked
	// of the TLS layer ("" when none, see tlsbind.go).
	ourBind bool
	bind    string
	// ourChan: our greeting lists ExtChannelAuth (chanauth.go).
	ourChan bool
	// prepared: Prepare ran; prepWant (when prepOK) is what the peer
	// must send if it sends the method we send (auth_prepared.go).
	prepared, prepOK bool
	prepWant         string
	// mac makes the MACs (macer).
	mac *macer
}

var (
	defaultAuths    = []string{wire.AuthTLS, wire.AuthHMAC}
	defaultFramings = []string{"msgpack", "json"}
)

func orDefault(l, def []string) []string {
	if len(l) == 0 {
		return def
	}
	return l
}

// New creates the machine for one side. nonce is the nonce line
// to send (the caller makes it random; non-empty, no CR/LF); now starts
// the handshake timeout. Unless cfg.DeferGreeting is set, our two lines
// are the first action. An invalid cfg or nonce gives an error wrapping
// ErrBadConfig.
func New(cfg Config, nonce string, now time.Time) (*Machine, error) {
	h := &Machine{
		cfg:      cfg,
		proto:    cfg.Protocol,
		accAuths: orDefault(cfg.AcceptAuths, defaultAuths),
		offAuths: orDefault(cfg.OfferAuths, defaultAuths),
		accFram:  orDefault(cfg.AcceptFramings, defaultFramings),
		sndFram:  orDefault(cfg.SendFramings, defaultFramings),
		nonce:    nonce,
		l2:       nonce,
		preTLS:   cfg.VerifiedChannel,
	}
	if h.proto == "" {
		h.proto = wire.ProtocolMessaging
	}
	h.lineProto = h.proto
	if err := h.validate(); err != nil {
		return nil, err
	}
	timeout := cfg.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	h.timers.Set(TimerTimeout, now.Add(timeout))
	if !cfg.DeferGreeting || cfg.EarlyGreeting {
		if err := h.sendLines(nil); err != nil {
			return nil, err
		}
	}
	return h, nil
}

func badConfig(text string) error {
	return hsErr(ErrBadConfig, "bad handshake configuration: "+text)
}

func (h *Machine) validate() error {
	cfg := &h.cfg
	switch {
	case cfg.NodeID == "" || strings.ContainsAny(cfg.NodeID, ";\r\n"):
		return badConfig("node ID must be non-empty without ';', CR or LF")
	case strings.ContainsAny(h.proto, ";\r\n") || (h.proto != wire.ProtocolMessaging && !isUpgradeProtocol(h.proto)):
		return badConfig("protocol must be \"aemp\" or \"aemp-NAME\"")
	case h.nonce == "" || strings.ContainsAny(h.nonce, "\r\n"):
		return badConfig("nonce must be non-empty without CR or LF")
	case len(h.nonce)+1 > wire.MaxLineLen:
		return badConfig("nonce line too long")
	case cfg.Timeout < 0:
		return badConfig("negative timeout")
	case cfg.TLSRequired && !cfg.TLS:
		return badConfig("TLSRequired without TLS")
	case cfg.EarlyGreeting && !cfg.DeferGreeting:
		return badConfig("EarlyGreeting without DeferGreeting")
	}
	for _, l := range [][]string{h.accAuths, h.offAuths, h.accFram, h.sndFram} {
		for _, n := range l {
			if n == "" || strings.ContainsAny(n, ",;\r\n") {
				return badConfig("auth and framing names must be non-empty without ',', ';', CR or LF")
			}
		}
	}
	return validateKVs(cfg.Extra)
}

func validateKVs(kvs []wire.KV) error {
	for _, kv := range kvs {
		switch {
		case kv.Key == "" || strings.ContainsAny(kv.Key, "=;\r\n"):
			return badConfig("greeting key must be non-empty without '=', ';', CR or LF")
		case kv.Key == wire.KeyTLS:
			return badConfig("the tls greeting key is set from Config.TLS")
		case strings.ContainsAny(kv.Value, "\r\n"):
			return badConfig("greeting value must not contain CR or LF")
		}
	}
	return nil
}

// sendLines builds our first line (with extra keys appended) and queues
// both lines.
func (h *Machine) sendLines(extra []wire.KV) error {
	if err := validateKVs(extra); err != nil {
		return err
	}
	g := wire.Greeting{
		Protocol: h.lineProto,
		Version:  protocolVersion,
		NodeID:   h.cfg.NodeID,
		Auths:    h.accAuths,
		Framings: h.accFram,
	}
	kvs := make([]wire.KV, 0, 1+len(h.cfg.Extra)+len(extra))
	if h.cfg.TLS {
		kvs = append(kvs, wire.KV{Key: wire.KeyTLS, Value: "1.0"})
	}
	kvs = append(kvs, h.cfg.Extra...)
	kvs = append(kvs, extra...)
	g.KV = kvs
	_, h.ourGo = g.Get(wire.KeyGo)
	_, h.ourTicket = g.Get(wire.KeyTLSTicket)
	h.ourBind = goExt(g, ExtTLSBind)
	if err := h.checkBindConfig(); err != nil {
		return err
	}
	h.ourChan = goExt(g, ExtChannelAuth)
	if err := h.checkChannelConfig(); err != nil {
		return err
	}
	l1 := g.Encode()
	if len(l1)+1 > wire.MaxLineLen {
		return badConfig("greeting line longer than 4096 bytes")
	}
	h.l1, h.l2 = l1, h.nonce
	data := make([]byte, 0, len(l1)+len(h.l2)+2)
	data = append(data, l1...)
	data = append(data, '\n')
	data = append(data, h.l2...)
	data = append(data, '\n')
	h.actions = append(h.actions, Write{Data: data})
	h.sent = true
	return nil
}

// fail ends the machine with err.
func (h *Machine) fail(err error) {
	if h.state == stEnded {
		return
	}
	h.state = stEnded
	h.buf = nil
	h.timers.Clear()
	// Requests the caller has not seen yet are moot now; queued writes
	// stay (they are harmless and keep the byte order simple).
	h.actions = slices.DeleteFunc(h.actions, func(a Action) bool {
		switch a.(type) {
		case StartTLS, PeerGreeting:
			return true
		}
		return false
	})
	h.actions = append(h.actions, Failed{Err: err})
}

// expired fires the timers due at now and reports whether the machine
// has ended (then the input that called it is ignored).
func (h *Machine) expired(now time.Time) bool {
	for h.state != stEnded {
		e, ok := h.timers.Due(now)
		if !ok {
			break
		}
		h.fire(e.Key)
	}
	return h.state == stEnded
}

// fire runs the rule of the timer k that fell due.
func (h *Machine) fire(k TimerKind) {
	switch k {
	case TimerTimeout:
		h.fail(hsErr(ErrTimeout, "handshake timed out (Connection timed out)"))
	}
}

// queuedStartTLS returns the index of the StartTLS action not polled yet,
// or -1.
func (h *Machine) queuedStartTLS() int {
	return slices.IndexFunc(h.actions, func(a Action) bool {
		_, ok := a.(StartTLS)
		return ok
	})
}

// Receive feeds bytes from the peer, in any chunking. p is copied where
// it is kept.
func (h *Machine) Receive(now time.Time, p []byte) {
	if h.expired(now) {
		return
	}
	for len(p) > 0 && h.state != stEnded {
		switch h.state {
		case stTLSWait:
			// Raw bytes that follow the nonce line before the caller
			// took StartTLS belong to the TLS stream: they travel in
			// its Pending. Later ones break the protocol.
			if i := h.queuedStartTLS(); i >= 0 {
				st := h.actions[i].(StartTLS)
				st.Pending = append(st.Pending, p...)
				h.actions[i] = st
				return
			}
			h.fail(hsErr(ErrBadConfig, "bytes received on the raw stream while the TLS handshake is in progress"))
			return
		case stDeferred:
			if h.haveR2 && h.cfg.EarlyGreeting {
				// The peer had our lines: its auth line may follow its
				// nonce line. It waits for the go-ahead; more than one
				// line cannot be honest.
				if len(h.early)+len(p) >= wire.MaxLineLen {
					h.fail(hsErr(ErrEarlyData, "peer sent more than its auth line before our auth line"))
					return
				}
				h.early = append(h.early, p...)
				return
			}
			if h.haveR2 {
				h.fail(hsErr(ErrEarlyData, "peer sent data before receiving our greeting"))
				return
			}
		}
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			if len(h.buf)+len(p) >= wire.MaxLineLen {
				h.fail(errLineTooLong())
				return
			}
			h.buf = append(h.buf, p...)
			return
		}
		if len(h.buf)+i+1 > wire.MaxLineLen {
			h.fail(errLineTooLong())
			return
		}
		var line string
		if len(h.buf) == 0 {
			line = string(p[:i])
		} else {
			line = string(append(h.buf, p[:i]...))
			h.buf = h.buf[:0]
		}
		line = strings.TrimSuffix(line, "\r")
		p = p[i+1:]
		if h.onLine(now, line, p) {
			return
		}
	}
}

func errLineTooLong() error {
	return hsErr(ErrLineTooLong, "handshake line longer than 4096 bytes")
}

// onLine handles one complete line; rest is what followed it in the same
// chunk. It reports whether rest was consumed.
func (h *Machine) onLine(now time.Time, line string, rest []byte) bool {
	switch h.state {
	case stGreeting:
		h.onGreeting(line)
	case stDeferred:
		h.r2, h.haveR2 = line, true
	case stNonce:
		h.onNonce(line)
		if h.state == stEnded {
			// Ended on the nonce line (ExtChannelAuth): what followed
			// belongs to the stream.
			h.setPending(rest)
			return true
		}
	case stAuth:
		h.onAuth(line, rest)
		return true
	}
	return false
}

func (h *Machine) onGreeting(line string) {
	fields := wire.PerlSplit(line, ";")
	field := func(i int) string {
		if i < len(fields) {
			return fields[i]
		}
		return ""
	}
	g := wire.ParseGreeting(line)
	proto := h.proto
	if proto == wire.ProtocolMessaging && isUpgradeProtocol(g.Protocol) {
		proto = g.Protocol
	}
	switch {
	case g.Protocol != proto && g.Protocol != wire.ProtocolMessaging:
		h.fail(hsErr(ErrUnparsableGreeting, "unparsable greeting, expected '"+proto+"', got '"+g.Protocol+"'"))
		return
	case perlNum(g.Version) != 1:
		h.fail(hsErr(ErrVersionMismatch, "version mismatch (we: 1, they: "+g.Version+")"))
		return
	case g.NodeID == h.cfg.NodeID && line != h.l1:
		h.fail(errSelf())
		return
	}
	// A line identical to ours may be an echo: decided on the nonce line,
	// so that the echo rule reports it.
	h.selfID = g.NodeID == h.cfg.NodeID
	h.proto = proto
	h.r1, h.peer = line, g
	h.rAuthsRaw, h.rFramRaw = field(3), field(4)
	if !h.sent || (h.cfg.EarlyGreeting && !h.goAhead) {
		h.state = stDeferred
		h.actions = append(h.actions, PeerGreeting{Greeting: g, Protocol: proto})
		return
	}
	h.state = stNonce
}

func errSelf() error { return hsErr(ErrSelfConnect, "I refuse to talk to myself") }

func (h *Machine) onNonce(line string) {
	h.r2 = line
	if h.l1 == h.r1 && h.l2 == h.r2 {
		h.fail(hsErr(ErrEchoAttack, "authentication error, echo attack?"))
		return
	}
	if h.selfID {
		h.fail(errSelf())
		return
	}
	if h.l2 == h.r2 {
		h.fail(hsErr(ErrEchoAttack, "authentication error, echo attack? (identical nonces)"))
		return
	}
	tv, _ := h.peer.Get(wire.KeyTLS)
	startTLS := !h.preTLS && h.cfg.TLS && perlInt(tv) == 1
	h.tls = h.preTLS || startTLS
	if h.cfg.TLSRequired && !h.tls {
		h.fail(hsErr(ErrTLSRequired, "TLS required, but the peer cannot speak TLS"))
		return
	}
	if h.channelAuth() {
		h.finishChannel()
		return
	}
	if !h.chooseAuth() || !h.chooseFraming() {
		return
	}
	if startTLS {
		h.state = stTLSWait
		client := h.tlsClient()
		h.bind = h.bindValue(client)
		h.actions = append(h.actions, StartTLS{Client: client, Peer: h.peer, Bind: h.bind})
		return
	}
	h.sendAuthLine()
}

// tlsClient decides the TLS role: the side with the lower nonce line is
// the client (AEMP), except between nodes of this project (both greetings
// carry KeyGo) when exactly one greeting carries KeyTLSTicket: that side
// holds a session ticket for the other and is the client, so it can
// resume; otherwise, when both list ExtTLSBind, the acceptor (the side
// whose greeting is deferred) is the client (tlsbind.go). Both sides see
// both greetings, so they agree.
func (h *Machine) tlsClient() bool {
	if _, peerGo := h.peer.Get(wire.KeyGo); peerGo && h.ourGo {
		if _, peerTicket := h.peer.Get(wire.KeyTLSTicket); peerTicket != h.ourTicket {
			return h.ourTicket
		}
		if h.ourBind && goExt(h.peer, ExtTLSBind) {
			return h.cfg.DeferGreeting
		}
	}
	return h.l2 < h.r2
}

// binding is the channel-binding value covered by AuthHMACCB.
// macer returns what makes the machine's HMAC-SHA3-512s: Config.MACKey
// when it was prepared for Config.Secret, else a key prepared once for
// this machine, and the room the MACs are made in.
func (h *Machine) macer() *macer {
	if h.mac == nil {
		h.mac = newMacer(h.cfg.MACKey.keyFor(h.cfg.Secret))
	}
	return h.mac
}

func (h *Machine) binding() []byte {
	if len(h.tlsInfo.Exporter) > 0 {
		return h.tlsInfo.Exporter
	}
	return h.cfg.ChannelBinding
}

// canSend reports whether we can generate method now.
func (h *Machine) canSend(m string) bool {
	switch m {
	case wire.AuthHMAC, AuthHMACCB:
		return true
	case wire.AuthTLS, wire.AuthTLSAnon:
		return h.tls
	}
	return false
}

func (h *Machine) chooseAuth() bool {
	common := false
	// (Names are never empty, so the empty fields split(/,/) would drop
	// match nothing either.)
	for m := range strings.SplitSeq(h.rAuthsRaw, ",") {
		if !slices.Contains(h.offAuths, m) || !h.canSend(m) {
			continue
		}
		common = true
		if (m == wire.AuthHMAC || m == AuthHMACCB) && len(h.cfg.Secret) == 0 {
			continue
		}
		h.sendAuth = m
		return true
	}
	switch {
	case !common:
		h.fail(hsErr(ErrNoCommonAuth, h.rAuthsRaw+": no common auth type supported"))
	case !h.tls:
		h.fail(hsErr(ErrNoTLSNoSecret, "unable to handshake TLS and no shared secret configured"))
	default:
		h.fail(hsErr(ErrNoCommonAuth, h.rAuthsRaw+": no common auth type supported (no shared secret configured)"))
	}
	return false
}

func (h *Machine) chooseFraming() bool {
	for f := range strings.SplitSeq(h.rFramRaw, ",") {
		if slices.Contains(h.sndFram, f) {
			h.sendFraming = f
			return true
		}
	}
	h.fail(hsErr(ErrNoCommonFraming, h.rFramRaw+": no common framing method supported"))
	return false
}

func (h *Machine) sendAuthLine() {
	var data string
	var err error
	if h.sendAuth == AuthHMACCB {
		data = authDataCB(h.macer(), h.cfg.NodeID, h.peer.NodeID, h.binding(), h.l1, h.l2, h.r1, h.r2)
	} else {
		data, err = authData(h.macer(), h.sendAuth, h.cfg.Secret, h.l1, h.l2, h.r1, h.r2)
	}
	if err != nil {
		h.fail(err)
		return
	}
	line := make([]byte, 0, len(h.sendAuth)+len(data)+len(h.sendFraming)+3)
	line = append(line, h.sendAuth...)
	line = append(line, ';')
	line = append(line, data...)
	line = append(line, ';')
	line = append(line, h.sendFraming...)
	line = append(line, '\n')
	h.actions = append(h.actions, Write{Data: line})
	h.state = stAuth
}

func (h *Machine) onAuth(line string, rest []byte) {
	// The first three fields of split(/;/) (missing ones empty), without
	// making the list.
	method, more, _ := strings.Cut(line, ";")
	data, more, _ := strings.Cut(more, ";")
	framing, _, _ := strings.Cut(more, ";")
	if !slices.Contains(h.accAuths, method) {
		h.fail(hsErr(ErrAuthNotOffered, method+": fatal, selected unsupported rcv auth method"))
		return
	}
	var verr error
	if h.prepOK && method == h.sendAuth {
		verr = verifyExpected(h.prepWant, data)
	} else if method == AuthHMACCB {
		verr = verifyAuthCB(h.macer(), data, h.cfg.Secret, h.cfg.NodeID, h.peer.NodeID, h.binding(), h.l1, h.l2, h.r1, h.r2)
	} else {
		verr = verifyAuth(h.macer(), method, data, h.cfg.Secret, h.l1, h.l2, h.r1, h.r2, h.tls)
	}
	if verr != nil {
		h.fail(verr)
		return
	}
	if !slices.Contains(h.accFram, framing) {
		h.fail(hsErr(ErrNoCommonFraming, framing+": unusable remote framing"))
		return
	}
	res := &Result{
		Protocol:    h.proto,
		Peer:        h.peer,
		PeerNodeID:  h.peer.NodeID,
		SendFraming: h.sendFraming,
		RecvFraming: framing,
		SentAuth:    h.sendAuth,
		PeerAuth:    method,
		Untrusted:   method == wire.AuthTLSAnon,
		TLS:         h.tls,
		TLSInfo:     h.tlsInfo,
		LocalLines:  [2]string{h.l1, h.l2},
		PeerLines:   [2]string{h.r1, h.r2},
	}
	if len(rest) > 0 {
		res.Pending = bytes.Clone(rest)
	}
	h.state = stEnded
	h.buf = nil
	h.timers.Clear()
	h.actions = append(h.actions, Done{Result: res})
}

// PeerClosed reports EOF (err nil) or a read error before the handshake
// ended; the machine fails with ErrPeerClosed.
func (h *Machine) PeerClosed(now time.Time, err error) {
	if h.expired(now) {
		return
	}
	text := "connection closed by peer during handshake"
	if err != nil {
		text += " (" + err.Error() + ")"
	}
	h.fail(&Error{Rule: ErrPeerClosed, Text: text, Cause: err, Unanswered: h.r1 == ""})
}

// TLSEstablished reports that the TLS layer requested by StartTLS is up;
// the machine then sends its auth line, and later Receive calls carry the
// decrypted stream.
//
// Called before the peer's nonce line has been processed (typically right
// after New), it declares that the transport itself is already
// secured with verified certificates (e.g. QUIC): TLS then counts as
// active for the auth methods, TLSRequired is satisfied, and no StartTLS
// is requested. Both sides must do the same.
func (h *Machine) TLSEstablished(now time.Time, info TLSInfo) {
	if h.expired(now) {
		return
	}
	switch h.state {
	case stGreeting, stDeferred, stNonce:
		h.preTLS = true
		h.tlsInfo = TLSInfo{Exporter: bytes.Clone(info.Exporter)}
		return
	case stTLSWait:
		if h.queuedStartTLS() < 0 {
			break
		}
		fallthrough
	default:
		h.fail(hsErr(ErrBadConfig, "TLSEstablished without a StartTLS action"))
		return
	}
	h.tlsInfo = TLSInfo{Exporter: bytes.Clone(info.Exporter)}
	if h.bind != "" {
		h.finishBound(info)
		return
	}
	h.sendAuthLine()
}

// TLSFailed reports that the TLS layer could not be established; the
// machine fails with ErrTLSFailed.
func (h *Machine) TLSFailed(now time.Time, err error) {
	if h.expired(now) {
		return
	}
	text := "TLS handshake failed"
	if err != nil {
		text += ": " + err.Error()
	}
	h.fail(&Error{Rule: ErrTLSFailed, Text: text, Cause: err})
}

// SendGreeting (DeferGreeting only) appends extra keys to our first line
// and sends our two lines. It must be called at most once, after the
// PeerGreeting action or earlier; misuse fails the machine with
// ErrBadConfig. With EarlyGreeting our lines went out already: it is the
// go-ahead, extra must be empty, and what the peer sent after its nonce
// line is handled now.
func (h *Machine) SendGreeting(now time.Time, extra []wire.KV) {
	if h.expired(now) {
		return
	}
	switch {
	case h.cfg.EarlyGreeting && !h.goAhead:
		if len(extra) > 0 {
			h.fail(hsErr(ErrBadConfig, "SendGreeting with extra keys after an early greeting"))
			return
		}
		h.goAhead = true
	case !h.cfg.DeferGreeting || h.sent:
		h.fail(hsErr(ErrBadConfig, "SendGreeting called without DeferGreeting or twice"))
		return
	default:
		if err := h.sendLines(extra); err != nil {
			h.fail(err)
			return
		}
	}
	if h.state == stDeferred {
		h.state = stNonce
		if h.haveR2 {
			h.haveR2 = false
			h.onNonce(h.r2)
		}
	}
	if rest := h.early; len(rest) > 0 {
		h.early = nil
		if h.state == stEnded {
			h.setPending(rest)
			return
		}
		h.Receive(now, rest)
	}
}

// Abort ends the machine with err (e.g. the caller refuses an unknown
// dataconn id); Failed carries err as given. A nil err becomes a
// *Error wrapping ErrBadConfig.
func (h *Machine) Abort(now time.Time, err error) {
	if err == nil {
		err = hsErr(ErrBadConfig, "handshake aborted")
	}
	h.fail(err)
}

// Tick tells the machine the time; it fails with ErrTimeout at
// or after the deadline.
func (h *Machine) Tick(now time.Time) { h.expired(now) }

// Poll returns the next action, or nil when the machine must wait for
// input. Call it until nil after every input. It only hands out what the
// inputs decided; it changes no state.
func (h *Machine) Poll() Action {
	if len(h.actions) == 0 {
		return nil
	}
	a := h.actions[0]
	h.actions[0] = nil
	h.actions = h.actions[1:]
	if len(h.actions) == 0 {
		h.actions = nil
	}
	return a
}

// TimerKind names one kind of deadline of the handshake machine.
type TimerKind uint8

// Kinds of handshake timers.
const (
	// TimerTimeout: the whole handshake's Timeout, armed by
	// New; it fails the machine with ErrTimeout.
	TimerTimeout TimerKind = iota
)

// String returns the kind's name.
func (k TimerKind) String() string {
	if k == TimerTimeout {
		return "handshake-timeout"
	}
	return "timer?"
}

// Timer is one pending deadline of the handshake machine.
type Timer struct {
	Kind TimerKind
	At   time.Time
}

// Timers lists the pending deadlines, earliest first; none once the
// machine has ended.
func (h *Machine) Timers() []Timer {
	var out []Timer
	for _, e := range h.timers.Pending() {
		out = append(out, Timer{Kind: e.Key, At: e.At})
	}
	return out
}

// Deadline returns when Tick must be called next: the minimum over the
// timer table; zero once the machine has ended (Done or Failed queued).
func (h *Machine) Deadline() time.Time {
	d, _ := h.timers.Deadline()
	return d
}

// LocalLines returns our greeting and nonce lines as sent (l1 is empty
// while a deferred greeting has not been sent).
func (h *Machine) LocalLines() (l1, l2 string) { return h.l1, h.l2 }

// Ended reports whether the machine has queued Done or Failed.
func (h *Machine) Ended() bool { return h.state == stEnded }
