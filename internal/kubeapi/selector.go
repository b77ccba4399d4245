package kubeapi

import (
	"fmt"
	"regexp"
	"strings"
)

// Label selector syntax (k8s.io/apimachinery/pkg/labels), checked before the
// first request so that a typo fails at start rather than in every list.
var (
	selKey   = `(?:[A-Za-z0-9][-A-Za-z0-9_./]*)`
	selValue = `(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?)?`
	selTerm  = regexp.MustCompile(`^(?:!?\s*` + selKey + `|` + selKey + `\s*(?:==?|!=)\s*` + selValue +
		`|` + selKey + `\s+(?:in|notin)\s*\(\s*` + selValue + `(?:\s*,\s*` + selValue + `)*\s*\))$`)
)

// CheckSelector reports a label selector that the API server would refuse,
// as far as its syntax goes; it returns the selector trimmed.
func CheckSelector(sel string) (string, error) {
	sel = strings.TrimSpace(sel)
	if sel == "" {
		return "", nil
	}
	depth, start := 0, 0
	for i := 0; i <= len(sel); i++ {
		if i < len(sel) {
			switch sel[i] {
			case '(':
				depth++
				continue
			case ')':
				depth--
				continue
			case ',':
				if depth > 0 {
					continue
				}
			default:
				continue
			}
		}
		if term := strings.TrimSpace(sel[start:i]); depth != 0 || !selTerm.MatchString(term) {
			return "", fmt.Errorf("label selector %q: bad term %q", sel, term)
		}
		start = i + 1
	}
	return sel, nil
}
