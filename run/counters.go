package run

import (
	"context"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/scaleout/scaleout/platform"
	"github.com/scaleout/scaleout/promwatch"
	"github.com/scaleout/scaleout/scenario"
	"github.com/scaleout/scaleout/timeline"
)

// counterCheck compares what the client counted with what vLLM counted:
// vllm:request_success_total (aborts left out) and
// vllm:generation_tokens_total on the pods observe.vllm selects. Each
// series is followed on its own (a tally), as Prometheus' increase would
// but in whole counts: a series that goes away keeps its last value, a
// value below the last one is a restart that counted again from 0, and a
// series the start did not have counts from 0. Through direct scrapes the
// tally takes every sample the run takes; through Prometheus it is rebuilt
// at the end from every sample stored over the run (the server's clock
// decides what is before the load). What a pod served after its last
// scrape before it went away or restarted is in no counter: when the
// server counted less than the client, the report names those pods
// instead of calling the difference a loss.
type counterCheck struct {
	src     promwatch.Evaluator
	hist    history   // the source's stored samples; nil for direct scrapes
	queries [2]string // the two counters, with the selector
	skip    string    // why the check cannot run; "" when it can
	start   time.Time // when the check began, on this machine's clock
	since   time.Time // the same instant on the Prometheus server's clock
	base    [2][]promwatch.Element

	mu      sync.Mutex
	tallies [2]*tally // direct scrapes: fed by every sample
	done    bool      // finish has read the last sample: later ones are dropped
}

// history is a source that keeps every sample it scraped: Prometheus.
type history interface {
	Samples(ctx context.Context, selector string, window time.Duration, after time.Time) ([]promwatch.Points, error)
}

var _ history = (*promwatch.Prometheus)(nil)

var counterNames = [2]string{platform.VLLMRequestSuccess, platform.VLLMGenerationTokens}

