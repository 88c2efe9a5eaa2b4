// Package perlrc reads the configuration file of Perl's AnyEvent::MP
// (AnyEvent::MP::Config), so that a Go node can be configured exactly like
// the Perl nodes it talks to, with the same file and the same `aemp` tool.
//
// # Where the file is
//
// DefaultPath mirrors Perl: the file named by the environment variable
// PERL_ANYEVENT_MP_RC if that variable exists (even when empty), otherwise
// "$HOME/.perl-anyevent-mp", otherwise "$APPDATA/perl-anyevent-mp" (no
// dot). Paths are joined with "/" as Perl does.
//
// # Format
//
// The file is JSON, decoded by Perl with JSON::XS in utf8 and relaxed mode.
// The top level is an object of global settings. Its key "profile" maps
// profile names to objects of settings; a profile object may name another
// profile in its "parent" key. This reader accepts the same relaxations as
// JSON::XS's relaxed mode: a trailing comma after the last element of an
// array or object, shell-style comments ("#" up to the end of the line)
// wherever whitespace is allowed, and literal TAB characters inside
// strings. The input must be valid UTF-8.
//
// # Lookup order
//
// The settings of a profile are, from the highest priority down: the
// profile's own keys, then its parent's, its parent's parent's and so on,
// then the global keys. A key set to null at one level hides the values of
// the levels below it (in Perl the hash merge copies the undef too); the
// result is "not configured". A node's profile name defaults to its node
// name; choosing it is the caller's job.
//
// A profile name that has no entry in "profile" is not an error: as in
// Perl, it means "global settings only". A "parent" that names a missing
// profile is an error (ErrUnknownProfile): Perl silently ignores it, but it
// is almost certainly a typo that would leave a node without its secret or
// certificate. A parent chain that loops is an error (ErrParentLoop; Perl
// would recurse forever).
//
// Only the values that end up in the result are checked, as Perl only looks
// at those; keys this package does not know (services, connect_interval,
// version, ...) are ignored.
//
// # Keys
//
//   - secret: a string. Perl hashes the secret as a string of Latin-1
//     bytes, and JSON::XS decodes it to Unicode characters. This package
//     converts each character U+0000..U+00FF to the single byte of the same
//     value, exactly as Perl does (so "é", U+00E9, becomes the byte 0xE9,
//     not the two UTF-8 bytes). A character above U+00FF makes the Perl node
//     die when it first authenticates; this package rejects such a secret up
//     front with ErrSecretNotLatin1, naming the file and key. An empty
//     string is a configured, empty secret (HasSecret is true).
//   - cert: a string of PEM text holding the private key and certificate
//     (Perl also trusts it as the CA). It must contain at least one PEM
//     block; it is not otherwise parsed here.
//   - binds, seeds: arrays of address strings, kept as written. Perl accepts
//     "host:port", "host" (port 4040), "*:port" (all local addresses),
//     "host:*" and "*:*" (any port). SplitHostPort splits them and
//     ListenAddress turns a bind into an address for net.Listen.
//   - nodeid: a string. This package supports literal node IDs and one
//     expansion: an ID ending in "/" (such as "anon/") means "append a
//     random suffix", which is left to the caller (see
//     Profile.NodeIDNeedsSuffix). Perl's "%n" and "%u" sequences are not
//     expanded. An ID must not be empty and must not contain ';', '#', CR or
//     LF, which the greeting line cannot carry.
//   - auth_offer, auth_accept, framing_format: arrays of strings.
//   - monitor_timeout: seconds, a positive number. A string holding a
//     decimal number is accepted too, because Perl numifies strings and
//     Perl tools sometimes write numbers as strings.
//   - parent: a string naming a profile (only inside a profile).
//
// A key of the wrong type (for example "binds": "host:4040") is reported as
// ErrBadValue naming the file, the key and the profile it came from.
// Absent keys leave the zero value in Profile; Profile.WithPerlDefaults
// fills in the defaults Perl's find_profile uses.
//
// # Errors
//
// Every error returned by Load and Parse is an *Error that carries the file
// name and, where it applies, the key, the profile and the line and column,
// and that wraps one of the sentinel errors below (or an error from the
// os package, for Load) so errors.Is and errors.As work.
//
// # Differences from Perl
//
// Perl silently falls back to an empty configuration when the file is
// missing, unreadable or malformed. Load reports all three; a caller that
// wants Perl's behaviour for a missing file checks errors.Is(err,
// fs.ErrNotExist) and uses Parse of "{}" (or the zero Profile) instead.
// The file is limited to MaxFileSize bytes.
package perlrc
