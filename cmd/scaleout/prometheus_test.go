package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scaleout/scaleout/sim"
)

// needTool finds a program the test needs, or skips; on CI (where the
// variable is set) a missing program fails the test instead.
func needTool(t *testing.T, name, requireVar string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if os.Getenv(requireVar) != "" {
		t.Fatalf("%s is not installed (make setup installs it)", name)
	}
	t.Skipf("%s is not installed (make setup installs it; %s=1 turns this skip into a failure)", name, requireVar)
	return ""
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, deadline time.Duration, cond func() bool) {
	t.Helper()
	if err := await(what, deadline, cond); err != nil {
		t.Fatal(err)
	}
}

// await is waitFor for other goroutines than the test's own, which must
// not call t.Fatal: it returns the failure instead.
func await(what string, deadline time.Duration, cond func() bool) error {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	timeout := time.After(deadline)
	for !cond() {
		select {
		case <-tick.C:
		case <-timeout:
			return fmt.Errorf("gave up after %s waiting for %s", deadline, what)
		}
	}
	return nil
}

// startPrometheus runs a real Prometheus server on a free loopback port
// that scrapes target every second, and waits until it has.
func startPrometheus(t *testing.T, target string) string {
	t.Helper()
	bin := needTool(t, "prometheus", "SCALEOUT_REQUIRE_PROMETHEUS")
	dir := t.TempDir()
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: sim
    honor_labels: true
    static_configs:
      - targets: [%q]
`, target)
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "--config.file="+cfgPath, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--log.level=warn")
	var logs strings.Builder
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("prometheus logs:\n%s", logs.String())
		}
	})
	url := "http://" + addr
	waitFor(t, "prometheus to scrape the simulator", time.Minute, func() bool {
		resp, err := http.Get(url + "/api/v1/query?query=" + "kube_deployment_status_replicas_ready")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return strings.Contains(string(b), `"result":[{`)
	})
	return url
}

// serveSim serves a simulated fleet on a loopback port for the test.
func serveSim(t *testing.T, cfg sim.Config) (*sim.Fleet, *httptest.Server) {
	t.Helper()
	fleet, err := sim.New(cfg, sim.RealClock())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { _ = fleet.Run(ctx) }()
	srv := httptest.NewServer(fleet.Handler())
	t.Cleanup(func() { srv.Close(); cancel() })
	return fleet, srv
}

// The scale-out story through a real Prometheus server: scaleout sim's
// series are scraped every second and queried with --prometheus.
func TestRunThroughRealPrometheus(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end run")
	}
	cfg := sim.DefaultConfig()
	cfg.Replicas = sim.Replicas{Min: 1, Max: 4, Start: 1}
	cfg.MaxNumSeqs, cfg.TTFT, cfg.ITL = 4, 20*time.Millisecond, 5*time.Millisecond
	// A scale-down window longer than the time from the queue draining to the
	// load's end: no pod goes away while it still serves (what a pod serves
	// after its last scrape cannot be counted), so the counters must match.
	cfg.ColdStart, cfg.HPASync, cfg.ScaleDownWindow = time.Second, time.Second, 10*time.Second
	fleet, srv := serveSim(t, cfg)
	prom := startPrometheus(t, strings.TrimPrefix(srv.URL, "http://"))

	dir := t.TempDir()
	path := writeFile(t, dir, "prom.yaml", `
target: {url: `+srv.URL+`}
request: {prompt_tokens: 16, max_tokens: 20}
`+storyLoad+`
observe:
  prometheus: `+prom+`
  interval: 1s
  after: 40s
  vllm: '{namespace="inference"}'
  hpa: inference/keda-hpa-vllm-sim
  deployment: inference/vllm-sim
expect:
  - desired >= 3 within 12s
  - ready >= 3 within 14s
  - desired <= 1 after load within 40s
`)
	out := filepath.Join(dir, "run")
	c := newCLI()
	if code := c.run(t, "run", path, "--out", out); code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, c.stdout.String(), c.stderr.String())
	}
	r := readReportFile(t, out)
	if !strings.HasPrefix(r.Target.Observation, "prometheus http://127.0.0.1:") {
		t.Errorf("observation %q", r.Target.Observation)
	}
	k := r.KPIs
	if k.Start["desired"] != 1 || k.Peak["desired"] < 3 || k.Peak["ready"] < 3 || k.Peak["waiting"] <= 5 || k.ScaleIn == nil {
		t.Errorf("the story did not show through Prometheus: start %v peak %v scale-in %v", k.Start, k.Peak, k.ScaleIn)
	}
	if st := fleet.Stats(); int64(st.Received) != r.Load.Requests || int64(st.OK) != r.Load.OK || int64(st.GenerationTokens) != r.Load.OutputTokens {
		t.Errorf("client: %d requests, %d ok, %d tokens; simulator: %+v", r.Load.Requests, r.Load.OK, r.Load.OutputTokens, st)
	}
	// Nothing lost, checked through vLLM's own counters in Prometheus.
	if sv := r.Server; sv == nil || !strings.HasPrefix(sv.Source, "vLLM counters via prometheus") {
		t.Errorf("no counter check: %+v (notes %v)", sv, r.Notes)
	} else {
		t.Logf("client %d ok / %d tokens; server %+v", r.Load.OK, r.Load.OutputTokens, *sv)
		// Exact unless a scrape missed a pod's last counts; never more than
		// the client got (nothing else sends to this simulator).
		if sv.OK > r.Load.OK || sv.OutputTokens > r.Load.OutputTokens || float64(sv.OK) < 0.99*float64(r.Load.OK) {
			t.Errorf("the counters rose by %d ok / %d tokens, the client got %d / %d", sv.OK, sv.OutputTokens, r.Load.OK, r.Load.OutputTokens)
		}
	}
	if r.Verdict != "pass" {
		t.Errorf("verdict %s: %+v", r.Verdict, r.Expectations)
	}
}

// A vLLM that restarts during the run (its counters begin again at 0 under
// the same labels), seen through a real Prometheus: the server counted
// what the client received, before and after the restart.
func TestCountersAcrossARestartThroughPrometheus(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end run")
	}
	var mu sync.Mutex
	ok, tokens := 1000, 3000 // counted before the run
	served, restarted := 0, false
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/models":
			fmt.Fprint(w, `{"object":"list","data":[{"id":"m","max_model_len":4096}]}`)
		case "/v1/completions":
			w.Header().Set("Content-Type", "text/event-stream")
			for range 3 {
				fmt.Fprint(w, `data: {"choices":[{"index":0,"text":"x"}]}`+"\n\n")
			}
			mu.Lock()
			ok, tokens, served = ok+1, tokens+3, served+1
			mu.Unlock()
			fmt.Fprint(w, `data: {"choices":[],"usage":{"prompt_tokens":4,"completion_tokens":3,"total_tokens":7}}`+"\n\ndata: [DONE]\n\n")
		case "/metrics":
			mu.Lock()
			defer mu.Unlock()
			fmt.Fprintf(w, "vllm:request_success_total{namespace=\"inference\",pod=\"p0\",finished_reason=\"length\"} %d\n", ok)
			fmt.Fprintf(w, "vllm:generation_tokens_total{namespace=\"inference\",pod=\"p0\"} %d\n", tokens)
			fmt.Fprint(w, "vllm:num_requests_waiting{namespace=\"inference\",pod=\"p0\"} 0\nvllm:num_requests_running{namespace=\"inference\",pod=\"p0\"} 0\n")
			fmt.Fprint(w, "vllm:kv_cache_usage_perc{namespace=\"inference\",pod=\"p0\"} 0\nkube_deployment_status_replicas_ready 1\n")
			if served >= 20 && !restarted {
				// Prometheus has these counts; the process restarts now.
				ok, tokens, restarted = 0, 0, true
			}
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	prom := startPrometheus(t, strings.TrimPrefix(srv.URL, "http://"))

	dir := t.TempDir()
	path := writeFile(t, dir, "restart.yaml", `
target: {url: `+srv.URL+`}
load: [{duration: 4s, rate: 20/s}]
client_check: {max_send_lag: 2s, max_shortfall: 50%}
observe:
  prometheus: `+prom+`
  interval: 1s
  after: 3s                # time for Prometheus to scrape the last counts on a busy machine
  vllm: '{namespace="inference"}'
`)
	out := filepath.Join(dir, "run")
	c := newCLI()
	if code := c.run(t, "run", path, "--out", out); code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, c.stdout.String(), c.stderr.String())
	}
	r := readReportFile(t, out)
	mu.Lock()
	defer mu.Unlock()
	if !restarted || served != int(r.Load.OK) {
		t.Fatalf("the server restarted: %t; it served %d, the client got %d", restarted, served, r.Load.OK)
	}
	if sv := r.Server; sv == nil || sv.OK != r.Load.OK || sv.OutputTokens != r.Load.OutputTokens {
		t.Errorf("client %d ok / %d tokens; server %+v (notes %q)", r.Load.OK, r.Load.OutputTokens, sv, r.Notes)
	}
	if !strings.Contains(c.stdout.String(), "nothing lost") {
		t.Errorf("the summary does not say nothing was lost:\n%s", c.stdout.String())
	}
}

// scaleout check right after a real Prometheus started, while it scrapes
// every second: the queries are checked (a typo in the trigger fails it),
// not skipped as "not scraped yet".
func TestCheckThroughRealPrometheus(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Prometheus server")
	}
	_, srv := serveSim(t, sim.DefaultConfig())
	prom := startPrometheus(t, strings.TrimPrefix(srv.URL, "http://"))
	dir := t.TempDir()
	for _, tc := range []struct {
		name, query string
		code        int
		want        string
	}{
		{"typo", `sum(vllm:num_requests_waiting{namespace="inferense"})`, exitCannotRun, "FAIL  trigger 0: series waiting returns nothing: vllm:num_requests_waiting exists, but not with these labels"},
		{"right", waitingOK, 0, "ok    trigger 0 (series waiting) = 0: one sample"},
	} {
		so := writeFile(t, dir, tc.name+".yaml", scaledObject("", trigger(tc.query, "5")))
		c := newCLI()
		code := c.run(t, "check", "--target", srv.URL, "--prometheus", prom, "--scaledobject", so)
		out := c.stdout.String()
		if code != tc.code || !strings.Contains(out, tc.want) || strings.Contains(out, "has not scraped") {
			t.Errorf("%s trigger: exit %d, want %d and %q:\n%s%s", tc.name, code, tc.code, tc.want, out, c.stderr.String())
		}
	}
}
