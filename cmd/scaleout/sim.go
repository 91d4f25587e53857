package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/scaleout/scaleout/keda"
	"github.com/scaleout/scaleout/scenario"
	"github.com/scaleout/scaleout/sim"
)

// embeddedSim is a simulated fleet served in-process on a loopback port
// for a scenario with a sim: block.
type embeddedSim struct {
	fleet  *sim.Fleet
	cfg    sim.Config
	url    string
	srv    *http.Server
	cancel context.CancelFunc
	done   chan struct{}
}

// startSim starts the scenario's simulator and points the scenario at it:
// the target, a direct scrape of its /metrics page (unless a flag named
// another source), and the vllm/hpa/deployment shorthands it exports.
func startSim(ctx context.Context, s *scenario.Scenario, so *keda.ScaledObject) (*embeddedSim, error) {
	cfg, err := simConfig(s, so)
	if err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, simErrors(s, err)
	}
	fleet, err := sim.New(cfg, sim.RealClock())
	if err != nil {
		return nil, usagef("%s: sim: %v", s.File, err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, withCode(exitCannotRun, fmt.Errorf("embedded simulator: %w", err))
	}
	ctx, cancel := context.WithCancel(ctx)
	es := &embeddedSim{fleet: fleet, cfg: cfg, url: "http://" + ln.Addr().String(), cancel: cancel, done: make(chan struct{}),
		srv: &http.Server{Handler: fleet.Handler(), ReadHeaderTimeout: 10 * time.Second}}
	go func() { _ = es.srv.Serve(ln) }()
	go func() {
		defer close(es.done)
		_ = fleet.Run(ctx)
	}()

	s.Target.URL = es.url
	if s.Target.Model == "" {
		s.Target.Model = cfg.Model
	}
	if !s.Observe.Source() {
		s.Observe.Scrape = []string{es.url + "/metrics"}
	}
	simShorthands(&s.Observe, cfg)
	return es, nil
}

// simShorthands points the vllm, hpa and deployment shorthands at the
// series a simulator with cfg exports, where the scenario sets none.
func simShorthands(o *scenario.Observe, cfg sim.Config) {
	if o.VLLM == "" {
		o.VLLM = fmt.Sprintf("{namespace=%q}", cfg.Namespace)
	}
	if o.HPA == "" {
		o.HPA = cfg.Namespace + "/keda-hpa-" + cfg.ScaledObject
	}
	if o.Deployment == "" {
		o.Deployment = cfg.Namespace + "/" + cfg.Deployment
	}
}

// simSeries gives a scenario with a sim: block, run against another
// gateway (--target, such as a scaleout sim of its own), the series that
// simulator exports: the block's names say what to query.
func simSeries(s *scenario.Scenario, so *keda.ScaledObject) error {
	cfg, err := simConfig(s, so)
	if err != nil {
		return err
	}
	simShorthands(&s.Observe, cfg)
	return nil
}

// simConfig is the simulator a scenario's sim: block describes: the
// defaults, then what the ScaledObject says, then the block itself.
func simConfig(s *scenario.Scenario, so *keda.ScaledObject) (sim.Config, error) {
	cfg := sim.DefaultConfig()
	if so != nil {
		simFromScaledObject(&cfg, so)
	}
	return cfg, s.DecodeSim(&cfg)
}

// simErrors places the simulator's validation errors in the scenario file.
func simErrors(s *scenario.Scenario, err error) error {
	var errs scenario.Errors
	var fe *sim.FieldError
	for _, e := range unjoin(err) {
		if errors.As(e, &fe) {
			errs = append(errs, s.SimError(fe.Field, fe.Msg))
		} else {
			errs = append(errs, &scenario.Error{File: s.File, Field: "sim", Msg: e.Error()})
		}
	}
	return errs
}

// unjoin splits an errors.Join into its errors.
func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// stop shuts the simulator down; nil-safe and idempotent.
func (es *embeddedSim) stop() {
	if es == nil || es.cancel == nil {
		return
	}
	es.cancel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = es.srv.Shutdown(ctx)
	_ = es.srv.Close()
	<-es.done
	es.cancel = nil
}

