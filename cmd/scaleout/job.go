package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/pflag"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/kubernetes"

	"github.com/scaleout/scaleout/job"
	"github.com/scaleout/scaleout/kube"
)

const jobUsage = `scaleout job runs a scenario in the cluster: an Indexed Job whose pods are shards of one run.

Usage:
  scaleout job SCENARIO --image IMAGE [flags] [-- RUN_FLAGS]
                                      print the manifests (ConfigMap, ServiceAccount, Role, RoleBinding, Job);
                                      --apply applies them (server-side apply), --dry-run asks the API server only
  scaleout job status NAME [--wait]   the Job and its shards' pods
  scaleout job collect NAME [--out DIR]
                                      bring every shard's run directory back from its pod's log (DIR/shards/K)
                                      and merge them into one run directory, DIR (scaleout report merge)

In the pods: scaleout job pod --dir DIR -- run ARGS (runs the shard, then prints its run directory to the log).
See docs/incluster.md.
`

func cmdJob(ctx context.Context, e env, args []string) error {
	if len(args) > 0 {
		switch args[0] {
		case "status":
			return cmdJobStatus(ctx, e, args[1:])
		case "collect":
			return cmdJobCollect(ctx, e, args[1:])
		case "pod":
			return cmdJobPod(ctx, e, args[1:])
		}
	}
	return cmdJobRender(ctx, e, args)
}

// kubeFlags are the cluster a job command talks to.
type kubeFlags struct {
	kubeconfig, context, namespace string
}

func (k *kubeFlags) bind(fs *pflag.FlagSet) {
	fs.StringVar(&k.kubeconfig, "kubeconfig", "", "kubeconfig file (default: $KUBECONFIG, then ~/.kube/config)")
	fs.StringVar(&k.context, "context", "", "kubeconfig context (default: the current one)")
	fs.StringVarP(&k.namespace, "namespace", "n", "", "namespace (default: the context's, else default)")
}

func (k *kubeFlags) config() kube.Config {
	return kube.Config{Kubeconfig: k.kubeconfig, Context: k.context}
}

// ns is --namespace, else the kubeconfig context's, else default. It reads
// the kubeconfig only, never the cluster.
func (k *kubeFlags) ns() string {
	if k.namespace != "" {
		return k.namespace
	}
	if ns, _, err := k.config().Loader().Namespace(); err == nil && ns != "" {
		return ns
	}
	return "default"
}

// connect builds the cluster's clients, as a run does (kube.Connect).
func (k *kubeFlags) connect() (*kube.Client, error) {
	c, err := kube.Connect(k.config())
	if err != nil {
		return nil, withCode(exitCannotRun, fmt.Errorf("kubeconfig: %w", err))
	}
	return c, nil
}

func (k *kubeFlags) core() (kubernetes.Interface, error) {
	c, err := k.connect()
	if err != nil {
		return nil, err
	}
	return c.Core, nil
}

// minStartLead is the least time --apply leaves between now and the
// common start: scheduling, pulling a small image, starting a container.
const minStartLead = 15 * time.Second

// jobOptions are scaleout job's flags.
type jobOptions struct {
	kube       kubeFlags
	o          job.Options
	startAt    string
	startDelay time.Duration
	apply      bool
	dryRun     bool
}

