package tunnelwire

import (
	"strings"
	"testing"
)

func TestParseKeyFile(t *testing.T) {
	ring, err := ParseKeyFile([]byte("# rotation 2026-01\n\n  " + keyB + "  \n" + strings.ToUpper(keyA) + "\r\n# old\n"))
	if err != nil {
		t.Fatal(err)
	}
	if ring.Len() != 2 || ring.IDs()[1] != goldenKeyIDA {
		t.Fatalf("ids %v", ring.IDs())
	}
	if ring.SignerID() == ring.keys[1].ID {
		t.Fatal("the first line must sign")
	}
	for _, tc := range []struct{ name, file, want string }{
		{"empty", "", "no key"},
		{"comments only", "# x\n\n", "no key"},
		{"short", "00112233445566778899aabbccddee\n", "line 1: key of 15 bytes"},
		{"not hex", keyA + "\nzz" + keyA[2:] + "\n", "line 2: not a hex key"},
		{"odd", keyA + "0\n", "line 1: not a hex key"},
		{"twice", keyA + "\n" + keyA + "\n", "same id"},
		{"long", strings.Repeat("00", 65), "key of 65 bytes"},
		{"too many", strings.Repeat(keyA+"\n", 17), ""},
	} {
		_, err := ParseKeyFile([]byte(tc.file))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want %q", tc.name, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), keyA[4:]) {
			t.Errorf("%s: error echoes the key: %v", tc.name, err)
		}
	}
}
