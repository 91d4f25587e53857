package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/scaleout/scaleout/promwatch"
	"github.com/scaleout/scaleout/scenario"
	"github.com/scaleout/scaleout/timeline"
)

// scaledObjectOf names the ScaledObject a scenario is about: the one its
// HPA was made for (keda-hpa-NAME).
func scaledObjectOf(s *scenario.Scenario) (ns, name string, ok bool) {
	ns, hpa, ok := strings.Cut(s.Observe.HPA, "/")
	if !ok || !strings.HasPrefix(hpa, "keda-hpa-") {
		return "", "", false
	}
	return ns, strings.TrimPrefix(hpa, "keda-hpa-"), true
}

// applyGuard checks, when the scenario asks for it (guard: repause), that
// the ScaledObject is paused again at the end of the run. An un-paused one
// keeps a GPU node up around the clock: the warning is loud, it is in the
// report, and with --strict-guard it fails the run. It reports whether
// the run must fail for it.
func applyGuard(ctx context.Context, e env, s *scenario.Scenario, src promwatch.Evaluator, r *timeline.Report, strict bool) bool {
	if s.Guard != "repause" {
		return false
	}
	g := &timeline.GuardResult{Required: "repause", State: "unknown"}
	r.Guard = g
	ns, name, ok := scaledObjectOf(s)
	switch {
	case !ok:
		g.Detail = "no ScaledObject to check (observe.hpa must be NAMESPACE/keda-hpa-NAME)"
	case src == nil:
		g.Detail = "nothing observed: cannot tell whether " + ns + "/" + name + " is paused"
	default:
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		res := src.Eval(ctx, time.Now(), []string{
			fmt.Sprintf(`max(keda_scaled_object_paused{scaledObject=%q})`, name),
			fmt.Sprintf(`max(kube_horizontalpodautoscaler_status_desired_replicas{namespace=%q,horizontalpodautoscaler=%q})`, ns, "keda-hpa-"+name),
		})
		paused, hpa := promwatch.ToValue(res[0]), promwatch.ToValue(res[1])
		switch {
		case paused.OK() && paused.V == 1:
			g.State, g.OK = "paused", true
			g.Detail = ns + "/" + name + " is paused (keda_scaled_object_paused = 1)"
		case paused.OK() && paused.V == 0:
			g.State = "unpaused"
			g.Detail = ns + "/" + name + " is un-paused (keda_scaled_object_paused = 0)"
		case hpa.OK():
			g.State = "unpaused"
			g.Detail = ns + "/" + name + " has a live HPA (KEDA deletes it while paused), so it is un-paused"
		case res[1].Err == nil && len(res[1].Vector) == 0:
			g.State, g.OK = "paused", true
			g.Detail = "no HPA series for keda-hpa-" + name + " (KEDA deletes the HPA while paused)"
		default:
			g.Detail = "cannot tell: " + paused.Gap
		}
	}
	if g.OK {
		fmt.Fprintf(e.stderr, "guard: ok — %s\n", g.Detail)
		return false
	}
	if g.State == "unpaused" {
		fmt.Fprintf(e.stderr, `
!!! GUARD: %s is still UN-PAUSED after the run.
!!! %s.
!!! While un-paused with minReplicaCount >= 1 it keeps a GPU node up around the clock and overrides make vllm-down.
!!! Re-pause it and release the GPU now:
!!!     make keda-demo-down
!!!     make vllm-down

`, ns+"/"+name, g.Detail)
	} else {
		fmt.Fprintf(e.stderr, "guard: could not confirm that the ScaledObject is paused: %s\n", g.Detail)
	}
	return strict
}
