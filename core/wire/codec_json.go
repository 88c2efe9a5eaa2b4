package wire

import (
	"bytes"
	"encoding/json"
	"math"
	"reflect"
	"slices"
	"strconv"
	"unicode/utf8"
)

// jsonCodec is the "json" framing Perl nodes speak: JSON arrays written back
// to back with no separator (whitespace between them is tolerated).
//
// Encoding rules, chosen for Perl peers (JSON::XS in utf8 mode):
//   - string values must be valid UTF-8 and are sent as JSON strings as-is;
//   - []byte values are byte strings: each byte becomes the character with
//     that code point (Latin-1), which is how Perl sees a byte string. They
//     decode as Go strings (UTF-8), not as []byte: JSON has no byte type;
//   - integral floats with magnitude below 2^53 are written like integers
//     ("3", as Perl writes numbers) and so decode as int64; other floats use
//     the shortest representation; NaN and infinities are rejected;
//   - map keys are written in sorted order.
//
// Decoding: numbers become int64 (uint64 when above MaxInt64, float64 when
// they have a fraction or exponent or do not fit 64 bits); strings stay
// strings.
type jsonCodec struct{}

// Name implements Codec.
func (jsonCodec) Name() string { return "json" }

// AppendMessage implements Codec. On error dst is returned unchanged.
func (jsonCodec) AppendMessage(dst []byte, msg Message) ([]byte, error) {
	if msg == nil {
		msg = Message{}
	}
	out, err := appendJSON(dst, msg, 1)
	if err != nil {
		return dst, err
	}
	return out, nil
}

// NewDecoder implements Codec.
func (jsonCodec) NewDecoder(maxFrame int) FrameDecoder {
	return &jsonDecoder{frameQueue: newFrameQueue("json", maxFrame)}
}

func jsonUnencodable(format string, args ...any) error {
	return frameErr("json", ErrFrameUnencodable, format, args...)
}

func appendJSON(b []byte, v any, depth int) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return append(b, "null"...), nil
	case bool:
		return strconv.AppendBool(b, x), nil
	case string:
		if !utf8.ValidString(x) {
			return b, jsonUnencodable("string is not valid UTF-8 (send bytes as []byte)")
		}
		return appendJSONString(b, x), nil
	case []byte:
		return appendJSONLatin1(b, x), nil
	case int:
		return strconv.AppendInt(b, int64(x), 10), nil
	case int8:
		return strconv.AppendInt(b, int64(x), 10), nil
	case int16:
		return strconv.AppendInt(b, int64(x), 10), nil
	case int32:
		return strconv.AppendInt(b, int64(x), 10), nil
	case int64:
		return strconv.AppendInt(b, x, 10), nil
	case uint:
		return strconv.AppendUint(b, uint64(x), 10), nil
	case uint8:
		return strconv.AppendUint(b, uint64(x), 10), nil
	case uint16:
		return strconv.AppendUint(b, uint64(x), 10), nil
	case uint32:
		return strconv.AppendUint(b, uint64(x), 10), nil
	case uint64:
		return strconv.AppendUint(b, x, 10), nil
	case float32:
		return appendJSONFloat(b, float64(x), 32)
	case float64:
		return appendJSONFloat(b, x, 64)
	case []any:
		return appendJSONArray(b, x, depth)
	case []string:
		return appendJSONArray(b, x, depth)
	case map[string]any:
		return appendJSONMap(b, x, depth)
	case map[string]string:
		return appendJSONMap(b, x, depth)
	case map[string][]string:
		return appendJSONMap(b, x, depth)
	}
	return b, jsonUnencodable("unsupported type %s", reflect.TypeOf(v))
}

func appendJSONArray[E any](b []byte, xs []E, depth int) ([]byte, error) {
	if depth > CodecMaxDepth {
		return b, jsonUnencodable("nesting deeper than %d", CodecMaxDepth)
	}
	b = append(b, '[')
	for i, e := range xs {
		if i > 0 {
			b = append(b, ',')
		}
		var err error
		if b, err = appendJSON(b, e, depth+1); err != nil {
			return b, err
		}
	}
	return append(b, ']'), nil
}

func appendJSONMap[V any](b []byte, m map[string]V, depth int) ([]byte, error) {
	if depth > CodecMaxDepth {
		return b, jsonUnencodable("nesting deeper than %d", CodecMaxDepth)
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		if !utf8.ValidString(k) {
			return b, jsonUnencodable("map key is not valid UTF-8")
		}
		b = appendJSONString(b, k)
		b = append(b, ':')
		var err error
		if b, err = appendJSON(b, any(m[k]), depth+1); err != nil {
			return b, err
		}
	}
	return append(b, '}'), nil
}

func appendJSONFloat(b []byte, f float64, bits int) ([]byte, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return b, jsonUnencodable("%v has no JSON form", f)
	}
	if f == math.Trunc(f) && math.Abs(f) < 1<<53 {
		return strconv.AppendInt(b, int64(f), 10), nil
	}
	return strconv.AppendFloat(b, f, 'g', -1, bits), nil
}

const jsonHex = "0123456789abcdef"

