package wire

import (
	"errors"
	"reflect"
	"testing"
)

func TestKillReasonError(t *testing.T) {
	cases := []struct {
		r    *KillReason
		want string
	}{
		{DataConnReason("%s: unable to establish connection within %d seconds", "node2", 5), "node2: unable to establish connection within 5 seconds"},
		{&KillReason{Family: KillReasonDataConn}, "AnyEvent::MP::DataConn: killed without a reason"},
		{&KillReason{}, "killed without a reason"},
		{nil, "killed without a reason"},
		{&KillReason{Family: "die", Message: "oops"}, "oops"},
	}
	for _, c := range cases {
		if got := c.r.Error(); got != c.want {
			t.Errorf("%+v.Error() = %q, want %q", c.r, got, c.want)
		}
	}
	var err error = DataConnReason("B: no listeners found")
	var kr *KillReason
	if !errors.As(err, &kr) || kr.Family != KillReasonDataConn || kr.Message != "B: no listeners found" {
		t.Fatalf("errors.As: %+v", kr)
	}
}

func TestKillReasonValues(t *testing.T) {
	r := DataConnReason("B: no listeners found")
	if got := r.Values(); !reflect.DeepEqual(got, []any{"AnyEvent::MP::DataConn", "B: no listeners found"}) {
		t.Fatalf("Values() = %#v", got)
	}
	r2 := &KillReason{Family: "f", Message: "m", Extra: []any{int64(1), "x"}}
	if got := r2.Values(); !reflect.DeepEqual(got, []any{"f", "m", int64(1), "x"}) {
		t.Fatalf("Values() = %#v", got)
	}
	if got := KillReasonFromValues(r2.Values()); !reflect.DeepEqual(got, r2) {
		t.Fatalf("round trip %#v", got)
	}
	var nilR *KillReason
	if nilR.Values() != nil {
		t.Fatal("nil reason has values")
	}
	// Through KillMsg and both codecs.
	for _, name := range CodecNames() {
		c := mustCodec(t, name)
		b, err := c.AppendMessage(nil, KillMsg("p", r.Values()...))
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeAll(t, c.NewDecoder(0), b, 1)
		if err != nil {
			t.Fatal(err)
		}
		nm, err := ParseNodeMsg(got[0][1:])
		if err != nil {
			t.Fatal(err)
		}
		k := nm.(NodeMsgKill)
		if back := KillReasonFromValues(k.Reason); !reflect.DeepEqual(back, r) || k.Port != "p" {
			t.Fatalf("%s: %#v", name, back)
		}
	}
}

func TestKillReasonFromValues(t *testing.T) {
	cases := []struct {
		in   []any
		want KillReason
	}{
		{nil, KillReason{}},
		{[]any{[]byte("AnyEvent::MP::DataConn"), nil}, KillReason{Family: KillReasonDataConn}},
		{[]any{"AnyEvent::MP::DataConn"}, KillReason{Family: KillReasonDataConn}},
		{[]any{"die", []byte("boom"), nil, int64(3)}, KillReason{Family: "die", Message: "boom", Extra: []any{nil, int64(3)}}},
		{[]any{int64(7), 1.5}, KillReason{Family: "7", Message: "1.5"}},
		{[]any{nil, "m"}, KillReason{Message: "m"}},
	}
	for _, c := range cases {
		got := KillReasonFromValues(c.in)
		if got == nil || !reflect.DeepEqual(*got, c.want) {
			t.Errorf("KillReasonFromValues(%#v) = %#v, want %#v", c.in, got, c.want)
		}
		if got.Error() == "" {
			t.Errorf("empty Error() for %#v", c.in)
		}
	}
	// Extra is a copy.
	in := []any{"f", "m", "x"}
	r := KillReasonFromValues(in)
	in[2] = "changed"
	if r.Extra[0] != "x" {
		t.Fatal("Extra aliases the input")
	}
}
