package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/pflag"

	"github.com/scaleout/scaleout/run"
	"github.com/scaleout/scaleout/scenario"
	"github.com/scaleout/scaleout/timeline"
)

// runOptions are the flags of scaleout run.
type runOptions struct {
	over      scenario.Overrides
	after     time.Duration
	restWait  time.Duration
	quiet     bool
	overwrite bool
	maxRows   int
	run       run.Options
	shard     shardFlags
}

// bindSources binds the flags that say where the load goes and where the
// series come from; run and check share them.
func bindSources(fs *pflag.FlagSet, over *scenario.Overrides) {
	fs.StringVar(&over.Target, "target", "", "gateway base URL (overrides target.url; with a sim: block, uses this gateway instead of the embedded one)")
	fs.StringVar(&over.Model, "model", "", "model name to request (overrides target.model)")
	fs.StringVar(&over.Prometheus, "prometheus", "", "Prometheus base URL to query (overrides observe.prometheus and observe.scrape)")
	fs.StringArrayVar(&over.Scrape, "scrape", nil, "a /metrics page to read directly instead of Prometheus (repeatable)")
	fs.StringVar(&over.ScaledObject, "scaledobject", "", "a ScaledObject manifest to derive queries and predictions from, and to check the triggers of")
	fs.StringVar(&over.Kubeconfig, "kubeconfig", "", "kubeconfig to read the Kubernetes API with (overrides observe.kubernetes.kubeconfig; default: $KUBECONFIG, ~/.kube/config, or the pod's service account)")
	fs.StringVar(&over.Context, "context", "", "kubeconfig context to use (overrides observe.kubernetes.context)")
}

func (o *runOptions) bind(fs *pflag.FlagSet) {
	bindSources(fs, &o.over)
	fs.DurationVar(&o.over.Interval, "interval", 0, "sampling and timeline interval (overrides observe.interval)")
	fs.DurationVar(&o.after, "after", 0, "how long to keep watching once the load stops (overrides observe.after)")
	fs.DurationVar(&o.restWait, "rest-wait", scenario.DefaultRestWait, "how long to wait before the load for the fleet to be at rest, then refuse (exit 3); 0 runs from where it is (overrides observe.rest_wait)")
	fs.StringArrayVar(&o.over.Expect, "expect", nil, `an expectation, e.g. "desired >= 2 within 2m" (repeatable)`)
	fs.StringVar(&o.run.Out, "out", "", "run directory (default runs/<scenario>-<UTC time>); one that holds a run is refused without --overwrite")
	fs.BoolVar(&o.overwrite, "overwrite", false, "with --out: replace the run the directory holds")
	fs.BoolVarP(&o.quiet, "quiet", "q", false, "no progress; print only the verdict and the run directory")
	fs.BoolVar(&o.run.NoPreflight, "no-preflight", false, "skip the checks before the load (target, model, queries)")
	fs.BoolVar(&o.run.StrictGuard, "strict-guard", false, "exit 1 when the guard finds the ScaledObject un-paused at the end")
	fs.DurationVar(&o.run.GuardWait, "guard-wait", 5*time.Minute, "with guard: repause, how long to wait at the end for the ScaledObject to be re-paused; with guard: act, for KEDA to honour the restored pause (and, at the start, to make the HPA)")
	fs.BoolVar(&o.over.GuardAct, "guard-act", false, "guard: act: un-pause the ScaledObject for the run through the Kubernetes API and restore its pause annotations exactly when the run ends, however it ends (needs patch on scaledobjects: deploy/rbac.yaml)")
	fs.StringVar(&o.run.VegetaResults, "vegeta-results", "", "also write vegeta's results encoding here (for vegeta report/plot)")
	fs.IntVar(&o.maxRows, "rows", 80, "most timeline rows to print (more rows are thinned; timeline.csv has all)")
	fs.DurationVar(&o.run.DownscaleWindow, "downscale-window", 0, "the cluster's --horizontal-pod-autoscaler-downscale-stabilization (5m on most clusters): the predicted desired then holds up for it as the HPA's does; 0: the instant prediction")
	fs.DurationVar(&o.run.Drain, "drain", 10*time.Minute, "how long to wait for requests still in flight after the load before aborting them")
	o.shard.bind(fs)
}

func cmdRun(ctx context.Context, e env, args []string) error {
	var o runOptions
	fs := pflag.NewFlagSet("scaleout run", pflag.ContinueOnError)
	o.bind(fs)
	if err := parseFlags(fs, args, e, "scaleout run SCENARIO [flags]"); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("run takes one scenario file (e.g. scaleout run scenarios/demo.yaml), got %d arguments", fs.NArg())
	}
	if err := run.ClaimDir(o.run.Out, o.overwrite); err != nil {
		return err
	}
	if fs.Changed("after") {
		o.over.After = &o.after
	}
	if fs.Changed("rest-wait") {
		o.over.RestWait = &o.restWait
	}
	shard, err := run.ParseShard(o.shard.spec, o.shard.startAt, time.Now())
	if err != nil {
		return err
	}
	p, err := run.Prepare(ctx, fs.Arg(0), o.over)
	if err != nil {
		return err
	}
	defer p.Close()
	if err := p.SetShard(shard); err != nil {
		return err
	}
	o.run.Signals, o.run.Log = e.signals, e.stderr
	o.run.Display = newProgress(e, o.quiet)
	res, err := run.Run(ctx, p, o.run)
	if errors.Is(err, run.ErrInterrupted) {
		fmt.Fprintln(e.stderr, "scaleout: interrupted before the load: nothing was sent")
		return silent(exitInterrupted)
	}
	if res == nil {
		return err
	}
	r := res.Report
	if o.quiet {
		fmt.Fprintf(e.stdout, "verdict: %s · %s\n", r.Verdict, res.Dir)
	} else {
		if werr := timeline.WriteText(e.stdout, r, timeline.TextOptions{MaxRows: o.maxRows}); werr != nil {
			return withCode(exitCannotRun, werr)
		}
		fmt.Fprintf(e.stdout, "run directory: %s\n", res.Dir)
	}
	if res.WriteErr != nil {
		fmt.Fprintf(e.stderr, "scaleout: the run directory %s could not be written whole, so the run is not recorded (exit 3): %v\n", res.Dir, res.WriteErr)
	}
	switch {
	case err != nil:
		return err
	case res.WriteErr != nil:
		return silent(exitCannotRun)
	case r.Partial:
		return silent(exitInterrupted)
	case r.Verdict == timeline.Fail:
		return silent(exitFailed)
	}
	return nil
}
