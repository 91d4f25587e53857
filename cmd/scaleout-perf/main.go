//go:build linux

// Command scaleout-perf is the load generator's benchmark suite (`make perf`). It
// shows that scaleout's load generator is not the bottleneck of a run and
// compares it with vegeta's own CLI, against the same loopback server in the
// same run:
//
//   - rate: the highest open-loop rate of small non-streamed completions
//     each client sustains (≥ 99% of the target, no error), found by
//     doubling then bisecting;
//   - cpu: client CPU per streamed request (64 one-token events, no token
//     latency) at the same rate for both clients;
//   - rss: scaleout's peak RSS with 10,000 streams held open (closed loop,
//     one token a second from the server).
//
// Each client is a child process; its CPU (utime + stime) and peak RSS
// (ru_maxrss) come from the kernel's accounting at its exit. The server is
// this program re-executed with -serve, a process of its own, so its CPU is
// never a client's. All traffic goes to 127.0.0.1, and every load is bounded
// in time (and so in count).
//
// Usage:
//
//	go run ./cmd/scaleout-perf [-only rate,cpu,rss] [-quick] [-out docs/perf.md] [-profile DIR]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// options are the suite's flags.
type options struct {
	out, profile string
	only         string
	quick, keep  bool

	rateStart, rateMax, rateTol float64
	rateDuration                time.Duration
	rateProbes                  int
	retry                       bool
	maxLag                      time.Duration

	cpuRate     float64
	cpuDuration time.Duration
	cpuReps     int

	streams int
	hold    time.Duration

	timeout       time.Duration
	scaleoutBin   string
	vegetaBin     string
	pause         time.Duration
	sections      map[string]bool
	commandLine   string
	explicitFlags map[string]bool
}

// The targets the figures are held against (2-core machine, client and
// server sharing it).
const (
	targetRate       = 10000 // non-streamed requests/s sustained by scaleout
	targetStreamRate = 2000  // streamed 64-token requests/s sustained by scaleout
	targetCPURatio   = 1.3   // scaleout CPU per streamed request ÷ vegeta's, at most
	targetStreams    = 10000 // streams held open at once
	targetRSSMB      = 600   // peak RSS with targetStreams held, MB (10^6 bytes)
	minShare         = 0.99  // share of the target rate and count a run must reach
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "-serve" {
		if err := serveMain(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "perf server:", err)
			os.Exit(1)
		}
		return
	}
	opt, err := parseOptions(os.Args[1:])
	if err != nil {
		if err == flag.ErrHelp {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "perf:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, opt); err != nil {
		fmt.Fprintln(os.Stderr, "perf:", err)
		os.Exit(1)
	}
}

