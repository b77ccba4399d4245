package kubeapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// Meta is the part of an object's metadata the watches need.
type Meta struct {
	Name            string `json:"name"`
	Namespace       string `json:"namespace"`
	ResourceVersion string `json:"resourceVersion"`
}

// Key is the cache key: namespace/name, or name for a cluster object.
func (m Meta) Key() string {
	if m.Namespace == "" {
		return m.Name
	}
	return m.Namespace + "/" + m.Name
}

// ListMeta is the metadata of a list response.
type ListMeta struct {
	ResourceVersion string `json:"resourceVersion"`
	Continue        string `json:"continue"`
}

// Watch event types (metav1.WatchEvent).
const (
	Added    = "ADDED"
	Modified = "MODIFIED"
	Deleted  = "DELETED"
	Bookmark = "BOOKMARK"
	Error    = "ERROR"
)

// Event is one watch event with its object still encoded.
type Event struct {
	Type   string          `json:"type"`
	Object json.RawMessage `json:"object"`
}

// StatusError is an API error: a failed request's Status, or an ERROR event.
type StatusError struct {
	Code    int    `json:"code"`
	Reason  string `json:"reason"`
	Message string `json:"message"`
}

func (e *StatusError) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("kubernetes API: %d %s", e.Code, e.Reason)
	}
	return fmt.Sprintf("kubernetes API: %d %s: %s", e.Code, e.Reason, e.Message)
}

// IsGone reports whether err says the resource version is too old (410
// Gone or reason Expired): the answer is to list again.
func IsGone(err error) bool {
	var se *StatusError
	return errors.As(err, &se) && (se.Code == 410 || se.Reason == "Expired" || se.Reason == "Gone")
}

// Into decodes one JSON value into the value v points to.
type Into func(v any) error

// DecodeList reads a list response from r one item at a time: item is
// called once per item and decodes it with into, straight from the stream,
// so a list of thousands of objects is never held whole. It returns the
// list's metadata, which may come before or after the items.
func DecodeList(r io.Reader, item func(into Into) error) (ListMeta, error) {
	var lm ListMeta
	d := json.NewDecoder(r)
	if err := expectDelim(d, '{'); err != nil {
		return lm, err
	}
	for d.More() {
		tok, err := d.Token()
		if err != nil {
			return lm, err
		}
		switch tok {
		case "metadata":
			err = d.Decode(&lm)
		case "items":
			err = decodeItems(d, item)
		default:
			var skip json.RawMessage
			err = d.Decode(&skip)
		}
		if err != nil {
			return lm, fmt.Errorf("list %v: %w", tok, err)
		}
	}
	return lm, expectDelim(d, '}')
}

func decodeItems(d *json.Decoder, item func(Into) error) error {
	tok, err := d.Token()
	if err != nil || tok == nil { // "items": null
		return err
	}
	if tok != json.Delim('[') {
		return fmt.Errorf("items: got %v, want an array", tok)
	}
	for d.More() {
		decoded := false
		err := item(func(v any) error { decoded = true; return d.Decode(v) })
		if err == nil && !decoded { // the item was not wanted: skip it
			var skip json.RawMessage
			err = d.Decode(&skip)
		}
		if err != nil {
			return err
		}
	}
	return expectDelim(d, ']')
}

func expectDelim(d *json.Decoder, want json.Delim) error {
	tok, err := d.Token()
	if err != nil {
		return err
	}
	if tok != want {
		return fmt.Errorf("got %v, want %v", tok, want)
	}
	return nil
}

// EventDecoder reads the events of a watch response, one JSON object each.
type EventDecoder struct{ d *json.Decoder }

// NewEventDecoder returns a decoder of the watch stream r.
func NewEventDecoder(r io.Reader) *EventDecoder { return &EventDecoder{d: json.NewDecoder(r)} }

// Next decodes the next event into ev, reusing its buffer. An ERROR event
// comes back as its *StatusError; io.EOF ends the stream.
func (e *EventDecoder) Next(ev *Event) error {
	ev.Type, ev.Object = "", ev.Object[:0]
	if err := e.d.Decode(ev); err != nil {
		return err
	}
	return CheckEvent(ev)
}

// CheckEvent validates a decoded event: a known type with an object, and
// an ERROR event turned into its *StatusError.
func CheckEvent(ev *Event) error {
	switch ev.Type {
	case Added, Modified, Deleted, Bookmark:
		if len(ev.Object) == 0 || ev.Object[0] != '{' {
			return fmt.Errorf("watch event %s without an object", ev.Type)
		}
		return nil
	case Error:
		se := &StatusError{}
		if err := json.Unmarshal(ev.Object, se); err != nil {
			return fmt.Errorf("watch error event: %w", err)
		}
		if se.Code == 0 && se.Reason == "" {
			se.Reason = "unknown error event"
		}
		return se
	}
	return fmt.Errorf("unknown watch event type %q", ev.Type)
}
