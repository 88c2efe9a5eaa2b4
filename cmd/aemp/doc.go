// Command aemp runs AnyEvent::MP-compatible nodes from the shell and moves
// data between them over aemp-dataconn data connections: authenticated
// raw byte streams (shared-secret HMAC and/or TLS, over TCP or QUIC) that
// interoperate with Perl AnyEvent::MP nodes.
//
// Usage:
//
//	aemp <command> [flags] [arguments]
//
// The commands are:
//
//	node     run a long-lived node that receives data connections
//	send     send a file to a node over a data connection
//	ping     measure connection set-up and message round trips to a node
//	demo     run two nodes in this process and measure every transport
//	version  print the version
//	help     show help for a command ("aemp help send")
//
// Flags follow Go's flag package: -flag or --flag, -flag=value or
// -flag value, and flags come before the arguments. Each command has its
// own flags; "aemp help CMD" lists them.
//
// # Exit status
//
//	0  success
//	1  failure: the transfer, connection or verification failed; the
//	   reason (for data connections, the kill reason a Perl node would
//	   report, e.g. "n1: unable to establish connection within 10
//	   seconds") is printed on stderr
//	2  usage error: unknown command or flag, missing or malformed
//	   argument, no credentials
//
// # Identity and security (node, send, ping)
//
//	--id ID             node ID; default: the profile's nodeid, else a
//	                    random "anon/..." ID
//	--secret SECRET     shared secret (HMAC auth). Visible in ps: prefer
//	--secret-file FILE  the secret from a file (one trailing newline is
//	                    dropped), or
//	AEMP_SECRET         the environment variable
//	--tls-cert FILE     a Perl-style PEM file: certificate and private key,
//	                    the certificate also trusted as the CA
//	                    (transport.LoadPerlPEM)
//	--tls-required      refuse peers that cannot speak TLS
//	--profile NAME      read secret, cert, binds, seeds and nodeid from
//	                    profile NAME of Perl's AnyEvent::MP configuration
//	                    file ($PERL_ANYEVENT_MP_RC, else
//	                    ~/.perl-anyevent-mp). Command-line flags win over
//	                    the profile; a nodeid ending in "/" gets a random
//	                    suffix, as in Perl.
//	--bind ADDR         listen on ADDR (repeatable). tcp://host:port,
//	                    quic://host:port, or host:port for TCP; Perl's
//	                    "*:port" (every interface) and "host:*" (any port)
//	                    work too. For send and ping, listening lets the
//	                    target dial back.
//	--seed ADDR         connect to ADDR at start-up, retrying until it
//	                    answers, and announce our listeners there
//	                    (repeatable); send and ping also learn the
//	                    target's addresses from the seeds (their database,
//	                    or g_find)
//	--peer ID=ADDR      record a listener address of node ID (repeatable)
//	--json              machine-readable output: one JSON object per line
//	-v                  debug log (log/slog) on stderr; quiet otherwise
//
// At least a secret or a certificate is required. The secret's source
// order is --secret, --secret-file, AEMP_SECRET, then the profile.
//
// # aemp node
//
//	aemp node [--id ID] [--bind ADDR]... [--seed ADDR]... [--recv-dir DIR] [--stats INTERVAL] [--json]
//
// Runs a node until SIGINT or SIGTERM (then it closes every connection and
// exits 0). It listens on the --bind addresses (default 127.0.0.1:0, a
// free loopback port, reported in the "listening" event), connects to the
// seeds and announces itself, and registers the init function aemp::recv:
//
//   - With --recv-dir DIR, an incoming stream is stored as DIR/NAME, NAME
//     being the first init datum. It is written to a hidden partial file
//     first and renamed when complete (replacing an existing file). A name
//     that would leave the directory is refused (absolute paths, ".." and
//     ".", separators, empty or missing names, control characters, names
//     longer than 255 bytes): the stream is closed at once and a "refused"
//     event gives the reason. The directory is opened as an os.Root, so
//     symbolic links cannot lead out of it either.
//   - Without --recv-dir the stream is read and discarded.
//
// Either way, after reading to the sender's end of stream the node writes
// the 32-byte SHA-256 of what arrived back and closes, so the sender can
// verify. A stream idle for 2 minutes is dropped.
//
// Events (one line each; JSON objects with --json, with a "time" field
// and the fields shown):
//
//	listening        node, addr
//	node_up          peer
//	node_down        peer, error
//	dataconn_opened  peer, initfunc, file
//	dataconn_failed  peer, initfunc, file, bytes, reason
//	refused          peer, initfunc, file, reason
//	received         peer, initfunc, file, bytes, sha256, seconds, bytes_per_second
//	stats            node, stats (with --stats INTERVAL: Node.Stats, every INTERVAL)
//	stopped          node
//
// node_up and node_down are reported as the messaging connection to a
// node comes and goes.
//
// # aemp send
//
//	aemp send --to NODE[@ADDR] [--initfunc NAME] [--initdata JSON-ARRAY] [--timeout D] FILE|-
//
// Opens a data connection to NODE (address from @ADDR, --peer or the
// seeds), running init function NAME there (default aemp::recv) with the
// init data (default: [base name of FILE], ["stdin"] for -). Streams the
// file, with a progress bar on stderr when stderr is a terminal, then
// half-closes. With aemp::recv it reads the receiver's 32-byte SHA-256 and
// compares it with its own; with another init function it waits (up to
// --timeout) for the far side to close. It prints the bytes, the SHA-256,
// the data connection set-up time, the transfer time and the throughput
// ("sent" event with --json, whose "verified" is true only when the
// receiver's SHA-256 matched, and false with any other init function;
// "send_failed" on failure). A Perl target reports no error for an init
// function it does not have: the transfer then succeeds, unchecked.
// --timeout (default 10s) bounds the set-up and the wait for the SHA-256.
//
// # aemp ping
//
//	aemp ping [--count N] [--timeout D] NODE[@ADDR]
//
// Measures the messaging connection set-up (dial and handshake; Connect or
// ConnectAddr), then makes N message round trips (default 3): each sends
// ["", "snd", PORT] to NODE's node port, which answers with an empty
// message to PORT. "@ADDR" with no node ID pings whichever node listens
// there; NODE@ADDR fails if another node answers.
//
// # aemp demo
//
//	aemp demo [--size SIZE] [--timeout D] [--json]
//
// Needs no setup: two nodes in this process on loopback open one data
// connection each over TCP with a random shared secret, TCP with TLS
// (certificates from an in-memory CA) and QUIC (the same certificates),
// send SIZE bytes (default 256MiB; 8MiB, 1GiB and plain byte counts work;
// KiB/MiB/GiB are powers of 1024, kB/MB/GB of 1000), check the SHA-256 on
// the far side and print a table: transport, auth, messaging connect time,
// data connection set-up time, transfer time, throughput and whether the
// SHA-256 matched. A progress bar is shown on stderr when it is a
// terminal. A QUIC row that cannot be set up says "not available: REASON"
// and does not fail the demo; any other failed row makes it exit 1.
//
// # aemp version, aemp help
//
// version prints the aemp version, the Go version and the provider string
// the node announces. help lists the commands; help CMD shows CMD's usage.
package main
