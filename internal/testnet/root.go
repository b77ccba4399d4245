package testnet

import (
	"fmt"
	"os"
	"testing"
)

// RequireRootEnv, when set to 1 (as `make test` and CI do), turns every
// root test that cannot run for want of privileges into a failure: a run
// that tested nothing must not look green.
const RequireRootEnv = "GOPMTUD_REQUIRE_ROOT"

// RootRequired reports whether the environment demands the root tests run:
// CI=true or GOPMTUD_REQUIRE_ROOT=1.
func RootRequired() bool {
	return os.Getenv("CI") == "true" || os.Getenv(RequireRootEnv) == "1"
}

// NoRootReason says why the root tests cannot run here, or "" if they can.
func NoRootReason() string {
	if os.Geteuid() != 0 {
		return "needs root (network namespaces, NFLOG, nftables, raw sockets): run as root, e.g. sudo make test"
	}
	return ""
}

// NeedRoot skips the test with the reason when it cannot run here, or
// fails it when RootRequired.
func NeedRoot(t testing.TB) {
	t.Helper()
	why := NoRootReason()
	if why == "" {
		return
	}
	if RootRequired() {
		t.Fatalf("%s (%s=1 or CI=true: root tests must run)", why, RequireRootEnv)
	}
	t.Skip(why)
}

// MainCheck is for TestMain of a package of root tests: it returns a
// non-zero exit code, with a message on stderr, when the tests must run but
// cannot; otherwise 0, and the tests skip themselves one by one (NeedRoot),
// each with its reason in the output.
func MainCheck(pkg string) int {
	why := NoRootReason()
	if why == "" || !RootRequired() {
		return 0
	}
	fmt.Fprintf(os.Stderr, "FAIL: %s: %s (%s=1 or CI=true: root tests must run)\n", pkg, why, RequireRootEnv)
	return 1
}
