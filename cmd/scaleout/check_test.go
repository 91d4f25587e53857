package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scaleout/scaleout/sim"
)

// scaledObject is a manifest for the simulator's names with the given
// triggers (YAML list items) and annotations.
func scaledObject(annotations, triggers string) string {
	return fmt.Sprintf(`apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata:
  name: vllm-sim
  namespace: inference
  annotations: {%s}
spec:
  scaleTargetRef: {name: vllm-sim}
  minReplicaCount: 1
  maxReplicaCount: 4
  triggers:
%s`, annotations, triggers)
}

func trigger(query, threshold string) string {
	return fmt.Sprintf(`    - type: prometheus
      metadata:
        serverAddress: http://prometheus-operated.monitoring.svc:9090
        query: '%s'
        threshold: "%s"
`, query, threshold)
}

const waitingOK = `sum(vllm:num_requests_waiting{namespace="inference"})`

// scaleout check against the stand-in, with ScaledObjects that are right
// and with each of the common mistakes; read as an on-call engineer would.
func TestCheckScaledObjects(t *testing.T) {
	cases := []struct {
		name, annotations, triggers string
		start                       int
		code                        int
		want                        []string
	}{
		{"right", "", trigger(waitingOK, "5"), 1, 0, []string{
			"ok    ScaledObject inference/vllm-sim (Deployment vllm-sim, 1..4 replicas): HPA keda-hpa-vllm-sim, 1 prometheus trigger(s)",
			"ok    trigger 0 (series waiting) = 0: one sample, as KEDA needs (from 1 replica it asks for 1)",
			"ok    series desired = 1",
		}},
		{"nothing", "", trigger(`sum(vllm:num_requests_waiting{namespace="serving"})`, "5"), 1, 3, []string{
			"FAIL  trigger 0: series waiting returns nothing: vllm:num_requests_waiting exists, but not with these labels — KEDA reads an empty result as 0 (ignoreNullValues), which silently holds the deployment at its minimum",
		}},
		{"several", "", trigger(`vllm:num_requests_waiting{namespace="inference"}`, "5"), 2, 3, []string{
			"warn  trigger 0 (vllm:num_requests_waiting{namespace=\"inference\"}) is not aggregated",
			"FAIL  trigger 0 (series waiting) returns 2 samples: KEDA needs exactly one and fails the scaler",
		}},
		{"renamed", "", trigger(waitingOK, "5") + trigger(`sum(vllm:gpu_cache_usage_perc{namespace="inference"})`, "0.8"), 1, 3, []string{
			"warn  trigger 1 uses vllm:gpu_cache_usage_perc, deprecated in vLLM 0.9.2 and removed in 0.12",
			"FAIL  trigger 1: series trigger1 returns nothing: vllm:gpu_cache_usage_perc is not exported, but vllm:kv_cache_usage_perc is (vLLM V1 renamed it (removed in 0.12))",
		}},
		{"avg kv", "", trigger(waitingOK, "5") + trigger(`avg(vllm:kv_cache_usage_perc{namespace="inference"})`, "0.8"), 1, 0, []string{
			"warn  trigger 1 (avg(vllm:kv_cache_usage_perc{namespace=\"inference\"})) averages under AverageValue: desired = ceil(avg / 0.8) does not grow with more replicas (a KV fraction is at most 1, so it asks for at most 2 replicas); use sum(…) or metricType: Value",
			"ok    trigger 1 (series trigger1) = 0: one sample",
		}},
		{"paused", `autoscaling.keda.sh/paused: "true"`, trigger(waitingOK, "5"), 1, 3, []string{
			"ok    the manifest ships paused",
			"FAIL  the ScaledObject inference/vllm-sim is paused (KEDA deletes its HPA while paused, so desired and current have no series) — fix: un-pause it for the run: kubectl -n inference annotate scaledobject vllm-sim autoscaling.keda.sh/paused=false --overwrite (the platform team's `make keda-demo-up` in their repository does the same)",
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			so := writeFile(t, dir, "so.yaml", scaledObject(tc.annotations, tc.triggers))
			sc := writeFile(t, dir, "s.yaml", fmt.Sprintf("sim: {replicas: {start: %d}}\nload: [{duration: 1s, rate: 1/s}]\n", tc.start))
			c := newCLI()
			code := c.run(t, "check", sc, "--scaledobject", so)
			out := c.stdout.String()
			if code != tc.code {
				t.Errorf("exit %d, want %d\n%s%s", code, tc.code, out, c.stderr.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			if tc.name != "paused" && strings.Contains(out, "paused (KEDA") {
				t.Errorf("an un-paused ScaledObject reported paused:\n%s", out)
			}
			if tc.name == "paused" && strings.Contains(out, "series desired returns nothing") {
				t.Errorf("the paused ScaledObject explains the missing HPA series, yet they were reported as broken queries:\n%s", out)
			}
		})
	}
}

// A run that knows the ScaledObject predicts desired from the trigger and
// measures how far the HPA lags the prediction.
func TestRunPredictsIntent(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end run")
	}
	dir := t.TempDir()
	so := writeFile(t, dir, "so.yaml", scaledObject("", trigger(waitingOK, "5")))
	sc := writeFile(t, dir, "s.yaml", storySim+storyLoad+"observe: {interval: 500ms, after: 40s}\nexpect: [predicted >= 3 within 11s, intent_lag < 3s]\n")
	out := filepath.Join(dir, "run")
	c := newCLI()
	if code := c.run(t, "run", sc, "--scaledobject", so, "--out", out); code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, c.stdout.String(), c.stderr.String())
	}
	r := readReportFile(t, out)
	var names []string
	for _, s := range r.Series {
		names = append(names, s.Name)
	}
	if got := strings.Join(names, ","); got != "waiting,running,kv_cache,desired,current,ready,predicted" {
		t.Errorf("series %s", got)
	}
	if r.Series[0].Query != waitingOK {
		t.Errorf("waiting is not the trigger's own query: %q", r.Series[0].Query)
	}
	if r.KPIs.IntentLag == nil || r.KPIs.Peak["predicted"] < 3 {
		t.Errorf("intent lag %v, peak predicted %v", r.KPIs.IntentLag, r.KPIs.Peak["predicted"])
	}
	if !strings.Contains(c.stdout.String(), "predicted") {
		t.Errorf("no predicted column:\n%s", c.stdout.String())
	}
}

