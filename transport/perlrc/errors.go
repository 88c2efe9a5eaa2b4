package perlrc

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Sentinel errors. Every error from Load and Parse is an *Error wrapping one
// of these (or, for Load, an error from the os package).
var (
	// ErrMalformed: the file is not valid (relaxed) JSON, is not UTF-8, or
	// its top level is not an object.
	ErrMalformed = errors.New("perlrc: configuration is not a relaxed-JSON object")
	// ErrBadValue: a key has a value of the wrong type or out of range.
	ErrBadValue = errors.New("perlrc: configuration value has the wrong type or is out of range")
	// ErrUnknownProfile: a profile's "parent" names a profile that does not
	// exist. (A requested profile that does not exist is not an error.)
	ErrUnknownProfile = errors.New("perlrc: parent profile does not exist")
	// ErrParentLoop: following "parent" keys leads back to a profile
	// already visited.
	ErrParentLoop = errors.New("perlrc: profile parent chain loops")
	// ErrSecretNotLatin1: the secret holds a character above U+00FF, which
	// Perl cannot hash as a byte string.
	ErrSecretNotLatin1 = errors.New("perlrc: secret has a character above U+00FF (Perl hashes secrets as Latin-1 bytes)")
	// ErrTooLarge: the file is longer than MaxFileSize bytes.
	ErrTooLarge = errors.New("perlrc: configuration file is larger than the size limit")
	// ErrNoPath: DefaultPath found none of PERL_ANYEVENT_MP_RC, HOME and
	// APPDATA in the environment.
	ErrNoPath = errors.New("perlrc: none of PERL_ANYEVENT_MP_RC, HOME, APPDATA is set")
)

// Error describes a problem with a configuration file. Its text has the form
//
//	FILE:LINE:COLUMN: perlrc: ...                          (malformed JSON)
//	FILE: key "secret" (profile "node1"): perlrc: ...      (bad value)
//
// with the parts that do not apply left out.
type Error struct {
	// File is the file name (the source given to Parse).
	File string
	// Profile is the profile whose entry held the offending key, or the
	// profile involved in a parent-chain error; empty when the key is at
	// the global level.
	Profile string
	// Key is the configuration key involved, empty if none.
	Key string
	// Line and Column locate a syntax error (1-based, column in bytes);
	// zero when unknown or not applicable.
	Line, Column int
	// Err is the underlying error; it wraps one of the package's sentinels
	// or an os error.
	Err error
}

// Error implements error.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteString(":" + strconv.Itoa(e.Line) + ":" + strconv.Itoa(e.Column))
	}
	b.WriteString(": ")
	if e.Key != "" {
		fmt.Fprintf(&b, "key %q", e.Key)
		if e.Profile != "" {
			fmt.Fprintf(&b, " (profile %q)", e.Profile)
		} else {
			b.WriteString(" (global level)")
		}
		b.WriteString(": ")
	} else if e.Profile != "" {
		fmt.Fprintf(&b, "profile %q: ", e.Profile)
	}
	if e.Err != nil {
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Unwrap returns the underlying error, for errors.Is and errors.As.
func (e *Error) Unwrap() error { return e.Err }
