package run

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/scaleout/scaleout/loadgen"
	"github.com/scaleout/scaleout/scenario"
	"github.com/scaleout/scaleout/timeline"
)

// Shard makes a run one of N processes that send one run's load together
// (scaleout run --shard K/N --start-at TIME; scaleout job's pods):
//
//   - shard K sends its share of every stage (loadgen.Shard: the union of
//     the shards' hits is the single-process schedule), K counting from 0
//     as a Kubernetes Indexed Job's completion index does;
//   - every shard's clock starts at StartAt (its epoch), and every stage
//     starts on that common clock: at the end of the one before as planned,
//     or at the sample at which the previous stage's until held (each
//     shard samples on the same ticks and evaluates the same series, so
//     an until ends the stage on every shard within one interval);
//   - every shard samples the series and records its own client
//     self-check (a shard whose sends lagged fails the merged run);
//   - shard 0 alone waits for the fleet to be at rest (bounded by
//     StartAt) and runs the guard; the others read the baseline once;
//   - no shard compares the vLLM counters (each would hold a share of
//     what the servers counted): the merged run's server count is absent.
//
// `scaleout report merge` joins the shards' run directories into one.
type Shard struct {
	Index, Count int
	StartAt      time.Time
}

// Sharded reports whether the run is a shard.
func (sh Shard) Sharded() bool { return sh.Count > 0 }

func (sh Shard) load() loadgen.Shard { return loadgen.Shard{K: sh.Index, N: sh.Count} }

// String is "K/N".
func (sh Shard) String() string { return fmt.Sprintf("%d/%d", sh.Index, sh.Count) }

// lateStart is how late after StartAt a shard may still join the common
// start (its first hits then go out late, and its self-check says so).
const lateStart = time.Second

// ParseShard reads --shard K/N and --start-at TIME (RFC 3339, in the
// future from now). Both or neither must be given.
func ParseShard(spec, startAt string, now time.Time) (Shard, error) {
	example := now.Add(time.Minute).UTC().Truncate(time.Second).Format(time.RFC3339) // a --start-at to suggest
	switch {
	case spec == "" && startAt == "":
		return Shard{}, nil
	case spec == "":
		return Shard{}, usagef("--start-at needs --shard K/N (the start is the common clock of a sharded run)")
	case startAt == "":
		return Shard{}, usagef("--shard %s needs --start-at TIME: the instant every shard starts its load, RFC 3339 and in the future (e.g. --start-at %s)",
			spec, example)
	}
	ks, ns, ok := strings.Cut(spec, "/")
	k, kerr := strconv.Atoi(ks)
	n, nerr := strconv.Atoi(ns)
	if !ok || kerr != nil || nerr != nil {
		return Shard{}, usagef("--shard %q: want K/N, e.g. --shard 0/4 (K counts from 0, as a Kubernetes Indexed Job's completion index)", spec)
	}
	if n < 1 || k < 0 || k >= n {
		return Shard{}, usagef("--shard %q: want 0 ≤ K < N and N ≥ 1 (K counts from 0, as a Kubernetes Indexed Job's completion index: the shards of 4 are 0/4 … 3/4)", spec)
	}
	at, err := time.Parse(time.RFC3339Nano, startAt)
	if err != nil {
		return Shard{}, usagef("--start-at %q: want an RFC 3339 time, e.g. %s", startAt, example)
	}
	if !at.After(now) {
		return Shard{}, usagef("--start-at %s is %s in the past: give an instant every shard can still wait for (e.g. %s)",
			startAt, scenario.FormatDuration(now.Sub(at).Round(time.Second)), example)
	}
	return Shard{Index: k, Count: n, StartAt: at}, nil
}

// SetShard makes the plan one shard of a sharded run. Call it once, after
// Prepare and before Run. Shards must share one target: a scenario's
// embedded simulator would give each shard its own fleet, so a sim: block
// needs --target (scaleout sim serving the shards).
func (p *Plan) SetShard(sh Shard) error {
	if !sh.Sharded() {
		return nil
	}
	if err := sh.load().Validate(); err != nil {
		return usagef("--shard: %v", err)
	}
	if p.Sim.Embedded() {
		return usagef("%s: --shard %s with the embedded simulator would give every shard a fleet of its own: start one (scaleout sim) and give every shard --target", p.Scenario.File, sh)
	}
	p.shard = sh
	return nil
}

// Shard is the plan's shard (zero: a whole run).
func (p *Plan) Shard() Shard { return p.shard }