// check finds the model itself when the scenario names none.
func TestCheckWithoutModel(t *testing.T) {
	target, _ := fakeVLLM(t)
	dir := t.TempDir()
	p := writeFile(t, dir, "c.yaml", "target: {url: "+target.URL+"}\nload: [{duration: 1s, rate: 1/s}]\n")
	c := newCLI()
	if code := c.run(t, "check", p); code != 0 {
		t.Fatalf("exit %d: %s%s", code, c.stdout.String(), c.stderr.String())
	}
	if !strings.Contains(c.stdout.String(), "serves m (target.model not set: using it)") {
		t.Errorf("output: %s", c.stdout.String())
	}
}

// freshProm is a fake Prometheus that started 10 s ago. Its one target
// is scraped every `interval`: its last scrape is the moment it is asked
// (a scrape always just done, as with a 1 s interval), or never while
// scraped is false. Queries on namespace "inference" find one series.
func freshProm(t *testing.T, interval string, scraped *atomic.Bool) *httptest.Server {
	start := time.Now().UTC().Add(-10 * time.Second)
	prom := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/api/v1/status/runtimeinfo":
			fmt.Fprintf(w, `{"status":"success","data":{"startTime":%q}}`, start.Format(time.RFC3339Nano))
		case "/api/v1/targets":
			last := "0001-01-01T00:00:00Z"
			if scraped.Load() {
				last = time.Now().UTC().Format(time.RFC3339Nano)
			}
			fmt.Fprintf(w, `{"status":"success","data":{"activeTargets":[{"labels":{"job":"vllm"},"health":"up","lastScrape":%q,"scrapeInterval":%q,"scrapeTimeout":%q}],"droppedTargets":[]}}`,
				last, interval, interval)
		default:
			result := ""
			if q := r.FormValue("query"); strings.Contains(q, `namespace="inference"`) || strings.HasPrefix(q, "count(") {
				result = `{"metric":{},"value":[1,"0"]}`
			}
			fmt.Fprintf(w, `{"status":"success","data":{"resultType":"vector","result":[%s]}}`, result)
		}
	}))
	t.Cleanup(prom.Close)
	return prom
}

