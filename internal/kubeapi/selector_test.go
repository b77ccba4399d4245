package kubeapi

import "testing"

func TestCheckSelector(t *testing.T) {
	for _, ok := range []string{"", " ", "a", "!a", "a=b", "a==b", "a!=b", "go-pmtud/relay=yes", "a in (b, c)",
		"a notin (b)", "a,b=c", "kubernetes.io/service-name", "a=", "x in (a),y"} {
		if _, err := CheckSelector(ok); err != nil {
			t.Errorf("%q refused: %v", ok, err)
		}
	}
	for _, bad := range []string{"a in (b", "a in b)", "a=b=c", ",", "a,", "=b", "a in ()x", "a b", "a=(b)"} {
		if _, err := CheckSelector(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
