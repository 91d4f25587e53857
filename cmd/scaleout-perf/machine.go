//go:build linux

package main

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/scaleout/scaleout/internal/sysres"
)

// machine is what the figures were measured on.
type machine struct {
	CPUModel   string
	Cores      int // processor entries in /proc/cpuinfo
	Kernel     string
	GoVersion  string // the toolchain that built the clients
	MemTotal   string
	NoFileSoft string // RLIMIT_NOFILE as a shell sees it (ulimit -n)
	NoFileHard uint64
	Somaxconn  string
	PortRange  string
}

func readMachine() machine {
	m := machine{GoVersion: runtime.Version()}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			k, v, ok := strings.Cut(sc.Text(), ":")
			if !ok {
				continue
			}
			switch strings.TrimSpace(k) {
			case "processor":
				m.Cores++
			case "model name":
				if m.CPUModel == "" {
					m.CPUModel = strings.TrimSpace(v)
				}
			}
		}
		f.Close()
	}
	m.Kernel = readTrim("/proc/sys/kernel/osrelease")
	m.Somaxconn = readTrim("/proc/sys/net/core/somaxconn")
	m.PortRange = strings.Join(strings.Fields(readTrim("/proc/sys/net/ipv4/ip_local_port_range")), "–")
	if f, err := os.Open("/proc/meminfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
				kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
				m.MemTotal = strconv.FormatInt(kb>>20, 10) + " GiB"
			}
		}
		f.Close()
	}
	if out, err := exec.Command("go", "version").Output(); err == nil {
		m.GoVersion = strings.TrimPrefix(strings.TrimSpace(string(out)), "go version ")
	}
	// Go raises its own soft limit to the hard one at start but gives
	// children the original: ask a shell.
	if out, err := exec.Command("sh", "-c", "ulimit -n").Output(); err == nil {
		m.NoFileSoft = strings.TrimSpace(string(out))
	}
	_, m.NoFileHard, _ = sysres.OpenFiles()
	return m
}

func readTrim(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(b))
}

// loadAvg is /proc/loadavg's first three fields.
func loadAvg() string {
	f := strings.Fields(readTrim("/proc/loadavg"))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// numCPU is the CPUs the machine figures are shared over.
var numCPU = runtime.NumCPU()

// machineBusy is the whole machine's busy CPU time so far, from the first
// line of /proc/stat: user, nice, system, irq, softirq and steal (not idle,
// not iowait).
func machineBusy() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0
	}
	var ticks int64
	for _, i := range []int{1, 2, 3, 6, 7, 8} {
		v, _ := strconv.ParseInt(f[i], 10, 64)
		ticks += v
	}
	return time.Duration(ticks) * time.Second / clockTicks
}

// waitQuiet waits, at most limit, until the machine's busy CPU over a
// 2-second window is at most maxCores (nothing of the suite runs then but an
// idle server), and returns the last window's figure.
func waitQuiet(ctx context.Context, maxCores float64, limit time.Duration) float64 {
	deadline := time.Now().Add(limit)
	for {
		b0, t0 := machineBusy(), time.Now()
		select {
		case <-ctx.Done():
			return 0
		case <-time.After(2 * time.Second):
		}
		cores := (machineBusy() - b0).Seconds() / time.Since(t0).Seconds()
		if cores <= maxCores || time.Now().After(deadline) {
			return cores
		}
	}
}
