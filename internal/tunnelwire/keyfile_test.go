package tunnelwire

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/go-pmtud/go-pmtud/internal/metrics/expo"
)

// TestKeyFileReload follows a Kubernetes Secret volume: the file is a
// symlink through ..data, and an update swaps ..data atomically.
func TestKeyFileReload(t *testing.T) {
	dir := t.TempDir()
	write := func(gen, content string) {
		d := filepath.Join(dir, gen)
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "keys"), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		tmp := filepath.Join(dir, "..data_tmp")
		if err := os.Symlink(gen, tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
			t.Fatal(err)
		}
	}
	write("g1", keyA+"\n")
	path := filepath.Join(dir, "keys")
	if err := os.Symlink("..data/keys", path); err != nil {
		t.Fatal(err)
	}
	reg := expo.NewRegistry()
	k, err := OpenKeyFile(path, nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	ids := func() string { return k.Keyring().IDs()[0] }
	if ids() != goldenKeyIDA || k.Err() != nil {
		t.Fatalf("ids %v err %v", k.Keyring().IDs(), k.Err())
	}
	k.Reload() // unchanged: nothing happens
	write("g2", keyB+"\n"+keyA+"\n")
	k.Reload()
	if k.Keyring().Len() != 2 || ids() == goldenKeyIDA || k.Err() != nil {
		t.Fatalf("after rotation: ids %v err %v", k.Keyring().IDs(), k.Err())
	}
	write("g3", "not a key\n")
	k.Reload()
	if k.Keyring().Len() != 2 || k.Err() == nil {
		t.Fatalf("bad file: ids %v err %v", k.Keyring().IDs(), k.Err())
	}
	write("g4", keyB+"\n")
	k.Reload()
	if k.Keyring().Len() != 1 || k.Err() != nil {
		t.Fatalf("fixed file: ids %v err %v", k.Keyring().IDs(), k.Err())
	}
	os.Remove(path)
	k.Reload()
	if k.Keyring().Len() != 1 || k.Err() == nil {
		t.Fatalf("file gone: ids %v err %v", k.Keyring().IDs(), k.Err())
	}
	if ok, bad := k.reloads.WithLabelValues("ok").Value(), k.reloads.WithLabelValues("error").Value(); ok != 2 || bad != 2 {
		t.Errorf("reloads ok=%v error=%v, want 2 and 2", ok, bad)
	}
}

func TestOpenKeyFileRefusesBad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys")
	if _, err := OpenKeyFile(path, nil, nil); err == nil {
		t.Fatal("missing file accepted")
	}
	os.WriteFile(path, []byte("# nothing\n"), 0o600)
	if _, err := OpenKeyFile(path, nil, nil); err == nil {
		t.Fatal("empty file accepted")
	}
}
