package platform

import (
	"errors"
	"testing"

	"github.com/scaleout/scaleout/promql"
)

func TestClassify(t *testing.T) {
	cases := []struct {
		query  string
		kind   Kind
		agg    promql.Agg
		metric string
		err    bool
	}{
		{`sum(vllm:num_requests_waiting{namespace="serving"})`, QueueTrigger, promql.Sum, VLLMWaiting, false},
		{`vllm:num_requests_waiting`, QueueTrigger, promql.None, VLLMWaiting, false},
		{`MAX by (pod) (vllm:num_requests_waiting)`, QueueTrigger, promql.Max, VLLMWaiting, false},
		{`sum({__name__="vllm:num_requests_waiting", model_name="m"})`, QueueTrigger, promql.Sum, VLLMWaiting, false},
		{`sum(vllm:kv_cache_usage_perc{namespace="serving"})`, KVTrigger, promql.Sum, VLLMKVCache, false},
		{`avg(vllm:kv_cache_usage_perc)`, KVTrigger, promql.Avg, VLLMKVCache, false},
		{`avg(vllm:gpu_cache_usage_perc)`, KVTrigger, promql.Avg, VLLMGPUCache, false},
		{`sum(vllm:num_requests_running)`, OtherTrigger, promql.Sum, VLLMRunning, false},
		// substrings are not names
		{`sum(my_num_requests_waiting)`, OtherTrigger, promql.Sum, "my_num_requests_waiting", false},
		{`sum(vllm:num_requests_waiting_total)`, OtherTrigger, promql.Sum, "vllm:num_requests_waiting_total", false},
		{`sum(x{reason="vllm:kv_cache_usage_perc"})`, OtherTrigger, promql.Sum, "x", false},
		{`sum({__name__=~"vllm:num_requests_waiting"})`, OtherTrigger, promql.Sum, "", false},
		// outside the subset: other, with the reason
		{`sum(rate(vllm:num_requests_waiting[1m]))`, OtherTrigger, promql.None, "", true},
		{`sum(vllm:num_requests_waiting) or vector(0)`, OtherTrigger, promql.None, "", true},
		{`scalar(vllm:num_requests_waiting)`, OtherTrigger, promql.None, "", true},
		{``, OtherTrigger, promql.None, "", true},
	}
	for _, c := range cases {
		got := Classify(c.query)
		if got.Kind != c.kind || got.Agg != c.agg || got.Metric != c.metric || (got.Err != nil) != c.err {
			t.Errorf("Classify(%q) = %+v (%s), want %s, agg %q, metric %q, error %v", c.query, got, got.Kind, c.kind, c.agg, c.metric, c.err)
		}
		var pe *promql.Error
		if got.Err != nil && !errors.As(got.Err, &pe) {
			t.Errorf("Classify(%q).Err = %v, want a *promql.Error", c.query, got.Err)
		}
	}
}

func TestRenames(t *testing.T) {
	if other, why, ok := OtherName(VLLMGPUCache); !ok || other != VLLMKVCache || why != "vLLM V1 renamed it (removed in 0.12)" {
		t.Errorf("OtherName(old) = %q, %q, %v", other, why, ok)
	}
	if other, why, ok := OtherName(VLLMKVCache); !ok || other != VLLMGPUCache || why != "this server still exports the pre-V1 name" {
		t.Errorf("OtherName(new) = %q, %q, %v", other, why, ok)
	}
	if _, _, ok := OtherName(VLLMWaiting); ok {
		t.Error("vllm:num_requests_waiting was never renamed")
	}
	if got, want := Renames[0].String(), "vllm:gpu_cache_usage_perc, deprecated in vLLM 0.9.2 and removed in 0.12; use vllm:kv_cache_usage_perc"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}

	for q, n := range map[string]int{
		`sum(vllm:gpu_cache_usage_perc) * 100`:                                1, // outside the subset too
		`avg(vllm:gpu_cache_usage_perc) + avg({"vllm:gpu_cache_usage_perc"})`: 1,
		`avg(vllm:kv_cache_usage_perc)`:                                       0,
		`count(x{note="vllm:gpu_cache_usage_perc"})`:                          0, // a label value, not a name
	} {
		if got := Retired(q); len(got) != n || n == 1 && got[0].Old != VLLMGPUCache {
			t.Errorf("Retired(%q) = %+v, want %d", q, got, n)
		}
	}
}

