package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/aemp-go/dataconn/quic"
	"github.com/aemp-go/dataconn/tcp"
	"github.com/aemp-go/dataconn/transport"
	"github.com/aemp-go/dataconn/transport/perlrc"
)

// maxSecretFile bounds what --secret-file reads.
const maxSecretFile = 64 << 10

// listFlag is a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(s string) error {
	*l = append(*l, s)
	return nil
}

// nodeFlags are the identity, security and network flags shared by node,
// send and ping.
type nodeFlags struct {
	e           *env
	id          string
	secret      string
	secretFile  string
	tlsCert     string
	tlsRequired bool
	profile     string
	binds       listFlag
	seeds       listFlag
	peers       listFlag
	verbose     bool
	jsonOut     bool
}

func (f *nodeFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.id, "id", "", "node `ID` (default: the profile's nodeid, else a random anon/... ID)")
	fs.StringVar(&f.secret, "secret", "", "shared `SECRET` for HMAC auth (visible in ps: prefer --secret-file or $AEMP_SECRET; default: $AEMP_SECRET, else the profile's)")
	fs.StringVar(&f.secretFile, "secret-file", "", "read the shared secret from `FILE` (one trailing newline is dropped)")
	fs.StringVar(&f.tlsCert, "tls-cert", "", "Perl-style PEM `FILE`: certificate and key, also trusted as the CA")
	fs.BoolVar(&f.tlsRequired, "tls-required", false, "refuse peers that cannot speak TLS")
	fs.StringVar(&f.profile, "profile", "", "read secret, cert, binds, seeds and nodeid from profile `NAME` of the Perl AnyEvent::MP config file ($PERL_ANYEVENT_MP_RC or ~/.perl-anyevent-mp)")
	fs.Var(&f.binds, "bind", "listen on `ADDR` (tcp://host:port, quic://host:port or host:port for TCP); repeatable")
	fs.Var(&f.seeds, "seed", "connect to seed `ADDR` at start-up (retried until it answers) and announce our listeners to it; repeatable")
	fs.Var(&f.peers, "peer", "record listener address ADDR of node ID (`ID=ADDR`); repeatable")
	fs.BoolVar(&f.verbose, "v", false, "log debug messages to stderr")
	fs.BoolVar(&f.jsonOut, "json", false, "print results as JSON, one object per line, on stdout")
}

// setup is what nodeFlags.build produces: a node with its networks, ready
// to listen and connect.
type setup struct {
	node    *transport.Node
	tcp     *tcp.Network
	quic    *quic.Network
	binds   []string // normalised bind addresses, announced form
	seeds   []string
	log     *slog.Logger
	hasTLS  bool
	hasHMAC bool
}

// close closes the node and the QUIC network.
func (s *setup) close() {
	s.node.Close()
	if s.quic != nil {
		s.quic.Close()
	}
}

// newLogger returns the command's logger: stderr, warnings only unless
// verbose.
func newLogger(w io.Writer, verbose bool) *slog.Logger {
	lvl := slog.LevelWarn
	if verbose {
		lvl = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: lvl}))
}

