package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/pflag"

	"github.com/scaleout/scaleout/run"
	"github.com/scaleout/scaleout/scenario"
)

// printFindings prints the preflight's findings, the ok ones only when all.
func printFindings(w io.Writer, fs []run.Finding, all bool) {
	for _, f := range fs {
		if f.Level == run.OK && !all {
			continue
		}
		fmt.Fprintf(w, "%-4s  %s\n", f.Level, f)
	}
}

// cmdCheck is scaleout check: the preflight alone, every finding printed.
// Without a scenario file the flags say what to check.
func cmdCheck(ctx context.Context, e env, args []string) error {
	var over scenario.Overrides
	fs := pflag.NewFlagSet("scaleout check", pflag.ContinueOnError)
	bindSources(fs, &over)
	if err := parseFlags(fs, args, e, "scaleout check [SCENARIO] [flags]  (without SCENARIO: --target URL [--prometheus URL | --scrape URL] [--scaledobject FILE])"); err != nil {
		return err
	}
	var p *run.Plan
	var err error
	switch {
	case fs.NArg() > 1:
		return usagef("check takes one scenario file, got %d arguments", fs.NArg())
	case fs.NArg() == 1:
		p, err = run.Prepare(ctx, fs.Arg(0), over)
	case over.Target == "":
		return usagef("check takes a scenario file, or flags that say what to check: --target URL, with --prometheus URL (or --scrape URL) and --scaledobject FILE for the queries")
	default:
		p, err = run.PrepareFlags(ctx, over)
	}
	if err != nil {
		return err
	}
	defer p.Close()
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	interrupted := make(chan struct{})
	go func() {
		select {
		case <-e.signals:
			close(interrupted)
			stop()
		case <-ctx.Done():
		}
	}()
	findings, err := run.Check(ctx, p)
	select {
	case <-interrupted:
		return silent(exitInterrupted)
	default:
	}
	var pe *run.PreflightError
	if err != nil && !errors.As(err, &pe) {
		return err
	}
	printFindings(e.stdout, findings, true)
	if err != nil {
		return silent(exitCannotRun)
	}
	return nil
}
