package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"unicode/utf8"
)

// Direct data streams (the "qstream" extension of KeyGo).
//
// On a multiplexed secure connection (QUIC) whose peer is already
// authenticated, a data connection is a new stream that starts with a
// header instead of an AEMP handshake. The header, initiator to target:
//
//	byte 0      DataStreamMagic (0xA5: never the first byte of a greeting,
//	            which starts with "aemp")
//	byte 1      DataStreamVersion (1)
//	bytes 2..3  L, big-endian uint16, 1 <= L <= MaxDataStreamHeader-4
//	L bytes     one msgpack array: [from, to, initFunc, initData...]
//	            from, to: node IDs (the initiator's and the target's),
//	            initFunc: the name of the init function, each a non-empty
//	            string of at most MaxLineLen bytes; initData: any values
//	            the msgpack framing accepts (CodecMaxDepth nesting).
//
// The answer, target to initiator, is one byte: DataStreamAccept, after
// which the stream belongs to the init function, or DataStreamRefuse
// followed by a big-endian uint16 M <= MaxDataStreamReason and M bytes of
// UTF-8: the Perl-style message of the kill reason; the target then
// closes the stream.
//
// Nothing in the header authenticates: the target takes the initiator's
// identity from the connection the stream arrived on, and refuses a
// header whose from or to does not match it.

// Fixed bytes and limits of the direct data stream header and answer.
const (
	DataStreamMagic   = 0xA5
	DataStreamVersion = 1
	// MaxDataStreamHeader bounds the whole header (prefix included). A
	// request whose header would be larger uses the AEMP handshake path.
	MaxDataStreamHeader = 4 + 0xFFFF
	// MaxDataStreamReason bounds the refusal message.
	MaxDataStreamReason = 1024
	DataStreamAccept    = 0x00
	DataStreamRefuse    = 0x01
	// DataStreamPrefixLen is the length of the fixed prefix.
	DataStreamPrefixLen = 4
)

// ErrDataStreamHeader is the rule a malformed direct data stream header or
// answer breaks; a *DataStreamError wraps it.
var ErrDataStreamHeader = errors.New("data stream: malformed header")

// DataStreamError describes a malformed header or answer.
type DataStreamError struct {
	Detail string
}

func (e *DataStreamError) Error() string { return ErrDataStreamHeader.Error() + ": " + e.Detail }

// Unwrap returns ErrDataStreamHeader.
func (e *DataStreamError) Unwrap() error { return ErrDataStreamHeader }

func dsErr(format string, args ...any) error {
	return &DataStreamError{Detail: fmt.Sprintf(format, args...)}
}

// DataStreamHeader is the header of a direct data stream.
type DataStreamHeader struct {
	From, To, InitFunc string
	InitData           []any
}

// AppendDataStreamHeader appends the encoded header to dst. It fails (dst
// unchanged) when a field is empty or too long, a value cannot be encoded,
// or the header would exceed MaxDataStreamHeader.
func AppendDataStreamHeader(dst []byte, h DataStreamHeader) ([]byte, error) {
	for _, f := range [...]string{h.From, h.To, h.InitFunc} {
		if f == "" || len(f) > MaxLineLen {
			return dst, dsErr("node IDs and init function must be 1 to %d bytes", MaxLineLen)
		}
	}
	if size, ok := stringArraySize(h); ok && cap(dst)-len(dst) < DataStreamPrefixLen+size {
		dst = append(make([]byte, 0, len(dst)+DataStreamPrefixLen+size), dst...)
	}
	out := append(dst, DataStreamMagic, DataStreamVersion, 0, 0)
	out, fast := appendStringArray(out, h)
	if !fast {
		msg := make(Message, 0, 3+len(h.InitData))
		msg = append(msg, h.From, h.To, h.InitFunc)
		msg = append(msg, h.InitData...)
		var err error
		if out, err = (msgpackCodec{}).AppendMessage(out, msg); err != nil {
			return dst, err
		}
	}
	body := len(out) - len(dst) - DataStreamPrefixLen
	if body > 0xFFFF {
		return dst, dsErr("header of %d bytes exceeds %d", body+DataStreamPrefixLen, MaxDataStreamHeader)
	}
	binary.BigEndian.PutUint16(out[len(dst)+2:], uint16(body))
	return out, nil
}

// DataStreamBodyLen checks the fixed prefix (DataStreamPrefixLen bytes)
// and returns the length of the body that follows.
func DataStreamBodyLen(prefix []byte) (int, error) {
	if len(prefix) < DataStreamPrefixLen {
		return 0, dsErr("prefix of %d bytes, want %d", len(prefix), DataStreamPrefixLen)
	}
	if prefix[0] != DataStreamMagic {
		return 0, dsErr("magic byte %#x, want %#x", prefix[0], DataStreamMagic)
	}
	if prefix[1] != DataStreamVersion {
		return 0, dsErr("version %d, want %d", prefix[1], DataStreamVersion)
	}
	n := int(binary.BigEndian.Uint16(prefix[2:]))
	if n == 0 {
		return 0, dsErr("empty body")
	}
	return n, nil
}

