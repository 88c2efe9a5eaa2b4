package wire

// frameSpan is one complete, not yet decoded message in frameQueue.buf.
type frameSpan struct{ start, end int }

// frameQueue holds received bytes and the spans of complete messages found
// by a codec's scanner. It is shared by the msgpack and json decoders.
type frameQueue struct {
	codec    string
	maxFrame int
	buf      []byte
	frames   []frameSpan
	fhead    int
	err      error // sticky
	nextErr  error // a message failed to decode (sticky for Next)
}

// frameShrinkCap is the buffer capacity above which an idle buffer is
// released rather than kept for reuse.
const frameShrinkCap = 1 << 20

func newFrameQueue(codec string, maxFrame int) frameQueue {
	if maxFrame <= 0 {
		maxFrame = DefaultMaxFrame
	}
	return frameQueue{codec: codec, maxFrame: maxFrame}
}

// push records a complete message spanning buf[start:end] (offsets may
// extend into bytes not yet appended).
func (q *frameQueue) push(start, end int) {
	q.frames = append(q.frames, frameSpan{start, end})
}

// compact drops consumed bytes. partial is the length of the incomplete
// message at the end of buf (0 when none).
func (q *frameQueue) compact(partial int) {
	keep := len(q.buf) - partial
	if q.fhead < len(q.frames) {
		keep = q.frames[q.fhead].start
	}
	if keep <= 0 {
		return
	}
	n := copy(q.buf, q.buf[keep:])
	q.buf = q.buf[:n]
	live := copy(q.frames, q.frames[q.fhead:])
	q.frames = q.frames[:live]
	q.fhead = 0
	for i := range q.frames {
		q.frames[i].start -= keep
		q.frames[i].end -= keep
	}
	if cap(q.buf) > frameShrinkCap && len(q.buf) < cap(q.buf)/4 {
		q.buf = append(make([]byte, 0, 2*len(q.buf)), q.buf...)
	}
}

// next pops the next complete frame, ok=false when none is queued.
func (q *frameQueue) next() (frame []byte, ok bool) {
	if q.fhead >= len(q.frames) {
		return nil, false
	}
	s := q.frames[q.fhead]
	q.fhead++
	frame = q.buf[s.start:s.end]
	return frame, true
}

// release is called after a popped frame was decoded.
func (q *frameQueue) release(partial int) {
	if q.fhead >= len(q.frames) {
		q.frames = q.frames[:0]
		q.fhead = 0
		q.compact(partial)
	}
}

// decodeNext is a decoder's Next: it pops the next frame, decodes it with
// decode and releases it (partial: the decoder's incomplete message). A
// message that failed to decode ends the stream: nothing after it is
// delivered.
func (q *frameQueue) decodeNext(decode func([]byte) (Message, error), partial func() int) (Message, bool, error) {
	if q.nextErr != nil {
		return nil, false, q.nextErr
	}
	frame, ok := q.next()
	if !ok {
		return nil, false, q.err
	}
	msg, err := decode(frame)
	q.release(partial())
	if err != nil {
		q.err, q.nextErr = err, err
		return nil, false, err
	}
	return msg, true, nil
}
