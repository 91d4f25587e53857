package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/pflag"

	"github.com/scaleout/scaleout/internal/weburl"
	"github.com/scaleout/scaleout/loadgen"
	"github.com/scaleout/scaleout/measure"
	"github.com/scaleout/scaleout/promwatch"
	"github.com/scaleout/scaleout/scenario"
	"github.com/scaleout/scaleout/timeline"
)

// runOptions are the flags of scaleout run.
type runOptions struct {
	over          scenario.Overrides
	after         time.Duration
	out           string
	quiet         bool
	noPreflight   bool
	strictGuard   bool
	vegetaResults string
	maxRows       int
	drain         time.Duration
	guardWait     time.Duration
}

// bindSources binds the flags that say where the load goes and where the
// series come from; run and check share them.
func bindSources(fs *pflag.FlagSet, over *scenario.Overrides) {
	fs.StringVar(&over.Target, "target", "", "gateway base URL (overrides target.url; with a sim: block, uses this gateway instead of the embedded one)")
	fs.StringVar(&over.Model, "model", "", "model name to request (overrides target.model)")
	fs.StringVar(&over.Prometheus, "prometheus", "", "Prometheus base URL to query (overrides observe.prometheus and observe.scrape)")
	fs.StringArrayVar(&over.Scrape, "scrape", nil, "a /metrics page to read directly instead of Prometheus (repeatable)")
	fs.StringVar(&over.ScaledObject, "scaledobject", "", "a ScaledObject manifest to derive queries and predictions from, and to check the triggers of")
}

func (o *runOptions) bind(fs *pflag.FlagSet) {
	bindSources(fs, &o.over)
	fs.DurationVar(&o.over.Interval, "interval", 0, "sampling and timeline interval (overrides observe.interval)")
	fs.DurationVar(&o.after, "after", 0, "how long to keep watching once the load stops (overrides observe.after)")
	fs.StringArrayVar(&o.over.Expect, "expect", nil, `an expectation, e.g. "desired >= 2 within 2m" (repeatable)`)
	fs.StringVar(&o.out, "out", "", "run directory (default runs/<scenario>-<UTC time>)")
	fs.BoolVarP(&o.quiet, "quiet", "q", false, "no progress; print only the verdict and the run directory")
	fs.BoolVar(&o.noPreflight, "no-preflight", false, "skip the checks before the load (target, model, queries)")
	fs.BoolVar(&o.strictGuard, "strict-guard", false, "exit 1 when the guard finds the ScaledObject un-paused at the end")
	fs.DurationVar(&o.guardWait, "guard-wait", 5*time.Minute, "with guard: repause, how long to wait at the end for the ScaledObject to be re-paused")
	fs.StringVar(&o.vegetaResults, "vegeta-results", "", "also write vegeta's results encoding here (for vegeta report/plot)")
	fs.IntVar(&o.maxRows, "rows", 80, "most timeline rows to print (more rows are thinned; timeline.csv has all)")
	fs.DurationVar(&o.drain, "drain", 10*time.Minute, "how long to wait for requests still in flight after the load before aborting them")
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
	if fs.Changed("after") {
		o.over.After = &o.after
	}
	return run(ctx, e, fs.Arg(0), o)
}

// loaded is a scenario ready to run: checked, with its embedded simulator
// started (if it has one) and its ScaledObject read (if it names one).
type loaded struct {
	s    *scenario.Scenario
	sim  *embeddedSim
	trig *triggers
}

// loadScenario reads the scenario, applies the flags, reads the
// ScaledObject, starts the embedded simulator when the scenario has one,
// and checks the result. close shuts the simulator down.
func loadScenario(ctx context.Context, path string, over scenario.Overrides) (*loaded, error) {
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
	so, err := readScaledObject(s)
	if err != nil {
		return nil, err
	}
	l := &loaded{s: s}
	switch {
	case s.HasSim() && over.Target == "":
		if l.sim, err = startSim(ctx, s, so); err != nil {
			return nil, err
		}
	case s.HasSim():
		if err := simSeries(s, so); err != nil {
			return nil, err
		}
	}
	if so != nil {
		l.trig = applyScaledObject(s, so)
	}
	if err := s.Check(); err != nil {
		l.close()
		return nil, err
	}
	return l, nil
}

func (l *loaded) close() { l.sim.stop() }

