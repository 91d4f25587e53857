package main

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

// The image's fixed shape: what the Dockerfile at the repository's root
// builds too.
const (
	entrypoint   = "/scaleout"
	user         = "65532:65532" // nonroot, as in /etc/passwd below
	workDir      = "/work"       // mode 1777: writable under any runAsUser
	certsPath    = "etc/ssl/certs/ca-certificates.crt"
	defaultCerts = "/etc/ssl/certs/ca-certificates.crt"

	labelRevision = "org.opencontainers.image.revision"
	labelSource   = "org.opencontainers.image.source"
	labelTitle    = "org.opencontainers.image.title"
	labelLicenses = "org.opencontainers.image.licenses"
	refName       = "org.opencontainers.image.ref.name"
)

var (
	passwd = "root:x:0:0:root:/root:/sbin/nologin\n" +
		"nonroot:x:65532:65532:nonroot:/work:/sbin/nologin\n"
	group = "root:x:0:\nnonroot:x:65532:\n"
)

// Binary is one platform's scaleout binary.
type Binary struct {
	Platform v1.Platform
	Path     string
}

// Spec is everything an image index is made of.
type Spec struct {
	Binaries []Binary
	CACerts  []byte
	Commit   string
	Created  time.Time // creation time and every file's mtime
}

// parsePlatforms reads "linux/amd64,linux/arm64"; arm64 gets variant v8,
// the name registries and runtimes match on.
func parsePlatforms(s string) ([]v1.Platform, error) {
	var out []v1.Platform
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSpace(f)
		os, arch, ok := strings.Cut(f, "/")
		if !ok || os != "linux" || arch == "" || strings.Contains(arch, "/") {
			return nil, fmt.Errorf("-platforms: %q is not linux/ARCH (e.g. linux/amd64,linux/arm64)", f)
		}
		p := v1.Platform{OS: os, Architecture: arch}
		if arch == "arm64" {
			p.Variant = "v8"
		}
		if slices.ContainsFunc(out, func(q v1.Platform) bool { return q.Equals(p) }) {
			return nil, fmt.Errorf("-platforms: %s twice", f)
		}
		out = append(out, p)
	}
	return out, nil
}

// buildBinary cross-compiles pkg for p into path: static (CGO_ENABLED=0),
// trimmed paths, no symbol table, and the commit in main.commit (what
// `scaleout version` prints).
func buildBinary(ctx context.Context, goCmd, pkg string, p v1.Platform, commit, path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, goCmd, "build", "-trimpath",
		"-ldflags", "-s -w -X main.commit="+commit, "-o", path, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+p.OS, "GOARCH="+p.Architecture)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build for %s: %w\n%s", p, err, out)
	}
	return CheckStatic(path, p)
}

// CheckStatic checks that the file at path is an ELF executable for p's
// architecture with no program interpreter and no shared libraries: it runs
// on an image holding nothing else.
func CheckStatic(path string, p v1.Platform) error {
	want := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64, "arm": elf.EM_ARM,
		"ppc64le": elf.EM_PPC64, "s390x": elf.EM_S390, "riscv64": elf.EM_RISCV, "386": elf.EM_386}[p.Architecture]
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	defer f.Close()
	if want != 0 && f.Machine != want {
		return fmt.Errorf("%s: built for %v, want %v (%s)", path, f.Machine, want, p)
	}
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			return fmt.Errorf("%s: dynamically linked (has a program interpreter); build with CGO_ENABLED=0", path)
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		return fmt.Errorf("%s: needs shared libraries %v; build with CGO_ENABLED=0", path, libs)
	}
	return nil
}

// tarFile is one entry of a layer.
type tarFile struct {
	name string // relative, no leading slash; directories end in /
	mode int64
	data []byte
}

// layerOf makes a gzip-compressed OCI layer of files, in the order given,
// owned by root, every mtime t: the same files give the same digest.
func layerOf(files []tarFile, t time.Time) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		h := &tar.Header{Name: f.name, Mode: f.mode, ModTime: t, Format: tar.FormatPAX}
		if strings.HasSuffix(f.name, "/") {
			h.Typeflag = tar.TypeDir
		} else {
			h.Typeflag = tar.TypeReg
			h.Size = int64(len(f.data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	b := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(b)), nil
	}, tarball.WithMediaType(types.OCILayer), tarball.WithCompressedCaching)
}

