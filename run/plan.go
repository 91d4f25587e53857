// Package run owns one scaleout run: Prepare resolves the scenario, the
// flags, the ScaledObject and the embedded simulator into a Plan, once and
// in one order; Run executes a plan and returns its Result; Decide is the
// one place that turns everything measured into the verdict. Check runs
// the preflight alone (scaleout check).
//
// The command (cmd/scaleout) parses flags, wires a Display to the
// terminal, prints and maps errors to exit codes; every rule about a run
// lives here.
package run

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"time"

	"github.com/scaleout/scaleout/internal/redact"
	"github.com/scaleout/scaleout/keda"
	"github.com/scaleout/scaleout/loadgen"
	"github.com/scaleout/scaleout/measure"
	"github.com/scaleout/scaleout/platform"
	"github.com/scaleout/scaleout/promwatch"
	"github.com/scaleout/scaleout/scenario"
	"github.com/scaleout/scaleout/sim"
	"github.com/scaleout/scaleout/timeline"
)

// Plan is one run, resolved: built once by Prepare, read only afterwards.
type Plan struct {
	// Scenario is the scenario resolved against the flags, the embedded
	// simulator and the ScaledObject (scenario.Resolve).
	Scenario *scenario.Scenario
	// ScaledObject is the manifest the run is about; nil without one.
	ScaledObject *keda.ScaledObject
	// Triggers ties the ScaledObject's prometheus triggers to the series
	// that observe them; nil without a ScaledObject.
	Triggers *Triggers
	// Columns are the timeline's series: the observed ones (the
	// scenario's Observe.Series), then the predicted desired replicas
	// when Predicts.
	Columns  []measure.Series
	Predicts bool
	// Expect decides the verdict; Until ends stage i early once it holds.
	Expect []*timeline.Expectation
	Until  map[int]*timeline.Expectation
	// Source is where the series come from; nil when nothing is observed.
	Source promwatch.Evaluator
	// Secrets are the scenario's secret values; every text a server sends
	// (a failed request's message, a preflight answer, a query error)
	// loses them before it is recorded or printed.
	Secrets *redact.Secrets
	// Prompts are the request prompts (a file's, or synthetic ones).
	Prompts loadgen.PromptSource
	// Sim is the simulator the scenario's sim: block describes, running
	// in-process when it serves the run (Embedded); nil without a block.
	Sim *Sim
	// HPASync is one sync of the HPA that acts on the run: the embedded
	// simulator's, else Kubernetes' default.
	HPASync time.Duration
	// Kube reads the Kubernetes API (the HPA, the Deployment, its pods,
	// their events, the ScaledObject); nil when the run does not.
	Kube *kubeSide
	// Notes are remarks for the report (why the API is not read).
	Notes []string

	shard Shard // SetShard: this run is one shard of a sharded run
}

// KubernetesHPASync is the HPA controller's default sync period.
const KubernetesHPASync = 15 * time.Second

// Prepare reads the scenario at path, applies the flags, reads the
// ScaledObject, starts the embedded simulator when the scenario has one
// (and no --target replaces it), and resolves everything the run derives
// from them. Errors about the input are Usage errors listing every
// problem found; Close releases the simulator.
func Prepare(ctx context.Context, path string, over scenario.Overrides) (*Plan, error) {
	s, err := scenario.Load(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			return nil, usagef("cannot read the scenario %s: %v", path, pe.Err)
		}
		return nil, err
	}
	if err := s.Apply(over); err != nil {
		return nil, err
	}
	return prepare(ctx, s, over.Target != "")
}

// PrepareFlags is Prepare without a scenario file, for scaleout check:
// the flags say what to check (scenario.FromFlags). The plan has no
// stages: it cannot be run.
func PrepareFlags(ctx context.Context, over scenario.Overrides) (*Plan, error) {
	s, err := scenario.FromFlags(over)
	if err != nil {
		return nil, err
	}
	return prepare(ctx, s, over.Target != "")
}

// prepare resolves an already loaded scenario; otherTarget says a flag
// names the gateway, so a sim: block only describes it.
func prepare(ctx context.Context, s *scenario.Scenario, otherTarget bool) (p *Plan, err error) {
	p = &Plan{HPASync: KubernetesHPASync}
	defer func() {
		if err != nil {
			p.Close()
			p = nil
		}
	}()
	if s.Observe.ScaledObject != "" {
		if p.ScaledObject, err = ReadScaledObject(s.Observe.ScaledObject); err != nil {
			return p, err
		}
	}
	var c scenario.Context
	if s.HasSim() {
		if p.Sim, err = newSim(s, p.ScaledObject); err != nil {
			return p, err
		}
		p.HPASync = p.Sim.Config.HPASync
		if !otherTarget {
			if err := p.Sim.start(ctx); err != nil {
				return p, err
			}
			c.SimURL, c.SimModel = p.Sim.URL, p.Sim.Config.Model
		}
		c.VLLM, c.HPA, c.Deployment = p.Sim.shorthands()
	}
	if so := p.ScaledObject; so != nil {
		if c.HPA == "" {
			c.HPA = so.Namespace + "/" + so.HPAName
		}
		if c.Deployment == "" && so.TargetKind == "Deployment" {
			c.Deployment = so.Namespace + "/" + so.Target
		}
		p.Triggers, c.Series = newTriggers(so, s.Observe.Series)
	}
	if p.Scenario, err = s.Resolve(c); err != nil {
		return p, err
	}
	note, err := p.planKube(ctx)
	if err != nil {
		return p, err
	}
	if note != "" {
		p.Notes = append(p.Notes, note)
	}
	s = p.Scenario
	p.Secrets = redact.New(s.Secrets()...)
	p.Columns = s.Observe.Series
	if p.Triggers != nil && len(p.Triggers.names) > 0 && s.Observe.Source() {
		p.Predicts = true
		p.Columns = append(append([]measure.Series(nil), p.Columns...),
			measure.Series{Name: platform.Predicted, Query: "(computed from the triggers as KEDA and the HPA would)", Source: "computed"})
	}
	for i, c := range p.Columns {
		switch {
		case c.Source != "":
		case s.Observe.Prometheus != "":
			p.Columns[i].Source = "prometheus"
		case len(s.Observe.Scrape) > 0:
			p.Columns[i].Source = "scrape"
		}
	}
	var errs scenario.Errors
	p.Expect, p.Until, errs = parseExpectations(s, p.Columns)
	if p.Source, err = newSource(s, p.Secrets.Text); err != nil {
		errs = append(errs, asErrors(err)...)
	}
	if p.Kube != nil {
		p.Source = &kubeEval{inner: p.Source, k: p.Kube}
	}
	if p.Prompts, err = promptSource(s); err != nil {
		errs = append(errs, asErrors(err)...)
	}
	if len(errs) > 0 {
		return p, errs
	}
	return p, nil
}

