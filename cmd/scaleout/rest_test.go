package main

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scaleout/scaleout/sim"
)

// leftScaledOut serves a simulator and leaves it as a short heavy run
// leaves a fleet: scaled out to its maximum of 5, nothing queued, and the
// HPA holding the replicas for its scale-down window.
func leftScaledOut(t *testing.T, window time.Duration) (*sim.Fleet, string) {
	t.Helper()
	cfg := sim.DefaultConfig()
	cfg.MaxNumSeqs, cfg.TTFT, cfg.ITL = 1, 10*time.Millisecond, 5*time.Millisecond
	cfg.ColdStart, cfg.HPASync, cfg.ScaleDownWindow = 100*time.Millisecond, 100*time.Millisecond, window
	fleet, srv := serveSim(t, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	var burst sync.WaitGroup
	for range 30 { // one runs, 29 wait: the HPA asks for all 5 replicas
		burst.Go(func() {
			body := `{"model":"` + cfg.Model + `","prompt":"x","max_tokens":2000,"ignore_eos":true}`
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/v1/completions", strings.NewReader(body))
			if err != nil {
				return
			}
			if resp, err := http.DefaultClient.Do(req); err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
	waitFor(t, "the fleet to scale out to 5", time.Minute, func() bool { s := fleet.State(); return s.Desired == 5 && s.Ready == 5 })
	cancel()
	burst.Wait()
	waitFor(t, "the burst to be gone", time.Minute, func() bool { s := fleet.State(); return s.Waiting == 0 && s.Running == 0 })
	if s := fleet.State(); s.Desired != 5 {
		t.Fatalf("the fleet scaled in before the run (desired %d): the scale-down window is too short for this machine", s.Desired)
	}
	return fleet, srv.URL
}

// restScenario sends a light load that scales nothing, and expects a
// scale-out: it can pass only on replicas the fleet had before the load.
func restScenario(t *testing.T, url string) (path, out string) {
	dir := t.TempDir()
	path = writeFile(t, dir, "rest.yaml", `
target: {url: `+url+`}
request: {prompt_tokens: 8, max_tokens: 4}
load: [{name: light, duration: 1s, rate: 5/s}]
client_check: {max_send_lag: 2s, max_shortfall: 50%}
observe:
  scrape: [`+url+`/metrics]
  interval: 500ms         # also each scrape's timeout: 100ms let a busy machine time out every reading of a 1s rest wait
  after: 0s
  vllm: '{namespace="inference"}'
  hpa: inference/keda-hpa-vllm-sim
  deployment: inference/vllm-sim
expect: [desired >= 2 within 4m]
`)
	return path, filepath.Join(dir, "run")
}

// A fleet left scaled out by an earlier run (issue 11, item 1): the run
// waits for it to be at rest before the load, so the light load's own
// effect is measured and the scale-out it did not cause does not pass.
func TestRunWaitsForRest(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end run")
	}
	_, url := leftScaledOut(t, 5*time.Second)
	path, out := restScenario(t, url)
	c := newCLI()
	code := c.run(t, "run", path, "--out", out)
	if code != exitFailed {
		t.Fatalf("exit %d, want 1 (the light load scales nothing)\n%s\n%s", code, c.stdout.String(), c.stderr.String())
	}
	if !strings.Contains(c.stderr.String(), "waiting for the fleet to be at rest: desired 5, current 5, ready 5: not the minimum 1") ||
		!strings.Contains(c.stderr.String(), "the fleet is at rest after") {
		t.Errorf("no live line about the wait:\n%s", c.stderr.String())
	}
	r := readReportFile(t, out)
	b := r.Baseline
	if b == nil || !b.AtRest || b.WaitedS <= 0 || b.Values["desired"] == nil || *b.Values["desired"] != 1 ||
		b.MinReplicas == nil || *b.MinReplicas != 1 || b.MinFrom != "hpa" || b.T >= 0 {
		t.Fatalf("baseline %+v", b)
	}
	if o := r.Expectations[0]; o.OK || !strings.HasPrefix(o.Detail, "not met within 4:00 of the load's start: best seen desired 1") {
		t.Errorf("expectation %+v", o)
	}
	if r.KPIs.Start["desired"] != 1 || r.KPIs.TimeToIntent != nil {
		t.Errorf("KPIs not from the baseline at rest: start %v, time to intent %v", r.KPIs.Start, r.KPIs.TimeToIntent)
	}
}

// When rest does not come within --rest-wait the run refuses before it
// sends anything; --rest-wait 0 runs from where the fleet is, names the
// baseline, and a scale-out that was there before the load does not count.
func TestRunNotAtRest(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end run")
	}
	fleet, url := leftScaledOut(t, 10*time.Minute)
	path, out := restScenario(t, url)
	sent := fleet.Stats().Received

	c := newCLI()
	if code := c.run(t, "run", path, "--out", out, "--rest-wait", "1s"); code != exitCannotRun {
		t.Fatalf("exit %d, want 3\n%s\n%s", code, c.stdout.String(), c.stderr.String())
	}
	// A busy machine's last reading may add its gaps after the reason.
	if want := "scaleout: the fleet is not at rest after waiting 1s for it (desired 5, current 5, ready 5: not the minimum 1"; !strings.Contains(c.stderr.String(), want) {
		t.Errorf("stderr lacks %q:\n%s", want, c.stderr.String())
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) || fleet.Stats().Received != sent {
		t.Errorf("a refused run left a run directory (%v) or sent %d requests", err, fleet.Stats().Received-sent)
	}

	c = newCLI()
	if code := c.run(t, "run", path, "--out", out, "--rest-wait", "0"); code != exitFailed {
		t.Fatalf("exit %d, want 1\n%s\n%s", code, c.stdout.String(), c.stderr.String())
	}
	text := c.stdout.String()
	for _, want := range []string{
		"baseline: NOT AT REST (desired 5, current 5, ready 5: not the minimum 1): waiting 0 · running 0 · desired 5 · current 5 · ready 5 · min 1 (hpa)",
		"FAIL  desired >= 2 within 4m — not shown within 4:00 of the load's start: it already held before the load (desired 5 at the baseline) and never stopped holding, so the load did not bring it about",
		"time to intent not reached",
		"verdict: FAIL",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("stdout lacks %q:\n%s", want, text)
		}
	}
	if !strings.Contains(c.stderr.String(), "running from where it is (--rest-wait 0)") {
		t.Errorf("stderr does not say the run goes on from where the fleet is:\n%s", c.stderr.String())
	}
	r := readReportFile(t, out)
	if r.Baseline == nil || r.Baseline.AtRest || len(r.Baseline.NotAtRest) != 1 || r.Verdict != "fail" {
		t.Errorf("baseline %+v, verdict %s", r.Baseline, r.Verdict)
	}
}