// Assemble makes the image index: per platform, a base layer (CA
// certificates, /etc/passwd and /etc/group, /work and /tmp; the same digest
// on every platform, so registries store it once) and the binary's layer.
func Assemble(s Spec) (v1.ImageIndex, error) {
	if len(s.Binaries) == 0 {
		return nil, errors.New("no binaries to put in the image")
	}
	if len(s.CACerts) == 0 {
		return nil, errors.New("the CA certificate bundle is empty")
	}
	base, err := layerOf([]tarFile{
		{name: "etc/", mode: 0o755},
		{name: "etc/group", mode: 0o644, data: []byte(group)},
		{name: "etc/passwd", mode: 0o644, data: []byte(passwd)},
		{name: "etc/ssl/", mode: 0o755},
		{name: "etc/ssl/certs/", mode: 0o755},
		{name: certsPath, mode: 0o644, data: s.CACerts},
		{name: "tmp/", mode: 0o1777},
		{name: strings.TrimPrefix(workDir, "/") + "/", mode: 0o1777},
	}, s.Created)
	if err != nil {
		return nil, err
	}
	created := v1.Time{Time: s.Created}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, b := range s.Binaries {
		data, err := os.ReadFile(b.Path)
		if err != nil {
			return nil, err
		}
		bin, err := layerOf([]tarFile{{name: strings.TrimPrefix(entrypoint, "/"), mode: 0o755, data: data}}, s.Created)
		if err != nil {
			return nil, err
		}
		img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
		img, err = mutate.Append(img,
			mutate.Addendum{Layer: base, MediaType: types.OCILayer, History: v1.History{
				Created: created, CreatedBy: "scaleout-image: CA certificates, /etc/passwd, /work, /tmp"}},
			mutate.Addendum{Layer: bin, MediaType: types.OCILayer, History: v1.History{
				Created: created, CreatedBy: "scaleout-image: /scaleout, static, commit " + s.Commit}})
		if err != nil {
			return nil, err
		}
		cf, err := img.ConfigFile()
		if err != nil {
			return nil, err
		}
		cf = cf.DeepCopy()
		cf.OS, cf.Architecture, cf.Variant = b.Platform.OS, b.Platform.Architecture, b.Platform.Variant
		cf.Created = created
		cf.Config = v1.Config{
			Entrypoint: []string{entrypoint},
			User:       user,
			WorkingDir: workDir,
			Env:        []string{"PATH=/", "HOME=" + workDir, "SSL_CERT_FILE=/" + certsPath},
			Labels: map[string]string{
				labelRevision: s.Commit,
				labelSource:   "https://github.com/scaleout/scaleout",
				labelTitle:    "scaleout",
				labelLicenses: "Apache-2.0",
			},
		}
		if img, err = mutate.ConfigFile(img, cf); err != nil {
			return nil, err
		}
		p := b.Platform
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &p}})
	}
	return idx, nil
}

// WriteLayout writes idx as an OCI image layout at dir, replacing what is
// there: index.json names the one image index (ref name "latest"), which
// names one image per platform. It is written beside dir and renamed into
// place, so dir is never half a layout.
func WriteLayout(dir string, idx v1.ImageIndex) error {
	dir = filepath.Clean(dir)
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), "."+filepath.Base(dir)+".tmp-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	lp, err := layout.Write(tmp, empty.Index)
	if err != nil {
		return err
	}
	if err := lp.AppendIndex(idx, layout.WithAnnotations(map[string]string{refName: "latest"})); err != nil {
		return err
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	return os.Rename(tmp, dir)
}

// Checked is what Verify read back.
type Checked struct {
	Digest v1.Hash // the image index
	Images []CheckedImage
}

// CheckedImage is one platform's image as read back.
type CheckedImage struct {
	Platform        string
	Digest          v1.Hash
	CompressedBytes int64 // layers as stored and pulled
	UnpackedBytes   int64 // the files' sizes
	BinarySHA256    string
}

