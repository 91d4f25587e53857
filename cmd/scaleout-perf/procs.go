//go:build linux

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/scaleout/scaleout/internal/sysres"
)

// procResult is one child process's run: its CPU and peak RSS come from
// the kernel's accounting at exit (wait4's rusage through os.ProcessState).
type procResult struct {
	CPU      time.Duration // utime + stime
	MaxRSSKB int64         // ru_maxrss, in KiB
	Wall     time.Duration
	Err      error  // start failure, non-zero exit or kill
	Stderr   string // the last lines of stderr
	Stdout   string
}

// tail keeps the last n bytes written to it.
type tail struct {
	n int
	b []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > 2*t.n {
		t.b = append(t.b[:0], t.b[len(t.b)-t.n:]...)
	}
	return len(p), nil
}

func (t *tail) String() string {
	if len(t.b) > t.n {
		return string(t.b[len(t.b)-t.n:])
	}
	return string(t.b)
}

// runChild runs a program to its end, killed after limit, and returns its
// resource use. Only the child's own accounting is read, never the
// parent's.
func runChild(ctx context.Context, limit time.Duration, name string, args ...string) procResult {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.WaitDelay = 5 * time.Second
	stdout, stderr := &tail{n: 4096}, &tail{n: 4096}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	start := time.Now()
	err := cmd.Run()
	res := procResult{Wall: time.Since(start), Stderr: strings.TrimSpace(stderr.String()), Stdout: strings.TrimSpace(stdout.String())}
	if ctx.Err() == context.DeadlineExceeded {
		err = fmt.Errorf("killed after %s: %w", limit, err)
	}
	res.Err = err
	if st := cmd.ProcessState; st != nil {
		var peak int64
		res.CPU, peak = sysres.Exited(st)
		res.MaxRSSKB = peak / 1024
	}
	return res
}

// serverProc is the loopback server, a child process of its own.
type serverProc struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	addr  string
	done  chan struct{}
}

// startServer re-executes this program with -serve and waits for it to
// listen.
func startServer(exe string, cfg serveConfig) (*serverProc, error) {
	cmd := exec.Command(exe, "-serve",
		"-addr", "127.0.0.1:0",
		"-tokens", strconv.Itoa(cfg.Tokens),
		"-token-delay", cfg.TokenDelay.String(),
		"-prompt", strconv.Itoa(cfg.Prompt))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &serverProc{cmd: cmd, stdin: stdin, done: make(chan struct{})}
	line := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		if sc.Scan() {
			line <- sc.Text()
		}
		close(line)
		_, _ = io.Copy(io.Discard, out)
	}()
	go func() { _ = cmd.Wait(); close(s.done) }()
	select {
	case l, ok := <-line:
		addr, found := strings.CutPrefix(l, "listening ")
		if !ok || !found {
			s.stop()
			return nil, fmt.Errorf("perf server: unexpected first line %q", l)
		}
		s.addr = addr
	case <-time.After(10 * time.Second):
		s.stop()
		return nil, errors.New("perf server: not listening after 10s")
	}
	return s, nil
}

// URL is the server's base URL.
func (s *serverProc) URL() string { return "http://" + s.addr }

// stop closes the server's stdin (it exits at EOF) and kills it if it has
// not exited within a few seconds.
func (s *serverProc) stop() {
	_ = s.stdin.Close()
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}

// cpu is the server's CPU so far, from /proc/PID/stat (utime + stime).
func (s *serverProc) cpu() time.Duration {
	return procCPU(s.cmd.Process.Pid)
}

// clockTicks is USER_HZ, 100 on every Linux this runs on.
const clockTicks = 100

func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command, which is in parentheses and may hold spaces.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+st) * time.Second / clockTicks
}

// serverCounts is GET /stats.
type serverCounts struct {
	Requests        int64 `json:"requests"`
	Streams         int64 `json:"streams"`
	Conns           int64 `json:"conns"`
	OpenStreams     int64 `json:"open_streams"`
	PeakOpenStreams int64 `json:"peak_open_streams"`
}

func (s *serverProc) counts() (serverCounts, error) {
	var c serverCounts
	cl := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil}}
	resp, err := cl.Get(s.URL() + "/stats")
	if err != nil {
		return c, err
	}
	defer resp.Body.Close()
	err = json.NewDecoder(resp.Body).Decode(&c)
	return c, err
}

// modRoot is the directory of the main module (where go.mod is).
func modRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("run the perf suite from inside the scaleout module (go run ./cmd/scaleout-perf)")
	}
	return filepath.Dir(gomod), nil
}

// buildScaleout builds ./cmd/scaleout into dir.
func buildScaleout(root, dir string) (string, error) {
	bin := filepath.Join(dir, "scaleout")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/scaleout")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/scaleout: %v\n%s", err, out)
	}
	return bin, nil
}

// vegetaModule is the vegeta release the suite compares against (the one
// go.mod requires).
const vegetaModule = "github.com/tsenart/vegeta/v12@v12.13.0"

// buildVegeta installs vegeta's CLI into dir. go install needs the module
// proxy for a deprecation check; when it is unreachable the CLI is built
// from the module cache with vegeta's own go.mod, offline.
func buildVegeta(dir string) (string, error) {
	bin := filepath.Join(dir, "vegeta")
	cmd := exec.Command("go", "install", vegetaModule)
	cmd.Env = append(os.Environ(), "GOBIN="+dir)
	out, err := cmd.CombinedOutput()
	if err == nil {
		return bin, nil
	}
	modcache, merr := exec.Command("go", "env", "GOMODCACHE").Output()
	if merr != nil {
		return "", fmt.Errorf("go install %s: %v\n%s", vegetaModule, err, out)
	}
	src := filepath.Join(strings.TrimSpace(string(modcache)), vegetaModule)
	b := exec.Command("go", "build", "-o", bin, ".")
	b.Dir = src
	b.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOPROXY=off", "GOWORK=off")
	if out2, err2 := b.CombinedOutput(); err2 != nil {
		return "", fmt.Errorf("go install %s: %v\n%s\nand building it from %s offline: %v\n%s", vegetaModule, err, out, src, err2, out2)
	}
	return bin, nil
}

// timeWaitSockets counts the TCP sockets in TIME_WAIT (state 06 in
// /proc/net/tcp and tcp6).
func timeWaitSockets() int {
	n := 0
	for _, p := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		for _, line := range bytes.Split(b, []byte("\n"))[1:] {
			f := bytes.Fields(line)
			if len(f) > 3 && string(f[3]) == "06" {
				n++
			}
		}
	}
	return n
}

// waitTimeWait waits, at most limit, until at most maxN sockets are in
// TIME_WAIT: a client that binds its sockets before connecting (vegeta binds
// 0.0.0.0:0) cannot take a port a previous run left in TIME_WAIT, and fails
// with "bind: address already in use" once they fill the ephemeral range.
// It returns the count it stopped at.
func waitTimeWait(ctx context.Context, maxN int, limit time.Duration) int {
	deadline := time.Now().Add(limit)
	for {
		n := timeWaitSockets()
		if n <= maxN || time.Now().After(deadline) || ctx.Err() != nil {
			return n
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}
