package rig

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
)

// The versions rig/build.sh builds; its cache key hashes them with
// bins/go.sum, the script itself and the Go version.
const (
	K8sVersion  = "v1.37.2"
	KwokVersion = "v0.8.0"
	KEDAVersion = "v2.21.0"
)

// The binaries a complete cache holds.
var binaries = []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok", "keda-operator", "keda-adapter"}

// ErrNoBinaries is wrapped by BinDir's error when the rig's binaries have
// not been built: run `make rig-build`.
var ErrNoBinaries = errors.New("the rig's binaries are not built (run `make rig-build`, about 30-75 minutes the first time, seconds afterwards)")

// BinDir finds the directory holding the rig's binaries: $SCALEOUT_RIG_BIN
// when set, else the cache directory rig/build.sh would use for this
// checkout (srcDir is the rig module's directory). The error wraps
// ErrNoBinaries when nothing complete is there.
func BinDir(srcDir string) (string, error) {
	dir := os.Getenv("SCALEOUT_RIG_BIN")
	if dir == "" {
		key, err := cacheKey(srcDir)
		if err != nil {
			return "", err
		}
		root := os.Getenv("SCALEOUT_RIG_CACHE")
		if root == "" {
			home, err := os.UserHomeDir()
			if err != nil {
				return "", fmt.Errorf("rig: no home directory for the binary cache (set SCALEOUT_RIG_CACHE): %w", err)
			}
			root = filepath.Join(home, ".cache", "scaleout-rig")
		}
		dir = filepath.Join(root, "bin-"+key)
	}
	if _, err := os.Stat(filepath.Join(dir, ".complete")); err != nil {
		return "", fmt.Errorf("rig: %s: %w", dir, ErrNoBinaries)
	}
	for _, b := range binaries {
		if _, err := os.Stat(filepath.Join(dir, b)); err != nil {
			return "", fmt.Errorf("rig: %s has no %s: %w", dir, b, ErrNoBinaries)
		}
	}
	return dir, nil
}

// cacheKey is build.sh's key: the first 16 hex digits of the SHA-256 of
// bins/go.sum, build.sh, and a line of the versions and the Go version.
func cacheKey(srcDir string) (string, error) {
	h := sha256.New()
	for _, f := range []string{"bins/go.sum", "build.sh"} {
		b, err := os.ReadFile(filepath.Join(srcDir, f))
		if err != nil {
			return "", fmt.Errorf("rig: the cache key needs %s: %w", f, err)
		}
		h.Write(b)
	}
	fmt.Fprintf(h, "%s %s %s %s\n", K8sVersion, KwokVersion, KEDAVersion, goVersion())
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

// goVersion is what `go env GOVERSION` says build.sh compiles with,
// falling back to this binary's own version.
func goVersion() string {
	out, err := exec.Command("go", "env", "GOVERSION").Output()
	if err == nil && len(strings.TrimSpace(string(out))) > 0 {
		return strings.TrimSpace(string(out))
	}
	return runtime.Version()
}
