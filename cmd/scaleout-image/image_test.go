package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
)

// fakeSpec is a two-platform spec over small stand-in binaries.
func fakeSpec(t *testing.T) Spec {
	t.Helper()
	dir := t.TempDir()
	plats, err := parsePlatforms("linux/amd64,linux/arm64")
	if err != nil {
		t.Fatal(err)
	}
	var bins []Binary
	for _, p := range plats {
		path := filepath.Join(dir, p.Architecture)
		if err := os.WriteFile(path, []byte("binary for "+p.String()), 0o755); err != nil {
			t.Fatal(err)
		}
		bins = append(bins, Binary{Platform: p, Path: path})
	}
	return Spec{Binaries: bins, CACerts: []byte("-----BEGIN CERTIFICATE-----\nfake\n"), Commit: "c0ffee", Created: time.Unix(0, 0).UTC()}
}

// writeFake writes the fake spec's layout and returns it.
func writeFake(t *testing.T) (Spec, v1.ImageIndex, string) {
	t.Helper()
	s := fakeSpec(t)
	idx, err := Assemble(s)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "oci")
	if err := WriteLayout(out, idx); err != nil {
		t.Fatal(err)
	}
	return s, idx, out
}

func TestLayoutReadsBack(t *testing.T) {
	s, idx, out := writeFake(t)
	c, err := Verify(out, s)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Images) != 2 || c.Images[0].Platform != "linux/amd64" || c.Images[1].Platform != "linux/arm64/v8" {
		t.Fatalf("images %+v, want linux/amd64 and linux/arm64/v8", c.Images)
	}
	if c.Images[0].BinarySHA256 == c.Images[1].BinarySHA256 {
		t.Fatal("both platforms hold the same binary")
	}

	// The same spec gives the same digest (no clock, no map order in it).
	again, err := Assemble(s)
	if err != nil {
		t.Fatal(err)
	}
	if d1, d2 := mustDigest(t, idx), mustDigest(t, again); d1 != d2 || d1 != c.Digest {
		t.Fatalf("digests differ: %s, %s, read back %s", d1, d2, c.Digest)
	}

	// Writing again replaces the layout whole and leaves no temporary beside it.
	if err := WriteLayout(out, idx); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(filepath.Dir(out))
	if len(ents) != 1 {
		t.Fatalf("beside the layout: %v, want only oci", ents)
	}
	if _, err := layout.ImageIndexFromPath(out); err != nil {
		t.Fatal(err)
	}
}

// Verify fails on a layout that does not hold what was built.
func TestVerifyCatchesADifferentBuild(t *testing.T) {
	s, _, out := writeFake(t)
	if err := os.WriteFile(s.Binaries[1].Path, []byte("rebuilt since"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(out, s); err == nil || !strings.Contains(err.Error(), "sha256") {
		t.Fatalf("a changed binary: err %v, want a sha256 mismatch", err)
	}
	s = fakeSpec(t)
	s.Commit = "other"
	if _, err := Verify(out, s); err == nil || !strings.Contains(err.Error(), labelRevision) {
		t.Fatalf("another commit: err %v, want the revision label", err)
	}
	s = fakeSpec(t)
	s.Binaries = s.Binaries[:1]
	if _, err := Verify(out, s); err == nil || !strings.Contains(err.Error(), "2 images, want 1") {
		t.Fatalf("one platform asked: err %v", err)
	}
}

func TestParsePlatforms(t *testing.T) {
	for _, bad := range []string{"", "amd64", "windows/amd64", "linux/", "linux/amd64,linux/amd64", "linux/arm/v7"} {
		if _, err := parsePlatforms(bad); err == nil {
			t.Errorf("parsePlatforms(%q) accepted", bad)
		}
	}
	ps, err := parsePlatforms("linux/amd64, linux/arm64")
	if err != nil || len(ps) != 2 || ps[1].Variant != "v8" {
		t.Fatalf("got %v, %v", ps, err)
	}
}

// TestMakeImage is `make image` into a temporary directory for one
// platform, the machine's own when it is Linux on amd64 or arm64 (else
// linux/amd64): the real cross-compilation, the layout written, read back
// and checked against the binary just built, which is a static executable
// of its architecture and of no other; the native one runs and prints the
// stamped commit. One platform, not make image's two: the second is one
// more cold compile of every package (minutes on a fresh machine) and
// proves nothing the first does not, but that the tree builds for it,
// which make image (run by CI after make test) does, with the same checks.
// The layout of two platforms is TestLayoutReadsBack's.
func TestMakeImage(t *testing.T) {
	if testing.Short() {
		t.Skip("cross-compiles scaleout")
	}
	if _, err := os.Stat(defaultCerts); err != nil {
		t.Skip("no CA bundle at " + defaultCerts + " (Debian's ca-certificates)")
	}
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command on PATH")
	}
	native := runtime.GOOS == "linux" && (runtime.GOARCH == "amd64" || runtime.GOARCH == "arm64")
	plat, other := "linux/amd64", "linux/arm64"
	if native && runtime.GOARCH == "arm64" {
		plat, other = other, plat
	}
	plats, err := parsePlatforms(plat + "," + other)
	if err != nil {
		t.Fatal(err)
	}
	p, wrong := plats[0], plats[1]
	dir := t.TempDir()
	out := filepath.Join(dir, "oci")
	// The compilation: bounded by the test's own deadline (go test
	// -timeout), less a margin to report in, not by a guess of its own.
	ctx := context.Background()
	if d, ok := t.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, d.Add(-30*time.Second))
		defer cancel()
	}
	if err := run(ctx, []string{"-out", out, "-platforms", plat, "-commit", "testcommit123", "-go", goCmd}); err != nil {
		t.Fatal(err)
	}
	certs, err := os.ReadFile(defaultCerts)
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "linux-"+p.Architecture, "scaleout")
	if err := CheckStatic(bin, p); err != nil {
		t.Fatal(err)
	}
	if err := CheckStatic(bin, wrong); err == nil || !strings.Contains(err.Error(), "built for") {
		t.Fatalf("the %s binary checked as %s: %v", p.Architecture, wrong, err)
	}
	s := Spec{Binaries: []Binary{{Platform: p, Path: bin}}, CACerts: certs, Commit: "testcommit123"}
	c, err := Verify(out, s)
	if err != nil {
		t.Fatal(err)
	}
	for _, im := range c.Images {
		t.Logf("%s %s: %.1f MB compressed, %.1f MB unpacked", im.Platform, im.Digest, float64(im.CompressedBytes)/1e6, float64(im.UnpackedBytes)/1e6)
	}
	if native {
		got, err := exec.CommandContext(ctx, bin, "version").Output()
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(got), "commit testcommit123") {
			t.Fatalf("scaleout version printed %q, want the stamped commit", got)
		}
	}
}

func mustDigest(t *testing.T, idx interface{ Digest() (v1.Hash, error) }) v1.Hash {
	t.Helper()
	d, err := idx.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}
