// Package ociimage writes a single-layer OCI image as an image-layout
// tarball (what `ctr images import` reads), from files in memory: the tests
// build go-pmtud's image without Docker or a registry.
package ociimage

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"path"
	"sort"
	"time"
)

// File is one regular file of the image's only layer.
type File struct {
	Path string // absolute, e.g. /usr/local/bin/go-pmtud
	Mode int64
	Data []byte
}

// Image is what the tarball describes.
type Image struct {
	Name       string // full reference, e.g. docker.io/library/go-pmtud:0.1.0
	Arch       string // GOARCH spelling, as OCI uses it
	Entrypoint []string
	Env        []string
	Files      []File
}

type descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

type blob struct {
	digest string
	data   []byte
}

func newBlob(data []byte) blob {
	sum := sha256.Sum256(data)
	return blob{"sha256:" + hex.EncodeToString(sum[:]), data}
}

func (b blob) desc(mediaType string) descriptor {
	return descriptor{MediaType: mediaType, Digest: b.digest, Size: int64(len(b.data))}
}

// epoch: every timestamp in the image, so the same files make the same
// digests.
var epoch = time.Unix(0, 0).UTC()

// Layer is the uncompressed tar of files, parents created as directories.
func Layer(files []File) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := map[string]bool{}
	sorted := append([]File(nil), files...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Path < sorted[j].Path })
	for _, f := range sorted {
		if !path.IsAbs(f.Path) || path.Clean(f.Path) != f.Path {
			return nil, fmt.Errorf("ociimage: path %q must be absolute and clean", f.Path)
		}
		rel := f.Path[1:]
		var parents []string
		for d := path.Dir(rel); d != "."; d = path.Dir(d) {
			parents = append([]string{d}, parents...)
		}
		for _, d := range parents {
			if dirs[d] {
				continue
			}
			dirs[d] = true
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755, ModTime: epoch}); err != nil {
				return nil, err
			}
		}
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: rel, Mode: f.Mode, Size: int64(len(f.Data)), ModTime: epoch}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.Data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Write writes img as an OCI image-layout tarball to w.
func Write(w io.Writer, img Image) error {
	layer, err := Layer(img.Files)
	if err != nil {
		return err
	}
	lb := newBlob(layer)
	cfg := map[string]any{
		"architecture": img.Arch,
		"os":           "linux",
		"created":      epoch.Format(time.RFC3339),
		"config":       map[string]any{"Entrypoint": img.Entrypoint, "Env": img.Env},
		"rootfs":       map[string]any{"type": "layers", "diff_ids": []string{lb.digest}},
	}
	cb, err := jsonBlob(cfg)
	if err != nil {
		return err
	}
	mb, err := jsonBlob(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.manifest.v1+json",
		"config":        cb.desc("application/vnd.oci.image.config.v1+json"),
		"layers":        []descriptor{lb.desc("application/vnd.oci.image.layer.v1.tar")},
	})
	if err != nil {
		return err
	}
	md := mb.desc("application/vnd.oci.image.manifest.v1+json")
	md.Annotations = map[string]string{
		"io.containerd.image.name":          img.Name,
		"org.opencontainers.image.ref.name": img.Name,
	}
	index, err := json.Marshal(map[string]any{"schemaVersion": 2, "manifests": []descriptor{md}})
	if err != nil {
		return err
	}
	return writeLayout(w, index, []blob{lb, cb, mb})
}

func jsonBlob(v any) (blob, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return blob{}, err
	}
	return newBlob(b), nil
}

func writeLayout(w io.Writer, index []byte, blobs []blob) error {
	tw := tar.NewWriter(w)
	put := func(name string, data []byte) error {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(data)), ModTime: epoch}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	if err := put("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)); err != nil {
		return err
	}
	if err := put("index.json", index); err != nil {
		return err
	}
	for _, b := range blobs {
		if err := put("blobs/sha256/"+b.digest[len("sha256:"):], b.data); err != nil {
			return err
		}
	}
	return tw.Close()
}
