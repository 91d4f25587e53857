package run

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/scaleout/scaleout/internal/atomicfile"
	"github.com/scaleout/scaleout/internal/weburl"
	"github.com/scaleout/scaleout/kube"
	"github.com/scaleout/scaleout/loadgen"
	"github.com/scaleout/scaleout/measure"
	"github.com/scaleout/scaleout/promwatch"
	"github.com/scaleout/scaleout/scenario"
	"github.com/scaleout/scaleout/timeline"
)

// Options are how a plan is run: the command's flags and what it wires in.
type Options struct {
	Out         string        // run directory; "" for runs/<scenario>-<UTC time>
	NoPreflight bool          // skip the checks before the load
	StrictGuard bool          // a guard that finds the ScaledObject un-paused fails the run
	GuardWait   time.Duration // how long the guard waits for the re-pause
	Drain       time.Duration // how long to wait for requests in flight after the load
	// DownscaleWindow is the cluster's
	// --horizontal-pod-autoscaler-downscale-stabilization: with it the
	// predicted desired holds the highest prediction of that window, as the
	// HPA holds desired (a ScaledObject's own scaleDown window wins). 0: the
	// prediction is the instant recommendation.
	DownscaleWindow time.Duration
	VegetaResults   string // also write vegeta's results encoding here

	Signals <-chan os.Signal // interrupts: the first stops the load, the next aborts requests in flight
	Log     io.Writer        // what the run says as it goes (stderr)
	Display Display          // the live view; nil for none

	fs atomicfile.FS // where the run directory is written; nil: the OS (tests inject a full disk)
}

// Display is the live view of a run (the command's progress bars or
// lines). Its methods are called in order from the run's goroutine.
type Display interface {
	Preflight(findings []Finding, err error) // the preflight's findings, before the load
	// Rest shows the fleet read before the load while the run waits for
	// it to be at rest (limit: observe.rest_wait; 0 does not wait); done
	// on the last reading, when the wait is over either way.
	Rest(b *timeline.Baseline, limit time.Duration, done bool)
	Start(l Live) // the load is about to start
	Stage(i int)  // stage i starts
	After()       // the load is over; the observation goes on
	Stop()        // the run is over: stop drawing before the report is printed
}

// Live is what a display may read while the run goes on.
type Live struct {
	Plan        *Plan
	Generator   *loadgen.Generator
	Timeline    *timeline.Timeline
	Epoch       time.Time // the clock's zero: the first stage's start
	MaxInFlight int
}

// Result is a run that happened: its report (written to Dir) and verdict.
type Result struct {
	Report *timeline.Report
	Dir    string
	// WriteErr is why the run directory could not be written whole; nil
	// when every file was written.
	WriteErr error
}

// runner is one execution of a plan.
type runner struct {
	p     *Plan
	o     Options
	sig   *interrupts
	clock stageClock         // a shard's stages on the common clock
	abort context.CancelFunc // ends the run (a goroutine panicked)
	// pauser is the guard that acts (guard: act); nil otherwise.
	pauser *kube.Pauser
	// repaused: the report's guard has tried to restore the pause.
	repaused bool

	panicMu  sync.Mutex
	panicked *goPanic // the first panic recovered in a goroutine of the run
}

// goPanic is a panic recovered in a goroutine, with where it happened.
type goPanic struct {
	v     any
	stack []byte
}

// recovered takes a panic recovered in one of the run's goroutines: the
// first is kept and the run is ended, so the guard still restores what it
// changed before the panic is raised again (reraise).
func (r *runner) recovered(v any) {
	r.panicMu.Lock()
	if r.panicked == nil {
		r.panicked = &goPanic{v: v, stack: debug.Stack()}
	}
	r.panicMu.Unlock()
	r.abort()
}

// safe runs f with a recover that routes a panic to recovered.
func (r *runner) safe(f func()) func() {
	return func() {
		defer func() {
			if v := recover(); v != nil {
				r.recovered(v)
			}
		}()
		f()
	}
}

// reraise raises a panic recovered in a goroutine again, on the run's own
// goroutine, after everything else Run defers.
func (r *runner) reraise() {
	r.panicMu.Lock()
	p := r.panicked
	r.panicMu.Unlock()
	if p != nil {
		panic(fmt.Sprintf("%v\n\ngoroutine that panicked:\n%s", p.v, p.stack))
	}
}