func parseOptions(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("scaleout-perf", flag.ContinueOnError)
	fs.StringVar(&o.out, "out", "", "write the results as Markdown to this file (make perf: docs/perf.md)")
	fs.StringVar(&o.only, "only", "rate,cpu,rss", "sections to run, comma-separated: rate, cpu, rss")
	fs.BoolVar(&o.quick, "quick", false, "a quick check: 3 s loads, a 10% rate search, one CPU run each, streams held 10 s")
	fs.StringVar(&o.profile, "profile", "", "also run scaleout's load in-process under runtime/pprof and write the profiles (and pprof -top) here")
	fs.BoolVar(&o.keep, "keep", false, "keep the scratch directory (scenarios, run directories, vegeta results)")
	fs.Float64Var(&o.rateStart, "rate-start", 1000, "rate search: first rate (requests/s), doubled until a rate fails")
	fs.Float64Var(&o.rateMax, "rate-max", 256000, "rate search: highest rate tried")
	fs.Float64Var(&o.rateTol, "rate-tol", 0.05, "rate search: stop when pass and fail are this close (relative)")
	fs.DurationVar(&o.rateDuration, "rate-duration", 10*time.Second, "rate search: length of each probe")
	fs.IntVar(&o.rateProbes, "rate-probes", 14, "rate search: most probes per client")
	fs.DurationVar(&o.maxLag, "max-lag", 0, "rate and cpu: also require the sends to go out at most this late at the 99th percentile (scaleout's own client self-check uses 50ms); 0: not checked, the lag is reported")
	fs.BoolVar(&o.retry, "retry", true, "rate search: run a failed probe a second time before counting it failed (the machine is shared)")
	fs.Float64Var(&o.cpuRate, "cpu-rate", targetStreamRate, "cpu: rate of streamed requests (requests/s)")
	fs.DurationVar(&o.cpuDuration, "cpu-duration", 10*time.Second, "cpu: length of each run")
	fs.IntVar(&o.cpuReps, "cpu-reps", 2, "cpu: runs per client (alternating); figures are over all of them")
	fs.IntVar(&o.streams, "streams", targetStreams, "rss: streams held open at once")
	fs.DurationVar(&o.hold, "hold", 30*time.Second, "rss: how long the streams are held open")
	fs.DurationVar(&o.timeout, "timeout", 30*time.Second, "whole-request timeout for both clients in rate and cpu (vegeta's default)")
	fs.StringVar(&o.scaleoutBin, "scaleout-bin", "", "use this scaleout binary instead of building ./cmd/scaleout")
	fs.StringVar(&o.vegetaBin, "vegeta-bin", "", "use this vegeta binary instead of installing "+vegetaModule)
	fs.DurationVar(&o.pause, "pause", 2*time.Second, "pause between client runs")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	o.explicitFlags = map[string]bool{}
	fs.Visit(func(f *flag.Flag) { o.explicitFlags[f.Name] = true })
	if o.quick {
		set := func(name string, apply func()) {
			if !o.explicitFlags[name] {
				apply()
			}
		}
		set("rate-duration", func() { o.rateDuration = 3 * time.Second })
		set("rate-tol", func() { o.rateTol = 0.10 })
		set("cpu-duration", func() { o.cpuDuration = 3 * time.Second })
		set("cpu-reps", func() { o.cpuReps = 1 })
		set("hold", func() { o.hold = 10 * time.Second })
		set("pause", func() { o.pause = time.Second })
	}
	o.sections = map[string]bool{}
	for _, s := range strings.Split(o.only, ",") {
		s = strings.TrimSpace(s)
		switch s {
		case "rate", "cpu", "rss":
			o.sections[s] = true
		case "":
		default:
			return o, fmt.Errorf("-only %q: want rate, cpu or rss (comma-separated)", s)
		}
	}
	switch {
	case len(o.sections) == 0:
		return o, fmt.Errorf("-only %q: nothing to run", o.only)
	case o.rateStart <= 0 || o.rateMax < o.rateStart:
		return o, fmt.Errorf("-rate-start %g, -rate-max %g: want 0 < start ≤ max", o.rateStart, o.rateMax)
	case o.rateTol <= 0 || o.rateTol >= 1:
		return o, fmt.Errorf("-rate-tol %g: want between 0 and 1", o.rateTol)
	case o.rateDuration < time.Second || o.cpuDuration < time.Second || o.hold < 2*time.Second:
		return o, fmt.Errorf("durations: want at least 1 s (hold: 2 s)")
	case o.rateDuration > 5*time.Minute || o.cpuDuration > 5*time.Minute || o.hold > 10*time.Minute:
		return o, fmt.Errorf("durations: at most 5 min per load (hold: 10 min)")
	case o.cpuRate <= 0 || o.cpuReps < 1 || o.rateProbes < 1:
		return o, fmt.Errorf("-cpu-rate, -cpu-reps and -rate-probes must be positive")
	case o.streams < 1 || o.streams > 50000:
		return o, fmt.Errorf("-streams %d: want 1..50000", o.streams)
	case o.timeout < 0:
		return o, fmt.Errorf("-timeout %s: want 0 (none) or more", o.timeout)
	}
	o.commandLine = "go run ./cmd/scaleout-perf"
	if len(args) > 0 {
		o.commandLine += " " + strings.Join(args, " ")
	}
	return o, nil
}

// maxLagMS is -max-lag in milliseconds (0: not checked).
func (o options) maxLagMS() float64 { return float64(o.maxLag) / float64(time.Millisecond) }

