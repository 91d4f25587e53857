//go:build unix

// Package sysres reads what this process, or a child of it that has exited,
// uses of the machine: the open-file limit, CPU time and resident memory,
// each as far as the platform tells it. The scaleout command and the perf
// command both measure through it.
package sysres

import (
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// OpenFiles is RLIMIT_NOFILE, the soft and hard limits on open file
// descriptors (Go raises its own soft limit to the hard one at start). ok is
// false when the platform has no such limit or it cannot be read.
func OpenFiles() (soft, hard uint64, ok bool) {
	var rl syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl) != nil {
		return 0, 0, false
	}
	return uint64(rl.Cur), uint64(rl.Max), true
}

// CPU is this process's user + system CPU time so far (0 when unknown).
func CPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// RSS is this process's resident memory now, in bytes. It is read from
// /proc/self/statm, so ok is false where there is no /proc (macOS).
func RSS() (bytes int64, ok bool) {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0, false
	}
	pages, ok := intField(b, 1)
	if !ok {
		return 0, false
	}
	return pages * int64(os.Getpagesize()), true
}

// intField is field i (from 0) of a /proc file's space-separated text, as
// an integer; ok is false when there is no such field or it is not one.
func intField(b []byte, i int) (n int64, ok bool) {
	f := strings.Fields(string(b))
	if len(f) <= i {
		return 0, false
	}
	n, err := strconv.ParseInt(f[i], 10, 64)
	return n, err == nil
}

// CPUWait is how long this process's threads have waited, runnable, for
// a CPU so far: the sum of the run-queue wait the Linux scheduler keeps
// per thread (/proc/self/task/*/schedstat, its second field, enabled by
// default since Linux 2.6.23). On a machine other processes keep busy it
// grows; on an idle one it stays near zero. ok is false where there is no
// /proc (macOS) or the kernel keeps no such figure.
func CPUWait() (wait time.Duration, ok bool) {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return 0, false
	}
	for _, t := range tasks {
		b, err := os.ReadFile("/proc/self/task/" + t.Name() + "/schedstat")
		if err != nil {
			continue // the thread has exited meanwhile
		}
		ns, read := intField(b, 1)
		if !read {
			return 0, false
		}
		wait += time.Duration(ns)
		ok = true
	}
	return wait, ok
}

// Exited is an exited child's user + system CPU time and peak resident
// memory in bytes, from the kernel's accounting at its exit (0 when
// unknown).
func Exited(ps *os.ProcessState) (cpu time.Duration, peakRSS int64) {
	ru, ok := ps.SysUsage().(*syscall.Rusage)
	if !ok || ru == nil {
		return 0, 0
	}
	peakRSS = int64(ru.Maxrss) // bytes on Apple systems, KiB elsewhere
	if runtime.GOOS != "darwin" && runtime.GOOS != "ios" {
		peakRSS *= 1024
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), peakRSS
}
