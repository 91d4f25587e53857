// Command rig runs scaleout's local control plane for a person (the tests
// use package rig directly):
//
//	rig up [--dir DIR]        start it in the background; print its env once it is up
//	rig env [--dir DIR]       print the env of a running rig (export lines)
//	rig pause NS/NAME         pause a ScaledObject (make keda-demo-down)
//	rig unpause NS/NAME       un-pause it (make keda-demo-up)
//	rig down [--dir DIR]      stop it
//
// DIR (default .rig in the working directory) holds everything: the
// kubeconfig, logs, data, the pid and env files. Exit codes: 0 done, 1 the
// rig failed, 2 usage.
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
	"syscall"
	"time"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/scaleout/scaleout/rig"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	cmd, args := os.Args[1], os.Args[2:]
	fs := flag.NewFlagSet("rig "+cmd, flag.ExitOnError)
	dir := fs.String("dir", ".rig", "the rig's directory")
	src := fs.String("src", "", "the rig module's directory (default: the directory of this checkout's rig/)")
	_ = fs.Parse(args)
	abs, err := filepath.Abs(*dir)
	if err != nil {
		fail(err)
	}
	switch cmd {
	case "up":
		err = up(abs, *src)
	case "serve":
		err = serve(abs, *src)
	case "env":
		err = printEnv(abs)
	case "down":
		err = down(abs)
	case "pause", "unpause":
		if fs.NArg() != 1 || !strings.Contains(fs.Arg(0), "/") {
			usage()
		}
		err = setPaused(abs, fs.Arg(0), cmd == "pause")
	default:
		usage()
	}
	if err != nil {
		fail(err)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: rig up|env|down [--dir DIR] | rig pause|unpause [--dir DIR] NAMESPACE/SCALEDOBJECT")
	os.Exit(2)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "rig:", err)
	os.Exit(1)
}

func envFile(dir string) string { return filepath.Join(dir, "env") }
func pidFile(dir string) string { return filepath.Join(dir, "pid") }

// up starts `rig serve` detached and waits for its env file.
func up(dir, src string) error {
	if pid, ok := running(dir); ok {
		return fmt.Errorf("a rig is already running in %s (pid %d): rig down --dir %s", dir, pid, dir)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	_ = os.Remove(envFile(dir))
	logPath := filepath.Join(dir, "rig.log")
	lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	defer lf.Close()
	self, err := os.Executable()
	if err != nil {
		return err
	}
	args := []string{"serve", "--dir", dir}
	if src != "" {
		args = append(args, "--src", src)
	}
	c := exec.Command(self, args...)
	c.Stdout, c.Stderr = lf, lf
	c.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := c.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- c.Wait() }()
	deadline := time.After(10 * time.Minute)
	for {
		if b, err := os.ReadFile(envFile(dir)); err == nil {
			os.Stdout.Write(b)
			fmt.Fprintf(os.Stderr, "rig: up (pid %d); logs in %s; stop it with make cluster-down\n", c.Process.Pid, filepath.Join(dir, "logs"))
			return nil
		}
		select {
		case err := <-exited:
			b, _ := os.ReadFile(logPath)
			return fmt.Errorf("the rig exited while starting (%v):\n%s", err, b)
		case <-deadline:
			_ = c.Process.Signal(syscall.SIGTERM)
			return fmt.Errorf("the rig was not up after 10 minutes; see %s", logPath)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// serve runs the rig in the foreground until SIGTERM or SIGINT.
func serve(dir, src string) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if src == "" {
		src = defaultSrc()
	}
	if err := os.WriteFile(pidFile(dir), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o600); err != nil {
		return err
	}
	defer os.Remove(pidFile(dir))
	upCtx, cancel := context.WithTimeout(ctx, 8*time.Minute)
	r, err := rig.Up(upCtx, rig.Options{Dir: dir, SrcDir: src, Log: os.Stderr})
	cancel()
	if err != nil {
		return err
	}
	defer r.Down()
	var b strings.Builder
	fmt.Fprintf(&b, "export KUBECONFIG=%s\n", r.Kubeconfig)
	fmt.Fprintf(&b, "export PROMETHEUS=%s\n", r.PrometheusURL)
	fmt.Fprintf(&b, "export GPU_GATEWAY=%s   # the GPU tier (serving/raw-vllm): make validate-gpu GATEWAY=$GPU_GATEWAY\n", r.Gateways["serving"])
	fmt.Fprintf(&b, "export SIM_GATEWAY=%s   # the CPU-sim tier (inference/vllm-sim): make sim-proof GATEWAY=$SIM_GATEWAY\n", r.Gateways["inference"])
	fmt.Fprintf(&b, "export RIG_API=%s\n", r.APIURL)
	tmp := envFile(dir) + ".tmp"
	if err := os.WriteFile(tmp, []byte(b.String()), 0o600); err != nil {
		return err
	}
	if err := os.Rename(tmp, envFile(dir)); err != nil {
		return err
	}
	<-ctx.Done()
	_ = os.Remove(envFile(dir))
	fmt.Fprintln(os.Stderr, "rig: stopping")
	return r.Down()
}

func defaultSrc() string {
	// The binary is built into <repo>/bin; the module is <repo>/rig.
	if self, err := os.Executable(); err == nil {
		cand := filepath.Join(filepath.Dir(filepath.Dir(self)), "rig")
		if _, err := os.Stat(filepath.Join(cand, "build.sh")); err == nil {
			return cand
		}
	}
	wd, _ := os.Getwd()
	if _, err := os.Stat(filepath.Join(wd, "rig", "build.sh")); err == nil {
		return filepath.Join(wd, "rig")
	}
	return wd
}

func printEnv(dir string) error {
	b, err := os.ReadFile(envFile(dir))
	if err != nil {
		return fmt.Errorf("no rig is up in %s (make cluster-up)", dir)
	}
	os.Stdout.Write(b)
	return nil
}

// running is the pid of the rig serving dir, if it is alive.
func running(dir string) (int, bool) {
	b, err := os.ReadFile(pidFile(dir))
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, false
	}
	return pid, syscall.Kill(pid, 0) == nil
}

// down sends SIGTERM to the rig and waits for it to be gone (SIGKILL after
// a minute: it stops its components within StopGrace each).
func down(dir string) error {
	pid, ok := running(dir)
	if !ok {
		fmt.Fprintf(os.Stderr, "rig: nothing running in %s\n", dir)
		return nil
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		return err
	}
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		if syscall.Kill(pid, 0) != nil {
			fmt.Fprintf(os.Stderr, "rig: stopped (pid %d)\n", pid)
			return nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
	return errors.New("the rig did not stop within a minute: killed it")
}

func setPaused(dir, ref string, paused bool) error {
	ns, name, _ := strings.Cut(ref, "/")
	cfg, err := clientcmd.BuildConfigFromFlags("", filepath.Join(dir, "kubeconfig"))
	if err != nil {
		return fmt.Errorf("no rig is up in %s (make cluster-up): %w", dir, err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return err
	}
	r := &rig.Rig{Dynamic: dyn}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := r.SetPaused(ctx, ns, name, paused); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "rig: ScaledObject %s paused=%v\n", ref, paused)
	return nil
}