func run(ctx context.Context, e env, path string, o runOptions) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sig := watchInterrupts(ctx, e.signals)

	// The scenario, the embedded simulator and the prompts: every
	// problem here is the user's to fix (exit 2), before anything is sent.
	l, err := loadScenario(ctx, path, o.over)
	if err != nil {
		return err
	}
	defer l.close()
	s, es := l.s, l.sim
	series := timelineSeries(s, l.trig)
	exp, err := parseExpectations(s, series)
	if err != nil {
		return err
	}
	source, err := newSource(s)
	if err != nil {
		return err
	}
	prompts, err := promptSource(s)
	if err != nil {
		return err
	}

	// Preflight: the target answers and serves the model, every query
	// answers. A failure here costs nothing yet (exit 3).
	// Ctrl-C here stops before anything is sent.
	model := s.Target.Model
	var findings []finding
	if !o.noPreflight {
		preCtx, stopPre := context.WithCancel(ctx)
		sig.set(stopPre, stopPre)
		findings, model, err = preflight(preCtx, s, source, l.trig)
		stopPre()
		if sig.count() > 0 {
			fmt.Fprintln(e.stderr, "scaleout: interrupted before the load: nothing was sent")
			return silent(exitInterrupted)
		}
		if !o.quiet || err != nil {
			printFindings(e.stderr, findings, false)
		}
		if err != nil {
			return err
		}
	}
	if model == "" {
		return usagef("%s: target.model: not set, and --no-preflight skipped asking the target which model it serves (give target.model or --model)", s.File)
	}
	s.Target.Model = model
	bodies, err := newBodies(s, model, prompts)
	if err != nil {
		return err
	}

	// The run directory, before the load: a run that fails half-way still
	// leaves its records.
	dir := o.out
	started := time.Now()
	if dir == "" {
		dir = filepath.Join("runs", s.Name+"-"+started.UTC().Format("20060102T150405Z"))
	}
	out, err := createRunDir(dir, s, o.vegetaResults)
	if err != nil {
		return withCode(exitCannotRun, err)
	}
	defer out.close()

	// The vLLM counters before the load, to check at the end that nothing
	// was lost (the embedded simulator is checked directly instead).
	var counters *counterCheck
	if es == nil {
		counters = newCounterCheck(ctx, s, source)
	}

	// The clock starts: epoch is the first stage's start.
	tcfg := timelineConfig(s, series, es)
	tl := timeline.New(tcfg)
	epoch := time.Now()
	rec := newRecorder(out, tl, s.Load, epoch, weburl.Redact(s.Target.URL+bodies.Path()))
	maxInFlight := s.MaxInFlight
	if maxInFlight == 0 {
		maxInFlight = defaultMaxInFlight()
	}
	gen, err := loadgen.New(loadgen.Config{
		URL: s.Target.URL, Header: headers(s), Bodies: bodies,
		MaxInFlight: maxInFlight, Timeout: s.RequestTimeout, Epoch: epoch,
	}, rec.Add)
	if err != nil {
		return withCode(exitUsage, err)
	}

	// Interrupts: the first stops the load and keeps everything measured;
	// the second aborts the requests still in flight.
	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	var interruptedAt atomic.Int64
	interruptedAt.Store(-1)
	sig.set(func() {
		interruptedAt.Store(int64(time.Since(epoch)))
		stopLoad()
		gen.Stop()
		fmt.Fprintln(e.stderr, "\nscaleout: stopping the load; waiting for requests in flight (Ctrl-C again to abort them)")
	}, gen.Abort)

	// The watcher samples every interval from now until the end.
	watchCtx, stopWatch := context.WithCancel(ctx)
	watchDone := make(chan struct{})
	samples := newBroadcast()
	if source != nil {
		w := &promwatch.Watcher{Eval: source, Series: s.Observe.Series, Epoch: epoch, Timeout: s.Observe.Interval}
		ticker := time.NewTicker(s.Observe.Interval)
		go func() {
			defer close(watchDone)
			defer ticker.Stop()
			w.Run(watchCtx, ticker.C, func(smp measure.Sample) {
				if l.trig != nil && len(series) > len(s.Observe.Series) {
					smp = l.trig.predict(smp, s.Observe.Series)
				}
				tl.AddSample(smp)
				samples.notify()
			})
		}()
	} else {
		close(watchDone)
	}

	prog := newProgress(e, o.quiet, s, gen, tl, epoch, maxInFlight)
	prog.start()

	// The stages, in order; each a fresh vegeta attack. What each costs the
	// client (CPU, memory, sends held back) is part of the self-check.
	usage := make([]*timeline.ClientUse, len(s.Load))
	for i, st := range s.Load {
		if loadCtx.Err() != nil {
			break
		}
		tl.StageStarted(i, time.Since(epoch))
		prog.stage(i)
		stageCtx, endStage := context.WithCancel(loadCtx)
		// until: checked after every sample while the stage runs; it stops
		// the stage early. The goroutine ends with the stage.
		var untilHeld atomic.Bool
		untilDone := make(chan struct{})
		if st.Until != nil {
			go func() {
				defer close(untilDone)
				if waitUntil(stageCtx, samples, func() bool { return exp.until[i].Holds(tl) }) {
					untilHeld.Store(true)
					gen.Stop()
				}
			}()
		} else {
			close(untilDone)
		}
		u := startUsage(gen.Live().CapReached)
		err := gen.Run(stageCtx, i, loadStage(st, s.Request.Seed+uint64(i)))
		usage[i] = u.end(gen.Live().CapReached)
		endStage()
		<-untilDone
		endedBy := "duration"
		if w := gen.Windows(); len(w) > 0 && w[len(w)-1].Stopped {
			switch {
			case loadCtx.Err() != nil && ctx.Err() == nil:
				endedBy = "interrupt"
			case untilHeld.Load():
				endedBy = "until"
			}
		}
		tl.StageEnded(i, time.Since(epoch), endedBy)
		if err != nil && loadCtx.Err() == nil {
			stopWatch()
			return withCode(exitCannotRun, fmt.Errorf("stage %s: %w", st.Name, err))
		}
	}
	loadEnd := time.Since(epoch)
	why := ""
	if loadCtx.Err() != nil {
		why = "interrupted"
	}
	tl.LoadStopped(loadEnd, why)
	prog.after()

	// After the load: keep watching for scale-in while the requests in
	// flight finish. A Ctrl-C ends the watching (the run is then partial);
	// the next one aborts the requests in flight.
	afterCtx, endAfter := context.WithCancel(ctx)
	sig.set(func() {
		interruptedAt.Store(int64(time.Since(epoch)))
		endAfter()
		fmt.Fprintln(e.stderr, "\nscaleout: ending the observation; waiting for requests in flight (Ctrl-C again to abort them)")
	}, gen.Abort)
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		drain(ctx, e, gen, o.drain)
	}()
	if source != nil && s.Observe.After > 0 && loadCtx.Err() == nil {
		deadline := time.NewTimer(s.Observe.After)
		watchScaleIn(afterCtx, samples, deadline.C, tl, tcfg.Grace+s.Observe.Interval)
		deadline.Stop()
	}
	<-drained
	endAfter()
	end := time.Since(epoch)
	stopWatch()
	<-watchDone
	prog.stop()
	if err := rec.Close(out.close); err != nil {
		fmt.Fprintf(e.stderr, "scaleout: writing requests.jsonl: %v\n", err)
	}

	// The report: timeline, expectations, guard, files, terminal.
	meta := timeline.Meta{
		Scenario: s.Name, File: s.File, Started: started,
		Target:     timeline.TargetInfo{URL: weburl.Redact(s.Target.URL), API: s.Target.API, Model: s.Target.Model, Stream: s.Target.Stream, Observation: observation(source, es)},
		CapReached: int64(gen.Live().CapReached), PeakInFlight: gen.Live().PeakInFlight, MaxInFlight: maxInFlight,
	}
	if at := time.Duration(interruptedAt.Load()); at >= 0 {
		meta.Partial = true
		meta.PartialReason = fmt.Sprintf("interrupted (Ctrl-C) at %s", scenario.FormatDuration(at))
	}
	for _, f := range findings {
		if f.level != levelOK {
			meta.Notes = append(meta.Notes, "preflight: "+f.text())
		}
	}
	report := tl.Report(end, meta)
	if es != nil {
		st := es.fleet.Stats()
		received := int64(st.Received)
		report.Server = &timeline.ServerCount{Source: "embedded simulator", Requests: &received, OK: int64(st.OK),
			OutputTokens: int64(st.GenerationTokens),
			Detail: fmt.Sprintf("served %d: %d ok, %d rejected (429), %d unavailable (503), %d invalid, %d aborted by the client",
				st.Served, st.OK, st.Rejected, st.Unavailable, st.Invalid, st.Aborted)}
	}
	for i := range report.Stages {
		report.Stages[i].Client = usage[i]
	}
	for _, w := range gen.Windows() {
		if w.Stage >= 0 && w.Stage < len(report.Stages) {
			report.Stages[w.Stage].Concurrency, report.Stages[w.Stage].Workers = w.Concurrency, w.Workers
		}
	}
	counters.finish(ctx, report, 2*s.Observe.Interval)
	exp.evaluate(report)
	timeline.CheckClient(report)
	guardFailed := applyGuard(ctx, e, sig, s, source, report, o.strictGuard, o.guardWait, s.Observe.Interval)
	if err := out.writeReport(report); err != nil {
		fmt.Fprintf(e.stderr, "scaleout: writing the report: %v\n", err)
	}
	if o.quiet {
		fmt.Fprintf(e.stdout, "verdict: %s · %s\n", report.Verdict, out.dir)
	} else {
		if err := timeline.WriteText(e.stdout, report, timeline.TextOptions{MaxRows: o.maxRows}); err != nil {
			return withCode(exitCannotRun, err)
		}
		fmt.Fprintf(e.stdout, "run directory: %s\n", out.dir)
	}
	switch {
	case meta.Partial:
		return silent(exitInterrupted)
	case report.Verdict == "fail" || guardFailed:
		return silent(exitFailed)
	}
	return nil
}

