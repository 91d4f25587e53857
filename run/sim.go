package run

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/scaleout/scaleout/keda"
	"github.com/scaleout/scaleout/platform"
	"github.com/scaleout/scaleout/promql"
	"github.com/scaleout/scaleout/scenario"
	"github.com/scaleout/scaleout/sim"
)

// Sim is the simulator a scenario's sim: block describes. When it serves
// the run it runs in-process on a loopback port (Embedded).
type Sim struct {
	Config sim.Config
	Fleet  *sim.Fleet // nil unless embedded
	URL    string     // its base URL, once started

	srv    *http.Server
	cancel context.CancelFunc
	done   chan struct{}
}

// newSim builds and validates the block's simulator, without starting it.
func newSim(s *scenario.Scenario, so *keda.ScaledObject) (*Sim, error) {
	cfg, err := SimConfig(s, so)
	if err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, simErrors(s, err)
	}
	return &Sim{Config: cfg}, nil
}

// Embedded tells whether the simulator serves the run in-process.
func (es *Sim) Embedded() bool { return es != nil && es.Fleet != nil }

// start serves the simulator on a free loopback port until stop.
func (es *Sim) start(ctx context.Context) error {
	fleet, err := sim.New(es.Config, sim.RealClock())
	if err != nil {
		return usagef("sim: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return cannotRun(fmt.Errorf("embedded simulator: %w", err))
	}
	ctx, cancel := context.WithCancel(ctx)
	es.Fleet, es.URL, es.cancel, es.done = fleet, "http://"+ln.Addr().String(), cancel, make(chan struct{})
	es.srv = &http.Server{Handler: fleet.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = es.srv.Serve(ln) }()
	go func() {
		defer close(es.done)
		_ = fleet.Run(ctx)
	}()
	return nil
}

// shorthands are the vllm, hpa and deployment shorthands of the series
// the simulator exports.
func (es *Sim) shorthands() (vllm, hpa, deployment string) {
	c := es.Config
	return fmt.Sprintf("{%s=%q}", platform.LabelNamespace, c.Namespace), c.Namespace + "/" + platform.KEDAHPAName(c.ScaledObject), c.Namespace + "/" + c.Deployment
}

// stop shuts an embedded simulator down; nil-safe and idempotent.
func (es *Sim) stop() {
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

// SimFromScaledObject makes the simulator behave as the ScaledObject would:
// its names, bounds, paused state, spec.behavior, and its queue trigger
// (threshold and metric type) and KV-cache trigger. The simulator models
// those two trigger kinds; others are left out (the lint says so).
func SimFromScaledObject(cfg *sim.Config, so *keda.ScaledObject) {
	cfg.Namespace, cfg.ScaledObject, cfg.Deployment = so.Namespace, so.Name, so.Target
	cfg.Replicas.Min, cfg.Replicas.Max = so.HPAMin(), so.Max
	cfg.Replicas.Start = min(max(cfg.Replicas.Start, cfg.Replicas.Min), cfg.Replicas.Max)
	cfg.Paused = so.Paused
	cfg.Behavior = so.Behavior
	for _, t := range so.Prometheus() {
		switch c := t.Class(); {
		case c.Kind == platform.QueueTrigger:
			cfg.Threshold, cfg.MetricType = t.Threshold, t.MetricType
		case c.Kind == platform.KVTrigger && (c.Agg == promql.Sum || c.Agg == promql.Avg):
			cfg.KVTrigger = &sim.KVTrigger{Aggregate: string(c.Agg), Type: t.MetricType, Threshold: t.Threshold}
		}
	}
}
