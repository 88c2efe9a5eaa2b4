package fuzz

import (
	"bytes"
	"math"
	"reflect"
)

// chunker cuts a byte stream into pieces whose sizes come from a fuzz input,
// so that every target sees arbitrary chunking. Sizes cycle through sizes
// (each byte gives 1..256); an empty list means one chunk per call.
type chunker struct {
	sizes []byte
	i     int
}

// next returns the size of the next chunk, at most n.
func (c *chunker) next(n int) int {
	if len(c.sizes) == 0 || n <= 0 {
		return n
	}
	s := int(c.sizes[c.i%len(c.sizes)]) + 1
	c.i++
	return min(s, n)
}

// valueEqual compares two normalised codec values like reflect.DeepEqual,
// except that NaN equals NaN (a float decoded from msgpack may be NaN).
func valueEqual(a, b any) bool { return valueEq(a, b, false) }

// jsonEqual is valueEqual up to the documented normalisation of the json
// codec: an integral float below 2^53 is written as an integer and comes
// back as int64.
func jsonEqual(a, b any) bool { return valueEq(a, b, true) }

func valueEq(a, b any, jsonNorm bool) bool {
	switch x := a.(type) {
	case float64:
		y, ok := b.(float64)
		if !ok {
			if i, isInt := b.(int64); isInt && jsonNorm && x == math.Trunc(x) && math.Abs(x) < 1<<53 {
				return int64(x) == i
			}
			return false
		}
		if math.IsNaN(x) && math.IsNaN(y) {
			return true
		}
		return math.Float64bits(x) == math.Float64bits(y) || x == y
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !valueEq(x[i], y[i], jsonNorm) {
				return false
			}
		}
		return true
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, v := range x {
			w, ok := y[k]
			if !ok || !valueEq(v, w, jsonNorm) {
				return false
			}
		}
		return true
	case []byte:
		y, ok := b.([]byte)
		return ok && bytes.Equal(x, y)
	}
	return reflect.DeepEqual(a, b)
}
