package rig

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// StopGrace is how long a component gets after SIGTERM before SIGKILL:
// kube-apiserver and etcd do not always exit within a few seconds.
const StopGrace = 10 * time.Second

// proc is one component the rig started, in a process group of its own so
// that a kill reaches anything it started too.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string        // its stdout and stderr
	done chan struct{} // closed when it has exited
	err  error         // its exit, once done is closed
}

// start runs bin with args and env (added to the rig's environment), its
// output appended to dir/logs/<name>.log.
func start(dir, name, bin string, args, env []string) (*proc, error) {
	logPath := filepath.Join(dir, "logs", name+".log")
	if err := os.MkdirAll(filepath.Dir(logPath), 0o700); err != nil {
		return nil, err
	}
	lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.Env = append(os.Environ(), env...)
	cmd.Dir = dir
	// Its own process group, killed with the rig's; Pdeathsig ends it if
	// the process that started it dies without stopping it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, fmt.Errorf("rig: start %s (%s): %w", name, bin, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		lf.Close()
		close(p.done)
	}()
	return p, nil
}

// exited reports whether p has exited, and how.
func (p *proc) exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// stop sends SIGTERM to p's group, waits up to grace, then SIGKILLs the
// group and waits for the exit. It returns nil once the process is gone,
// whichever way it went.
func (p *proc) stop(grace time.Duration) error {
	if done, _ := p.exited(); done {
		return nil
	}
	pgid := p.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-p.done:
		return nil
	case <-t.C:
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	select {
	case <-p.done:
		return nil
	case <-time.After(grace):
		return fmt.Errorf("rig: %s (pid %d) did not exit after SIGKILL", p.name, pgid)
	}
}

// tail is the last n lines of p's log, for an error message.
func (p *proc) tail(n int) string {
	b, err := os.ReadFile(p.log)
	if err != nil {
		return ""
	}
	return tail(string(b), n)
}

// tail is the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// errExited is what a wait for a component reports when it died first.
func (p *proc) errExited() error {
	_, err := p.exited()
	if err == nil {
		err = errors.New("exited")
	}
	return fmt.Errorf("rig: %s exited during start-up (%v); last lines of %s:\n%s", p.name, err, p.log, p.tail(15))
}
