package sim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

func parseMetrics(t *testing.T, r io.Reader) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

func scrape(t *testing.T, h *harness) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := h.srv.Client().Get(h.srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %d", resp.StatusCode)
	}
	return parseMetrics(t, resp.Body)
}

func labelsOf(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, l := range m.GetLabel() {
		out[l.GetName()] = l.GetValue()
	}
	return out
}

// find returns the one sample of name whose labels include want.
func find(t *testing.T, fams map[string]*dto.MetricFamily, name string, want map[string]string) *dto.Metric {
	t.Helper()
	fam, ok := fams[name]
	if !ok {
		t.Fatalf("%s: no such series", name)
	}
	var found []*dto.Metric
	for _, m := range fam.GetMetric() {
		got := labelsOf(m)
		match := true
		for k, v := range want {
			if got[k] != v {
				match = false
			}
		}
		if match {
			found = append(found, m)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%s%v: %d samples match, want 1", name, want, len(found))
	}
	return found[0]
}

func value(t *testing.T, fams map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	t.Helper()
	m := find(t, fams, name, want)
	switch {
	case m.Gauge != nil:
		return m.GetGauge().GetValue()
	case m.Counter != nil:
		return m.GetCounter().GetValue()
	case m.Untyped != nil:
		return m.GetUntyped().GetValue()
	}
	t.Fatalf("%s: not a gauge or counter", name)
	return 0
}

func adminPost(t *testing.T, h *harness, path string, out *State) {
	t.Helper()
	resp := h.post(t.Context(), path, "")
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST %s: %d", path, resp.StatusCode)
	}
	must(t, decodeBody(resp, out))
}

func decodeBody(resp *http.Response, v any) error {
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%w: %s", err, b)
	}
	return nil
}