// suite is one run of the suite and everything it measured.
type suite struct {
	opt     options
	m       machine
	exe     string
	cl      *clients
	started time.Time
	ended   time.Time
	loadAt  []string // load average at each section's start and at the end

	rate     *rateResult
	cpu      *cpuResult
	rss      *rssResult
	profiles []profileResult
	notes    []string
}

func run(ctx context.Context, opt options) error {
	s := &suite{opt: opt, started: time.Now()}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	s.exe = exe
	s.m = readMachine()
	tmp, err := os.MkdirTemp("", "scaleout-perf-")
	if err != nil {
		return err
	}
	if opt.keep {
		fmt.Printf("scratch directory: %s (kept)\n", tmp)
	} else {
		defer os.RemoveAll(tmp)
	}
	s.cl = &clients{tmp: tmp, keep: opt.keep}

	root, err := modRoot()
	if err != nil {
		return err
	}
	fmt.Printf("perf: %s · %d cores · Linux %s · %s · RLIMIT_NOFILE %s (hard %d) · load %s\n",
		s.m.CPUModel, s.m.Cores, s.m.Kernel, s.m.GoVersion, s.m.NoFileSoft, s.m.NoFileHard, loadAvg())
	if s.cl.scaleout = opt.scaleoutBin; s.cl.scaleout == "" {
		fmt.Println("building ./cmd/scaleout …")
		if s.cl.scaleout, err = buildScaleout(root, tmp); err != nil {
			return err
		}
	}
	if s.cl.vegeta = opt.vegetaBin; s.cl.vegeta == "" { // every section compares with it
		fmt.Printf("building vegeta's CLI (%s) …\n", vegetaModule)
		if s.cl.vegeta, err = buildVegeta(tmp); err != nil {
			return err
		}
	}
	s.cl.scaleout, _ = filepath.Abs(s.cl.scaleout)
	s.cl.vegeta, _ = filepath.Abs(s.cl.vegeta)

	if opt.sections["rate"] || opt.sections["cpu"] {
		srv, err := startServer(exe, serveConfig{Tokens: 64, Prompt: promptTokens})
		if err != nil {
			return err
		}
		fmt.Printf("server: %s (pid %d, 64 one-token events per stream, no token delay)\n", srv.URL(), srv.cmd.Process.Pid)
		if opt.sections["rate"] && ctx.Err() == nil {
			s.loadAt = append(s.loadAt, "rate: "+loadAvg())
			s.rate = s.runRate(ctx, srv)
		}
		if opt.sections["cpu"] && ctx.Err() == nil {
			s.loadAt = append(s.loadAt, "cpu: "+loadAvg())
			s.cpu = s.runCPU(ctx, srv)
		}
		srv.stop()
	}
	if opt.sections["rss"] && ctx.Err() == nil {
		s.loadAt = append(s.loadAt, "rss: "+loadAvg())
		s.rss = s.runRSS(ctx)
	}
	if opt.profile != "" && ctx.Err() == nil {
		s.loadAt = append(s.loadAt, "profile: "+loadAvg())
		if err := s.runProfiles(ctx); err != nil {
			s.notes = append(s.notes, "profiles: "+err.Error())
			fmt.Println("profiles:", err)
		}
	}
	s.loadAt = append(s.loadAt, "end: "+loadAvg())
	s.ended = time.Now()
	if ctx.Err() != nil {
		s.notes = append(s.notes, "interrupted: the figures are partial")
	}

	fmt.Println()
	fmt.Print(s.summaryText())
	if opt.out != "" {
		if err := os.WriteFile(opt.out, []byte(s.markdown()), 0o644); err != nil {
			return err
		}
		fmt.Printf("\nwrote %s\n", opt.out)
	}
	return ctx.Err()
}

// pause waits between client runs so one run's sockets and CPU tail do not
// fall into the next.
func (s *suite) pause(ctx context.Context) {
	select {
	case <-ctx.Done():
	case <-time.After(s.opt.pause):
	}
}
