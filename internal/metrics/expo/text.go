package expo

import (
	"io"
	"net/http"
	"strconv"
	"strings"
)

// ContentType is the text exposition format's media type.
const ContentType = "text/plain; version=0.0.4; charset=utf-8"

// WriteText writes fams in the text exposition format 0.0.4.
func WriteText(w io.Writer, fams []Family) error {
	var b []byte
	for _, f := range fams {
		b = appendFamily(b, f)
	}
	_, err := w.Write(b)
	return err
}

func appendFamily(b []byte, f Family) []byte {
	b = append(b, "# HELP "...)
	b = append(b, f.Name...)
	b = append(b, ' ')
	b = appendEscaped(b, f.Help, false)
	b = append(b, "\n# TYPE "...)
	b = append(b, f.Name...)
	b = append(b, ' ')
	b = append(b, f.Type.String()...)
	b = append(b, '\n')
	for _, s := range f.Series {
		if s.Hist == nil {
			b = appendSample(b, f.Name, s.Labels, "", "", formatFloat(s.Value))
			continue
		}
		b = appendHistogram(b, f.Name, s.Labels, s.Hist)
	}
	return b
}

func appendHistogram(b []byte, name string, labels []Label, h *HistogramValue) []byte {
	for i, c := range h.Cumulative {
		le := "+Inf"
		if i < len(h.Bounds) {
			le = formatFloat(h.Bounds[i])
		}
		b = appendSample(b, name+"_bucket", labels, "le", le, strconv.FormatUint(c, 10))
	}
	b = appendSample(b, name+"_sum", labels, "", "", formatFloat(h.Sum))
	return appendSample(b, name+"_count", labels, "", "", strconv.FormatUint(h.Count(), 10))
}

// appendSample writes name{labels,extra="extraValue"} value.
func appendSample(b []byte, name string, labels []Label, extra, extraValue, value string) []byte {
	b = append(b, name...)
	if len(labels) > 0 || extra != "" {
		b = append(b, '{')
		for i, l := range labels {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendLabel(b, l.Name, l.Value)
		}
		if extra != "" {
			if len(labels) > 0 {
				b = append(b, ',')
			}
			b = appendLabel(b, extra, extraValue)
		}
		b = append(b, '}')
	}
	b = append(b, ' ')
	b = append(b, value...)
	return append(b, '\n')
}

func appendLabel(b []byte, name, value string) []byte {
	b = append(b, name...)
	b = append(b, `="`...)
	b = appendEscaped(b, value, true)
	return append(b, '"')
}

// appendEscaped escapes backslash and newline, and in label values the
// double quote, as the format requires.
func appendEscaped(b []byte, s string, quote bool) []byte {
	if !strings.ContainsAny(s, "\\\n\"") {
		return append(b, s...)
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\':
			b = append(b, `\\`...)
		case c == '\n':
			b = append(b, `\n`...)
		case c == '"' && quote:
			b = append(b, `\"`...)
		default:
			b = append(b, c)
		}
	}
	return b
}

// formatFloat writes v as Prometheus does: the shortest form that reads
// back the same, and +Inf, -Inf, NaN (strconv's spelling is the format's).
func formatFloat(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

// Handler serves the registry in the text format.
func (r *Registry) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method != http.MethodGet && req.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", ContentType)
		if req.Method == http.MethodHead {
			return
		}
		_ = WriteText(w, r.Gather())
	})
}
