package wire

import (
	"errors"
	"fmt"
)

// Message is one framed message: an array whose first element is the
// destination port's local name, followed by data.
//
// Decoded values are normalised to: nil, bool, int64 (uint64 only when the
// value does not fit in an int64), float64, string, []byte (msgpack bin),
// []any and map[string]any.
type Message = []any

// Codec encodes and decodes messages in one framing ("msgpack", "json").
// Codecs are stateless and safe for concurrent use; see the doc comments of
// CodecByName for what each framing accepts and produces.
type Codec interface {
	// Name returns the framing name used in greetings and auth lines.
	Name() string
	// AppendMessage appends the encoding of msg to dst.
	AppendMessage(dst []byte, msg Message) ([]byte, error)
	// NewDecoder returns an incremental decoder; maxFrame <= 0 means
	// DefaultMaxFrame.
	NewDecoder(maxFrame int) FrameDecoder
}

// FrameDecoder splits a byte stream into messages. It is not safe for
// concurrent use.
//
// Feed copies what it is given, so the caller may reuse its read buffer.
// Call Next until it returns ok=false after every Feed: Feed bounds the
// incomplete message it holds to the frame limit (plus a header), but
// complete messages wait in the buffer until Next takes them.
type FrameDecoder interface {
	// Feed appends received bytes. It returns a *FrameError wrapping
	// ErrFrameTooLarge as soon as the message being assembled is known to
	// exceed the frame limit (for msgpack, from the declared lengths; for
	// JSON, once the incomplete message passes the limit), or wrapping
	// ErrFrameMalformed when the bytes cannot be a message. Errors are
	// sticky: later calls to Feed return the same error.
	Feed(p []byte) error
	// Next returns the next complete message, ok=false when more bytes are
	// needed. Messages that were complete before an error are still
	// returned; after them Next returns the sticky error. Decoded values
	// do not share memory with the decoder's buffer.
	Next() (msg Message, ok bool, err error)
}

// DefaultMaxFrame is the frame limit used when a decoder is created with
// maxFrame <= 0.
const DefaultMaxFrame = 16 << 20

// Sentinel rules a framed stream can break. Errors returned by codecs wrap
// one of these in a *FrameError.
var (
	// ErrFrameTooLarge: a message exceeds the decoder's frame limit.
	ErrFrameTooLarge = errors.New("frame exceeds the maximum frame size")
	// ErrFrameMalformed: the bytes are not a valid message in the framing.
	ErrFrameMalformed = errors.New("malformed frame")
	// ErrFrameUnencodable: a message holds a value the codec cannot
	// represent (an unsupported Go type, NaN or infinity or a string that is
	// not UTF-8 in JSON, nesting deeper than CodecMaxDepth).
	ErrFrameUnencodable = errors.New("value cannot be encoded in this framing")
)

// FrameError describes a framing failure: which rule was broken, in which
// codec, and details.
type FrameError struct {
	Rule   error  // ErrFrameTooLarge, ErrFrameMalformed or ErrFrameUnencodable
	Codec  string // codec name
	Detail string // human-readable detail
}

// Error implements error.
func (e *FrameError) Error() string {
	if e.Detail == "" {
		return fmt.Sprintf("%s: %v", e.Codec, e.Rule)
	}
	return fmt.Sprintf("%s: %v: %s", e.Codec, e.Rule, e.Detail)
}

// Unwrap returns the rule, so errors.Is(err, ErrFrameTooLarge) works.
func (e *FrameError) Unwrap() error { return e.Rule }

func frameErr(codec string, rule error, format string, args ...any) *FrameError {
	return &FrameError{Rule: rule, Codec: codec, Detail: fmt.Sprintf(format, args...)}
}

// CodecByName returns the codec with the given framing name:
//
//   - "msgpack" (between nodes of this project): msgpack arrays back to
//     back, encoded with github.com/vmihailenco/msgpack/v5. []byte travels
//     as bin and decodes as []byte; types survive a round trip after
//     normalisation (every integer kind becomes int64, float32 float64,
//     []string []any, map[string]string map[string]any).
//   - "json" (what Perl nodes speak): JSON arrays back to back. Strings
//     must be valid UTF-8; []byte is sent as a string of its Latin-1
//     characters (Perl's view of a byte string) and decodes as a string;
//     integral floats below 2^53 are written as integers and decode as
//     int64; NaN and infinities cannot be sent.
//
// Both accept, when encoding, nil, bool, every Go integer and float kind,
// string, []byte, []any, []string, map[string]any, map[string]string and
// map[string][]string, nested at most CodecMaxDepth deep; anything else
// fails with ErrFrameUnencodable. Both reject, when decoding, nesting deeper
// than CodecMaxDepth and a top-level value that is not an array.
func CodecByName(name string) (Codec, bool) {
	switch name {
	case "msgpack":
		return msgpackCodec{}, true
	case "json":
		return jsonCodec{}, true
	}
	return nil, false
}

// CodecNames returns the supported framing names in preference order.
func CodecNames() []string { return []string{"msgpack", "json"} }
