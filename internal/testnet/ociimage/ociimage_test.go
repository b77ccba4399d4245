package ociimage

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"strings"
	"testing"
)

// readTar returns a tarball's regular files and their modes.
func readTar(t *testing.T, b []byte) (map[string][]byte, map[string]int64) {
	t.Helper()
	files, modes := map[string][]byte{}, map[string]int64{}
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files, modes
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files[h.Name], modes[h.Name] = data, h.Mode
	}
}

func digest(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// blobAt returns the blob a descriptor names, checking its digest and size.
func blobAt(t *testing.T, files map[string][]byte, d descriptor) []byte {
	t.Helper()
	b, ok := files["blobs/sha256/"+strings.TrimPrefix(d.Digest, "sha256:")]
	if !ok {
		t.Fatalf("no blob %s", d.Digest)
	}
	if digest(b) != d.Digest || int64(len(b)) != d.Size {
		t.Fatalf("blob %s: digest %s size %d, descriptor says size %d", d.Digest, digest(b), len(b), d.Size)
	}
	return b
}

// TestLayoutIsConsistent follows the layout from index.json to the file,
// checking every digest on the way, as an importer does.
func TestLayoutIsConsistent(t *testing.T) {
	img := Image{Name: "example.test/app:1", Arch: "amd64", Entrypoint: []string{"/usr/local/bin/app"},
		Files: []File{{Path: "/usr/local/bin/app", Mode: 0o755, Data: []byte("binary")}}}
	var buf bytes.Buffer
	if err := Write(&buf, img); err != nil {
		t.Fatal(err)
	}
	files, _ := readTar(t, buf.Bytes())
	if string(files["oci-layout"]) != `{"imageLayoutVersion":"1.0.0"}` {
		t.Errorf("oci-layout: %s", files["oci-layout"])
	}
	var index struct{ Manifests []descriptor }
	if err := json.Unmarshal(files["index.json"], &index); err != nil || len(index.Manifests) != 1 {
		t.Fatalf("index.json: %v %s", err, files["index.json"])
	}
	if n := index.Manifests[0].Annotations["io.containerd.image.name"]; n != img.Name {
		t.Errorf("image name %q, want %q", n, img.Name)
	}
	var m struct {
		Config descriptor
		Layers []descriptor
	}
	if err := json.Unmarshal(blobAt(t, files, index.Manifests[0]), &m); err != nil || len(m.Layers) != 1 {
		t.Fatalf("manifest: %v", err)
	}
	var cfg struct {
		Architecture string
		Config       struct{ Entrypoint []string }
		RootFS       struct {
			DiffIDs []string `json:"diff_ids"`
		}
	}
	if err := json.Unmarshal(blobAt(t, files, m.Config), &cfg); err != nil {
		t.Fatal(err)
	}
	layer := blobAt(t, files, m.Layers[0])
	if len(cfg.RootFS.DiffIDs) != 1 || cfg.RootFS.DiffIDs[0] != digest(layer) {
		t.Errorf("diff_ids %v, want the uncompressed layer's digest %s", cfg.RootFS.DiffIDs, digest(layer))
	}
	if cfg.Architecture != "amd64" || strings.Join(cfg.Config.Entrypoint, " ") != "/usr/local/bin/app" {
		t.Errorf("config: %+v", cfg)
	}
	lf, modes := readTar(t, layer)
	if string(lf["usr/local/bin/app"]) != "binary" || modes["usr/local/bin/app"] != 0o755 {
		t.Errorf("layer: %q mode %o", lf["usr/local/bin/app"], modes["usr/local/bin/app"])
	}
}

// TestReproducible: the same files make the same bytes (so the same digests).
func TestReproducible(t *testing.T) {
	img := Image{Name: "a:1", Arch: "arm64", Files: []File{{Path: "/b/c", Mode: 0o644, Data: []byte("x")}, {Path: "/a", Mode: 0o600, Data: nil}}}
	var one, two bytes.Buffer
	if err := Write(&one, img); err != nil {
		t.Fatal(err)
	}
	img.Files[0], img.Files[1] = img.Files[1], img.Files[0]
	if err := Write(&two, img); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(one.Bytes(), two.Bytes()) {
		t.Error("two writes of the same files differ")
	}
}

func TestLayerRefusesRelativeOrUncleanPaths(t *testing.T) {
	for _, p := range []string{"usr/bin/x", "/usr/../x", "/usr/bin/", ""} {
		if _, err := Layer([]File{{Path: p, Data: []byte("x")}}); err == nil {
			t.Errorf("path %q accepted", p)
		}
	}
}
