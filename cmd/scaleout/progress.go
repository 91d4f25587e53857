package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"

	"github.com/scaleout/scaleout/loadgen"
	"github.com/scaleout/scaleout/platform"
	"github.com/scaleout/scaleout/run"
	"github.com/scaleout/scaleout/scenario"
	"github.com/scaleout/scaleout/timeline"
)

// progress watches the run twice a second. It notes in the timeline when
// max_in_flight holds sends back, and it shows the run's state on stderr:
// a live bar per stage (mpb) on a terminal, a plain line every few seconds
// otherwise, nothing with --quiet.
type progress struct {
	e      env
	quiet  bool
	s      *scenario.Scenario
	gen    *loadgen.Generator
	tl     *timeline.Timeline
	epoch  time.Time
	cancel context.CancelFunc
	done   chan struct{}

	mu         sync.Mutex
	stageIdx   int // -1 before the first stage and after the last
	stageStart time.Time
	line       string // the latest status, shared by both displays
	bars       *mpb.Progress
	bar        *mpb.Bar
	final      *atomic.Pointer[string] // the running bar's text once it is complete

	restWhy  string    // what the rest line last said the run waits for
	restTold time.Time // and when (plain lines)
}

var _ run.Display = (*progress)(nil)

func newProgress(e env, quiet bool) *progress {
	return &progress{e: e, quiet: quiet, stageIdx: -1, done: make(chan struct{})}
}

// Preflight prints the findings that are not ok (all of them when the
// preflight failed, even with --quiet).
func (p *progress) Preflight(findings []run.Finding, err error) {
	if !p.quiet || err != nil {
		printFindings(p.e.stderr, findings, false)
	}
}

// Rest shows what the run waits for before the load: on a terminal one
// line rewritten in place, otherwise a line when the reason changes (and
// every half minute). --quiet shows nothing.
func (p *progress) Rest(b *timeline.Baseline, limit time.Duration, done bool) {
	if p.quiet {
		return
	}
	waited := time.Duration(b.WaitedS * float64(time.Second))
	why := strings.Join(b.NotAtRest, "; ")
	var line string
	switch {
	case b.AtRest:
		line = fmt.Sprintf("scaleout: the fleet is at rest after %s; starting the load", clockOf(waited))
	case limit == 0:
		line = fmt.Sprintf("scaleout: the fleet is not at rest (%s): running from where it is (--rest-wait 0); expectations that already held before the load do not count", why)
	case done: // the run refuses, and says why
		if p.e.stderrTTY {
			fmt.Fprintln(p.e.stderr)
		}
		return
	default:
		line = fmt.Sprintf("scaleout: waiting for the fleet to be at rest: %s · %s of at most %s (--rest-wait sets it; 0 runs from where it is)", why, clockOf(waited), clockOf(limit))
	}
	if p.e.stderrTTY {
		fmt.Fprintf(p.e.stderr, "\r\033[K%s", line)
		if done {
			fmt.Fprintln(p.e.stderr)
		}
		return
	}
	if done || why != p.restWhy || time.Since(p.restTold) >= 30*time.Second {
		p.restWhy, p.restTold = why, time.Now()
		fmt.Fprintln(p.e.stderr, line)
	}
}

const progressEvery = 500 * time.Millisecond

// Start starts the display of the load.
func (p *progress) Start(l run.Live) {
	p.s, p.gen, p.tl, p.epoch = l.Plan.Scenario, l.Generator, l.Timeline, l.Epoch
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	if p.e.stderrTTY && !p.quiet {
		p.bars = mpb.NewWithContext(ctx, mpb.WithOutput(p.e.stderr), mpb.WithRefreshRate(progressEvery), mpb.WithWidth(24))
	}
	go p.loop(ctx)
}

func (p *progress) loop(ctx context.Context) {
	defer close(p.done)
	tick := time.NewTicker(progressEvery)
	defer tick.Stop()
	plainEvery := max(5*time.Second, p.s.Observe.Interval)
	var lastPlain time.Time
	// The achieved rate is taken over the last two seconds of ticks.
	const window = 4
	var sent [window]uint64
	var at [window]time.Time
	n := 0
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			live := p.gen.Live()
			// The oldest of the last ticks (or the first one), then this one
			// takes its slot.
			oldest := 0
			if n >= window {
				oldest = n % window
			}
			rate := 0.0
			if n > 0 {
				if d := now.Sub(at[oldest]).Seconds(); d > 0 {
					rate = float64(live.Sent-sent[oldest]) / d
				}
			}
			sent[n%window], at[n%window] = live.Sent, now
			n++
			line := p.status(now, live, rate)
			p.mu.Lock()
			p.line = line
			p.mu.Unlock()
			if p.bars == nil && !p.quiet && now.Sub(lastPlain) >= plainEvery {
				lastPlain = now
				fmt.Fprintf(p.e.stderr, "%s %s\n", clockOf(now.Sub(p.epoch)), line)
			}
		}
	}
}

