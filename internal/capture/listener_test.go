package capture

import (
	"errors"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestBindError(t *testing.T) {
	tests := []struct {
		err    error
		inUse  bool
		substr string
	}{
		// EBUSY: this socket already holds the group; EPERM with
		// CAP_NET_ADMIN (the tests run as root): another socket does.
		{unix.EBUSY, true, "nflog group 33 is already in use by another process (another go-pmtud or an ulogd?)"},
		{unix.EINVAL, false, "bind nflog group 33"},
	}
	if hasNetAdmin() {
		tests = append(tests, struct {
			err    error
			inUse  bool
			substr string
		}{unix.EPERM, true, "nflog group 33 is already in use"})
	} else {
		tests = append(tests, struct {
			err    error
			inUse  bool
			substr string
		}{unix.EPERM, false, "needs CAP_NET_ADMIN"})
	}
	for _, tt := range tests {
		err := bindError(33, tt.err)
		if errors.Is(err, ErrGroupInUse) != tt.inUse {
			t.Errorf("%v: errors.Is(ErrGroupInUse) = %v, want %v", tt.err, !tt.inUse, tt.inUse)
		}
		if !strings.Contains(err.Error(), tt.substr) || !errors.Is(err, tt.err) {
			t.Errorf("%v: error %q lacks %q or the cause", tt.err, err, tt.substr)
		}
	}
}