// cmdSim is scaleout sim: the simulated fleet as a server until SIGTERM or
// Ctrl-C.
func cmdSim(ctx context.Context, e env, args []string) error {
	cfg := sim.DefaultConfig()
	fs := pflag.NewFlagSet("scaleout sim", pflag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:8000", "address to serve the gateway, /metrics and /admin on")
	soFile := fs.String("scaledobject", "", "behave as this ScaledObject manifest would (names, bounds, threshold, paused); flags given too win")
	cfg.BindFlags(fs)
	if err := parseFlags(fs, args, e, "scaleout sim [flags]"); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usagef("sim takes no arguments, got %q", fs.Args())
	}
	if *soFile != "" {
		so, err := readOneScaledObject(*soFile)
		if err != nil {
			return err
		}
		// The manifest sets what it says; flags the user gave win over it.
		flagged := cfg
		cfg = sim.DefaultConfig()
		simFromScaledObject(&cfg, so)
		fs.Visit(func(f *pflag.Flag) { copyFlag(&cfg, &flagged, f.Name) })
		for _, l := range so.Lint() {
			fmt.Fprintf(e.stderr, "warn  %s\n", l)
		}
	}
	if err := cfg.Validate(); err != nil {
		return usagef("sim: %v", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-e.signals:
			cancel()
		case <-ctx.Done():
		}
	}()
	err := sim.Serve(ctx, *listen, cfg, func(addr string) {
		fmt.Fprintf(e.stdout, "scaleout sim: serving %s on http://%s (/v1/completions, /v1/chat/completions, /metrics, /admin/state)\n", cfg.Model, addr)
		paused := "un-paused"
		if cfg.Paused {
			paused = "paused"
		}
		fmt.Fprintf(e.stdout, "  replicas %d (min %d, max %d), threshold %g waiting per replica, HPA sync %s, ScaledObject %s/%s %s\n",
			cfg.Replicas.Start, cfg.Replicas.Min, cfg.Replicas.Max, cfg.Threshold, cfg.HPASync, cfg.Namespace, cfg.ScaledObject, paused)
	})
	if err != nil && !errors.Is(err, context.Canceled) {
		return withCode(exitCannotRun, err)
	}
	return nil
}

// simFromScaledObject makes the simulator behave as the ScaledObject would:
// its names, bounds, paused state, spec.behavior, and its queue trigger
// (threshold and metric type) and KV-cache trigger. The simulator models
// those two trigger kinds; others are left out (the lint says so).
func simFromScaledObject(cfg *sim.Config, so *keda.ScaledObject) {
	cfg.Namespace, cfg.ScaledObject, cfg.Deployment = so.Namespace, so.Name, so.Target
	cfg.Replicas.Min, cfg.Replicas.Max = so.HPAMin(), so.Max
	cfg.Replicas.Start = min(max(cfg.Replicas.Start, cfg.Replicas.Min), cfg.Replicas.Max)
	cfg.Paused = so.Paused
	cfg.Behavior = so.Behavior
	for _, t := range so.Prometheus() {
		switch {
		case strings.Contains(t.Query, "num_requests_waiting"):
			cfg.Threshold, cfg.MetricType = t.Threshold, t.MetricType
		case strings.Contains(t.Query, "cache_usage_perc") && (t.Aggregation() == sim.AggregateSum || t.Aggregation() == sim.AggregateAvg):
			cfg.KVTrigger = &sim.KVTrigger{Aggregate: t.Aggregation(), Type: t.MetricType, Threshold: t.Threshold}
		}
	}
}

// copyFlag copies the knob behind one flag of scaleout sim from src to dst.
func copyFlag(dst, src *sim.Config, name string) {
	fs := pflag.NewFlagSet("", pflag.ContinueOnError)
	src.BindFlags(fs)
	f := fs.Lookup(name)
	if f == nil {
		return
	}
	dfs := pflag.NewFlagSet("", pflag.ContinueOnError)
	dst.BindFlags(dfs)
	_ = dfs.Set(name, f.Value.String())
}
