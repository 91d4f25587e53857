package main

import (
	"fmt"

	"github.com/spf13/pflag"

	"github.com/scaleout/scaleout/run"
	"github.com/scaleout/scaleout/timeline"
)

// shardFlags are scaleout run's --shard and --start-at.
type shardFlags struct {
	spec, startAt string
}

func (f *shardFlags) bind(fs *pflag.FlagSet) {
	fs.StringVar(&f.spec, "shard", "", "run as shard K of N of one run (K from 0, a Kubernetes Indexed Job's completion index): send K's share of every stage; needs --start-at; merge the shards with scaleout report merge")
	fs.StringVar(&f.startAt, "start-at", "", "with --shard: the instant every shard starts its load, RFC 3339 and in the future (e.g. 2026-12-03T08:00:00Z)")
}

// cmdReportMerge is scaleout report merge DIR... --out DIR: the shards of
// one run joined into one run directory. It prints the merged run and
// exits as a run would: 1 when the merged verdict is fail, 130 when a
// shard was interrupted, 2 when the directories are not every shard of
// one run, 3 when the merged directory cannot be written.
func cmdReportMerge(e env, args []string) error {
	fs := pflag.NewFlagSet("scaleout report merge", pflag.ContinueOnError)
	out := fs.String("out", "", "the merged run directory (required)")
	rows := fs.Int("rows", 80, "most timeline rows to print")
	quiet := fs.BoolP("quiet", "q", false, "print only the verdict and the run directory")
	if err := parseFlags(fs, args, e, "scaleout report merge SHARD_DIR... --out DIR"); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return usagef("report merge takes the run directories of a sharded run's shards, e.g. scaleout report merge runs/s0 runs/s1 --out runs/merged")
	}
	if *out == "" {
		return usagef("report merge needs --out DIR: where the merged run directory goes")
	}
	r, err := run.Merge(fs.Args(), *out)
	if err != nil {
		return err
	}
	if *quiet {
		fmt.Fprintf(e.stdout, "verdict: %s · %s\n", r.Verdict, *out)
	} else {
		if err := timeline.WriteText(e.stdout, r, timeline.TextOptions{MaxRows: *rows}); err != nil {
			return withCode(exitCannotRun, err)
		}
		fmt.Fprintf(e.stdout, "run directory: %s\n", *out)
	}
	switch {
	case r.Partial:
		return silent(exitInterrupted)
	case r.Verdict == timeline.Fail:
		return silent(exitFailed)
	}
	return nil
}