// newCounterCheck reads the counters before the load; nil-safe methods
// then follow them. A check that cannot run says why in the report.
func newCounterCheck(ctx context.Context, s *scenario.Scenario, src promwatch.Evaluator) *counterCheck {
	c := &counterCheck{src: src, start: time.Now()}
	switch {
	case src == nil:
		c.skip = "nothing is observed (observe.prometheus or observe.scrape)"
		return c
	case s.Observe.VLLM == "":
		c.skip = `observe.vllm is not set (the label selector of the vLLM pods' series, e.g. '{namespace="inference"}')`
		return c
	}
	c.queries = [2]string{platform.SucceededSeries(s.Observe.VLLM), platform.GeneratedSeries(s.Observe.VLLM)}
	c.hist, _ = src.(history)
	qs := c.queries[:]
	if c.hist != nil {
		qs = append(qs, "time()") // the server's now: its samples after it are the run's
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	res := src.Eval(ctx, time.Time{}, qs)
	for _, r := range res {
		if r.Err != nil {
			c.skip = "could not read them before the load (" + promwatch.Reason(r.Err) + ")"
			return c
		}
	}
	c.base = [2][]promwatch.Element{res[0].Vector, res[1].Vector}
	if c.hist != nil {
		if len(res[2].Vector) != 1 {
			c.skip = "the Prometheus server did not say its time"
			return c
		}
		c.since = time.UnixMilli(int64(math.Round(res[2].Vector[0].V * 1000)))
		return c
	}
	c.tallies = [2]*tally{newTally(c.base[0]), newTally(c.base[1])}
	return c
}

// tap is the source the run's watcher samples: through direct scrapes
// the counters ride along with every sample, so each page is still read
// once per sample and no scrape of a pod that goes away later is missed.
func (c *counterCheck) tap(src promwatch.Evaluator) promwatch.Evaluator {
	if c == nil || c.skip != "" || c.hist != nil {
		return src
	}
	return tapped{src, c}
}

type tapped struct {
	promwatch.Evaluator
	c *counterCheck
}

func (t tapped) Eval(ctx context.Context, at time.Time, queries []string) []promwatch.Result {
	n := len(queries)
	res := t.Evaluator.Eval(ctx, at, append(queries[:n:n], t.c.queries[:]...))
	if len(res) == n+2 && ctx.Err() == nil { // a sample the watcher gave up on is not taken
		t.c.seen(res[n:])
	}
	return res[:min(n, len(res))]
}

// seen takes one sample of both counters (direct scrapes); a failed one
// is skipped, and none after finish's last.
func (c *counterCheck) seen(res []promwatch.Result) error {
	for _, r := range res {
		if r.Err != nil {
			return r.Err
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.done {
		c.tallies[0].seen(res[0].Vector)
		c.tallies[1].seen(res[1].Vector)
	}
	return nil
}

// read brings the tallies up to now.
func (c *counterCheck) read(ctx context.Context) ([2]*tally, error) {
	if c.hist == nil {
		if err := c.seen(c.src.Eval(ctx, time.Time{}, c.queries[:])); err != nil {
			return [2]*tally{}, err
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.tallies, nil
	}
	var out [2]*tally
	for i, q := range c.queries {
		pts, err := c.hist.Samples(ctx, q, time.Since(c.start)+time.Minute, c.since)
		if err != nil {
			return out, err
		}
		out[i] = newTally(c.base[i])
		for _, p := range pts {
			for _, v := range p.V {
				out[i].add(p.Labels, v)
			}
		}
	}
	// The series Prometheus still has now: the others went away.
	for i, r := range c.src.Eval(ctx, time.Time{}, c.queries[:]) {
		if r.Err == nil {
			out[i].mark(r.Vector)
		}
	}
	return out, nil
}

// finish reads the counters, giving the server's last scrape a little time
// to catch up with the client (up to wait), and puts the comparison in the
// report, or a note that says why there is none.
func (c *counterCheck) finish(ctx context.Context, r *timeline.Report, wait time.Duration) {
	if c == nil {
		return
	}
	const not = "the vLLM counters were not compared with the client's counts: "
	if c.skip != "" {
		r.Notes = append(r.Notes, not+c.skip)
		return
	}
	deadline := time.Now().Add(wait)
	var t [2]*tally
	var err error
	for {
		qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		t, err = c.read(qctx)
		cancel()
		caughtUp := err == nil && t[0].count() >= r.Load.OK && t[1].count() >= r.Load.OutputTokens
		if caughtUp || time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
	c.mu.Lock()
	c.done = true
	c.mu.Unlock()
	if err != nil {
		r.Notes = append(r.Notes, not+"could not read them at the end ("+promwatch.Reason(err)+")")
		return
	}
	for i, ti := range t {
		if len(ti.series) == 0 {
			r.Notes = append(r.Notes, fmt.Sprintf("%sno %s series matched %s over the run (the server exports none, or observe.vllm misses its labels)", not, counterNames[i], c.queries[i]))
			return
		}
	}
	sc := &timeline.ServerCount{Source: "vLLM counters via " + c.src.String(), OK: t[0].count(), OutputTokens: t[1].count()}
	dOK, dTok := sc.OK-r.Load.OK, sc.OutputTokens-r.Load.OutputTokens
	switch {
	case dOK == 0 && dTok == 0:
		sc.Detail = "vllm:request_success_total and vllm:generation_tokens_total rose by exactly what the client received"
	case dOK >= 0 && dTok >= 0:
		sc.Detail = fmt.Sprintf("the server counted %d more successful requests and %d more tokens than the client received: other traffic on these pods, or requests the client gave up on", dOK, dTok)
	default:
		short, shortTok := -min(dOK, 0), -min(dTok, 0)
		if why := unseen(t); why != "" {
			sc.Detail = fmt.Sprintf("the server counted %d fewer successful requests and %d fewer tokens than the client received, which need not be a loss: %s; what a pod serves after its last scrape is in no counter, so at most %d requests (%d tokens) cannot be seen here",
				short, shortTok, why, short, shortTok)
		} else {
			sc.Detail = fmt.Sprintf("the server counted %d fewer successful requests and %d fewer tokens than the client received: a scrape missed the last counts, or the selector misses some pods", short, shortTok)
		}
	}
	if len(c.base[0]) == 0 && len(c.base[1]) == 0 && (dOK != 0 || dTok != 0) {
		sc.Detail += " (there were no counters before the load: every series counted from 0)"
	}
	r.Server = sc
}

// unseen names the pods whose last counts may be missing: those that went
// away during the run and those that restarted ("" when none did).
func unseen(t [2]*tally) string {
	gone, restarted := map[string]bool{}, map[string]bool{}
	for _, ti := range t {
		for _, tr := range ti.series {
			if tr.gone {
				gone[tr.pod()] = true
			}
			if tr.resets > 0 {
				restarted[tr.pod()] = true
			}
		}
	}
	var parts []string
	if len(gone) > 0 {
		parts = append(parts, pods(gone)+" went away during the run")
	}
	if len(restarted) > 0 {
		parts = append(parts, pods(restarted)+" restarted, counting again from 0")
	}
	return strings.Join(parts, " and ")
}

// pods says "pod p1", or "2 pods (p1, p2)", naming at most three.
func pods(set map[string]bool) string {
	names := slices.Sorted(maps.Keys(set))
	if len(names) == 1 {
		return "pod " + names[0]
	}
	n := len(names)
	if n > 3 {
		names = append(names[:3], fmt.Sprintf("%d more", n-3))
	}
	return fmt.Sprintf("%d pods (%s)", n, strings.Join(names, ", "))
}

// tally follows one counter, series by series.
type tally struct {
	series map[string]*track // by labels, __name__ left out
}

type track struct {
	labels map[string]string
	last   float64 // the newest value
	rose   float64 // the increase since the start
	resets int
	gone   bool // missing from the newest whole sample
}

// newTally starts from the values before the load.
func newTally(start []promwatch.Element) *tally {
	t := &tally{series: make(map[string]*track, len(start))}
	for _, e := range start {
		if finite(e.V) {
			t.series[seriesKey(e.Labels)] = &track{labels: e.Labels, last: e.V}
		}
	}
	return t
}

// add takes the next value of one series.
func (t *tally) add(labels map[string]string, v float64) {
	if !finite(v) {
		return
	}
	k := seriesKey(labels)
	tr := t.series[k]
	switch {
	case tr == nil: // a series the start did not have: it counted from 0
		t.series[k] = &track{labels: labels, last: v, rose: max(v, 0)}
		return
	case v < tr.last: // a restart: it counted again from 0
		tr.resets++
		tr.rose += max(v, 0)
	default:
		tr.rose += v - tr.last
	}
	tr.last, tr.gone = v, false
}

// seen takes a whole sample: each series' value now.
func (t *tally) seen(now []promwatch.Element) {
	for _, e := range now {
		t.add(e.Labels, e.V)
	}
	t.mark(now)
}

// mark notes the series a whole sample lacks as gone (they keep what they
// counted).
func (t *tally) mark(now []promwatch.Element) {
	here := make(map[string]bool, len(now))
	for _, e := range now {
		here[seriesKey(e.Labels)] = true
	}
	for k, tr := range t.series {
		tr.gone = !here[k]
	}
}

// count is the increase summed over the series, in whole counts.
func (t *tally) count() int64 {
	if t == nil {
		return 0
	}
	var sum float64
	for _, tr := range t.series {
		sum += tr.rose
	}
	return int64(math.Round(sum))
}

// pod names the series' pod for a sentence: its pod label, else its
// instance, else all its labels.
func (tr *track) pod() string {
	for _, l := range []string{"pod", "instance"} {
		if v := tr.labels[l]; v != "" {
			return v
		}
	}
	return "{" + seriesKey(tr.labels) + "}"
}

func seriesKey(labels map[string]string) string {
	names := slices.Sorted(maps.Keys(labels))
	var b strings.Builder
	for _, n := range names {
		if n == "__name__" {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%s=%q", n, labels[n])
	}
	return b.String()
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
