package run

import (
	"context"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/scaleout/scaleout/promwatch"
	"github.com/scaleout/scaleout/scenario"
	"github.com/scaleout/scaleout/timeline"
)

// counterCheck compares what the client counted with what vLLM counted:
// the increase of vllm:request_success_total (aborts left out) and of
// vllm:generation_tokens_total over the run, on the pods observe.vllm
// selects. Through Prometheus the increase is the sum of each series'
// highest value over the run less the sum before it, so a pod that went
// away during the run still counts what it last reported and a pod that
// started during it counts from 0; through direct scrapes it is the sum at
// the end less the sum at the start. What a pod served after its last
// scrape before it went away cannot be seen.
type counterCheck struct {
	src      promwatch.Evaluator
	ok, toks string // the two counters with the selector
	prom     bool
	start    time.Time
	before   [2]float64
}

// sums are the two counters summed over the fleet, now.
func (c *counterCheck) sums() []string {
	return []string{"sum(" + c.ok + ")", "sum(" + c.toks + ")"}
}

// newCounterCheck takes the counters' values before the load, or returns
// nil when the run cannot check (nothing observed, no vllm selector, or
// the server exports no counters).
func newCounterCheck(ctx context.Context, s *scenario.Scenario, src promwatch.Evaluator) *counterCheck {
	if src == nil || s.Observe.VLLM == "" {
		return nil
	}
	sel := strings.TrimSuffix(strings.TrimPrefix(s.Observe.VLLM, "{"), "}")
	if sel != "" {
		sel += ","
	}
	c := &counterCheck{
		src:   src,
		ok:    fmt.Sprintf(`vllm:request_success_total{%sfinished_reason!="abort"}`, sel),
		toks:  "vllm:generation_tokens_total" + s.Observe.VLLM,
		start: time.Now(),
	}
	_, c.prom = src.(*promwatch.Prometheus)
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	res := src.Eval(ctx, time.Now(), c.sums())
	a, b := promwatch.ToValue(res[0]), promwatch.ToValue(res[1])
	if !a.OK() || !b.OK() {
		return nil
	}
	c.before = [2]float64{a.V, b.V}
	return c
}

// increase returns the counters' increase since the start.
func (c *counterCheck) increase(ctx context.Context) (ok, toks float64, err error) {
	q := c.sums()
	if c.prom {
		w := fmt.Sprintf("[%ds]", int(math.Ceil(time.Since(c.start).Seconds()))+1)
		q = []string{
			fmt.Sprintf("sum(max_over_time(%s%s))", c.ok, w),
			fmt.Sprintf("sum(max_over_time(%s%s))", c.toks, w),
		}
	}
	res := c.src.Eval(ctx, time.Now(), q)
	a, b := promwatch.ToValue(res[0]), promwatch.ToValue(res[1])
	if !a.OK() || !b.OK() {
		gap := a.Gap
		if gap == "" {
			gap = b.Gap
		}
		return 0, 0, fmt.Errorf("%s", gap)
	}
	return a.V - c.before[0], b.V - c.before[1], nil
}

// finish reads the increase, giving the server's last scrape a little time
// to catch up with the client (up to wait), and puts it in the report.
func (c *counterCheck) finish(ctx context.Context, r *timeline.Report, wait time.Duration) {
	if c == nil {
		return
	}
	deadline := time.Now().Add(wait)
	var ok, toks float64
	var err error
	for {
		qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		ok, toks, err = c.increase(qctx)
		cancel()
		caughtUp := err == nil && int64(ok) >= r.Load.OK && int64(toks) >= r.Load.OutputTokens
		if caughtUp || time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
	src := "vLLM counters via " + c.src.String()
	if err != nil {
		r.Notes = append(r.Notes, "could not read the vLLM counters at the end ("+err.Error()+"): nothing-lost check skipped")
		return
	}
	sc := &timeline.ServerCount{Source: src, OK: int64(math.Round(ok)), OutputTokens: int64(math.Round(toks))}
	dOK, dTok := sc.OK-r.Load.OK, sc.OutputTokens-r.Load.OutputTokens
	switch {
	case dOK == 0 && dTok == 0:
		sc.Detail = "vllm:request_success_total and vllm:generation_tokens_total rose by exactly what the client received"
	case dOK >= 0 && dTok >= 0:
		sc.Detail = fmt.Sprintf("the server counted %d more successful requests and %d more tokens than the client received: other traffic on these pods, or requests the client gave up on", dOK, dTok)
	default:
		sc.Detail = fmt.Sprintf("the server counted %d fewer successful requests and %d fewer tokens than the client received: a scrape missed the last counts, pods went away between scrapes, or the selector misses some pods", -min(dOK, 0), -min(dTok, 0))
	}
	r.Server = sc
}