func TestAlternatives(t *testing.T) {
	got := Alternatives(`sum(vllm:gpu_cache_usage_perc{a="b"}) / count(vllm:gpu_cache_usage_perc) > bool 0.5`)
	want := Alternative{Metric: VLLMGPUCache, Other: VLLMKVCache, Why: "vLLM V1 renamed it (removed in 0.12)",
		Query: `sum(vllm:kv_cache_usage_perc{a="b"}) / count(vllm:kv_cache_usage_perc) > bool 0.5`}
	if len(got) != 1 || got[0] != want {
		t.Errorf("Alternatives = %+v, want %+v", got, want)
	}
	got = Alternatives(`avg({__name__="vllm:kv_cache_usage_perc"})`)
	if len(got) != 1 || got[0].Query != `avg({__name__="vllm:gpu_cache_usage_perc"})` || got[0].Why != "this server still exports the pre-V1 name" {
		t.Errorf("Alternatives of the new name = %+v", got)
	}
	if got := Alternatives(`sum(vllm:num_requests_waiting)`); got != nil {
		t.Errorf("Alternatives of a name never renamed = %+v", got)
	}
}

// The queries scaleout builds are the ones it always built, and read back
// as what they measure.
func TestQueries(t *testing.T) {
	sel := `{namespace="inference"}`
	for got, want := range map[string]string{
		WaitingQuery(sel):                       `sum(vllm:num_requests_waiting{namespace="inference"})`,
		RunningQuery(sel):                       `sum(vllm:num_requests_running{namespace="inference"})`,
		KVCacheQuery(""):                        `avg(vllm:kv_cache_usage_perc)`,
		DesiredQuery("inference", "keda-hpa-x"): `max(kube_horizontalpodautoscaler_status_desired_replicas{namespace="inference",horizontalpodautoscaler="keda-hpa-x"})`,
		CurrentQuery("inference", "keda-hpa-x"): `max(kube_horizontalpodautoscaler_status_current_replicas{namespace="inference",horizontalpodautoscaler="keda-hpa-x"})`,
		ReadyQuery("inference", "vllm-sim"):     `max(kube_deployment_status_replicas_ready{namespace="inference",deployment="vllm-sim"})`,
		PausedQuery("vllm-sim"):                 `max(keda_scaled_object_paused{scaledObject="vllm-sim"})`,
		SucceededSeries(sel):                    `vllm:request_success_total{namespace="inference",finished_reason!="abort"}`,
		SucceededSeries(""):                     `vllm:request_success_total{finished_reason!="abort"}`,
		GeneratedSeries(sel):                    `vllm:generation_tokens_total{namespace="inference"}`,
	} {
		if got != want {
			t.Errorf("got %s, want %s", got, want)
		}
		if _, err := promql.Parse(got); err != nil {
			t.Errorf("%s: %v", got, err)
		}
	}
	if Classify(WaitingQuery(sel)).Kind != QueueTrigger || Classify(KVCacheQuery(sel)).Kind != KVTrigger {
		t.Error("the shorthand queries do not classify as what they measure")
	}
}

func TestKEDANames(t *testing.T) {
	if got := KEDAHPAName("vllm-sim"); got != "keda-hpa-vllm-sim" {
		t.Errorf("KEDAHPAName = %q", got)
	}
	if so, ok := ScaledObjectOf("keda-hpa-vllm-sim"); !ok || so != "vllm-sim" {
		t.Errorf("ScaledObjectOf = %q, %v", so, ok)
	}
	for _, hpa := range []string{"keda-hpa-", "my-hpa", ""} {
		if so, ok := ScaledObjectOf(hpa); ok {
			t.Errorf("ScaledObjectOf(%q) = %q, want none", hpa, so)
		}
	}
	if got := KEDAMetricName(1, "prometheus"); got != "s1-prometheus" {
		t.Errorf("KEDAMetricName = %q", got)
	}
}

func TestShortOfGPUs(t *testing.T) {
	for msg, want := range map[string]bool{
		"0/1 nodes are available: 1 Insufficient nvidia.com/gpu. preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod.": true,
		"0/3 nodes are available: 1 Insufficient cpu, 2 Insufficient nvidia.com/gpu.":                                                                  true,
		"0/1 nodes are available: 1 Insufficient cpu.":                                                                                                 false,
		"0/1 nodes are available: 1 node(s) had untolerated taint {nvidia.com/gpu: present}.":                                                          false,
	} {
		if got := ShortOfGPUs(msg); got != want {
			t.Errorf("ShortOfGPUs(%q) = %v, want %v", msg, got, want)
		}
	}
}
