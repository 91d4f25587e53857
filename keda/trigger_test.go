package keda

import (
	"strings"
	"testing"

	"github.com/scaleout/scaleout/platform"
)

// The lint reads each trigger's parsed query: its aggregation and the
// metric it names, not the substrings it happens to hold.
func TestLintReadsTheParsedQuery(t *testing.T) {
	cases := []struct {
		query     string
		want, not []string
	}{
		{`Sum by (pod) (vllm:num_requests_waiting)`, nil, []string{"not aggregated", "averages"}},
		{`sum(rate(vllm:num_requests_waiting[1m]))`, nil, []string{"not aggregated"}}, // outside the subset: no claim about its shape
		{`sum(vllm:gpu_cache_usage_perc{namespace="x"}) * 100`, []string{"uses vllm:gpu_cache_usage_perc, deprecated in vLLM 0.9.2 and removed in 0.12; use vllm:kv_cache_usage_perc"}, []string{"not aggregated"}},
		{`avg(vllm:num_requests_running{note="vllm:gpu_cache_usage_perc"})`, []string{"averages under AverageValue: desired = ceil(avg / 0.8) does not grow with more replicas; use"}, []string{"deprecated", "KV fraction"}},
		{`avg({__name__="vllm:kv_cache_usage_perc"})`, []string{"a KV fraction is at most 1, so it asks for at most 2 replicas"}, nil},
		{`{pod=~"vllm-.*", __name__="vllm:num_requests_waiting"}`, []string{"is not aggregated"}, nil},
	}
	for _, c := range cases {
		so := &ScaledObject{Name: "x", Namespace: "n", Min: 1, Max: 5, Triggers: []Trigger{{Type: platform.KEDAPrometheus, Query: c.query, Threshold: 0.8, MetricType: AverageValue}}}
		lint := strings.Join(so.Lint(), "\n")
		for _, w := range c.want {
			if !strings.Contains(lint, w) {
				t.Errorf("%s: lint lacks %q:\n%s", c.query, w, lint)
			}
		}
		for _, n := range c.not {
			if strings.Contains(lint, n) {
				t.Errorf("%s: lint says %q:\n%s", c.query, n, lint)
			}
		}
	}
}

func TestTriggerClass(t *testing.T) {
	for q, want := range map[string]struct {
		kind platform.Kind
		agg  string
	}{
		`sum(vllm:num_requests_waiting{namespace="serving"})`: {platform.QueueTrigger, "sum"},
		`AVG(vllm:gpu_cache_usage_perc)`:                      {platform.KVTrigger, "avg"},
		`max without (pod) (vllm:kv_cache_usage_perc)`:        {platform.KVTrigger, "max"},
		`sum(vllm:num_requests_waiting) / 2`:                  {platform.OtherTrigger, ""},
	} {
		tr := Trigger{Type: platform.KEDAPrometheus, Query: q}
		if c := tr.Class(); c.Kind != want.kind || tr.Aggregation() != want.agg {
			t.Errorf("%s: %s, aggregation %q; want %s, %q", q, c.Kind, tr.Aggregation(), want.kind, want.agg)
		}
	}
}
