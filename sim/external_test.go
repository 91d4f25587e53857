package sim

import (
	"net/http"
	"testing"

	"github.com/scaleout/scaleout/platform"
)

func newExternalHarness(t *testing.T, cfg Config) *harness {
	t.Helper()
	clk := NewFakeClock(epoch)
	f, err := NewExternal(cfg, clk)
	if err != nil {
		t.Fatalf("NewExternal: %v", err)
	}
	return serveHarness(t, f, clk, false)
}

// TestExternalFollowsReadyPods: the fleet serves through exactly the pods
// SetReadyPods names, exports their vllm:* series with the cluster's pod
// names, and none of the kube_* or keda_* series the cluster publishes.
func TestExternalFollowsReadyPods(t *testing.T) {
	cfg := testConfig()
	cfg.Namespace, cfg.Deployment = "serving", "raw-vllm"
	h := newExternalHarness(t, cfg)

	if s := h.f.State(); len(s.Pods) != 0 || s.Replicas != 0 {
		t.Fatalf("a new external fleet has pods %v replicas %d, want none", s.Pods, s.Replicas)
	}
	if r := recv(t, h.async("/v1/completions", `{"prompt":"x","max_tokens":2}`), "no pod"); r.status != http.StatusServiceUnavailable {
		t.Fatalf("with no ready pod: %d %s, want 503", r.status, r.body)
	}

	if err := h.f.SetReadyPods([]string{"raw-vllm-abc-1", "raw-vllm-abc-2"}); err != nil {
		t.Fatal(err)
	}
	fams := scrape(t, h)
	for _, pod := range []string{"raw-vllm-abc-1", "raw-vllm-abc-2"} {
		if v := value(t, fams, platform.VLLMWaiting, map[string]string{platform.LabelPod: pod, platform.LabelNamespace: "serving"}); v != 0 {
			t.Errorf("%s waiting = %v, want 0", pod, v)
		}
	}
	for _, name := range []string{platform.HPADesired, platform.DeploymentReady, platform.DeploymentSpec, platform.KEDAPaused, platform.KEDAScalerValue} {
		if _, ok := fams[name]; ok {
			t.Errorf("external mode exports %s: the cluster's exporters own it", name)
		}
	}

	// A request holds a slot on the first pod; dropping that pod takes it
	// out of the gateway but keeps it (and its series) until the request ends.
	a := h.async("/v1/completions", `{"prompt":"x","max_tokens":2,"ignore_eos":true}`)
	waitFor(t, h.f, "a running", func(s State) bool { return s.Running == 1 })
	busy := ""
	for _, p := range h.f.State().Pods {
		if p.Running == 1 {
			busy = p.Name
		}
	}
	other := "raw-vllm-abc-1"
	if busy == other {
		other = "raw-vllm-abc-2"
	}
	if err := h.f.SetReadyPods([]string{other, "raw-vllm-abc-3"}); err != nil {
		t.Fatal(err)
	}
	s := h.f.State()
	if s.Ready != 2 || s.Terminating != 1 || s.Replicas != 2 {
		t.Fatalf("after dropping the busy pod: ready %d terminating %d replicas %d (%s), want 2, 1, 2", s.Ready, s.Terminating, s.Replicas, phases(s))
	}
	find(t, scrape(t, h), platform.VLLMRunning, map[string]string{platform.LabelPod: busy})
	h.clk.Advance(cfg.TTFT + 2*cfg.ITL)
	if r := recv(t, a, "a"); r.status != http.StatusOK {
		t.Fatalf("the request on the terminating pod: %d %s", r.status, r.body)
	}
	s = waitFor(t, h.f, "the terminating pod gone", func(s State) bool { return len(s.Pods) == 2 })
	for _, p := range s.Pods {
		if p.Name == busy || p.Phase != "Ready" {
			t.Errorf("pods after the drain: %s", phases(s))
		}
	}
	if _, ok := scrape(t, h)[platform.VLLMRunning]; ok {
		for _, m := range scrape(t, h)[platform.VLLMRunning].Metric {
			if labelsOf(m)[platform.LabelPod] == busy {
				t.Errorf("the removed pod %s still exports series", busy)
			}
		}
	}
}

// TestExternalRefusesOwnControls: the replicas belong to the cluster, so
// scaling and pausing by hand are refused and the fleet's HPA never runs.
func TestExternalRefusesOwnControls(t *testing.T) {
	h := newExternalHarness(t, testConfig())
	if err := h.f.Scale(3); err == nil {
		t.Error("Scale in external mode: no error")
	}
	h.f.SetPaused(false)
	if s := h.f.State(); !s.Paused || s.HPASyncs != 0 {
		t.Errorf("SetPaused(false) in external mode: paused %v syncs %d, want paused and no sync", s.Paused, s.HPASyncs)
	}
	for _, path := range []string{"/admin/scale?replicas=3", "/admin/pause", "/admin/unpause"} {
		resp := h.post(t.Context(), path, "")
		resp.Body.Close()
		if resp.StatusCode != http.StatusConflict {
			t.Errorf("POST %s: %d, want 409", path, resp.StatusCode)
		}
	}
	if err := h.f.SetReadyPods([]string{"a", "a"}); err == nil {
		t.Error("a pod named twice: no error")
	}
	if err := h.f.SetReadyPods([]string{""}); err == nil {
		t.Error("an empty pod name: no error")
	}
	own := newHarness(t, testConfig(), false)
	if err := own.f.SetReadyPods([]string{"a"}); err == nil {
		t.Error("SetReadyPods on a fleet with its own controllers: no error")
	}
}
