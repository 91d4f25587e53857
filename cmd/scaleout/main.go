// Command scaleout proves that vLLM autoscaling works: it sends
// OpenAI-style load at a gateway while it watches queue depth and the
// HPA's replicas, and prints one scale-out timeline with a verdict.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/scaleout/scaleout/run"
	"github.com/scaleout/scaleout/scenario"
)

// Exit codes (the README's "Exit codes" table).
const (
	exitOK          = 0   // ran, and every expectation held
	exitFailed      = 1   // an expectation failed (or the guard, with --strict-guard)
	exitUsage       = 2   // bad usage or scenario file
	exitCannotRun   = 3   // target or Prometheus unreachable, preflight failed, fleet not at rest, run directory not written
	exitInterrupted = 130 // interrupted; the report is still written, marked partial
)

// exitError carries an exit code up to main.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func withCode(code int, err error) error {
	if err == nil {
		return nil
	}
	return &exitError{code: code, err: err}
}

func usagef(format string, args ...any) error {
	return withCode(exitUsage, fmt.Errorf(format, args...))
}

// silent is an exit code whose message has been printed already.
type silent int

func (s silent) Error() string { return fmt.Sprintf("exit %d", int(s)) }

// code maps an error to the process exit code, in one place.
func code(err error) int {
	var s silent
	var e *exitError
	var se scenario.Errors
	var pe *scenario.Error
	var re *run.Error
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &s):
		return int(s)
	case errors.As(err, &e):
		return e.code
	case errors.As(err, &se), errors.As(err, &pe):
		return exitUsage
	case errors.As(err, &re) && re.Class == run.Usage:
		return exitUsage
	default:
		return exitCannotRun
	}
}

// env is what a command reads from and writes to; tests give their own.
type env struct {
	stdout, stderr io.Writer
	stderrTTY      bool
	signals        <-chan os.Signal // interrupts (Ctrl-C, SIGTERM)
	getenv         func(string) string
}

func main() {
	sig := make(chan os.Signal, 2)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	e := env{stdout: os.Stdout, stderr: os.Stderr, stderrTTY: isTerminal(os.Stderr), signals: sig, getenv: os.Getenv}
	os.Exit(runMain(context.Background(), e, os.Args[1:]))
}

const usage = `scaleout proves vLLM autoscaling works: load, queue depth and replicas on one clock.

Usage:
  scaleout run SCENARIO [flags]      send the scenario's load, watch, print the timeline, write the run directory
  scaleout check SCENARIO [flags]    preflight only: target, model, Prometheus, every query, the ScaledObject, and
                                     with a cluster (--kubeconfig, --context) the HPA, KEDA and the pods from its API
  scaleout check --target URL --prometheus URL --scaledobject FILE
                                     the same without a scenario (--scrape URL instead of --prometheus)
  scaleout sim [flags]               serve the simulated vLLM fleet (gateway, /metrics, HPA) on 127.0.0.1:8000
  scaleout report RUN_DIR [RUN_DIR]  print a stored run again (and rebuild report.html), or compare two runs
  scaleout report merge DIR... --out DIR
                                     join the run directories of a sharded run (run --shard K/N) into one
  scaleout job SCENARIO --image IMG  run it in the cluster as an Indexed Job of shards (status, collect: job --help)
  scaleout version

Run "scaleout COMMAND --help" for a command's flags. Exit codes: 0 pass, 1 an expectation failed,
2 bad usage or scenario, 3 could not run (target, Prometheus, preflight, a fleet not at rest) or could not
write the run directory, 130 interrupted.
`

// runMain dispatches a command line and returns the exit code.
func runMain(ctx context.Context, e env, args []string) int {
	if len(args) == 0 {
		fmt.Fprint(e.stderr, usage)
		return exitUsage
	}
	var err error
	switch cmd, rest := args[0], args[1:]; cmd {
	case "run":
		err = cmdRun(ctx, e, rest)
	case "check":
		err = cmdCheck(ctx, e, rest)
	case "sim":
		err = cmdSim(ctx, e, rest)
	case "report":
		err = cmdReport(ctx, e, rest)
	case "job":
		err = cmdJob(ctx, e, rest)
	case "version", "--version":
		fmt.Fprintln(e.stdout, "scaleout", versionString())
	case "help", "-h", "--help":
		fmt.Fprint(e.stdout, usage)
	default:
		err = usagef("unknown command %q (try scaleout run, check, sim, report or job)", cmd)
	}
	if err != nil {
		var s silent
		if errors.Is(err, pflag.ErrHelp) {
			return exitOK
		}
		if !errors.As(err, &s) {
			fmt.Fprintf(e.stderr, "scaleout: %v\n", err)
		}
	}
	return code(err)
}

// parseFlags parses a subcommand's flags; errors are usage errors.
func parseFlags(fs *pflag.FlagSet, args []string, e env, synopsis string) error {
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprintf(e.stderr, "Usage: %s\n\nFlags:\n%s", synopsis, fs.FlagUsages())
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return err
		}
		return usagef("%v (see %s --help)", err, fs.Name())
	}
	return negativeDurations(fs)
}

// negativeDurations refuses a negative duration given to any flag: no
// wait, bound or interval can be below zero (0 is each flag's "none").
func negativeDurations(fs *pflag.FlagSet) error {
	var err error
	fs.Visit(func(f *pflag.Flag) {
		if err != nil || f.Value.Type() != "duration" {
			return
		}
		if d, perr := time.ParseDuration(f.Value.String()); perr == nil && d < 0 {
			err = usagef("--%s %s: a duration cannot be negative (give 0 or more, e.g. --%s %s)", f.Name, f.Value, f.Name, example(f))
		}
	})
	return err
}

// example is a duration to show in a message about flag f: its default
// when that is above 0.
func example(f *pflag.Flag) string {
	if d, err := time.ParseDuration(f.DefValue); err == nil && d > 0 {
		return f.DefValue
	}
	return "30s"
}
