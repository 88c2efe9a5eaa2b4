package core

type msgpackCodec struct{}

func (msgpackCodec) Name() string { return "msgpack" }
func (msgpackCodec) AppendMessage(dst []byte, msg Message) ([]byte, error) {
	return dst, frameErr("msgpack", ErrFrameMalformed, "not implemented")
}
func (msgpackCodec) NewDecoder(maxFrame int) FrameDecoder { return &stubDecoder{} }

type jsonCodec struct{}

func (jsonCodec) Name() string { return "json" }
func (jsonCodec) AppendMessage(dst []byte, msg Message) ([]byte, error) {
	return dst, frameErr("json", ErrFrameMalformed, "not implemented")
}
func (jsonCodec) NewDecoder(maxFrame int) FrameDecoder { return &stubDecoder{} }

type stubDecoder struct{}

func (*stubDecoder) Feed(p []byte) error                     { return nil }
func (*stubDecoder) Next() (msg Message, ok bool, err error) { return nil, false, nil }
