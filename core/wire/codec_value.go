package wire

import (
	"encoding/json"
	"math"
	"strconv"
	"strings"
)

// CodecMaxDepth is the deepest array/map nesting a codec encodes or
// accepts, counting the message array itself as level 1.
const CodecMaxDepth = 64

// checkValue reports whether v consists only of kinds both codecs encode
// and decode: nil, bool, Go integer and float kinds, string, []byte,
// []any, []string, map[string]any, map[string]string, map[string][]string,
// nested no deeper than CodecMaxDepth.
func checkValue(codec string, v any, depth int) error {
	switch x := v.(type) {
	case nil, bool, string, []byte, int, int8, int16, int32, int64,
		uint, uint8, uint16, uint32, uint64, float32, float64:
		return nil
	case []any:
		if depth >= CodecMaxDepth {
			return frameErr(codec, ErrFrameUnencodable, "nesting deeper than %d", CodecMaxDepth)
		}
		for _, e := range x {
			if err := checkValue(codec, e, depth+1); err != nil {
				return err
			}
		}
		return nil
	case map[string]any:
		if depth >= CodecMaxDepth {
			return frameErr(codec, ErrFrameUnencodable, "nesting deeper than %d", CodecMaxDepth)
		}
		for _, e := range x {
			if err := checkValue(codec, e, depth+1); err != nil {
				return err
			}
		}
		return nil
	case []string, map[string]string:
		if depth >= CodecMaxDepth {
			return frameErr(codec, ErrFrameUnencodable, "nesting deeper than %d", CodecMaxDepth)
		}
		return nil
	case map[string][]string:
		if depth+1 >= CodecMaxDepth {
			return frameErr(codec, ErrFrameUnencodable, "nesting deeper than %d", CodecMaxDepth)
		}
		return nil
	}
	return frameErr(codec, ErrFrameUnencodable, "unsupported type %T", v)
}

// normaliseJSON converts a value decoded by encoding/json with UseNumber
// into the normalised forms (int64, uint64, float64 for numbers).
func normaliseJSON(v any) (any, error) {
	switch x := v.(type) {
	case json.Number:
		return jsonNumber(string(x))
	case []any:
		for i, e := range x {
			n, err := normaliseJSON(e)
			if err != nil {
				return nil, err
			}
			x[i] = n
		}
		return x, nil
	case map[string]any:
		for k, e := range x {
			n, err := normaliseJSON(e)
			if err != nil {
				return nil, err
			}
			x[k] = n
		}
		return x, nil
	}
	return v, nil
}

func jsonNumber(s string) (any, error) {
	if !strings.ContainsAny(s, ".eE") {
		if i, err := strconv.ParseInt(s, 10, 64); err == nil {
			return i, nil
		}
		if u, err := strconv.ParseUint(s, 10, 64); err == nil {
			return u, nil
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(f, 0) {
		return nil, frameErr("json", ErrFrameMalformed, "number %.40q out of range", s)
	}
	return f, nil
}