// build resolves the flags, the environment and the profile into a node.
func (f *nodeFlags) build(defaultBinds []string) (*setup, error) {
	log := newLogger(f.e.stderr, f.verbose)
	var prof *perlrc.Profile
	if f.profile != "" {
		path, err := perlrc.DefaultPathFrom(f.e.lookupEnv)
		if err != nil {
			return nil, fmt.Errorf("profile %q: %w", f.profile, err)
		}
		prof, err = perlrc.Load(path, f.profile)
		if err != nil {
			return nil, fmt.Errorf("profile %q: %w", f.profile, err)
		}
	}

	// Identity.
	id := f.id
	if id == "" && prof != nil && prof.NodeID != "" {
		id = prof.NodeID
		if prof.NodeIDNeedsSuffix() {
			id += randomSuffix()
		}
	}
	if id == "" {
		id = "anon/" + randomSuffix()
	}

	// Secret: --secret, --secret-file, $AEMP_SECRET, profile, in that order.
	if f.secret != "" && f.secretFile != "" {
		return nil, usagef("--secret and --secret-file exclude each other")
	}
	var secret []byte
	hasSecret := false
	switch {
	case f.secret != "":
		secret, hasSecret = []byte(f.secret), true
	case f.secretFile != "":
		b, err := readSecretFile(f.secretFile)
		if err != nil {
			return nil, err
		}
		secret, hasSecret = b, true
	case f.e.getenv("AEMP_SECRET") != "":
		secret, hasSecret = []byte(f.e.getenv("AEMP_SECRET")), true
	case prof != nil && prof.HasSecret:
		secret, hasSecret = prof.Secret, true
	}

	// Certificate.
	var tlsCfg *transport.TLSConfig
	switch {
	case f.tlsCert != "":
		c, err := transport.LoadPerlPEM(f.tlsCert)
		if err != nil {
			return nil, err
		}
		tlsCfg = c
	case prof != nil && prof.CertPEM != nil:
		c, err := transport.ParsePerlPEM(prof.CertPEM)
		if err != nil {
			return nil, fmt.Errorf("profile %q cert: %w", f.profile, err)
		}
		tlsCfg = c
	}
	if !hasSecret && tlsCfg == nil {
		return nil, usagef("no credentials: give --secret, --secret-file, $AEMP_SECRET, --tls-cert or a --profile that has a secret or cert")
	}
	if f.tlsRequired && tlsCfg == nil {
		return nil, usagef("--tls-required needs a certificate (--tls-cert or a profile cert)")
	}

	// Addresses.
	binds := []string(f.binds)
	if len(binds) == 0 && prof != nil && prof.Binds != nil {
		binds = prof.Binds
	}
	if len(binds) == 0 {
		binds = defaultBinds
	}
	var nb []string
	for _, b := range binds {
		a, err := normalizeAddr(b, true)
		if err != nil {
			return nil, usagef("--bind %q: %v", b, err)
		}
		nb = append(nb, a)
	}
	seeds := []string(f.seeds)
	if len(seeds) == 0 && prof != nil {
		seeds = prof.Seeds
	}
	var ns []string
	for _, s := range seeds {
		a, err := normalizeAddr(s, false)
		if err != nil {
			return nil, usagef("--seed %q: %v", s, err)
		}
		ns = append(ns, a)
	}
	type peerAddr struct{ id, addr string }
	var peers []peerAddr
	for _, p := range f.peers {
		pid, addr, ok := strings.Cut(p, "=")
		if !ok || pid == "" || addr == "" {
			return nil, usagef("--peer %q: want ID=ADDR", p)
		}
		a, err := normalizeAddr(addr, false)
		if err != nil {
			return nil, usagef("--peer %q: %v", p, err)
		}
		peers = append(peers, peerAddr{pid, a})
	}

	// The profile's framings, auth lists and monitor timeout; flags and
	// the environment decide identity and credentials.
	var cfg transport.Config
	if prof != nil {
		c, err := prof.NodeConfig(transport.Config{})
		if err != nil {
			return nil, fmt.Errorf("profile %q: %w", f.profile, err)
		}
		cfg = c
	}
	cfg.NodeID, cfg.Secret, cfg.TLS, cfg.Logger = id, secret, tlsCfg, log
	cfg.TLSRequired = cfg.TLSRequired || f.tlsRequired
	cfg.Seeds = ns
	// A node of this tool plays a Perl seed's role: global, so that Perl
	// nodes can use it as their seed and find every node through it.
	cfg.Global = true
	n, err := transport.NewNode(cfg)
	if err != nil {
		return nil, usagef("%v", err)
	}
	s := &setup{
		node:    n,
		tcp:     tcp.New(),
		quic:    quic.New(quic.Config{TLS: tlsCfg, Logger: log}),
		binds:   nb,
		seeds:   ns,
		log:     log,
		hasTLS:  tlsCfg != nil,
		hasHMAC: hasSecret,
	}
	n.AddNetwork(s.tcp)
	n.AddNetwork(s.quic)
	for _, p := range peers {
		n.AddPeer(p.id, p.addr)
	}
	return s, nil
}

// listen opens every bind address and returns the announced addresses.
func (s *setup) listen(ctx context.Context) ([]string, error) {
	var out []string
	for _, b := range s.binds {
		scheme, addr := transport.SplitAddr(b)
		var nw transport.Network = s.tcp
		if scheme == "quic" {
			nw = s.quic
		}
		a, err := s.node.Listen(ctx, nw, addr)
		if err != nil {
			return out, fmt.Errorf("listen %s: %w", b, err)
		}
		out = append(out, a)
	}
	return out, nil
}

