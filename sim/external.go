package sim

import (
	"errors"
	"fmt"
	"slices"
)

// errExternal is what the controls the cluster owns answer in external mode.
var errExternal = errors.New("sim: external mode: the cluster's Deployment and HPA own the replicas")

// NewExternal builds a fleet whose pods follow a real Deployment instead of
// its own controllers: it starts with no pod, and SetReadyPods says which
// pods are ready (read from the cluster's API by the caller). The
// simulator's HPA stand-in is off (the cluster's HPA decides), Scale and
// SetPaused are refused or ignored, and /metrics carries the vllm:* series
// only (one set per ready or terminating pod, labelled with cfg.Namespace
// and the pod's name): the kube_* and keda_* series come from the cluster.
// Replicas.Start, ColdStart, GPUQuota, HPASync and the windows are not used.
func NewExternal(cfg Config, clk Clock) (*Fleet, error) {
	cfg.Paused = true
	f, err := New(cfg, clk)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	f.external = true
	f.pods = nil
	f.spec = 0
	f.status = hpaStatus{}
	f.mu.Unlock()
	return f, nil
}

// External reports whether f was built by NewExternal.
func (f *Fleet) External() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.external
}

// SetReadyPods makes the named pods the fleet's ready replicas, as the
// cluster's Endpoints would: a new name joins the gateway at once (its cold
// start was the pod's readiness delay in the cluster); a ready pod no longer
// named leaves the gateway and goes away once it has finished what it holds
// (its series with it); a terminating pod named again is ready again. Names
// must be unique and non-empty. It is an error on a fleet not built by
// NewExternal.
func (f *Fleet) SetReadyPods(names []string) error {
	seen := make(map[string]bool, len(names))
	for _, n := range names {
		if n == "" {
			return fmt.Errorf("sim: SetReadyPods: empty pod name")
		}
		if seen[n] {
			return fmt.Errorf("sim: SetReadyPods: pod %q named twice", n)
		}
		seen[n] = true
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.external {
		return errors.New("sim: SetReadyPods needs a fleet built by NewExternal")
	}
	now := f.clk.Now()
	for _, p := range slices.Clone(f.pods) {
		switch {
		case seen[p.name] && p.phase != phaseReady:
			p.phase, p.readyAt = phaseReady, now
		case !seen[p.name] && p.phase == phaseReady:
			p.phase = phaseDraining
			f.maybeGoneLocked(p, now)
		}
	}
	for _, n := range names {
		if !f.hasPodLocked(n) {
			f.appendPodLocked(n, phaseReady).readyAt = now
		}
	}
	f.spec = int32(len(names))
	f.notifyLocked()
	return nil
}