func cmdJobRender(ctx context.Context, e env, args []string) error {
	var jo jobOptions
	fs := pflag.NewFlagSet("scaleout job", pflag.ContinueOnError)
	jo.kube.bind(fs)
	fs.StringVar(&jo.o.Name, "name", "", "the Job's and ConfigMap's name (default scaleout-SCENARIO-YYYYMMDD-HHMMSS of the start)")
	fs.StringVar(&jo.o.Image, "image", "", "scaleout's image (make image, then push bin/image/oci: docs/incluster.md)")
	fs.IntVar(&jo.o.Parallelism, "parallelism", 1, "shards of the run: pods run at once, and completions")
	fs.StringVar(&jo.o.CPU, "cpu", "1", "CPU of each pod (request = limit)")
	fs.StringVar(&jo.o.Memory, "memory", "1Gi", "memory of each pod (request = limit)")
	fs.StringToStringVar(&jo.o.NodeSelector, "node-selector", nil, "node labels the pods need, KEY=VALUE,…")
	fs.StringArrayVar(&jo.o.Secrets, "secret", nil, "a Secret whose keys become the pods' environment, for ${NAME} in the scenario (repeatable)")
	fs.StringVar(&jo.startAt, "start-at", "", "the shards' common start, RFC 3339 (default: now + --start-delay)")
	fs.DurationVar(&jo.startDelay, "start-delay", 2*time.Minute, "with no --start-at: how far ahead the start is, time for every pod to be scheduled and pull the image")
	fs.DurationVar(&jo.o.TTL, "ttl", 24*time.Hour, "delete the Job this long after it finishes (0: keep it); collect before")
	fs.StringVar(&jo.o.PullPolicy, "pull-policy", "", "the image pull policy (Always, IfNotPresent, Never; default: the cluster's)")
	fs.BoolVar(&jo.apply, "apply", false, "apply the manifests to the cluster instead of printing them")
	fs.BoolVar(&jo.dryRun, "dry-run", false, "with --apply: server-side dry run (admission, schema, RBAC), nothing stored")
	if err := parseFlags(fs, args, e, "scaleout job SCENARIO --image IMAGE [flags] [-- RUN_FLAGS]"); err != nil {
		return err
	}
	pos := fs.Args()
	if dash := fs.ArgsLenAtDash(); dash >= 0 {
		pos, jo.o.RunArgs = fs.Args()[:dash], fs.Args()[dash:]
	}
	if len(pos) != 1 {
		fmt.Fprint(e.stderr, jobUsage)
		return usagef("job takes one scenario file, got %d arguments", len(pos))
	}
	if jo.dryRun && !jo.apply {
		return usagef("--dry-run goes with --apply (without --apply nothing is sent)")
	}
	switch {
	case jo.startAt != "":
		t, err := time.Parse(time.RFC3339, jo.startAt)
		if err != nil {
			return usagef("--start-at %q: want RFC 3339, e.g. 2026-12-03T07:00:00Z", jo.startAt)
		}
		jo.o.StartAt = t
	default:
		jo.o.StartAt = time.Now().Add(jo.startDelay).UTC().Truncate(time.Second)
	}
	b, err := job.LoadBundle(pos[0], func(name string) (string, bool) {
		v := e.getenv(name)
		return v, v != ""
	})
	if err != nil {
		return withCode(exitUsage, err) // the scenario, a file it names, or their size
	}
	jo.o.Namespace = jo.kube.ns()
	if jo.o.Name == "" {
		jo.o.Name = job.DefaultName(b.Scenario, jo.o.StartAt)
	}
	objs, err := job.Manifests(b, jo.o) // checks the options first (Options.Check)
	if err != nil {
		return withCode(exitUsage, err)
	}
	if !jo.apply {
		y, err := job.YAML(objs)
		if err != nil {
			return err
		}
		_, err = e.stdout.Write(y)
		return err
	}
	if lead := time.Until(jo.o.StartAt); !jo.dryRun && lead < minStartLead {
		return usagef("--start-at %s is %s away: the pods could not all be running by then, and a shard that starts late refuses to run (give a later --start-at, or none: now + --start-delay)",
			jo.o.StartAt.Format(time.RFC3339), lead.Round(time.Second))
	}
	c, err := jo.kube.connect()
	if err != nil {
		return err
	}
	verb := "applied"
	if jo.dryRun {
		verb = "admitted (server-side dry run, nothing stored)"
	}
	err = job.Apply(ctx, c.Dyn, objs, jo.dryRun, func(u *unstructured.Unstructured) {
		fmt.Fprintf(e.stdout, "%s %s/%s %s\n", strings.ToLower(u.GetKind()), u.GetNamespace(), u.GetName(), verb)
	})
	if err != nil {
		return withCode(exitCannotRun, err)
	}
	if !jo.dryRun {
		fmt.Fprintf(e.stdout, "%d shards start at %s (in %s). Follow: scaleout job status %s -n %s --wait; then: scaleout job collect %s -n %s\n",
			jo.o.Parallelism, jo.o.StartAt.Format(time.RFC3339), time.Until(jo.o.StartAt).Round(time.Second),
			jo.o.Name, jo.o.Namespace, jo.o.Name, jo.o.Namespace)
	}
	return nil
}

func cmdJobStatus(ctx context.Context, e env, args []string) error {
	var k kubeFlags
	var wait bool
	var every time.Duration
	fs := pflag.NewFlagSet("scaleout job status", pflag.ContinueOnError)
	k.bind(fs)
	fs.BoolVar(&wait, "wait", false, "wait until the Job completes or fails (exit 0 complete, 1 failed)")
	fs.DurationVar(&every, "every", 10*time.Second, "with --wait: how often to ask")
	if err := parseFlags(fs, args, e, "scaleout job status NAME [flags]"); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("job status takes the Job's name, got %d arguments", fs.NArg())
	}
	core, err := k.core()
	if err != nil {
		return err
	}
	ns := k.ns()
	for {
		st, err := job.GetStatus(ctx, core, ns, fs.Arg(0))
		if err != nil {
			return withCode(exitCannotRun, err)
		}
		printJobStatus(e, st, time.Now())
		switch {
		case st.FailedReason != "":
			return silent(exitFailed)
		case st.Done || !wait:
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-e.signals:
			return silent(exitInterrupted)
		case <-time.After(every):
		}
	}
}