// asErrors lists err as scenario errors (a usage error becomes one
// without a place).
func asErrors(err error) scenario.Errors {
	var se scenario.Errors
	if errors.As(err, &se) {
		return se
	}
	return scenario.Errors{&scenario.Error{Msg: err.Error()}}
}

// Close stops the embedded simulator and the Kubernetes source; nil-safe
// and idempotent.
func (p *Plan) Close() {
	if p != nil {
		p.Sim.stop()
		p.Kube.close()
	}
}

// Observation says where the samples come from, for the report header.
func (p *Plan) Observation() string {
	if p.Source == nil {
		return ""
	}
	if p.Sim.Embedded() {
		return p.Source.String() + " (the embedded simulator)"
	}
	return p.Source.String()
}

// newSource builds the Prometheus or scrape evaluator, or nil when the
// scenario observes nothing; its error texts go through redact.
func newSource(s *scenario.Scenario, redact func(string) string) (promwatch.Evaluator, error) {
	o := s.Observe
	switch {
	case o.Prometheus != "":
		p, err := promwatch.NewPrometheus(o.Prometheus, o.Token, nil)
		if err != nil {
			return nil, usagef("%s: observe.prometheus: %v", s.File, err)
		}
		p.Redact(redact)
		return p, nil
	case len(o.Scrape) > 0:
		var errs []string
		for _, ser := range o.Series {
			if ser.Source == SourceAPI {
				continue // read from the Kubernetes API, not the pages
			}
			if err := promwatch.ValidateScrapeQuery(ser.Query); err != nil {
				errs = append(errs, fmt.Sprintf("%s: observe.series.%s: %v (scrape mode reads /metrics pages and evaluates agg(metric{labels}) only; use observe.prometheus for full PromQL)", s.File, ser.Name, err))
			}
		}
		if len(errs) > 0 {
			return nil, usagef("%s", strings.Join(errs, "\n"))
		}
		sc, err := promwatch.NewScrape(o.Scrape, o.Token, nil)
		if err != nil {
			return nil, usagef("%s: observe.scrape: %v", s.File, err)
		}
		sc.Redact(redact)
		return sc, nil
	}
	return nil, nil
}

// timelineConfig is the timeline's view of the plan. The prediction's
// grace is one HPA sync plus one sample.
func (p *Plan) timelineConfig() timeline.Config {
	s := p.Scenario
	c := timeline.Config{Interval: s.Observe.Interval, Series: p.Columns, Threshold: s.Threshold,
		SLO: timeline.SLO{TTFT: s.SLO.TTFT, TPOT: s.SLO.TPOT, E2E: s.SLO.E2E}, Grace: p.HPASync + s.Observe.Interval}
	for i, st := range s.Load {
		plan := timeline.StagePlan{Name: st.Name, Plan: strings.TrimPrefix(st.String(), st.Name+": "),
			Duration: st.Duration, RateFrom: st.RateFrom, RateTo: st.RateTo, Concurrency: st.Concurrency}
		if st.Concurrency == 0 {
			// The stage's own arrivals: a fresh schedule from the same seed
			// has the same ones.
			plan.Due = func(d time.Duration) float64 {
				return float64(loadgen.Due(p.loadStage(i).Schedule, d))
			}
		}
		c.Stages = append(c.Stages, p.shardPlan(plan))
	}
	return c
}

// loadStage is stage i in the load generator's terms (a shard's share of
// it when sharded); its Poisson seed is the request seed plus the stage's
// index.
func (p *Plan) loadStage(i int) loadgen.Stage {
	st := p.Scenario.Load[i]
	ls := loadgen.Stage{Name: st.Name, Duration: st.Duration, Concurrency: st.Concurrency}
	if st.Concurrency == 0 {
		if st.RateFrom == st.RateTo {
			ls.Schedule = loadgen.Constant(st.RateFrom, st.Duration)
		} else {
			ls.Schedule = loadgen.Ramp(st.RateFrom, st.RateTo, st.Duration)
		}
		if st.Poisson {
			ls.Schedule = loadgen.Poisson(ls.Schedule, p.Scenario.Request.Seed+uint64(i))
		}
	}
	return p.shard.load().Split(ls)
}

// SimConfig is the simulator a sim: block describes: the defaults, then
// what the ScaledObject says, then the block itself.
func SimConfig(s *scenario.Scenario, so *keda.ScaledObject) (sim.Config, error) {
	cfg := sim.DefaultConfig()
	if so != nil {
		SimFromScaledObject(&cfg, so)
	}
	return cfg, s.DecodeSim(&cfg)
}
