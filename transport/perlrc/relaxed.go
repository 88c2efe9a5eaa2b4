package perlrc

import (
	"sort"
	"unicode/utf8"
)

// relax rewrites JSON::XS relaxed-mode text into strict JSON that
// encoding/json accepts:
//
//   - a "#" outside a string starts a comment up to the next CR or LF; the
//     comment's bytes become spaces;
//   - a comma that follows a value and precedes "]" or "}" (with only
//     whitespace and comments between) becomes a space;
//   - a literal TAB inside a string becomes the escape "\t".
//
// Spaces keep every offset unchanged; each TAB adds one byte. inserted holds,
// in increasing order, the offsets in out of those extra bytes, so that
// inputOffset can map an offset in out back to one in in. Anything else
// that is not strict JSON is left alone for the decoder to reject.
func relax(in []byte) (out []byte, inserted []int) {
	out = make([]byte, 0, len(in))
	inString, escaped := false, false
	// last is the last byte outside strings and comments that is not
	// whitespace; it tells whether a comma follows a value.
	var last byte
	for i := 0; i < len(in); i++ {
		c := in[i]
		if inString {
			switch {
			case escaped:
				escaped = false
				out = append(out, c)
			case c == '\\':
				escaped = true
				out = append(out, c)
			case c == '"':
				inString = false
				last = c
				out = append(out, c)
			case c == '\t':
				out = append(out, '\\')
				inserted = append(inserted, len(out))
				out = append(out, 't')
			default:
				out = append(out, c)
			}
			continue
		}
		switch c {
		case '"':
			inString = true
			out = append(out, c)
		case '#':
			for i < len(in) && in[i] != '\n' && in[i] != '\r' {
				out = append(out, ' ')
				i++
			}
			i-- // let the loop see the line end (or stop at the end)
		case ',':
			afterValue := last != 0 && last != '[' && last != '{' && last != ',' && last != ':'
			if next := nextSignificant(in, i+1); afterValue && (next == ']' || next == '}') {
				out = append(out, ' ')
			} else {
				out = append(out, c)
			}
			last = c
		default:
			out = append(out, c)
			if !isJSONSpace(c) {
				last = c
			}
		}
	}
	return out, inserted
}

// nextSignificant returns the first byte at or after in[i] that is neither
// JSON whitespace nor inside a "#" comment, or 0 at the end of the input.
func nextSignificant(in []byte, i int) byte {
	for i < len(in) {
		switch c := in[i]; {
		case isJSONSpace(c):
			i++
		case c == '#':
			for i < len(in) && in[i] != '\n' && in[i] != '\r' {
				i++
			}
		default:
			return c
		}
	}
	return 0
}

func isJSONSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r'
}

// inputOffset maps an offset in relax's output back to the input.
func inputOffset(off int, inserted []int) int {
	return off - sort.SearchInts(inserted, off)
}

// lineColumn returns the 1-based line and byte column of offset off in data
// (off is clamped to the data).
func lineColumn(data []byte, off int) (line, col int) {
	if off > len(data) {
		off = len(data)
	}
	if off < 0 {
		off = 0
	}
	line, lineStart := 1, 0
	for i := 0; i < off; i++ {
		if data[i] == '\n' {
			line++
			lineStart = i + 1
		}
	}
	return line, off - lineStart + 1
}

// firstInvalidUTF8 returns the offset of the first byte of data that is not
// part of a valid UTF-8 sequence, or -1.
func firstInvalidUTF8(data []byte) int {
	for i := 0; i < len(data); {
		r, size := utf8.DecodeRune(data[i:])
		if r == utf8.RuneError && size <= 1 {
			return i
		}
		i += size
	}
	return -1
}