// resolveTarget makes sure an address of node target is known: a given
// address is recorded; otherwise the node seeds (Config.Seeds: it dials
// and retries the seeds, and learns the network's listeners from them as
// a global does) and asks every node that comes up (g_find, which a Perl
// seed that is not global answers). It returns early when an address is
// known or a messaging connection to target exists.
func (s *setup) resolveTarget(ctx context.Context, target, addr string, timeout time.Duration) error {
	if addr != "" {
		s.node.AddPeer(target, addr)
		return nil
	}
	if len(s.node.PeerAddrs(target)) > 0 {
		return nil
	}
	if len(s.seeds) == 0 {
		return fmt.Errorf("%s: no address known: give NODE@ADDR, --peer %s=ADDR or a --seed that knows it", target, target)
	}
	found := make(chan struct{}, 1)
	stop := s.node.MonitorNodes(func(id string, up bool, _ error) {
		if !up {
			return
		}
		if id == target {
			select {
			case found <- struct{}{}:
			default:
			}
			return
		}
		if err := s.node.FindAddrs(id, target); err != nil {
			s.log.Debug("g_find failed", "node", id, "err", err)
		}
	})
	defer stop()
	if err := s.node.Start(); err != nil {
		return err
	}
	for _, id := range s.node.Peers() {
		if id == target {
			return nil
		}
		s.node.FindAddrs(id, target)
	}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if len(s.node.PeerAddrs(target)) > 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-found:
			return nil
		case <-deadline.C:
			if len(s.node.Peers()) == 0 {
				return fmt.Errorf("%s: no address known: no seed of %v answered within %v", target, s.seeds, timeout)
			}
			return fmt.Errorf("%s: no listeners found: the seeds %v do not know the node", target, s.seeds)
		case <-tick.C:
		}
	}
}

// splitTarget splits NODE[@ADDR]. The address part is recognised only when
// it looks like one (contains ':'), so node IDs may contain '@'.
func splitTarget(s string) (node, addr string, err error) {
	if i := strings.LastIndexByte(s, '@'); i >= 0 && strings.Contains(s[i+1:], ":") {
		node, addr = s[:i], s[i+1:]
		addr, err = normalizeAddr(addr, false)
		if err != nil {
			return "", "", err
		}
		return node, addr, nil
	}
	return s, "", nil
}

// normalizeAddr turns a command-line address into the announced form the
// node uses: "host:port" for TCP (a "tcp://" prefix is dropped),
// "quic://host:port" for QUIC. Perl's forms are accepted too: "host" means
// port 4040 and, for binds, "*" means every interface and a port of "*"
// means any free port.
func normalizeAddr(s string, bind bool) (string, error) {
	scheme, addr := "tcp", s
	if i := strings.Index(s, "://"); i >= 0 {
		scheme, addr = s[:i], s[i+3:]
	}
	if scheme != "tcp" && scheme != "quic" {
		return "", fmt.Errorf("unknown scheme %q (want tcp or quic)", scheme)
	}
	if addr == "" {
		return "", errors.New("empty address")
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		if strings.Contains(addr, ":") && !strings.HasPrefix(addr, "[") && strings.Count(addr, ":") == 1 {
			return "", err
		}
		host, port = strings.Trim(addr, "[]"), "4040"
	}
	if bind {
		if host == "*" {
			host = ""
		}
		if port == "*" {
			port = "0"
		}
	}
	if host == "" && !bind {
		return "", errors.New("missing host")
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return "", fmt.Errorf("bad port %q", port)
	}
	if p == 0 && !bind {
		return "", errors.New("port 0 cannot be dialed")
	}
	a := net.JoinHostPort(host, port)
	if scheme == "quic" {
		return "quic://" + a, nil
	}
	return a, nil
}

func readSecretFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("secret file: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxSecretFile+1))
	if err != nil {
		return nil, fmt.Errorf("secret file: %w", err)
	}
	if len(b) > maxSecretFile {
		return nil, fmt.Errorf("secret file %s: larger than %d bytes", path, maxSecretFile)
	}
	b = bytes.TrimSuffix(b, []byte("\n"))
	b = bytes.TrimSuffix(b, []byte("\r"))
	if len(b) == 0 {
		return nil, fmt.Errorf("secret file %s: empty", path)
	}
	return b, nil
}

// randomSuffix returns 10 random characters for anonymous node IDs.
func randomSuffix() string {
	b := make([]byte, 10)
	if _, err := rand.Read(b); err != nil {
		// crypto/rand does not fail on supported platforms; fall back to
		// the clock so the ID is still likely unique.
		return strconv.FormatInt(time.Now().UnixNano(), 36)
	}
	return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b))[:10]
}