// shardPlan scales a stage's planned rates to the shard's share (rows'
// target_rps; the stage's own target is its schedule's Due).
func (p *Plan) shardPlan(sp timeline.StagePlan) timeline.StagePlan {
	if p.shard.Sharded() {
		sp.RateFrom /= float64(p.shard.Count)
		sp.RateTo /= float64(p.shard.Count)
	}
	return sp
}

// restLimit is how long the run waits for the fleet to be at rest: the
// scenario's rest_wait, but for shard 0 no later than the common start,
// and for the other shards not at all (they read the baseline once).
func (r *runner) restLimit() time.Duration {
	limit := r.p.Scenario.Observe.RestWait
	switch sh := r.p.shard; {
	case !sh.Sharded():
	case sh.Index != 0:
		limit = 0
	default:
		limit = max(min(limit, time.Until(sh.StartAt)), 0)
	}
	return limit
}

// guards reports whether this run does the guard (a whole run, or shard 0).
func (p *Plan) guards() bool { return p.shard.Index == 0 }

// epoch is the run's epoch: StartAt on the monotonic clock for a shard
// (still ahead: awaitStart waits for it once the run is set up), now for a
// whole run. A shard already more than lateStart past StartAt (its
// preflight or shard 0's rest wait took longer) cannot join the common
// start and refuses (exit 3).
func (r *runner) epoch() (time.Time, error) {
	now := time.Now()
	sh := r.p.shard
	if !sh.Sharded() {
		return now, nil
	}
	late := now.Round(0).Sub(sh.StartAt) // wall clock against wall clock
	if late > lateStart {
		return time.Time{}, cannotRun(fmt.Errorf("shard %s reached the common start %s %s late (the preflight or the rest wait took longer): give every shard a later --start-at",
			sh, sh.StartAt.UTC().Format(time.RFC3339), scenario.FormatDuration(late.Round(time.Millisecond))))
	}
	return now.Add(-late), nil
}

// awaitStart waits for a shard's epoch, the common start; an interrupt
// in the wait sends nothing (ErrInterrupted).
func (r *runner) awaitStart(ctx context.Context, epoch time.Time) error {
	wait := time.Until(epoch)
	if wait <= 0 {
		return nil
	}
	fmt.Fprintf(r.o.Log, "scaleout: shard %s waits %s for the common start %s\n", r.p.shard, scenario.FormatDuration(wait.Round(time.Millisecond)), r.p.shard.StartAt.UTC().Format(time.RFC3339Nano))
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	r.sig.set(stop, stop)
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
	case <-wctx.Done():
	}
	if r.sig.count() > 0 {
		return ErrInterrupted
	}
	if err := ctx.Err(); err != nil {
		return cannotRun(err)
	}
	return nil
}

// stageClock places a sharded run's stages on the common clock.
type stageClock struct {
	next    time.Duration // where the next stage starts, from the epoch
	untilAt atomic.Int64  // the sample at which the running stage's until held
}

// stageStart is when stage i starts: for a shard, on the common clock
// (loadgen waits for it, or shifts a start already past); else now.
func (r *runner) stageStart(epoch time.Time) (time.Time, time.Duration) {
	if !r.p.shard.Sharded() {
		return time.Time{}, time.Since(epoch)
	}
	return epoch.Add(r.clock.next), r.clock.next
}

// stageEnded moves the common clock past stage i: to its planned end, or
// to the sample at which its until held.
func (r *runner) stageEnded(i int, started time.Duration, by timeline.EndedBy) {
	if by == timeline.ByUntil {
		r.clock.next = time.Duration(r.clock.untilAt.Load())
		return
	}
	r.clock.next = started + r.p.Scenario.Load[i].Duration
}

// shardNote starts the note a shard's report carries (the merge drops it).
const shardNote = "shard "

// noteShard says in a shard's report what it holds.
func (r *runner) noteShard(rep *timeline.Report) {
	if sh := r.p.shard; sh.Sharded() {
		rep.Notes = append(rep.Notes, fmt.Sprintf("%s%s of a sharded run started at %s: this report holds the shard's share of the load; scaleout report merge joins the shards",
			shardNote, sh, sh.StartAt.UTC().Format(time.RFC3339Nano)))
	}
}

// histograms is the run's histograms.json: the timeline's, with the shard
// and the expectations as written.
func (r *runner) histograms(tl *timeline.Timeline, end time.Duration) *timeline.Histograms {
	h := tl.Histograms(end)
	s := r.p.Scenario
	h.Scenario = s.Name
	for _, e := range s.Expect {
		h.Expect = append(h.Expect, e.Text)
	}
	if sh := r.p.shard; sh.Sharded() {
		h.Shard = &timeline.ShardInfo{Index: sh.Index, Count: sh.Count, StartAt: sh.StartAt.UTC()}
	}
	return h
}