// A Prometheus that scrapes every second, asked by check within two
// minutes of its start: every answer of the first ask may be held back
// (its newest scrape came with the ask), so check asks again, and checks
// the queries: a trigger with a typo fails, a right one passes.
func TestCheckPrometheusScrapingEverySecond(t *testing.T) {
	target, _ := fakeVLLM(t)
	var scraped atomic.Bool
	scraped.Store(true)
	prom := freshProm(t, "1s", &scraped)
	dir := t.TempDir()
	sc := writeFile(t, dir, "s.yaml", "target: {url: "+target.URL+", model: m}\nload: [{duration: 1s, rate: 1/s}]\n")
	for _, tc := range []struct {
		name, query string
		code        int
		want        string
	}{
		{"typo", `sum(vllm:num_requests_waiting{namespace="inferense"})`, exitCannotRun, "FAIL  trigger 0: series waiting returns nothing"},
		{"right", waitingOK, 0, "ok    trigger 0 (series waiting) = 0: one sample"},
	} {
		so := writeFile(t, dir, tc.name+".yaml", scaledObject("", trigger(tc.query, "5")))
		c := newCLI()
		code := c.run(t, "check", sc, "--scaledobject", so, "--prometheus", prom.URL)
		out := c.stdout.String()
		if code != tc.code || !strings.Contains(out, tc.want) || strings.Contains(out, "has not scraped") {
			t.Errorf("%s trigger: exit %d, want %d and %q:\n%s%s", tc.name, code, tc.code, tc.want, out, c.stderr.String())
		}
	}
}

// A Prometheus that has only just started and has not scraped its target:
// check asks again for two scrape intervals, then says that nothing could
// be checked, and does not pass (exit 3). Once it has scraped, an empty
// trigger query fails as it should.
func TestCheckFreshPrometheus(t *testing.T) {
	target, _ := fakeVLLM(t)
	var scraped atomic.Bool
	prom := freshProm(t, "100ms", &scraped)
	dir := t.TempDir()
	so := writeFile(t, dir, "so.yaml", scaledObject("", trigger(`sum(vllm:num_requests_waiting{namespace="serving"})`, "5")))
	sc := writeFile(t, dir, "s.yaml", "target: {url: "+target.URL+", model: m}\nload: [{duration: 1s, rate: 1/s}]\n")

	c := newCLI()
	code := c.run(t, "check", sc, "--scaledobject", so, "--prometheus", prom.URL)
	out := c.stdout.String()
	want := "FAIL  no query could be checked: Prometheus started at "
	if code != exitCannotRun || !strings.Contains(out, want) || strings.Contains(out, "trigger 0: series waiting returns nothing") {
		t.Errorf("before the first scrape: exit %d, want 3 and %q (and no verdict on the queries):\n%s%s", code, want, out, c.stderr.String())
	}

	scraped.Store(true)
	c = newCLI()
	code = c.run(t, "check", sc, "--scaledobject", so, "--prometheus", prom.URL)
	out = c.stdout.String()
	if code != exitCannotRun || !strings.Contains(out, "FAIL  trigger 0: series waiting returns nothing") || strings.Contains(out, "has not scraped") {
		t.Errorf("after the first scrape: exit %d, want 3 and the empty trigger failed:\n%s%s", code, out, c.stderr.String())
	}
}

// Without a scenario file, the flags say what to check.
func TestCheckWithoutScenario(t *testing.T) {
	_, srv := serveSim(t, sim.DefaultConfig())
	dir := t.TempDir()
	for _, tc := range []struct {
		name, query string
		code        int
		want        string
	}{
		{"right", waitingOK, 0, "ok    trigger 0 (series waiting) = 0: one sample"},
		{"typo", `sum(vllm:num_requests_waiting{namespace="inferense"})`, exitCannotRun, "FAIL  trigger 0: series waiting returns nothing"},
	} {
		so := writeFile(t, dir, tc.name+".yaml", scaledObject("", trigger(tc.query, "5")))
		c := newCLI()
		code := c.run(t, "check", "--target", srv.URL, "--scrape", srv.URL+"/metrics", "--scaledobject", so)
		out := c.stdout.String()
		if code != tc.code || !strings.Contains(out, tc.want) || !strings.Contains(out, "ok    series desired = 1") {
			t.Errorf("%s trigger: exit %d, want %d and %q:\n%s%s", tc.name, code, tc.code, tc.want, out, c.stderr.String())
		}
	}
	c := newCLI()
	if code := c.run(t, "check", "--prometheus", "http://127.0.0.1:9"); code != exitUsage || !strings.Contains(c.stderr.String(), "check takes a scenario file, or flags that say what to check: --target URL") {
		t.Errorf("no scenario, no --target: exit %d, want 2:\n%s", code, c.stderr.String())
	}
	c = newCLI()
	if code := c.run(t, "run", "--target", srv.URL); code != exitUsage {
		t.Errorf("run without a scenario: exit %d, want 2:\n%s", code, c.stderr.String())
	}
}
