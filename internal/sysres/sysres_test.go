package sysres

import (
	"os"
	"os/exec"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

const childMiB = 64

// TestMain doubles as the child of TestExited: it touches childMiB of
// memory, burns a little CPU and exits.
func TestMain(m *testing.M) {
	if os.Getenv("SYSRES_TEST_HOG") == "1" { // a CPU hog for TestCPUWait: spins for at most 3 s
		for end := time.Now().Add(3 * time.Second); time.Now().Before(end); {
		}
		os.Exit(0)
	}
	if os.Getenv("SYSRES_TEST_CHILD") == "1" {
		runtime.KeepAlive(touch(childMiB << 20))
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// touch allocates n bytes and writes to every page of them, so they are
// resident.
func touch(n int) []byte {
	b := make([]byte, n)
	for i := 0; i < n; i += os.Getpagesize() {
		b[i] = 1
	}
	return b
}

func TestCPUGrows(t *testing.T) {
	start := CPU()
	deadline := time.Now().Add(10 * time.Second)
	x := 0
	for CPU()-start < 20*time.Millisecond {
		if time.Now().After(deadline) {
			t.Fatalf("CPU() grew by %v in 10 s of spinning; want ≥ 20ms", CPU()-start)
		}
		for i := range 100000 {
			x += i
		}
	}
	runtime.KeepAlive(x)
}

func TestRSS(t *testing.T) {
	before, ok := RSS()
	if runtime.GOOS != "linux" {
		if ok {
			t.Fatalf("RSS() = %d, true on %s; want false (no /proc)", before, runtime.GOOS)
		}
		t.Skip("RSS is read on Linux only")
	}
	if !ok || before <= 0 {
		t.Fatalf("RSS() = %d, %t; want a positive size", before, ok)
	}
	b := touch(childMiB << 20)
	after, _ := RSS()
	runtime.KeepAlive(b)
	if after-before < childMiB<<19 {
		t.Fatalf("RSS grew by %d bytes after touching %d MiB; want at least half of it", after-before, childMiB)
	}
}

func TestOpenFiles(t *testing.T) {
	soft, hard, ok := OpenFiles()
	if runtime.GOOS == "windows" {
		if ok {
			t.Fatalf("OpenFiles() ok on Windows")
		}
		return
	}
	if !ok || soft == 0 || soft > hard {
		t.Fatalf("OpenFiles() = %d, %d, %t; want 0 < soft ≤ hard", soft, hard, ok)
	}
}

func TestExited(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "SYSRES_TEST_CHILD=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	cpu, peak := Exited(cmd.ProcessState)
	if cpu <= 0 {
		t.Errorf("child CPU %v; want > 0", cpu)
	}
	if runtime.GOOS == "windows" {
		return
	}
	// Both bounds catch a unit mistake (KiB taken for bytes, or the reverse).
	if peak < childMiB<<20 || peak > 16*childMiB<<20 {
		t.Errorf("child peak RSS %d bytes; want between %d MiB and %d MiB", peak, childMiB, 16*childMiB)
	}
}

// On Linux CPUWait grows while other processes compete for every core:
// this process's threads, spinning, wait in the run queue.
func TestCPUWait(t *testing.T) {
	if runtime.GOOS != "linux" {
		if _, ok := CPUWait(); ok {
			t.Errorf("CPUWait ok on %s, which has no /proc schedstat", runtime.GOOS)
		}
		t.Skip("schedstat is Linux's")
	}
	before, ok := CPUWait()
	if !ok {
		if _, err := os.Stat("/proc/self/schedstat"); err == nil {
			t.Fatal("CPUWait not ok, yet this kernel keeps /proc/self/schedstat")
		}
		t.Skip("this kernel keeps no schedstat")
	}
	var hogs []*exec.Cmd
	for range 2 * runtime.NumCPU() {
		c := exec.Command(os.Args[0], "-test.run=^$")
		c.Env = append(os.Environ(), "SYSRES_TEST_HOG=1")
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		hogs = append(hogs, c)
	}
	defer func() {
		for _, c := range hogs {
			_ = c.Process.Kill()
			_ = c.Wait()
		}
	}()
	// Spin on every P until the wait has grown (bounded: the hogs end
	// after 3 s).
	deadline := time.Now().Add(3 * time.Second)
	var done atomic.Bool
	for range runtime.GOMAXPROCS(0) {
		go func() {
			for !done.Load() {
			}
		}()
	}
	defer done.Store(true)
	for time.Now().Before(deadline) {
		if now, _ := CPUWait(); now-before >= 10*time.Millisecond {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	now, _ := CPUWait()
	t.Errorf("CPUWait grew by %v while %d hogs competed for %d cores, want at least 10ms", now-before, len(hogs), runtime.NumCPU())
}
