package core

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
type Codec interface {
	// Name returns the framing name used in greetings and auth lines.
	Name() string
	// AppendMessage appends the encoding of msg to dst.
	AppendMessage(dst []byte, msg Message) ([]byte, error)
	// NewDecoder returns an incremental decoder; maxFrame <= 0 means
	// DefaultMaxFrame.
	NewDecoder(maxFrame int) FrameDecoder
}

// FrameDecoder splits a byte stream into messages.
type FrameDecoder interface {
	// Feed appends received bytes. It returns an error wrapping
	// ErrFrameTooLarge as soon as the message being assembled is known to
	// exceed the frame limit. Errors are sticky.
	Feed(p []byte) error
	// Next returns the next complete message, ok=false when more bytes are
	// needed.
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

// CodecByName returns the codec with the given framing name.
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
