package wire

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"

	"github.com/vmihailenco/msgpack/v5"
)

// msgpackCodec is the "msgpack" framing between nodes of this project:
// msgpack arrays written back to back. Values are encoded with
// github.com/vmihailenco/msgpack/v5 (compact integers, strings as str,
// []byte as bin) and must be of the kinds checkValue accepts. Decoding
// yields int64 (uint64 above MaxInt64), float64, string, []byte (bin),
// []any and map[string]any (integer and bin keys are converted to
// strings). Ext types are rejected.
type msgpackCodec struct{}

// Name implements Codec.
func (msgpackCodec) Name() string { return "msgpack" }

// appendWriter is the io.Writer (and msgpack writer) that appends to a
// slice.
type appendWriter struct{ b []byte }

func (w *appendWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

func (w *appendWriter) WriteByte(c byte) error {
	w.b = append(w.b, c)
	return nil
}

func (w *appendWriter) WriteString(s string) (int, error) {
	w.b = append(w.b, s...)
	return len(s), nil
}

// AppendMessage implements Codec. On error dst is returned unchanged.
func (msgpackCodec) AppendMessage(dst []byte, msg Message) ([]byte, error) {
	if msg == nil {
		msg = Message{}
	}
	if err := checkValue("msgpack", msg, 1); err != nil {
		return dst, err
	}
	w := &appendWriter{b: dst}
	enc := msgpack.GetEncoder()
	enc.Reset(w)
	enc.UseCompactInts(true)
	enc.SetSortMapKeys(true)
	err := enc.Encode(msg)
	enc.Reset(nil)
	msgpack.PutEncoder(enc)
	if err != nil {
		return dst, frameErr("msgpack", ErrFrameUnencodable, "%v", err)
	}
	return w.b, nil
}

// NewDecoder implements Codec.
func (msgpackCodec) NewDecoder(maxFrame int) FrameDecoder {
	return &msgpackDecoder{frameQueue: newFrameQueue("msgpack", maxFrame)}
}

// msgpackDecoder finds message boundaries without decoding: an incremental
// skipper tracks, per open array/map, how many values remain, and how many
// payload bytes of the current scalar are still to come. Declared lengths
// are checked against the frame limit as soon as their header is read.
type msgpackDecoder struct {
	frameQueue
	inMsg   bool
	curLen  int64   // bytes of the current message so far
	minLeft int64   // lower bound of the bytes the current message still needs
	stack   []int64 // values remaining in each open container
	skip    int64   // payload bytes of the current scalar still to come
	hdr     [5]byte // partial header
	nhdr    int
}

func (d *msgpackDecoder) partial() int {
	if d.inMsg {
		return int(d.curLen)
	}
	return 0
}

// Feed implements FrameDecoder.
func (d *msgpackDecoder) Feed(p []byte) error {
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

func (d *msgpackDecoder) malformed(format string, args ...any) error {
	return frameErr("msgpack", ErrFrameMalformed, format, args...)
}

// msgpackHeaderLen returns the number of length bytes following type byte
// c (0 for types without a length field).
func msgpackHeaderLen(c byte) int {
	switch c {
	case 0xc4, 0xd9: // bin8, str8
		return 1
	case 0xc5, 0xda, 0xdc, 0xde: // bin16, str16, array16, map16
		return 2
	case 0xc6, 0xdb, 0xdd, 0xdf: // bin32, str32, array32, map32
		return 4
	}
	return 0
}

// scan advances the skipper over p, whose first byte will be at buf offset
// base. On error it returns how many bytes of p hold complete messages.
func (d *msgpackDecoder) scan(p []byte, base int) (int, error) {
	keep := 0
	i := 0
	for i < len(p) {
		if d.skip > 0 {
			n := int64(len(p) - i)
			if n > d.skip {
				n = d.skip
			}
			d.skip -= n
			d.curLen += n
			i += int(n)
			if d.skip > 0 {
				break
			}
			if d.valueDone() {
				end := base + i
				d.push(end-int(d.curLen), end)
				keep = i
			}
			continue
		}
		// Read a header: type byte plus its length field.
		if d.nhdr == 0 {
			c := p[i]
			if !d.inMsg {
				if !(c >= 0x90 && c <= 0x9f || c == 0xdc || c == 0xdd) {
					return keep, d.malformed("a message must be a msgpack array, found type byte %#x", c)
				}
				d.inMsg, d.curLen, d.minLeft = true, 0, 1
				d.stack = d.stack[:0]
			}
		}
		need := 1 + msgpackHeaderLen(d.hdr[0])
		if d.nhdr == 0 {
			need = 1 + msgpackHeaderLen(p[i])
		}
		for d.nhdr < need && i < len(p) {
			d.hdr[d.nhdr] = p[i]
			d.nhdr++
			i++
			d.curLen++
		}
		if d.curLen > int64(d.maxFrame) {
			return keep, d.tooLarge(d.curLen)
		}
		if d.nhdr < need {
			break
		}
		d.nhdr = 0
		done, err := d.header()
		if err != nil {
			return keep, err
		}
		if d.curLen+d.minLeft+d.skip > int64(d.maxFrame) {
			return keep, d.tooLarge(d.curLen + d.minLeft + d.skip)
		}
		if done && d.valueDone() {
			end := base + i
			d.push(end-int(d.curLen), end)
			keep = i
		}
	}
	return keep, nil
}

func (d *msgpackDecoder) tooLarge(n int64) error {
	return frameErr("msgpack", ErrFrameTooLarge, "message needs at least %d bytes, limit %d", n, d.maxFrame)
}

// header interprets the complete header in d.hdr. It returns done=true when
// the value is complete (no payload and not a non-empty container).
func (d *msgpackDecoder) header() (done bool, err error) {
	c := d.hdr[0]
	d.minLeft-- // this value has started
	var length int64
	switch msgpackHeaderLen(c) {
	case 1:
		length = int64(d.hdr[1])
	case 2:
		length = int64(binary.BigEndian.Uint16(d.hdr[1:3]))
	case 4:
		length = int64(binary.BigEndian.Uint32(d.hdr[1:5]))
	}
	switch {
	case c <= 0x7f || c >= 0xe0, c == 0xc0, c == 0xc2, c == 0xc3: // fixint, nil, bool
		return true, nil
	case c >= 0x80 && c <= 0x8f: // fixmap
		return d.open(2 * int64(c&0x0f))
	case c >= 0x90 && c <= 0x9f: // fixarray
		return d.open(int64(c & 0x0f))
	case c >= 0xa0 && c <= 0xbf: // fixstr
		d.skip = int64(c & 0x1f)
	case c == 0xc4 || c == 0xc5 || c == 0xc6 || c == 0xd9 || c == 0xda || c == 0xdb: // bin, str
		d.skip = length
	case c == 0xdc || c == 0xdd: // array16/32
		return d.open(length)
	case c == 0xde || c == 0xdf: // map16/32
		return d.open(2 * length)
	case c == 0xca: // float32
		d.skip = 4
	case c == 0xcb: // float64
		d.skip = 8
	case c == 0xcc || c == 0xd0:
		d.skip = 1
	case c == 0xcd || c == 0xd1:
		d.skip = 2
	case c == 0xce || c == 0xd2:
		d.skip = 4
	case c == 0xcf || c == 0xd3:
		d.skip = 8
	case c == 0xc1:
		return false, d.malformed("type byte 0xc1 is never used")
	default: // 0xc7-0xc9, 0xd4-0xd8: ext
		return false, d.malformed("ext type %#x is not used by this framing", c)
	}
	return d.skip == 0, nil
}

// open starts a container with n values.
func (d *msgpackDecoder) open(n int64) (bool, error) {
	if n == 0 {
		return true, nil
	}
	if len(d.stack) >= CodecMaxDepth {
		return false, d.malformed("nesting deeper than %d", CodecMaxDepth)
	}
	d.stack = append(d.stack, n)
	d.minLeft += n
	return false, nil
}

// valueDone records the end of a value; it returns true when that ends the
// message.
func (d *msgpackDecoder) valueDone() bool {
	for len(d.stack) > 0 {
		top := len(d.stack) - 1
		d.stack[top]--
		if d.stack[top] > 0 {
			return false
		}
		d.stack = d.stack[:top]
	}
	d.inMsg = false
	return true
}

// Next implements FrameDecoder.
func (d *msgpackDecoder) Next() (Message, bool, error) {
	return d.decodeNext(decodeMsgpackFrame, d.partial)
}

func decodeMsgpackFrame(frame []byte) (Message, error) {
	r := bytes.NewReader(frame)
	dec := msgpack.GetDecoder()
	dec.Reset(r)
	dec.SetMapDecoder(decodeMsgpackMap)
	v, err := dec.DecodeInterface()
	dec.Reset(nil)
	msgpack.PutDecoder(dec)
	if err != nil {
		return nil, frameErr("msgpack", ErrFrameMalformed, "%v", err)
	}
	if r.Len() != 0 {
		return nil, frameErr("msgpack", ErrFrameMalformed, "trailing data after the array")
	}
	arr, ok := v.([]any)
	if !ok {
		return nil, frameErr("msgpack", ErrFrameMalformed, "a message must be a msgpack array")
	}
	if arr == nil {
		arr = Message{}
	}
	for i, e := range arr {
		arr[i] = normaliseMsgpack(e)
	}
	return arr, nil
}

// decodeMsgpackMap decodes a map into map[string]any, converting string,
// bin and integer keys to strings.
func decodeMsgpackMap(d *msgpack.Decoder) (any, error) {
	n, err := d.DecodeMapLen()
	if err != nil {
		return nil, err
	}
	if n < 0 {
		return nil, nil
	}
	m := make(map[string]any, min(n, 1024))
	for range n {
		k, err := d.DecodeInterface()
		if err != nil {
			return nil, err
		}
		var key string
		switch kk := k.(type) {
		case string:
			key = kk
		case []byte:
			key = string(kk)
		default:
			n := normaliseMsgpack(k)
			switch n.(type) {
			case int64, uint64:
				key = fmt.Sprint(n)
			default:
				return nil, fmt.Errorf("map key of type %T", k)
			}
		}
		v, err := d.DecodeInterface()
		if err != nil {
			return nil, err
		}
		m[key] = normaliseMsgpack(v)
	}
	return m, nil
}

// normaliseMsgpack converts msgpack/v5 interface values to the normalised
// forms (maps are already normalised by decodeMsgpackMap).
func normaliseMsgpack(v any) any {
	switch x := v.(type) {
	case int8:
		return int64(x)
	case int16:
		return int64(x)
	case int32:
		return int64(x)
	case uint8:
		return int64(x)
	case uint16:
		return int64(x)
	case uint32:
		return int64(x)
	case uint64:
		if x <= math.MaxInt64 {
			return int64(x)
		}
		return x
	case float32:
		return float64(x)
	case []any:
		for i, e := range x {
			x[i] = normaliseMsgpack(e)
		}
		return x
	}
	return v
}
