package lab

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
)

// tunnelKeyArgs returns --tunnel-key-file with a key file shared by every
// node of the lab, written on first use (one random 32-byte key, mode
// 0600, in a private temporary directory) and removed by Close. If it
// cannot be written, the flag names no file and go-pmtud says why.
func (l *Lab) tunnelKeyArgs() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.tunnelKey == "" {
		l.tunnelKey, _ = writeTunnelKey()
	}
	return []string{"--tunnel-key-file", l.tunnelKey}
}

func writeTunnelKey() (string, error) {
	var k [32]byte
	if _, err := rand.Read(k[:]); err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp("", "go-pmtud-lab-key-")
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "tunnel.keys")
	content := "# go-pmtud lab tunnel key (removed with the lab)\n" + hex.EncodeToString(k[:]) + "\n"
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	return path, nil
}

// removeTunnelKey deletes the key file's directory, if one was written.
func (l *Lab) removeTunnelKey() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.tunnelKey != "" {
		os.RemoveAll(filepath.Dir(l.tunnelKey))
		l.tunnelKey = ""
	}
}
