// Command scaleout-image builds scaleout's container image without Docker
// (`make image`): it cross-compiles the scaleout command statically
// (CGO_ENABLED=0) for each platform, stamps it with the source commit, lays
// out a minimal root filesystem per platform (the binary, the build
// machine's CA certificates, an /etc/passwd entry for the non-root user
// 65532, writable /work and /tmp), and writes one image index of all the
// platforms as an OCI image layout. It then reads the layout back and checks
// it (entrypoint, user, platforms, and each image's binary against the one
// just built), so a layout it leaves behind is one that was verified.
//
// Usage:
//
//	go run ./cmd/scaleout-image [-out bin/image/oci] [-platforms linux/amd64,linux/arm64]
//	                            [-commit SHA] [-certs FILE] [-go GO]
//
// The layout's index.json has one entry, the image index, so
// `crane push bin/image/oci REGISTRY/scaleout:TAG --index` (or skopeo copy
// oci:bin/image/oci docker://…) pushes both platforms under one tag.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "scaleout-image:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("scaleout-image", flag.ContinueOnError)
	out := fs.String("out", "bin/image/oci", "directory of the OCI image layout to write (replaced)")
	platforms := fs.String("platforms", "linux/amd64,linux/arm64", "comma-separated OS/ARCH list, one image each")
	commit := fs.String("commit", "", "source revision stamped into the binary and the image labels (default: git rev-parse HEAD, -dirty when the tree has changes)")
	certs := fs.String("certs", defaultCerts, "CA certificate bundle copied to "+certsPath)
	goCmd := fs.String("go", "go", "the go command that cross-compiles")
	pkg := fs.String("pkg", "github.com/scaleout/scaleout/cmd/scaleout", "the package built into the image")
	if err := fs.Parse(args); err != nil {
		return err
	}
	plats, err := parsePlatforms(*platforms)
	if err != nil {
		return err
	}
	if *commit == "" {
		*commit = gitCommit(ctx)
	}
	caBundle, err := os.ReadFile(*certs)
	if err != nil {
		return fmt.Errorf("CA certificates: %w (install Debian's ca-certificates, or pass -certs FILE)", err)
	}
	created, err := sourceDate()
	if err != nil {
		return err
	}

	start := time.Now()
	binDir := filepath.Dir(filepath.Clean(*out))
	bins := make([]Binary, 0, len(plats))
	for _, p := range plats {
		path := filepath.Join(binDir, p.OS+"-"+p.Architecture, "scaleout")
		if err := buildBinary(ctx, *goCmd, *pkg, p, *commit, path); err != nil {
			return err
		}
		bins = append(bins, Binary{Platform: p, Path: path})
	}
	built := time.Since(start)

	spec := Spec{Binaries: bins, CACerts: caBundle, Commit: *commit, Created: created}
	idx, err := Assemble(spec)
	if err != nil {
		return err
	}
	if err := WriteLayout(*out, idx); err != nil {
		return err
	}
	got, err := Verify(*out, spec)
	if err != nil {
		return fmt.Errorf("the layout written at %s does not check: %w", *out, err)
	}
	fmt.Printf("wrote %s: image index %s (commit %s), compile %s, total %s\n",
		*out, got.Digest, *commit, built.Round(100*time.Millisecond), time.Since(start).Round(100*time.Millisecond))
	for _, m := range got.Images {
		fmt.Printf("  %-12s %s  %5.1f MB compressed, %5.1f MB unpacked\n",
			m.Platform, m.Digest, float64(m.CompressedBytes)/1e6, float64(m.UnpackedBytes)/1e6)
	}
	return nil
}

// gitCommit is HEAD's revision, with -dirty when the work tree has changes,
// or "unknown" outside a git checkout.
func gitCommit(ctx context.Context) string {
	out, err := exec.CommandContext(ctx, "git", "rev-parse", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	rev := strings.TrimSpace(string(out))
	st, err := exec.CommandContext(ctx, "git", "status", "--porcelain", "--untracked-files=no").Output()
	if err == nil && len(strings.TrimSpace(string(st))) > 0 {
		rev += "-dirty"
	}
	return rev
}

// sourceDate is the images' creation time and every file's modification
// time: SOURCE_DATE_EPOCH when set, else the Unix epoch, so that the same
// source and toolchain give the same digests.
func sourceDate() (time.Time, error) {
	s := os.Getenv("SOURCE_DATE_EPOCH")
	if s == "" {
		return time.Unix(0, 0).UTC(), nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, errors.New("SOURCE_DATE_EPOCH: want seconds since 1970, got " + strconv.Quote(s))
	}
	return time.Unix(n, 0).UTC(), nil
}