// Verify reads the layout at dir back and checks it against s: one image
// index, one image per platform and no other, each valid (digests, sizes,
// the config's platform), with the entrypoint, user, working directory and
// revision label, and a file system holding /scaleout byte for byte the
// binary built for that platform, the CA bundle, the nonroot user in
// /etc/passwd and a world-writable /work.
func Verify(dir string, s Spec) (Checked, error) {
	var c Checked
	top, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		return c, err
	}
	im, err := top.IndexManifest()
	if err != nil {
		return c, err
	}
	if len(im.Manifests) != 1 || im.Manifests[0].MediaType != types.OCIImageIndex {
		return c, fmt.Errorf("index.json: want one entry, an OCI image index; have %d", len(im.Manifests))
	}
	c.Digest = im.Manifests[0].Digest
	idx, err := top.ImageIndex(c.Digest)
	if err != nil {
		return c, err
	}
	if err := validate.Index(idx); err != nil {
		return c, fmt.Errorf("image index: %w", err)
	}
	m, err := idx.IndexManifest()
	if err != nil {
		return c, err
	}
	if len(m.Manifests) != len(s.Binaries) {
		return c, fmt.Errorf("image index: %d images, want %d (one per platform)", len(m.Manifests), len(s.Binaries))
	}
	for _, b := range s.Binaries {
		i := slices.IndexFunc(m.Manifests, func(d v1.Descriptor) bool {
			return d.Platform != nil && d.Platform.Equals(b.Platform)
		})
		if i < 0 {
			return c, fmt.Errorf("image index: no image for %s", b.Platform)
		}
		img, err := idx.Image(m.Manifests[i].Digest)
		if err != nil {
			return c, err
		}
		ci, err := checkImage(img, b, s)
		if err != nil {
			return c, fmt.Errorf("%s: %w", b.Platform, err)
		}
		ci.Digest = m.Manifests[i].Digest
		c.Images = append(c.Images, ci)
	}
	return c, nil
}

func checkImage(img v1.Image, b Binary, s Spec) (CheckedImage, error) {
	ci := CheckedImage{Platform: b.Platform.String()}
	cf, err := img.ConfigFile()
	if err != nil {
		return ci, err
	}
	switch cfg := cf.Config; {
	case !slices.Equal(cfg.Entrypoint, []string{entrypoint}):
		return ci, fmt.Errorf("entrypoint %q, want [%s]", cfg.Entrypoint, entrypoint)
	case cfg.User != user:
		return ci, fmt.Errorf("user %q, want %s", cfg.User, user)
	case cfg.WorkingDir != workDir:
		return ci, fmt.Errorf("working directory %q, want %s", cfg.WorkingDir, workDir)
	case cfg.Labels[labelRevision] != s.Commit:
		return ci, fmt.Errorf("label %s is %q, want %q", labelRevision, cfg.Labels[labelRevision], s.Commit)
	}
	layers, err := img.Layers()
	if err != nil {
		return ci, err
	}
	for _, l := range layers {
		n, err := l.Size()
		if err != nil {
			return ci, err
		}
		ci.CompressedBytes += n
	}

	want, err := os.ReadFile(b.Path)
	if err != nil {
		return ci, err
	}
	files := map[string][]byte{}
	modes := map[string]int64{}
	tr := tar.NewReader(mutate.Extract(img))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return ci, err
		}
		name := strings.TrimSuffix(strings.TrimPrefix(h.Name, "/"), "/")
		modes[name] = h.Mode
		if h.Uid != 0 || h.Gid != 0 {
			return ci, fmt.Errorf("/%s is owned by %d:%d, want root", name, h.Uid, h.Gid)
		}
		if h.Typeflag == tar.TypeReg {
			data, err := io.ReadAll(tr)
			if err != nil {
				return ci, err
			}
			files[name] = data
			ci.UnpackedBytes += int64(len(data))
		}
	}
	bin, ok := files[strings.TrimPrefix(entrypoint, "/")]
	if !ok {
		return ci, fmt.Errorf("no %s in the image", entrypoint)
	}
	ci.BinarySHA256 = sha256hex(bin)
	switch {
	case ci.BinarySHA256 != sha256hex(want):
		return ci, fmt.Errorf("%s has sha256 %s, the binary built at %s has %s", entrypoint, ci.BinarySHA256, b.Path, sha256hex(want))
	case modes[strings.TrimPrefix(entrypoint, "/")] != 0o755:
		return ci, fmt.Errorf("%s has mode %o, want 755", entrypoint, modes[strings.TrimPrefix(entrypoint, "/")])
	case !bytes.Equal(files[certsPath], s.CACerts):
		return ci, fmt.Errorf("/%s is not the CA bundle given", certsPath)
	case !strings.Contains(string(files["etc/passwd"]), "nonroot:x:65532:65532:"):
		return ci, errors.New("/etc/passwd has no nonroot user 65532")
	case modes[strings.TrimPrefix(workDir, "/")] != 0o1777:
		return ci, fmt.Errorf("%s has mode %o, want 1777", workDir, modes[strings.TrimPrefix(workDir, "/")])
	}
	return ci, nil
}

func sha256hex(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}