// status is one line: the stage, the rate against the plan, the requests
// and the latest samples.
func (p *progress) status(now time.Time, live loadgen.Live, rate float64) string {
	p.mu.Lock()
	i, start := p.stageIdx, p.stageStart
	p.mu.Unlock()
	var b strings.Builder
	if i >= 0 {
		st := p.s.Load[i]
		el := now.Sub(start)
		fmt.Fprintf(&b, "%s %s/%s", st.Name, clockOf(el), clockOf(st.Duration))
		if st.Concurrency > 0 {
			fmt.Fprintf(&b, " · %.1f/s (concurrency %d)", rate, st.Concurrency)
		} else {
			plan := timeline.StagePlan{Duration: st.Duration, RateFrom: st.RateFrom, RateTo: st.RateTo}
			fmt.Fprintf(&b, " · %.1f/s (target %.1f)", rate, plan.RateAt(el))
		}
	} else {
		b.WriteString("after the load")
	}
	fmt.Fprintf(&b, " · in flight %d · done %d · err %d", live.InFlight, live.Done, live.Errors)
	// One sample for all the values, so they are from the same instant.
	smp := p.tl.Latest()
	for _, name := range []string{platform.Waiting, platform.Desired, platform.Current, platform.Ready} {
		v, observed := p.tl.ValueIn(smp, name)
		switch {
		case !observed: // not a series of this run, or no sample yet
		case v.OK():
			fmt.Fprintf(&b, " · %s %s", name, run.FormatValue(v))
		default:
			fmt.Fprintf(&b, " · %s ?", name)
		}
	}
	return b.String()
}

func (p *progress) snapshot() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.line
}

// Stage shows stage i starting.
func (p *progress) Stage(i int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stageIdx, p.stageStart = i, time.Now()
	if p.bars == nil {
		return
	}
	p.completeBar()
	st := p.s.Load[i]
	p.bar = p.newBar(st.Name, p.stageStart, st.Duration, func(s string) string { return strings.TrimPrefix(s, st.Name+" ") })
}

// After shows the observation after the load.
func (p *progress) After() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stageIdx = -1
	if p.bars == nil {
		return
	}
	p.completeBar()
	after := p.s.Observe.After
	if after <= 0 {
		return
	}
	p.bar = p.newBar("after", time.Now(), after, func(s string) string { return s })
}

// newBar adds a bar for a span of d from start. It fills with the time
// gone until it is complete, shows the live status while it runs and
// keeps the last one once it is complete. The caller holds p.mu.
func (p *progress) newBar(name string, start time.Time, d time.Duration, text func(string) string) *mpb.Bar {
	final := &atomic.Pointer[string]{}
	p.final = final
	bar := p.bars.New(d.Milliseconds(), mpb.BarStyle(),
		mpb.PrependDecorators(decor.Name(name, decor.WC{W: 8, C: decor.DindentRight})),
		mpb.AppendDecorators(decor.Any(func(decor.Statistics) string {
			if f := final.Load(); f != nil {
				return text(*f)
			}
			return text(p.snapshot())
		})),
	)
	go func() {
		t := time.NewTicker(progressEvery)
		defer t.Stop()
		for !bar.Completed() && !bar.Aborted() {
			bar.SetCurrent(min(time.Since(start).Milliseconds(), d.Milliseconds()))
			<-t.C
		}
	}()
	return bar
}

// completeBar freezes the running bar's text and completes it. The caller
// holds p.mu.
func (p *progress) completeBar() {
	if p.bar != nil {
		last := p.line
		p.final.Store(&last)
		p.bar.SetTotal(-1, true)
		p.bar = nil
	}
}

// Stop ends the display before the report is printed.
func (p *progress) Stop() {
	if p.cancel == nil {
		return // never started
	}
	p.cancel()
	<-p.done
	p.mu.Lock()
	p.completeBar()
	bars := p.bars
	p.mu.Unlock()
	if bars != nil {
		bars.Wait()
	}
}

// clockOf prints d as the timeline's clock does, in whole seconds: the
// display changes twice a second and tenths would only flicker.
func clockOf(d time.Duration) string {
	return timeline.Clock(d.Round(time.Second).Seconds())
}