func printJobStatus(e env, st job.Status, now time.Time) {
	when := "at " + st.StartAt.Format(time.RFC3339)
	if d := st.StartAt.Sub(now).Round(time.Second); d > 0 {
		when += fmt.Sprintf(" (in %s)", d)
	} else {
		when += fmt.Sprintf(" (%s ago)", -d)
	}
	state := "running"
	switch {
	case st.Done:
		state = "complete"
	case st.FailedReason != "":
		state = "failed: " + st.FailedReason
	}
	fmt.Fprintf(e.stdout, "job %s/%s: scenario %s, %d shards, start %s\n  %s · active %d · succeeded %d · failed %d\n",
		st.Namespace, st.Name, st.Scenario, st.Shards, when, state, st.Active, st.Succeeded, st.Failed)
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  shard\tpod\tphase\tnode\tdetail")
	for _, p := range st.Pods {
		detail := p.Reason
		if p.ExitCode != nil {
			detail += fmt.Sprintf(" exit %d", *p.ExitCode)
		}
		fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\t%s\n", p.Index, p.Name, p.Phase, p.Node, strings.TrimSpace(detail))
	}
	tw.Flush()
}

// mergeCollected joins the collected shards (in shard order) into one run
// directory at out: scaleout report merge, which prints the merged run and
// exits as a run would (1 when the merged verdict fails, 2 when the
// directories are not every shard of one run, 3 when out cannot be written).
var mergeCollected = func(e env, shards []string, out string) error {
	return cmdReportMerge(e, append(append([]string{}, shards...), "--out", out))
}

func cmdJobCollect(ctx context.Context, e env, args []string) error {
	var k kubeFlags
	var out string
	fs := pflag.NewFlagSet("scaleout job collect", pflag.ContinueOnError)
	k.bind(fs)
	fs.StringVar(&out, "out", "", "the merged run directory (default runs/NAME); the shards go to OUT/shards/K")
	if err := parseFlags(fs, args, e, "scaleout job collect NAME [flags]"); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("job collect takes the Job's name, got %d arguments", fs.NArg())
	}
	name := fs.Arg(0)
	if out == "" {
		out = filepath.Join("runs", name)
	}
	core, err := k.core()
	if err != nil {
		return err
	}
	st, err := job.GetStatus(ctx, core, k.ns(), name)
	if err != nil {
		return withCode(exitCannotRun, err)
	}
	if !st.Done {
		printJobStatus(e, st, time.Now())
		return withCode(exitCannotRun, fmt.Errorf("job %s/%s is not complete (%d of %d shards succeeded): scaleout job status %s -n %s --wait",
			st.Namespace, name, st.Succeeded, st.Shards, name, st.Namespace))
	}
	return collectAndMerge(ctx, e, st, job.PodLogs(core), out)
}

// collectAndMerge brings the shards back and merges them.
func collectAndMerge(ctx context.Context, e env, st job.Status, logs job.LogFunc, out string) error {
	dirs, err := job.Collect(ctx, st, logs, out)
	if err != nil {
		return withCode(exitCannotRun, err)
	}
	fmt.Fprintf(e.stderr, "scaleout: %d shards collected into %s\n", len(dirs), filepath.Join(out, "shards"))
	return mergeCollected(e, dirs, out)
}

// cmdJobPod is what a Job pod runs: `scaleout run ARGS --out DIR`, then the
// run directory printed to the log for collect. A shard whose run ended
// (pass or fail) exits 0: the verdict belongs to the merged run. One that
// could not run keeps its exit code, and fails the Job.
func cmdJobPod(ctx context.Context, e env, args []string) error {
	var dir string
	fs := pflag.NewFlagSet("scaleout job pod", pflag.ContinueOnError)
	fs.StringVar(&dir, "dir", job.RunDir, "the run directory (passed to run as --out)")
	if err := parseFlags(fs, args, e, "scaleout job pod --dir DIR -- run SCENARIO [flags]"); err != nil {
		return err
	}
	if fs.NArg() < 1 || fs.Arg(0) != "run" {
		return usagef("job pod runs `run`: scaleout job pod --dir DIR -- run SCENARIO [flags]")
	}
	runArgs := append(append([]string{}, fs.Args()[1:]...), "--out", dir)
	err := cmdRun(ctx, e, runArgs)
	c := code(err)
	var s silent
	if err != nil && !errors.As(err, &s) {
		fmt.Fprintf(e.stderr, "scaleout: %v\n", err)
	}
	if _, serr := os.Stat(filepath.Join(dir, "report.json")); serr == nil {
		data, aerr := job.Archive(dir)
		if aerr != nil {
			fmt.Fprintf(e.stderr, "scaleout: packing %s for the log: %v\n", dir, aerr)
			return silent(exitCannotRun)
		}
		n, werr := job.WriteArchive(e.stdout, data)
		if werr != nil {
			return silent(exitCannotRun)
		}
		if n > job.LogArchiveWarn {
			fmt.Fprintf(e.stderr, "scaleout: the run directory took %.1f MiB of log; a kubelet rotating logs at 10 MiB (containerLogMaxSize) may cut it\n", float64(n)/(1<<20))
		}
	} else if c == exitOK || c == exitFailed {
		fmt.Fprintf(e.stderr, "scaleout: the run left no %s/report.json to send back\n", dir)
		return silent(exitCannotRun)
	}
	if c == exitFailed {
		fmt.Fprintln(e.stderr, "scaleout: this shard's own expectations failed (exit 1); the verdict is the merged run's, so the pod succeeds")
		return nil
	}
	if c == exitOK {
		return nil
	}
	return silent(c)
}
