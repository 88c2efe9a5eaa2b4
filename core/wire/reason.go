package wire

import "fmt"

// KillReasonDataConn is the kill-reason family of data-connection failures.
const KillReasonDataConn = "AnyEvent::MP::DataConn"

// KillReason is the reason a port was killed: on the wire a list whose first
// element is a family string, usually followed by a human-readable message,
// e.g. ["AnyEvent::MP::DataConn", "node2: unable to establish connection
// within 5 seconds"]. It implements error.
type KillReason struct {
	Family  string // e.g. KillReasonDataConn
	Message string // may be "" when the peer sent null or nothing
	Extra   []any  // elements after the message
}

// Error returns the message or, when it is empty, a text naming the family.
// It is never empty.
func (r *KillReason) Error() string {
	switch {
	case r == nil:
		return "killed without a reason"
	case r.Message != "":
		return r.Message
	case r.Family != "":
		return r.Family + ": killed without a reason"
	}
	return "killed without a reason"
}

// Values returns the reason as wire values: [family, message, extra...].
func (r *KillReason) Values() []any {
	if r == nil {
		return nil
	}
	out := make([]any, 0, 2+len(r.Extra))
	out = append(out, r.Family, r.Message)
	return append(out, r.Extra...)
}

// KillReasonFromValues builds a KillReason from the reason values of a kill
// message (NodeMsgKill.Reason). Byte strings are accepted as strings; a null
// or missing message yields Message "", a non-string one its %v text.
// It never returns nil.
func KillReasonFromValues(v []any) *KillReason {
	r := &KillReason{}
	if len(v) > 0 {
		r.Family = reasonText(v[0])
	}
	if len(v) > 1 {
		r.Message = reasonText(v[1])
	}
	if len(v) > 2 {
		r.Extra = append([]any(nil), v[2:]...)
	}
	return r
}

func reasonText(v any) string {
	if v == nil {
		return ""
	}
	if s, ok := AsString(v); ok {
		return s
	}
	return fmt.Sprintf("%v", v)
}

// DataConnReason returns a KillReason of family KillReasonDataConn with a
// formatted message.
func DataConnReason(format string, args ...any) *KillReason {
	return &KillReason{Family: KillReasonDataConn, Message: fmt.Sprintf(format, args...)}
}