// TestMetricsByValue builds a known state, scrapes /metrics, parses it with
// expfmt and checks every series by value.
func TestMetricsByValue(t *testing.T) {
	cfg := testConfig()
	cfg.Paused = false
	cfg.Replicas = Replicas{Min: 1, Max: 5, Start: 2}
	cfg.TTFT = 100 * time.Millisecond
	cfg.PrefillPerToken = time.Millisecond
	cfg.ITL = 10 * time.Millisecond
	cfg.MaxNumSeqs = 1
	cfg.KVCapacity = 100
	h := newHarness(t, cfg, true)
	f := h.f
	waitFor(t, f, "first sync", func(s State) bool { return s.HPASyncs == 1 })
	p0, p1 := f.pods[0].name, f.pods[1].name

	// A → p0 (TTFT 102 ms, e2e 142 ms), B → p1 (TTFT 104 ms, e2e 124 ms).
	a := h.async("/v1/completions", `{"prompt":"a b","max_tokens":5,"ignore_eos":true}`)
	waitFor(t, f, "A running", func(s State) bool { return s.Running == 1 })
	b := h.async("/v1/completions", `{"prompt":"a b c d","max_tokens":3,"ignore_eos":true}`)
	waitFor(t, f, "B running", func(s State) bool { return s.Running == 2 })
	h.clk.Advance(200 * time.Millisecond)
	for _, r := range []result{recv(t, a, "A"), recv(t, b, "B")} {
		if r.err != nil || r.status != 200 {
			t.Fatalf("%d %v %s", r.status, r.err, r.body)
		}
	}
	waitFor(t, f, "A and B done", func(s State) bool { return s.Running == 0 && s.Stats.OK == 2 })
	// C → p0 (both idle: the oldest), streamed: TTFT 101 ms, e2e 111 ms.
	c := h.async("/v1/completions", `{"prompt":"x","max_tokens":2,"ignore_eos":true,"stream":true}`)
	waitFor(t, f, "C running", func(s State) bool { return s.Running == 1 })
	h.clk.Advance(200 * time.Millisecond)
	if r := recv(t, c, "C"); r.status != 200 {
		t.Fatalf("C: %d %s", r.status, r.body)
	}
	waitFor(t, f, "C done", func(s State) bool { return s.Running == 0 })

	// Four held requests (prompt 10): one running and one waiting on each pod.
	held := submitN(t, f, 4)
	h.clk.Set(epoch.Add(15 * time.Second))
	waitFor(t, f, "second sync", func(s State) bool { return s.HPASyncs == 2 })

	fams := scrape(t, h)
	pod := func(name string) map[string]string {
		return map[string]string{"model_name": cfg.Model, "namespace": "inference", "pod": name}
	}
	with := func(m map[string]string, k, v string) map[string]string {
		out := map[string]string{k: v}
		for a, b := range m {
			out[a] = b
		}
		return out
	}
	for _, tt := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"vllm:num_requests_waiting", pod(p0), 1},
		{"vllm:num_requests_waiting", pod(p1), 1},
		{"vllm:num_requests_running", pod(p0), 1},
		{"vllm:num_requests_running", pod(p1), 1},
		{"vllm:kv_cache_usage_perc", pod(p0), 0.1}, // 10 prompt tokens of 100
		{"vllm:kv_cache_usage_perc", pod(p1), 0.1},
		{"vllm:request_success_total", with(pod(p0), "finished_reason", "length"), 2},
		{"vllm:request_success_total", with(pod(p0), "finished_reason", "stop"), 0},
		{"vllm:request_success_total", with(pod(p0), "finished_reason", "abort"), 0},
		{"vllm:request_success_total", with(pod(p1), "finished_reason", "length"), 1},
		{"vllm:generation_tokens_total", pod(p0), 7},
		{"vllm:generation_tokens_total", pod(p1), 3},
		{"vllm:prompt_tokens_total", pod(p0), 3},
		{"vllm:prompt_tokens_total", pod(p1), 4},
		{"kube_horizontalpodautoscaler_status_desired_replicas", map[string]string{"namespace": "inference", "horizontalpodautoscaler": "keda-hpa-vllm-sim"}, 2},
		{"kube_horizontalpodautoscaler_status_current_replicas", map[string]string{"namespace": "inference", "horizontalpodautoscaler": "keda-hpa-vllm-sim"}, 2},
		{"kube_horizontalpodautoscaler_spec_min_replicas", map[string]string{"namespace": "inference", "horizontalpodautoscaler": "keda-hpa-vllm-sim"}, 1},
		{"kube_horizontalpodautoscaler_spec_max_replicas", map[string]string{"namespace": "inference", "horizontalpodautoscaler": "keda-hpa-vllm-sim"}, 5},
		{"kube_deployment_spec_replicas", map[string]string{"namespace": "inference", "deployment": "vllm-sim"}, 2},
		{"kube_deployment_status_replicas", map[string]string{"namespace": "inference", "deployment": "vllm-sim"}, 2},
		{"kube_deployment_status_replicas_ready", map[string]string{"namespace": "inference", "deployment": "vllm-sim"}, 2},
		{"kube_deployment_status_replicas_available", map[string]string{"namespace": "inference", "deployment": "vllm-sim"}, 2},
		{"kube_deployment_status_replicas_unavailable", map[string]string{"namespace": "inference", "deployment": "vllm-sim"}, 0},
		{"keda_scaler_metrics_value", map[string]string{"namespace": "inference", "scaledObject": "vllm-sim", "scaler": "prometheusScaler",
			"metric": "s0-prometheus", "triggerIndex": "0", "type": "ScaledObject"}, 2}, // 1 + 1 waiting at the t=15s sync
		{"keda_scaled_object_paused", map[string]string{"namespace": "inference", "scaledObject": "vllm-sim"}, 0},
	} {
		if got := value(t, fams, tt.name, tt.labels); !near(got, tt.want) {
			t.Errorf("%s%v = %v, want %v", tt.name, tt.labels, got, tt.want)
		}
	}
	// Exact label sets: vLLM's per-pod series carry model_name, namespace, pod.
	for _, name := range []string{"vllm:num_requests_waiting", "vllm:time_to_first_token_seconds"} {
		for _, m := range fams[name].GetMetric() {
			keys := slices.Sorted(func(yield func(string) bool) {
				for k := range labelsOf(m) {
					if !yield(k) {
						return
					}
				}
			})
			if !slices.Equal(keys, []string{"model_name", "namespace", "pod"}) {
				t.Errorf("%s labels %v", name, keys)
			}
		}
	}
	// Histograms: counts, sums and cumulative buckets.
	hist := func(name, p string) *dto.Histogram {
		m := find(t, fams, name, pod(p))
		if m.Histogram == nil {
			t.Fatalf("%s is not a histogram", name)
		}
		return m.GetHistogram()
	}
	bucket := func(hg *dto.Histogram, le float64) uint64 {
		for _, b := range hg.GetBucket() {
			if b.GetUpperBound() == le {
				return b.GetCumulativeCount()
			}
		}
		t.Fatalf("no bucket le=%v", le)
		return 0
	}
	for _, tt := range []struct {
		name, pod string
		count     uint64
		sum       float64
		le        map[float64]uint64
	}{
		{"vllm:time_to_first_token_seconds", p0, 2, 0.102 + 0.101, map[float64]uint64{0.1: 0, 0.25: 2}},
		{"vllm:time_to_first_token_seconds", p1, 1, 0.104, map[float64]uint64{0.1: 0, 0.25: 1}},
		{"vllm:e2e_request_latency_seconds", p0, 2, 0.142 + 0.111, map[float64]uint64{0.3: 2}},
		{"vllm:e2e_request_latency_seconds", p1, 1, 0.124, map[float64]uint64{0.3: 1}},
	} {
		hg := hist(tt.name, tt.pod)
		if hg.GetSampleCount() != tt.count || !near(hg.GetSampleSum(), tt.sum) {
			t.Errorf("%s{%s}: count %d sum %v, want %d and %v", tt.name, tt.pod, hg.GetSampleCount(), hg.GetSampleSum(), tt.count, tt.sum)
		}
		for le, want := range tt.le {
			if got := bucket(hg, le); got != want {
				t.Errorf("%s{%s} le=%v: %d, want %d", tt.name, tt.pod, le, got, want)
			}
		}
	}
	// The bucket bounds are vLLM's, as on the captured page.
	captured := parseMetrics(t, bytes.NewReader(fixture(t, "metrics-under-load.txt")))
	for _, name := range []string{"vllm:time_to_first_token_seconds", "vllm:e2e_request_latency_seconds"} {
		bounds := func(fams map[string]*dto.MetricFamily) []float64 {
			var b []float64
			for _, x := range fams[name].GetMetric()[0].GetHistogram().GetBucket() {
				b = append(b, x.GetUpperBound())
			}
			sort.Float64s(b)
			return b
		}
		if got, want := bounds(fams), bounds(captured); !slices.Equal(got, want) {
			t.Errorf("%s buckets %v, captured %v", name, got, want)
		}
	}

	// A removed pod's series go with it; the fleet's totals keep its work.
	must(t, f.Scale(1)) // p1 (newest) terminates; it still holds a running and a waiting request
	fams = scrape(t, h)
	if got := value(t, fams, "vllm:num_requests_waiting", pod(p1)); got != 1 {
		t.Fatalf("terminating pod: waiting %v, want 1 (it still exports)", got)
	}
	if got := value(t, fams, "kube_deployment_status_replicas", nil); got != 1 {
		t.Errorf("status replicas %v, want 1 (terminating pods do not count)", got)
	}
	for _, j := range []*job{held[1], held[3]} {
		if j.pod.name != p1 {
			t.Fatalf("held job on %s, want %s", j.pod.name, p1)
		}
		f.finish(j, h.clk.Now(), false)
	}
	fams = scrape(t, h)
	for _, m := range fams["vllm:generation_tokens_total"].GetMetric() {
		if labelsOf(m)["pod"] == p1 {
			t.Fatalf("series of the removed pod %s still exported", p1)
		}
	}
	if st := f.Stats(); st.GenerationTokens != 10 || st.PromptTokens != 7 {
		t.Errorf("fleet totals gen %d prompt %d, want 10 and 7", st.GenerationTokens, st.PromptTokens)
	}
	if !strings.HasPrefix(p1, "vllm-sim-") {
		t.Errorf("pod name %q", p1)
	}
}
