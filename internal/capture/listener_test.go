package capture

import (
	"errors"
	"strings"
	"testing"
)

// The texts are go-nflog v2.3.0's, which formats the kernel's errno with %v.
func TestBindError(t *testing.T) {
	tests := []struct {
		msg    string
		inUse  bool
		substr string
	}{
		{"could not bind to requested group 33: netlink receive: operation not permitted", true,
			"nflog group 33 is already in use by another process (another go-pmtud or an ulogd?)"},
		{"could not bind to requested group 33: netlink receive: device or resource busy", true,
			"nflog group 33 is already in use"},
		{"could not unbind existing handlers from socket: netlink receive: operation not permitted", false,
			"needs CAP_NET_ADMIN"},
		{"could not bind to requested group 33: netlink receive: invalid argument", false,
			"bind nflog group 33"},
	}
	for _, tt := range tests {
		err := bindError(33, errors.New(tt.msg))
		if errors.Is(err, ErrGroupInUse) != tt.inUse {
			t.Errorf("%q: errors.Is(ErrGroupInUse) = %v, want %v", tt.msg, !tt.inUse, tt.inUse)
		}
		if !strings.Contains(err.Error(), tt.substr) || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("%q: error %q lacks %q or the cause", tt.msg, err, tt.substr)
		}
	}
}
