package run

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/scaleout/scaleout/kube"
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
	if !r.p.guards() {
		return // a shard other than 0 leaves the guard to shard 0
	}
	if s.Guard == "act" {
		rep.Guard = r.repause(ctx)
		return
	}
	if s.Guard != "repause" {
		return
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
		rep.Expectations = append(rep.Expectations, timeline.Outcome{Expr: strictGuardExpr, Detail: g.Detail})
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

// strictGuardExpr is the outcome the guard adds with --strict-guard (a
// merge keeps shard 0's).
const strictGuardExpr = "the ScaledObject is paused again after the run (--strict-guard)"

// restoreWait bounds the guard's attempts to put the pause back while the
// API does not answer.
const restoreWait = 30 * time.Second

// unpause is the start of guard: act. It first asks whether this identity
// may do all the run will (the patch that restores the pause included:
// nothing is changed that cannot be put back), then removes KEDA's pause
// annotations and waits for KEDA to make the HPA.
func (r *runner) unpause(ctx context.Context) error {
	k := r.p.Kube
	access := k.accessFindings(ctx, true)
	for _, f := range access {
		if f.Level == Fail {
			r.o.Display.Preflight(access, cannotRun(&PreflightError{[]Finding{f}}))
			return cannotRun(&PreflightError{[]Finding{f}})
		}
	}
	r.pauser = kube.NewPauser(k.client, k.targets.ScaledObject, k.targets.HPA)
	if err := r.pauser.Unpause(ctx); err != nil {
		return cannotRun(err)
	}
	if !r.pauser.Changed() {
		fmt.Fprintf(r.o.Log, "guard: ScaledObject %s is not paused (%s): nothing to un-pause or restore\n", k.targets.ScaledObject, r.pauser.Before())
		return nil
	}
	fmt.Fprintf(r.o.Log, "guard: un-paused ScaledObject %s (it had %s); the pause is restored when the run ends, however it ends\n", k.targets.ScaledObject, r.pauser.Before())
	wait, stop := context.WithTimeout(ctx, max(r.o.GuardWait, 10*time.Second))
	defer stop()
	r.sig.set(stop, stop)
	err := r.pauser.WaitHPA(wait)
	if r.sig.count() > 0 {
		return ErrInterrupted
	}
	if err != nil {
		return cannotRun(err)
	}
	return nil
}

// repause restores the pause annotations exactly as they were, then waits
// (at most --guard-wait) until KEDA honours the pause (Paused=True, or the
// HPA gone). An interrupt does not stop the restore, only the wait for
// KEDA. The window the ScaledObject was un-paused is reported: it costs
// money.
func (r *runner) repause(ctx context.Context) *timeline.GuardResult {
	g := &timeline.GuardResult{Required: "act"}
	so := r.p.Kube.targets.ScaledObject
	if r.pauser == nil || !r.pauser.Changed() {
		g.State, g.OK = "untouched", true
		g.Detail = "ScaledObject " + so.String() + " was not paused before the run: the guard changed nothing"
		if r.pauser != nil {
			g.Before = r.pauser.Before().String()
		}
		return g
	}
	g.Before = r.pauser.Before().String()
	r.repaused = true // whatever comes of it, the report tells it: guardNet does not try again
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), restoreWait)
	err := r.pauser.Restore(rctx)
	cancel()
	from, to := r.pauser.Window()
	g.Unpaused = &timeline.UnpausedWindow{Start: from.UTC()}
	if err != nil {
		g.State, g.Detail, g.Command = "unpaused", err.Error(), r.pauser.Command()
		g.Unpaused.DurationS = timeline.Round3(time.Since(from).Seconds())
		r.loudRestoreFailure(err)
		return g
	}
	end := to.UTC()
	g.Unpaused.End, g.Unpaused.DurationS = &end, timeline.Round3(to.Sub(from).Seconds())
	wait, stop := context.WithTimeout(context.WithoutCancel(ctx), max(r.o.GuardWait, time.Second))
	defer stop()
	r.sig.set(stop, stop)
	how, err := r.pauser.Verify(wait)
	if err != nil {
		g.State, g.Detail = "unknown", fmt.Sprintf("the pause annotations are restored (%s), but %v within %s", g.Before, err, scenario.FormatDuration(max(r.o.GuardWait, time.Second)))
		g.Command = r.pauser.Command()
		fmt.Fprintf(r.o.Log, "\n!!! GUARD: %s.\n!!! Check it: kubectl -n %s get scaledobject %s; kubectl -n %s get hpa\n\n", g.Detail, so.Namespace, so.Name, so.Namespace)
		return g
	}
	g.State, g.OK, g.Verified = "paused", true, how
	g.Detail = fmt.Sprintf("restored %s on ScaledObject %s after %s un-paused; %s", g.Before, so, scenario.FormatDuration(to.Sub(from)), how)
	fmt.Fprintf(r.o.Log, "guard: ok — %s\n", g.Detail)
	return g
}

// loudRestoreFailure says, as loudly as the terminal allows, that the
// ScaledObject is still un-paused and what to run.
func (r *runner) loudRestoreFailure(err error) {
	fmt.Fprintf(r.o.Log, `
!!! GUARD: %v
!!! The ScaledObject is still UN-PAUSED: with minReplicaCount >= 1 it keeps a GPU node up around the clock.
!!! Re-pause it now:
!!!     %s

`, err, r.pauser.Command())
}

// guardNet restores the pause on the paths that never reach the report:
// an error or an interrupt before the load, a panic. A pause that cannot
// be restored there turns the run's outcome into an error naming the
// command to run.
func (r *runner) guardNet(err *error) {
	g := r.pauser
	if g == nil || !g.Changed() || r.repaused {
		return // nothing changed, or the report's guard has restored it (or said loudly that it could not)
	}
	ctx, cancel := context.WithTimeout(context.Background(), restoreWait)
	defer cancel()
	if rerr := g.Restore(ctx); rerr != nil {
		r.loudRestoreFailure(rerr)
		*err = errors.Join(*err, cannotRun(rerr))
		return
	}
	how, verr := g.Verify(ctx)
	if verr != nil {
		fmt.Fprintf(r.o.Log, "guard: restored %s on ScaledObject %s, but %v\n", g.Before(), r.p.Kube.targets.ScaledObject, verr)
		return
	}
	fmt.Fprintf(r.o.Log, "guard: restored %s on ScaledObject %s; %s\n", g.Before(), r.p.Kube.targets.ScaledObject, how)
}
