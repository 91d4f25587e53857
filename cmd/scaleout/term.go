package main

import (
	"os"
	"runtime/debug"
	"strings"

	"golang.org/x/term"
)

// isTerminal reports whether f is a terminal that can take live progress:
// not redirected, not TERM=dumb, and with a width to draw in.
func isTerminal(f *os.File) bool {
	if !term.IsTerminal(int(f.Fd())) || os.Getenv("TERM") == "dumb" {
		return false
	}
	w, _, err := term.GetSize(int(f.Fd()))
	return err == nil && w > 0
}

// version is the module version, or for a source build the commit it was
// built from, whether the tree had changes, and the commit's date (from
// the build's VCS settings).
func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	return versionOf(bi)
}

func versionOf(bi *debug.BuildInfo) string {
	v := bi.Main.Version
	if v == "" || v == "(devel)" {
		v = "devel"
	}
	vcs := map[string]string{}
	for _, s := range bi.Settings {
		vcs[s.Key] = s.Value
	}
	rev := vcs["vcs.revision"]
	if rev == "" {
		if v == "devel" {
			v += " (no commit recorded: built outside a git checkout, or with -buildvcs=false)"
		}
		return v
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if !strings.Contains(v, rev) { // a pseudo-version names the commit already
		v += " commit " + rev
	}
	if vcs["vcs.modified"] == "true" {
		v += " (modified)"
	}
	if t := vcs["vcs.time"]; t != "" {
		v += " " + t
	}
	return v
}