// Run executes the plan: the preflight, the stages in order while the
// series are sampled, the observation after the load, the drain, the
// counters, the guard and the report, which is written on every path
// once the first request may have been sent. The error is the run's own
// failure (preflight, run directory, load generator); an interrupt is not
// an error but a partial report.
func Run(ctx context.Context, p *Plan, o Options) (res *Result, err error) {
	if o.Log == nil {
		o.Log = io.Discard
	}
	if o.Display == nil {
		o.Display = noDisplay{}
	}
	if o.fs == nil {
		o.fs = atomicfile.OS
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	r := &runner{p: p, o: o, abort: cancel}
	// A panic in a goroutine of the run is recovered there and ends the
	// run; it is raised again here once the run is over and the guard has
	// restored what it changed (the deferred calls run last to first).
	defer r.reraise()
	r.sig = watchInterrupts(ctx, o.Signals, r.recovered)
	if p.Scenario.Guard == "act" && p.guards() { // a shard other than 0 leaves the guard to shard 0
		defer r.guardNet(&err)
		if err := r.unpause(ctx); err != nil {
			return nil, err
		}
	}
	// The source lists what is there once the guard has acted (the HPA
	// KEDA made), then follows every change.
	if err := p.Kube.start(ctx, r.recovered); err != nil {
		return nil, err
	}
	return r.run(ctx)
}

func (r *runner) run(ctx context.Context) (*Result, error) {
	s := r.p.Scenario

	// Preflight: the target answers and serves the model, every query
	// answers. A failure here costs nothing yet (exit 3); an interrupt
	// here stops before anything is sent.
	model := s.Target.Model
	var findings []Finding
	if !r.o.NoPreflight {
		preCtx, stopPre := context.WithCancel(ctx)
		r.sig.set(stopPre, stopPre)
		var err error
		findings, model, err = preflight(preCtx, r.p)
		stopPre()
		if r.sig.count() > 0 {
			return nil, ErrInterrupted
		}
		r.o.Display.Preflight(findings, err)
		if err != nil {
			return nil, err
		}
	}
	if model == "" {
		return nil, usagef("%s: target.model: not set, and --no-preflight skipped asking the target which model it serves (give target.model or --model)", s.File)
	}
	bodies, err := r.p.bodies(model)
	if err != nil {
		return nil, err
	}

	// The fleet before the load: the baseline the KPIs and expectations
	// are measured from, once it is at rest (or refused when it never is).
	base, baseAt, err := r.awaitRest(ctx)
	if err != nil {
		return nil, err
	}

	// The run directory, before the load: a run that fails half-way still
	// leaves its records.
	started := time.Now()
	dir := r.o.Out
	if dir == "" {
		dir = filepath.Join("runs", s.Name+"-"+started.UTC().Format("20060102T150405Z"))
	}
	out, err := createRunDir(r.o.fs, dir, s, r.o.VegetaResults)
	if err != nil {
		return nil, cannotRun(err)
	}
	defer out.close()

	// The vLLM counters before the load, to check at the end that nothing
	// was lost (the embedded simulator is checked directly instead).
	var counters *counterCheck
	if !r.p.Sim.Embedded() && !r.p.shard.Sharded() {
		counters = newCounterCheck(ctx, s, r.p.Source)
	}

	// The clock starts: epoch is the first stage's start (a shard's: the
	// common start, which it waits for).
	tcfg := r.p.timelineConfig()
	epoch, err := r.epoch()
	if err != nil {
		return nil, err
	}
	if base != nil {
		base.T = -math.Round(epoch.Sub(baseAt).Seconds()*1000) / 1000
	}
	tcfg.Baseline = base
	tl := timeline.New(tcfg)
	rec := newRecorder(out, tl, s.Load, epoch, weburl.Redact(s.Target.URL+bodies.Path()))
	maxInFlight := s.MaxInFlight
	if maxInFlight == 0 {
		maxInFlight = defaultMaxInFlight()
	}
	gen, err := loadgen.New(loadgen.Config{
		URL: s.Target.URL, Header: headers(s), Bodies: bodies,
		MaxInFlight: maxInFlight, Timeout: s.RequestTimeout, Epoch: epoch, Redact: r.p.Secrets.Text,
	}, rec.Add)
	if err != nil {
		return nil, &Error{Class: Usage, Err: err}
	}
	if err := r.awaitStart(ctx, epoch); err != nil {
		return nil, err
	}

	// Interrupts: the first stops the load and keeps everything measured;
	// the second aborts the requests still in flight.
	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	var interruptedAt atomic.Int64
	interruptedAt.Store(-1)
	r.sig.set(func() {
		interruptedAt.Store(int64(time.Since(epoch)))
		stopLoad()
		gen.Stop()
		fmt.Fprintf(r.o.Log, "\nscaleout: %s: stopping the load; waiting for requests in flight (%s again to abort them)\n", r.sig.name(), r.sig.name())
	}, gen.Abort)

	// The watcher samples every interval from now until the end; the cap
	// watcher notes when max_in_flight holds sends back.
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	var background sync.WaitGroup
	samples := newBroadcast()
	if r.p.Source != nil {
		// A sample's deadline is the interval: a /metrics page read later
		// would give values of a later moment than the sample's.
		w := &promwatch.Watcher{Eval: counters.tap(r.p.Source), Series: s.Observe.Series, Epoch: epoch, Timeout: s.Observe.Interval}
		ticker := time.NewTicker(s.Observe.Interval)
		var stab *stabilizer
		if r.p.Predicts {
			stab = newStabilizer(r.p.Triggers.so, r.o.DownscaleWindow)
		}
		background.Go(r.safe(func() {
			defer ticker.Stop()
			w.Run(watchCtx, ticker.C, func(smp measure.Sample) {
				if r.p.Predicts {
					smp = stab.apply(r.p.Triggers.predict(smp, s.Observe.Series))
				}
				tl.AddSample(smp)
				samples.notify()
			})
		}))
	}
	background.Go(r.safe(func() { watchCap(watchCtx, gen, tl, epoch, maxInFlight) }))

	r.o.Display.Start(Live{Plan: r.p, Generator: gen, Timeline: tl, Epoch: epoch, MaxInFlight: maxInFlight})

	// The stages, in order; each a fresh vegeta attack. What each costs
	// the client (CPU, memory, sends held back) is part of the self-check.
	// A failed stage ends the load; the run still drains and reports.
	usage := make([]*timeline.ClientUse, len(s.Load))
	var failure error
	for i, st := range s.Load {
		if loadCtx.Err() != nil {
			break
		}
		start, startOff := r.stageStart(epoch)
		tl.StageStarted(i, startOff)
		r.o.Display.Stage(i)
		before := gen.Live()
		by, err := r.stage(loadCtx, i, start, gen, tl, samples, usage)
		tl.StageEnded(i, time.Since(epoch), by)
		// The stage's max_in_flight (the timeline adds its rows' ends): the
		// client's peak when it rose during the stage, which no instant of
		// the stage passes; else the more of its start's and end's.
		after := gen.Live()
		peak := max(before.InFlight, after.InFlight)
		if after.PeakInFlight > before.PeakInFlight {
			peak = after.PeakInFlight
		}
		tl.StageInFlight(i, peak)
		r.stageEnded(i, startOff, by)
		if err != nil {
			failure = cannotRun(fmt.Errorf("stage %s: %w", st.Name, err))
			break
		}
	}
	loadEnd := time.Since(epoch)
	why := ""
	switch {
	case loadCtx.Err() != nil:
		why = "interrupted"
	case failure != nil:
		why = "the load generator failed"
	}
	tl.LoadStopped(loadEnd, why)
	r.o.Display.After()

	// After the load: keep watching for scale-in while the requests in
	// flight finish. An interrupt ends the watching (the run is then
	// partial); the next one aborts the requests in flight.
	afterCtx, endAfter := context.WithCancel(ctx)
	r.sig.set(func() {
		interruptedAt.Store(int64(time.Since(epoch)))
		endAfter()
		fmt.Fprintf(r.o.Log, "\nscaleout: %s: ending the observation; waiting for requests in flight (%s again to abort them)\n", r.sig.name(), r.sig.name())
	}, gen.Abort)
	drained := make(chan struct{})
	go r.safe(func() {
		defer close(drained)
		drain(ctx, r.o.Log, gen, r.o.Drain)
	})()
	if r.p.Source != nil && s.Observe.After > 0 && loadCtx.Err() == nil && failure == nil {
		deadline := time.NewTimer(s.Observe.After)
		watchScaleIn(afterCtx, samples, deadline.C, tl, tcfg.Grace+s.Observe.Interval)
		deadline.Stop()
	}
	<-drained
	endAfter()
	end := time.Since(epoch)
	stopWatch()
	background.Wait()
	r.o.Display.Stop()
	res := &Result{Dir: out.dir}
	res.WriteErr = rec.Close(out.close)
	lines := out.requests.Count()

	// The report: timeline, counters, expectations, client check, guard,
	// verdict, files.
	meta := timeline.Meta{
		Scenario: s.Name, File: s.File, Started: started,
		Target:     timeline.TargetInfo{URL: weburl.Redact(s.Target.URL), API: s.Target.API, Model: model, Stream: s.Target.Stream, Observation: r.p.Observation()},
		CapReached: int64(gen.Live().CapReached), PeakInFlight: gen.Live().PeakInFlight, MaxInFlight: maxInFlight,
	}
	switch at := time.Duration(interruptedAt.Load()); {
	case at >= 0:
		meta.Partial = true
		meta.PartialReason = fmt.Sprintf("interrupted (%s) at %s", r.sig.name(), scenario.FormatDuration(at))
	case failure != nil:
		meta.Partial = true
		meta.PartialReason = failure.Error()
	}
	for _, f := range findings {
		if f.Level != OK {
			meta.Notes = append(meta.Notes, "preflight: "+f.String())
		}
	}
	meta.Notes = append(meta.Notes, r.p.Notes...)
	apiEvents := r.p.Kube.addEvents(tl, epoch)
	rep := tl.Report(end, meta)
	r.noteShard(rep)
	if r.p.Kube != nil {
		apiKPIs(rep, apiEvents, loadEnd.Seconds())
	}
	rep.RequestsJSONL = &lines
	if lines < rep.Load.Requests {
		rep.Notes = append(rep.Notes, fmt.Sprintf("requests.jsonl holds %d of the %d requests: %v", lines, rep.Load.Requests, res.WriteErr))
	}
	res.Report = rep
	if r.p.Sim.Embedded() {
		rep.Server = simCount(r.p.Sim)
	}
	for i := range rep.Stages {
		rep.Stages[i].Client = usage[i]
	}
	for _, w := range gen.Windows() {
		if w.Stage >= 0 && w.Stage < len(rep.Stages) {
			rep.Stages[w.Stage].Concurrency, rep.Stages[w.Stage].Workers = w.Concurrency, w.Workers
		}
	}
	counters.finish(ctx, rep, 2*s.Observe.Interval)
	rep.Expectations = evaluate(r.p.Expect, rep)
	// A scenario not read from a file has no client_check: CheckClient
	// then judges by its defaults and records them.
	if cc := s.ClientCheck; cc.MaxSendLag > 0 {
		rep.ClientCheck = &timeline.ClientCheck{MaxSendLagMS: float64(cc.MaxSendLag.Microseconds()) / 1000, MaxShortfall: cc.MaxShortfall}
	}
	timeline.CheckClient(rep)
	r.guard(ctx, rep)
	// The verdict, then the files. When they cannot all be written the
	// verdict says so, and the files are tried once more with it: none of
	// them may claim a pass the run directory does not hold.
	rep.Verdict = Decide(rep, r.o.StrictGuard, res.WriteErr)
	hist := r.histograms(tl, end)
	if err := out.writeReport(rep, hist); err != nil {
		if res.WriteErr != nil {
			err = fmt.Errorf("%w; %w", res.WriteErr, err)
		}
		res.WriteErr = err
		if v := Decide(rep, r.o.StrictGuard, res.WriteErr); v != rep.Verdict {
			rep.Verdict = v
			_ = out.writeReport(rep, hist)
		}
	}
	return res, failure
}

// stage runs stage i from start (zero: now) until its duration, its until
// or the end of ctx, and says why it ended.
func (r *runner) stage(ctx context.Context, i int, start time.Time, gen *loadgen.Generator, tl *timeline.Timeline, samples *broadcast, usage []*timeline.ClientUse) (timeline.EndedBy, error) {
	stageCtx, endStage := context.WithCancel(ctx)
	defer endStage()
	// until: checked after every sample while the stage runs; it stops
	// the stage early. The goroutine ends with the stage.
	var untilHeld atomic.Bool
	var untilDone sync.WaitGroup
	if ex := r.p.Until[i]; ex != nil {
		live, err := timeline.NewLive(ex)
		if err != nil {
			return timeline.ByError, err // Prepare has checked it: not reached
		}
		untilDone.Go(r.safe(func() {
			if waitUntil(stageCtx, samples, func() bool { return live.Holds(tl) }) {
				r.clock.untilAt.Store(int64(tl.Latest().At))
				untilHeld.Store(true)
				gen.Stop()
			}
		}))
	}
	u := startUsage(gen.Live().CapReached)
	ls := r.p.loadStage(i)
	ls.Start = start
	err := gen.Run(stageCtx, i, ls)
	usage[i] = u.end(gen.Live().CapReached)
	endStage()
	untilDone.Wait()
	switch w := gen.Windows(); {
	case err != nil && ctx.Err() == nil:
		return timeline.ByError, err
	case len(w) == 0 || !w[len(w)-1].Stopped:
		return timeline.ByDuration, nil
	case ctx.Err() != nil:
		return timeline.ByInterrupt, nil
	case untilHeld.Load():
		return timeline.ByUntil, nil
	}
	return timeline.ByDuration, nil
}

// simCount is what the embedded simulator served, beside the client's
// counts.
func simCount(es *Sim) *timeline.ServerCount {
	st := es.Fleet.Stats()
	received := int64(st.Received)
	return &timeline.ServerCount{Source: "embedded simulator", Requests: &received, OK: int64(st.OK),
		OutputTokens: int64(st.GenerationTokens),
		Detail: fmt.Sprintf("served %d: %d ok, %d rejected (429), %d unavailable (503), %d invalid, %d aborted by the client",
			st.Served, st.OK, st.Rejected, st.Unavailable, st.Invalid, st.Aborted)}
}

// watchCap notes in the timeline each time max_in_flight has held sends
// back since the last look (twice a second).
func watchCap(ctx context.Context, gen *loadgen.Generator, tl *timeline.Timeline, epoch time.Time, maxInFlight int) {
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	var last uint64
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			if n := gen.Live().CapReached; n > last {
				last = n
				tl.Capped(now.Sub(epoch), maxInFlight)
			}
		}
	}
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
func drain(ctx context.Context, log io.Writer, gen *loadgen.Generator, limit time.Duration) {
	const quiet = 5 * time.Second // most runs drain within this: say nothing
	wctx, cancel := context.WithTimeout(ctx, min(quiet, limit))
	err := gen.Wait(wctx)
	cancel()
	if err != nil && limit > quiet && gen.Live().InFlight > 0 {
		fmt.Fprintf(log, "scaleout: %d requests still in flight; waiting for them (at most %s after the load, --drain sets it; Ctrl-C aborts them)\n",
			gen.Live().InFlight, scenario.FormatDuration(limit))
		wctx, cancel = context.WithTimeout(ctx, limit-quiet)
		err = gen.Wait(wctx)
		cancel()
	}
	if err != nil && gen.Live().InFlight > 0 {
		fmt.Fprintf(log, "scaleout: aborting %d requests still in flight after %s\n", gen.Live().InFlight, scenario.FormatDuration(limit))
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

// interrupts hands each interrupt to what the run is doing: set gives the
// handlers of the first and of every later interrupt for the phase that
// starts. The count survives phase changes, so a first Ctrl-C during the
// load makes the next one, even after the load, the second.
type interrupts struct {
	mu            sync.Mutex
	n             int
	sig           os.Signal // the first interrupt
	first, second func()
}

func watchInterrupts(ctx context.Context, signals <-chan os.Signal, onPanic func(any)) *interrupts {
	in := &interrupts{}
	if signals == nil {
		return in
	}
	go func() {
		defer func() {
			if v := recover(); v != nil {
				onPanic(v)
			}
		}()
		for {
			select {
			case <-ctx.Done():
				return
			case sig := <-signals:
				in.mu.Lock()
				in.n++
				if in.n == 1 {
					in.sig = sig
				}
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

// name is how the first interrupt is told to the user: Ctrl-C for an
// interrupt, SIGTERM for a termination (kubectl delete, a CI timeout).
func (in *interrupts) name() string {
	in.mu.Lock()
	defer in.mu.Unlock()
	return signalName(in.sig)
}

func signalName(sig os.Signal) string {
	switch sig {
	case nil, os.Interrupt:
		return "Ctrl-C"
	case syscall.SIGTERM:
		return "SIGTERM"
	case syscall.SIGHUP:
		return "SIGHUP"
	}
	return sig.String()
}

func (in *interrupts) count() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.n
}

// noDisplay shows nothing.
type noDisplay struct{}

func (noDisplay) Preflight([]Finding, error)                   {}
func (noDisplay) Rest(*timeline.Baseline, time.Duration, bool) {}
func (noDisplay) Start(Live)                                   {}
func (noDisplay) Stage(int)                                    {}
func (noDisplay) After()                                       {}
func (noDisplay) Stop()                                        {}

// Check is scaleout check: the request bodies are rendered once (with a
// stand-in model: the preflight finds the real one), then the preflight.
func Check(ctx context.Context, p *Plan) ([]Finding, error) {
	if _, err := p.bodies("model"); err != nil {
		return nil, err
	}
	if err := p.Kube.start(ctx, nil); err != nil {
		return nil, err
	}
	findings, _, err := preflight(ctx, p)
	return findings, err
}
