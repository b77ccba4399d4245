package kubeapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
)

func TestDecodeListStreamsItems(t *testing.T) {
	for _, body := range []string{
		`{"kind":"NodeList","apiVersion":"v1","metadata":{"resourceVersion":"7","continue":"c"},"items":[{"metadata":{"name":"a"}},{"metadata":{"name":"b"}}]}`,
		// metadata after the items, and fields the decoder skips
		`{"items":[{"metadata":{"name":"a"}},{"metadata":{"name":"b"}}],"extra":{"x":[1,2]},"metadata":{"resourceVersion":"7","continue":"c"}}`,
	} {
		var names []string
		lm, err := DecodeList(strings.NewReader(body), func(into Into) error {
			var n Node
			if err := into(&n); err != nil {
				return err
			}
			names = append(names, n.Metadata.Name)
			return nil
		})
		if err != nil || lm.ResourceVersion != "7" || lm.Continue != "c" || !slices.Equal(names, []string{"a", "b"}) {
			t.Errorf("%s: got %+v %q %v", body, lm, names, err)
		}
	}
}

func TestDecodeListErrors(t *testing.T) {
	for _, body := range []string{``, `[]`, `{"items":{}}`, `{"items":[{}`, `{"metadata":"x"}`, `{"items":[1]`} {
		if _, err := DecodeList(strings.NewReader(body), func(into Into) error { var n Node; return into(&n) }); err == nil {
			t.Errorf("%q: no error", body)
		}
	}
	stop := errors.New("stop")
	if _, err := DecodeList(strings.NewReader(`{"items":[{}]}`), func(Into) error { return stop }); !errors.Is(err, stop) {
		t.Errorf("item error lost: %v", err)
	}
	if _, err := DecodeList(strings.NewReader(`{"items":null,"metadata":{"resourceVersion":"1"}}`), nil); err != nil {
		t.Errorf("null items: %v", err)
	}
}

func TestEventDecoder(t *testing.T) {
	stream := `{"type":"ADDED","object":{"metadata":{"name":"a","resourceVersion":"2"}}}
{"type":"BOOKMARK","object":{"metadata":{"resourceVersion":"3"}}}
{"type":"ERROR","object":{"kind":"Status","code":410,"reason":"Expired","message":"too old resource version"}}
{"type":"ERROR","object":{"kind":"Status","code":500,"reason":"InternalError"}}
{"type":"WHAT","object":{}}
{"type":"DELETED"}
`
	d := NewEventDecoder(strings.NewReader(stream))
	var ev Event
	if err := d.Next(&ev); err != nil || ev.Type != Added || !bytes.Contains(ev.Object, []byte(`"a"`)) {
		t.Fatalf("first: %+v %v", ev, err)
	}
	if err := d.Next(&ev); err != nil || ev.Type != Bookmark {
		t.Fatalf("bookmark: %+v %v", ev, err)
	}
	if err := d.Next(&ev); !IsGone(err) {
		t.Fatalf("410 event: %v", err)
	}
	if err := d.Next(&ev); err == nil || IsGone(err) {
		t.Fatalf("500 event: %v", err)
	}
	for range 2 {
		if err := d.Next(&ev); err == nil {
			t.Fatalf("bad event %+v accepted", ev)
		}
	}
	if err := d.Next(&ev); err != io.EOF {
		t.Fatalf("end: %v", err)
	}
}

func TestMetaKey(t *testing.T) {
	if k := (Meta{Name: "n"}).Key(); k != "n" {
		t.Error(k)
	}
	if k := (Meta{Namespace: "ns", Name: "n"}).Key(); k != "ns/n" {
		t.Error(k)
	}
}

// FuzzDecodeEvent: any watch stream decodes without panicking, and every
// accepted event survives encode -> decode unchanged.
func FuzzDecodeEvent(f *testing.F) {
	f.Add([]byte(`{"type":"ADDED","object":{"metadata":{"name":"a"}}}`))
	f.Add([]byte(`{"type":"ERROR","object":{"code":410}}`))
	f.Add([]byte(`{"type":"BOOKMARK","object":{}}{"type":"DELETED","object":{"x":1}}`))
	f.Add([]byte(`{"type":"ADDED","object":null}`))
	f.Add([]byte(`{"type":"ADDED","object":{"metadata":{"name":"a"`))
	f.Add([]byte(`{"items":[{"metadata":{"name":"a"}}],"metadata":{"resourceVersion":"1"}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = DecodeList(bytes.NewReader(data), func(into Into) error {
			var n Node
			return into(&n)
		})
		d := NewEventDecoder(bytes.NewReader(data))
		var ev Event
		for range 100 {
			err := d.Next(&ev)
			var se *StatusError
			if errors.As(err, &se) {
				continue
			}
			if err != nil {
				return
			}
			b, err := json.Marshal(&ev)
			if err != nil {
				t.Fatalf("marshal %+v: %v", ev, err)
			}
			var again Event
			if err := NewEventDecoder(bytes.NewReader(b)).Next(&again); err != nil || again.Type != ev.Type {
				t.Fatalf("round trip of %s: %+v %v", b, again, err)
			}
			var a, b2 any
			if json.Unmarshal(ev.Object, &a) != nil || json.Unmarshal(again.Object, &b2) != nil {
				t.Fatalf("object of %s does not decode", b)
			}
		}
	})
}