// appendJSONString appends s (valid UTF-8) as a JSON string.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		b = append(b, s[start:i]...)
		b = appendJSONEscape(b, c)
		start = i + 1
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// appendJSONLatin1 appends p as a JSON string whose characters are the
// bytes of p (code points 0-255).
func appendJSONLatin1(b []byte, p []byte) []byte {
	b = append(b, '"')
	for _, c := range p {
		switch {
		case c >= 0x80:
			b = utf8.AppendRune(b, rune(c))
		case c < 0x20 || c == '"' || c == '\\':
			b = appendJSONEscape(b, c)
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}

func appendJSONEscape(b []byte, c byte) []byte {
	switch c {
	case '"', '\\':
		return append(b, '\\', c)
	case '\n':
		return append(b, '\\', 'n')
	case '\r':
		return append(b, '\\', 'r')
	case '\t':
		return append(b, '\\', 't')
	}
	return append(b, '\\', 'u', '0', '0', jsonHex[c>>4], jsonHex[c&0xf])
}

// jsonDecoder splits a stream of back-to-back JSON arrays. Its scanner
// tracks string/escape state and bracket depth to find where each
// top-level array ends; complete arrays are then decoded with
// encoding/json.
type jsonDecoder struct {
	frameQueue
	inMsg  bool // inside a top-level array
	curLen int  // bytes of the current (incomplete) array so far
	depth  int
	inStr  bool
	esc    bool
}

func (d *jsonDecoder) partial() int {
	if d.inMsg {
		return d.curLen
	}
	return 0
}

// Feed implements FrameDecoder.
func (d *jsonDecoder) Feed(p []byte) error {
	if d.err != nil {
		return d.err
	}
	d.compact(d.partial())
	base := len(d.buf)
	keep, err := d.scan(p, base)
	if err != nil {
		d.buf = append(d.buf, p[:keep]...)
		d.err = err
		return err
	}
	d.buf = append(d.buf, p...)
	return nil
}

// jsonTokenByte reports the bytes allowed outside strings inside an array
// (besides brackets and quotes): whitespace, separators, number and literal
// characters.
func jsonTokenByte(c byte) bool {
	switch c {
	case ' ', '\t', '\n', '\r', ',', ':', '-', '+', '.', 'e', 'E',
		't', 'r', 'u', 'f', 'a', 'l', 's', 'n':
		return true
	}
	return c >= '0' && c <= '9'
}

// scan advances the scanner over p, whose first byte will be at buf offset
// base. It returns, on error, how many bytes of p hold complete messages.
func (d *jsonDecoder) scan(p []byte, base int) (int, error) {
	keep := 0
	for i := 0; i < len(p); i++ {
		c := p[i]
		if !d.inMsg {
			switch c {
			case ' ', '\t', '\n', '\r':
				continue
			case '[':
				d.inMsg, d.curLen, d.depth, d.inStr, d.esc = true, 0, 0, false, false
			default:
				return keep, frameErr("json", ErrFrameMalformed, "a message must be a JSON array, found byte %q", c)
			}
		}
		if d.inStr {
			// Fast path: skip ordinary string bytes in bulk.
			j := i
			if !d.esc {
				for j < len(p) && p[j] >= 0x20 && p[j] != '"' && p[j] != '\\' {
					j++
				}
			}
			if j > i {
				d.curLen += j - i
				if d.curLen > d.maxFrame {
					return keep, d.tooLarge()
				}
				i = j - 1
				continue
			}
		}
		d.curLen++
		if d.curLen > d.maxFrame {
			return keep, d.tooLarge()
		}
		if d.inStr {
			switch {
			case d.esc:
				d.esc = false
			case c == '\\':
				d.esc = true
			case c == '"':
				d.inStr = false
			case c < 0x20:
				return keep, frameErr("json", ErrFrameMalformed, "control character %#x in a string", c)
			}
			continue
		}
		switch c {
		case '"':
			d.inStr = true
		case '[', '{':
			d.depth++
			if d.depth > CodecMaxDepth {
				return keep, frameErr("json", ErrFrameMalformed, "nesting deeper than %d", CodecMaxDepth)
			}
		case ']', '}':
			d.depth--
			if d.depth == 0 {
				end := base + i + 1
				d.push(end-d.curLen, end)
				d.inMsg = false
				keep = i + 1
			}
		default:
			if !jsonTokenByte(c) {
				return keep, frameErr("json", ErrFrameMalformed, "unexpected byte %q", c)
			}
		}
	}
	return keep, nil
}

func (d *jsonDecoder) tooLarge() error {
	return frameErr("json", ErrFrameTooLarge, "incomplete message passed %d bytes", d.maxFrame)
}

// Next implements FrameDecoder.
func (d *jsonDecoder) Next() (Message, bool, error) {
	return d.decodeNext(decodeJSONFrame, d.partial)
}

func decodeJSONFrame(frame []byte) (Message, error) {
	dec := json.NewDecoder(bytes.NewReader(frame))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, frameErr("json", ErrFrameMalformed, "%v", err)
	}
	arr, ok := v.([]any)
	if !ok {
		return nil, frameErr("json", ErrFrameMalformed, "a message must be a JSON array")
	}
	if dec.More() {
		return nil, frameErr("json", ErrFrameMalformed, "trailing data after the array")
	}
	if _, err := normaliseJSON(arr); err != nil {
		return nil, err
	}
	return arr, nil
}
