//go:build windows

package sysres

import (
	"os"
	"syscall"
	"time"
)

// OpenFiles: Windows has no limit on open files to read, so ok is false.
func OpenFiles() (soft, hard uint64, ok bool) { return 0, 0, false }

// CPU is this process's user + kernel CPU time so far (0 when unknown).
func CPU() time.Duration {
	h, err := syscall.GetCurrentProcess()
	if err != nil {
		return 0
	}
	var created, exited, kernel, user syscall.Filetime
	if syscall.GetProcessTimes(h, &created, &exited, &kernel, &user) != nil {
		return 0
	}
	return span(kernel) + span(user)
}

// CPUWait: Windows keeps no run-queue wait per thread to read, so ok is
// false.
func CPUWait() (wait time.Duration, ok bool) { return 0, false }

// RSS: not read on Windows (it needs psapi's GetProcessMemoryInfo), so ok is
// false.
func RSS() (bytes int64, ok bool) { return 0, false }

// Exited is an exited child's user + kernel CPU time; its peak memory is
// not read on Windows (0).
func Exited(ps *os.ProcessState) (cpu time.Duration, peakRSS int64) {
	ru, ok := ps.SysUsage().(*syscall.Rusage)
	if !ok || ru == nil {
		return 0, 0
	}
	return span(ru.KernelTime) + span(ru.UserTime), 0
}

// span is a FILETIME that holds a length of time (100 ns units), not an
// instant.
func span(ft syscall.Filetime) time.Duration {
	return time.Duration(uint64(ft.HighDateTime)<<32|uint64(ft.LowDateTime)) * 100
}
