package run

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/scaleout/scaleout/platform"
	"github.com/scaleout/scaleout/promwatch"
	"github.com/scaleout/scaleout/scenario"
	"github.com/scaleout/scaleout/timeline"
)

// scaledObjectOf names the ScaledObject a scenario is about: the one its
// HPA was made for (keda-hpa-NAME).
func scaledObjectOf(s *scenario.Scenario) (ns, name string, ok bool) {
	ns, hpa, ok := strings.Cut(s.Observe.HPA, "/")
	if !ok {
		return "", "", false
	}
	name, ok = platform.ScaledObjectOf(hpa)
	return ns, name, ok
}

// pauseCommand is the kubectl command that pauses (or un-pauses) the
// ScaledObject NAMESPACE/NAME, with the platform team's make target that
// does the same: that target lives in their repository, not in this one.
func pauseCommand(ref string, pause bool) string {
	ns, name, ok := strings.Cut(ref, "/")
	if !ok {
		ns, name = "NAMESPACE", "NAME"
	}
	target := "keda-demo-down"
	if !pause {
		target = "keda-demo-up"
	}
	return fmt.Sprintf("kubectl -n %s annotate scaledobject %s autoscaling.keda.sh/paused=%t --overwrite (the platform team's `make %s` in their repository does the same)",
		ns, name, pause, target)
}

// pausedQuery is KEDA's own word on whether a ScaledObject is paused: 1
// or 0 (its metrics server exports it while the ScaledObject exists).
func pausedQuery(name string) string {
	return platform.PausedQuery(name)
}

// pausedNow returns "NAMESPACE/NAME" when KEDA says the scenario's
// ScaledObject is paused, else "".
func pausedNow(ctx context.Context, s *scenario.Scenario, src promwatch.Evaluator) string {
	ns, name, ok := scaledObjectOf(s)
	if !ok {
		return ""
	}
	r := src.Eval(ctx, time.Now(), []string{pausedQuery(name)})
	if v := promwatch.ToValue(r[0]); v.OK() && v.V == 1 {
		return ns + "/" + name
	}
	return ""
}

// guardState asks whether the ScaledObject is paused: by
// keda_scaled_object_paused, else by whether KEDA's HPA exists (KEDA
// deletes it while paused).
func guardState(ctx context.Context, s *scenario.Scenario, src promwatch.Evaluator) (state, detail string) {
	ns, name, ok := scaledObjectOf(s)
	switch {
	case !ok:
		return "unknown", "no ScaledObject to check (observe.hpa must be NAMESPACE/keda-hpa-NAME)"
	case src == nil:
		return "unknown", "nothing observed: cannot tell whether " + ns + "/" + name + " is paused"
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	res := src.Eval(ctx, time.Now(), []string{
		pausedQuery(name),
		platform.DesiredQuery(ns, platform.KEDAHPAName(name)),
	})
	paused, hpa := promwatch.ToValue(res[0]), promwatch.ToValue(res[1])
	switch {
	case paused.OK() && paused.V == 1:
		return "paused", ns + "/" + name + " is paused (keda_scaled_object_paused = 1)"
	case paused.OK() && paused.V == 0:
		return "unpaused", ns + "/" + name + " is un-paused (keda_scaled_object_paused = 0)"
	case hpa.OK():
		return "unpaused", ns + "/" + name + " has a live HPA (KEDA deletes it while paused), so it is un-paused"
	case res[1].Err == nil && len(res[1].Vector) == 0:
		return "paused", "no HPA series for " + platform.KEDAHPAName(name) + " (KEDA deletes the HPA while paused)"
	}
	return "unknown", "cannot tell: " + paused.Gap
}

// guard checks, when the scenario asks for it (guard: repause), that the
// ScaledObject is paused again when the run ends. The proof needs it
// un-paused during the load, so once the load and the observation are
// over the run asks for the re-pause and waits for it (at most wait, every
// interval; an interrupt stops waiting). An un-paused one keeps a GPU node
// up around the clock: the warning is loud and it is in the report; with
// strict it fails the run (Decide).
func (r *runner) guard(ctx context.Context, rep *timeline.Report) {
	s, src := r.p.Scenario, r.p.Source
	if s.Guard != "repause" || !r.p.guards() {
		return // a shard other than 0 leaves the guard to shard 0
	}
	g := &timeline.GuardResult{Required: "repause"}
	rep.Guard = g
	g.State, g.Detail = guardState(ctx, s, src)
	ns, name, _ := scaledObjectOf(s)
	if wait := r.o.GuardWait; g.State == "unpaused" && wait > 0 {
		fmt.Fprintf(r.o.Log, "\nguard: the run is over and %s.\nguard: re-pause it now: %s\nguard: waiting up to %s for it (Ctrl-C stops waiting)\n",
			g.Detail, pauseCommand(ns+"/"+name, true), scenario.FormatDuration(wait))
		waiting, stop := context.WithTimeout(ctx, wait)
		defer stop()
		r.sig.set(stop, stop)
		tick := time.NewTicker(s.Observe.Interval)
		defer tick.Stop()
		for g.State == "unpaused" && waiting.Err() == nil {
			select {
			case <-waiting.Done():
			case <-tick.C:
				g.State, g.Detail = guardState(ctx, s, src)
			}
		}
	}
	g.OK = g.State == "paused"
	if g.OK {
		fmt.Fprintf(r.o.Log, "guard: ok — %s\n", g.Detail)
		return
	}
	if r.o.StrictGuard {
		rep.Expectations = append(rep.Expectations, timeline.Outcome{Expr: "the ScaledObject is paused again after the run (--strict-guard)", Detail: g.Detail})
	}
	if g.State == "unpaused" {
		fmt.Fprintf(r.o.Log, `
!!! GUARD: %s is still UN-PAUSED after the run.
!!! %s.
!!! While un-paused with minReplicaCount >= 1 it keeps a GPU node up around the clock and overrides scaling
!!! the Deployment down by hand. Re-pause it now:
!!!     kubectl -n %s annotate scaledobject %s autoscaling.keda.sh/paused=true --overwrite
!!! then release the GPU node: make vllm-down
!!! (make keda-demo-down and make vllm-down are the platform team's targets, in their repository, not in this one)

`, ns+"/"+name, g.Detail, ns, name)
	} else {
		fmt.Fprintf(r.o.Log, "guard: could not confirm that the ScaledObject is paused: %s\n", g.Detail)
	}
}