// ParseDataStreamBody decodes the body of a header (the bytes after the
// prefix, exactly as long as DataStreamBodyLen said).
func ParseDataStreamBody(body []byte) (DataStreamHeader, error) {
	if h, ok := parseStringArray(body); ok {
		return checkDataStreamFields(h)
	}
	return parseDataStreamBodyCodec(body)
}

// parseDataStreamBodyCodec is ParseDataStreamBody through the msgpack
// codec, for every body.
func parseDataStreamBodyCodec(body []byte) (DataStreamHeader, error) {
	dec := msgpackCodec{}.NewDecoder(len(body)).(*msgpackDecoder)
	if err := dec.Feed(body); err != nil {
		return DataStreamHeader{}, dsErr("%v", err)
	}
	msg, ok, err := dec.Next()
	if err != nil {
		return DataStreamHeader{}, dsErr("%v", err)
	}
	if !ok {
		return DataStreamHeader{}, dsErr("truncated body")
	}
	if rest, _, _ := dec.Next(); rest != nil || dec.partial() != 0 {
		return DataStreamHeader{}, dsErr("trailing data after the array")
	}
	if len(msg) < 3 {
		return DataStreamHeader{}, dsErr("array of %d elements, want at least 3", len(msg))
	}
	var f [3]string
	for i := range f {
		s, ok := msg[i].(string)
		if !ok || !validField(s) {
			return DataStreamHeader{}, fieldErr(i)
		}
		f[i] = s
	}
	data := msg[3:]
	if len(data) == 0 {
		data = nil
	}
	return DataStreamHeader{From: f[0], To: f[1], InitFunc: f[2], InitData: data}, nil
}

func validField(s string) bool {
	return s != "" && len(s) <= MaxLineLen && utf8.ValidString(s)
}

// checkDataStreamFields checks from, to and the init function of a
// decoded header.
func checkDataStreamFields(h DataStreamHeader) (DataStreamHeader, error) {
	for i, s := range [...]string{h.From, h.To, h.InitFunc} {
		if !validField(s) {
			return DataStreamHeader{}, fieldErr(i)
		}
	}
	return h, nil
}

func fieldErr(i int) error {
	return dsErr("element %d must be a non-empty UTF-8 string of at most %d bytes", i, MaxLineLen)
}

// ParseDataStreamHeader decodes a complete header at the start of b and
// returns it with the number of bytes it took.
func ParseDataStreamHeader(b []byte) (DataStreamHeader, int, error) {
	n, err := DataStreamBodyLen(b)
	if err != nil {
		return DataStreamHeader{}, 0, err
	}
	if len(b) < DataStreamPrefixLen+n {
		return DataStreamHeader{}, 0, dsErr("truncated: %d of %d bytes", len(b), DataStreamPrefixLen+n)
	}
	h, err := ParseDataStreamBody(b[DataStreamPrefixLen : DataStreamPrefixLen+n])
	return h, DataStreamPrefixLen + n, err
}

// AppendDataStreamRefusal appends a refusal answer with message msg
// (truncated to MaxDataStreamReason bytes at a rune boundary).
func AppendDataStreamRefusal(dst []byte, msg string) []byte {
	if len(msg) > MaxDataStreamReason {
		cut := MaxDataStreamReason
		for cut > 0 && !utf8.RuneStart(msg[cut]) {
			cut--
		}
		msg = msg[:cut]
	}
	dst = append(dst, DataStreamRefuse, 0, 0)
	binary.BigEndian.PutUint16(dst[len(dst)-2:], uint16(len(msg)))
	return append(dst, msg...)
}

// ParseDataStreamRefusalLen checks the two length bytes after
// DataStreamRefuse and returns the message length.
func ParseDataStreamRefusalLen(b []byte) (int, error) {
	if len(b) < 2 {
		return 0, dsErr("truncated refusal")
	}
	n := int(binary.BigEndian.Uint16(b))
	if n > MaxDataStreamReason {
		return 0, dsErr("refusal of %d bytes exceeds %d", n, MaxDataStreamReason)
	}
	return n, nil
}

// ParseDataStreamRefusalText checks a refusal message.
func ParseDataStreamRefusalText(b []byte) (string, error) {
	if !utf8.Valid(b) {
		return "", dsErr("refusal is not UTF-8")
	}
	return string(b), nil
}
