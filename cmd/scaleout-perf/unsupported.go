//go:build !linux

// The perf command takes its figures from Linux's /proc (the loopback
// server's CPU, the whole machine's busy time, the sockets in TIME_WAIT)
// and compares them with child processes' rusage as Linux reports it, so
// elsewhere it only says so.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "scaleout-perf: runs on Linux only (its figures come from /proc)")
	os.Exit(2)
}
