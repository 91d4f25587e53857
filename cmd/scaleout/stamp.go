package main

// commit is the source revision that `make image` (cmd/scaleout-image) and
// the Dockerfile stamp into the binary with -ldflags "-X main.commit=…";
// empty in a plain go build, where the build information tells.
var commit string

// versionString is what `scaleout version` prints: the stamped commit when
// there is one, else what the build information says.
func versionString() string {
	if commit != "" {
		return version() + " (commit " + commit + ")"
	}
	return version()
}
