package drop

import "testing"

// Labels are Prometheus label values and log fields: each must be named,
// unique and stable, or two reasons would be counted as one.
func TestEveryReasonHasAUniqueName(t *testing.T) {
	seen := map[string]Reason{}
	for _, r := range append(All(), None) {
		name := r.String()
		if name == "" || name == "unknown" {
			t.Errorf("reason %d has no name", r)
		}
		if prev, dup := seen[name]; dup {
			t.Errorf("reasons %d and %d share the name %q", prev, r, name)
		}
		seen[name] = r
	}
	if Reason(200).String() != "unknown" {
		t.Error("an out-of-range reason must say unknown, not panic")
	}
}

func TestMalformedIsExactlyTheParserReasons(t *testing.T) {
	for _, r := range All() {
		want := r <= MTUNotSmaller
		if r.Malformed() != want {
			t.Errorf("%s: Malformed() = %v, want %v", r, r.Malformed(), want)
		}
	}
	if None.Malformed() {
		t.Error("None is not malformed")
	}
}
