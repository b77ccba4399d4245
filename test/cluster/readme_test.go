package cluster

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// readmeRegistry is the README's example image repository; the test's
// images are imported into every node's runtime under imageRepo instead.
const readmeRegistry = "registry.example/go-pmtud"

// readmeLine returns the command of the README's "Installing on a cluster"
// block that starts with prefix: continuation lines joined, the comment
// cut, spaces single, the example repository replaced by the test's (the
// tag stays the README's: it must be the chart's appVersion, the tag the
// image was built with). The test runs what the README says, so the two
// cannot drift apart.
func readmeLine(t *testing.T, prefix string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, sec, ok := strings.Cut(string(b), "\n## Installing on a cluster\n")
	_, block, ok2 := strings.Cut(sec, "```sh\n")
	block, _, ok3 := strings.Cut(block, "\n```")
	if !ok || !ok2 || !ok3 {
		t.Fatal("README.md: no sh block under \"## Installing on a cluster\"")
	}
	for _, line := range strings.Split(strings.ReplaceAll(block, "\\\n", " "), "\n") {
		if i := strings.Index(line, "#"); i >= 0 {
			line = line[:i]
		}
		line = strings.Join(strings.Fields(line), " ")
		if strings.HasPrefix(line, prefix) {
			return strings.ReplaceAll(line, readmeRegistry, imageRepo)
		}
	}
	t.Fatalf("README.md's install block has no command starting %q", prefix)
	return ""
}