// observation says where the samples came from, for the report header.
func observation(src promwatch.Evaluator, es *embeddedSim) string {
	if src == nil {
		return ""
	}
	if es != nil {
		return src.String() + " (the embedded simulator)"
	}
	return src.String()
}

// newSource builds the Prometheus or scrape evaluator, or nil when the
// scenario observes nothing.
func newSource(s *scenario.Scenario) (promwatch.Evaluator, error) {
	o := s.Observe
	switch {
	case o.Prometheus != "":
		p, err := promwatch.NewPrometheus(o.Prometheus, o.Token, nil)
		if err != nil {
			return nil, usagef("%s: observe.prometheus: %v", s.File, err)
		}
		return p, nil
	case len(o.Scrape) > 0:
		var errs []string
		for _, ser := range o.Series {
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
		return sc, nil
	}
	return nil, nil
}

// timelineConfig is the timeline's view of the scenario. The prediction's
// grace is one HPA sync (the embedded simulator's, or Kubernetes' 15 s)
// plus one sample.
func timelineConfig(s *scenario.Scenario, series []measure.Series, es *embeddedSim) timeline.Config {
	sync := 15 * time.Second
	if es != nil {
		sync = es.cfg.HPASync
	}
	c := timeline.Config{Interval: s.Observe.Interval, Series: series, Threshold: s.Threshold,
		SLO: timeline.SLO{TTFT: s.SLO.TTFT, TPOT: s.SLO.TPOT, E2E: s.SLO.E2E}, Grace: sync + s.Observe.Interval}
	for i, st := range s.Load {
		plan := timeline.StagePlan{Name: st.Name, Plan: strings.TrimPrefix(st.String(), st.Name+": "),
			Duration: st.Duration, RateFrom: st.RateFrom, RateTo: st.RateTo, Concurrency: st.Concurrency}
		if st.Concurrency == 0 {
			// The stage's own arrivals: a fresh schedule from the same seed
			// has the same ones.
			plan.Due = func(d time.Duration) float64 {
				return float64(loadgen.Due(loadStage(st, s.Request.Seed+uint64(i)).Schedule, d))
			}
		}
		c.Stages = append(c.Stages, plan)
	}
	return c
}

// loadStage turns a scenario stage into the load generator's.
func loadStage(st scenario.Stage, seed uint64) loadgen.Stage {
	ls := loadgen.Stage{Name: st.Name, Duration: st.Duration, Concurrency: st.Concurrency}
	if st.Concurrency == 0 {
		if st.RateFrom == st.RateTo {
			ls.Schedule = loadgen.Constant(st.RateFrom, st.Duration)
		} else {
			ls.Schedule = loadgen.Ramp(st.RateFrom, st.RateTo, st.Duration)
		}
		if st.Poisson {
			ls.Schedule = loadgen.Poisson(ls.Schedule, seed)
		}
	}
	return ls
}

// watchScaleIn waits after the load until the deadline, the end of ctx,
// or the run has seen what it came for: every replica series that rose is
// back where it started for two samples in a row, or, for one grace period
// after the load, nothing rose and nothing is queued (there is no scale-in
// to wait for).
func watchScaleIn(ctx context.Context, samples *broadcast, deadline <-chan time.Time, tl *timeline.Timeline, grace time.Duration) {
	settled := 0
	idleSince := time.Time{}
	for {
		ch := samples.wait()
		select {
		case <-ctx.Done():
			return
		case <-deadline:
			return
		case <-ch:
			if tl.ScaledIn() {
				settled++
				if settled >= 2 {
					tl.Add(timeline.Event{T: tl.Latest().At.Seconds(), Kind: timeline.Note, Text: "scale-in seen: observation ends"})
					return
				}
			} else {
				settled = 0
			}
			if !tl.Idle() {
				idleSince = time.Time{}
				continue
			}
			if idleSince.IsZero() {
				idleSince = time.Now()
			}
			if time.Since(idleSince) >= grace {
				tl.Add(timeline.Event{T: tl.Latest().At.Seconds(), Kind: timeline.Note,
					Text: "nothing rose and nothing is queued: observation ends (no scale-in to wait for)"})
				return
			}
		}
	}
}

// drain waits for the requests still in flight, at most limit after the
// load, then aborts them; an aborted request (here or by a second Ctrl-C)
// still reaches the records, which drain waits for too.
func drain(ctx context.Context, e env, gen *loadgen.Generator, limit time.Duration) {
	const quiet = 5 * time.Second // most runs drain within this: say nothing
	wctx, cancel := context.WithTimeout(ctx, min(quiet, limit))
	err := gen.Wait(wctx)
	cancel()
	if err != nil && limit > quiet && gen.Live().InFlight > 0 {
		fmt.Fprintf(e.stderr, "scaleout: %d requests still in flight; waiting for them (at most %s after the load, --drain sets it; Ctrl-C aborts them)\n",
			gen.Live().InFlight, scenario.FormatDuration(limit))
		wctx, cancel = context.WithTimeout(ctx, limit-quiet)
		err = gen.Wait(wctx)
		cancel()
	}
	if err != nil && gen.Live().InFlight > 0 {
		fmt.Fprintf(e.stderr, "scaleout: aborting %d requests still in flight after %s\n", gen.Live().InFlight, scenario.FormatDuration(limit))
		gen.AbortAs(measure.Timeout, "no answer within --drain "+scenario.FormatDuration(limit)+" after the load")
	}
	// Aborted requests end at once; give them a moment to be recorded.
	wctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = gen.Wait(wctx)
}

// waitUntil calls cond after every sample until it holds (true) or ctx
// ends (false).
func waitUntil(ctx context.Context, samples *broadcast, cond func() bool) bool {
	for {
		ch := samples.wait()
		if cond() {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-ch:
		}
	}
}

// broadcast wakes every waiter when a new sample has arrived.
type broadcast struct {
	mu sync.Mutex
	ch chan struct{}
}

func newBroadcast() *broadcast { return &broadcast{ch: make(chan struct{})} }

// wait returns a channel closed at the next notify.
func (b *broadcast) wait() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.ch
}

func (b *broadcast) notify() {
	b.mu.Lock()
	defer b.mu.Unlock()
	close(b.ch)
	b.ch = make(chan struct{})
}

// interrupts hands each Ctrl-C to what the run is doing: set gives the
// handlers of the first and of every later interrupt for the phase that
// starts. The count survives phase changes, so a first Ctrl-C during the
// load makes the next one, even after the load, the second.
type interrupts struct {
	mu            sync.Mutex
	n             int
	first, second func()
}

func watchInterrupts(ctx context.Context, signals <-chan os.Signal) *interrupts {
	in := &interrupts{}
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-signals:
				in.mu.Lock()
				in.n++
				h := in.second
				if in.n == 1 {
					h = in.first
				}
				in.mu.Unlock()
				if h != nil {
					h()
				}
			}
		}
	}()
	return in
}

func (in *interrupts) set(first, second func()) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.first, in.second = first, second
}

func (in *interrupts) count() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.n
}
