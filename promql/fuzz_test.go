package promql_test

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/scaleout/scaleout/platform"
	"github.com/scaleout/scaleout/promql"
	"github.com/scaleout/scaleout/scenario"
	"github.com/scaleout/scaleout/sim"
)

// seeds are queries scaleout meets: the shipped scenarios' series, the
// embedded simulator's, the examples of the facts page and odd inputs.
func seeds(t testing.TB) []string {
	var out []string
	paths, err := filepath.Glob("../scenarios/*.yaml")
	if err != nil || len(paths) == 0 {
		t.Fatalf("scenarios: %v %v", paths, err)
	}
	// A scenario with a sim: block observes what the simulator exports.
	c := sim.DefaultConfig()
	sel := `{namespace="` + c.Namespace + `"}`
	simCtx := scenario.Context{SimURL: "http://127.0.0.1:1", VLLM: sel, HPA: c.Namespace + "/" + platform.KEDAHPAName(c.ScaledObject), Deployment: c.Namespace + "/" + c.Deployment}
	for _, p := range paths {
		s, err := scenario.Load(p)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		ctx := scenario.Context{SimURL: simCtx.SimURL}
		if s.HasSim() {
			ctx = simCtx
		}
		r, err := s.Resolve(ctx)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		for _, ser := range r.Observe.Series {
			out = append(out, ser.Query)
		}
	}
	out = append(out,
		platform.PausedQuery(c.ScaledObject),
		"sum("+platform.SucceededSeries(sel)+")", "sum("+platform.GeneratedSeries(sel)+")",
		"sum(max_over_time("+platform.SucceededSeries(sel)+"[31s]))",
		"sum(vllm:kv_cache_usage_perc"+sel+")",
		// the facts page
		"sum(vllm:num_requests_waiting)", "avg(vllm:kv_cache_usage_perc)", "avg(vllm:gpu_cache_usage_perc)",
		`kube_horizontalpodautoscaler_*{horizontalpodautoscaler="keda-hpa-NAME"}`, `kube_hpa_status_desired_replicas{hpa="x"}`,
		`keda_scaler_metrics_value{exported_namespace="inference",scaledObject="vllm-sim",triggerIndex="0"}`,
		`kube_horizontalpodautoscaler_status_condition{condition="ScalingActive",status="false"}`,
		// odd inputs
		"", " ", "#", "sum(", "sum(x", "x)", "{", "{}", `{""}`, `{"a" = "b"}`, "x{a=~`(`}", `x{le="1e3"}`,
		"sum by () (x) by (y)", "Sum(X) # comment\n", "\tsum(\n  x\n)\n", "x{a='\\u00e9'}", "(x)", "-1", "x offset 5m",
		`sum(rate(x[5m:1m])) / on(pod) group_left(model_name) y @ start()`, "topk(3, x) or vector(0)", "ö{a=\"\xff\"}",
	)
	return out
}

func FuzzParseQuery(f *testing.F) {
	for _, q := range seeds(f) {
		f.Add(q)
	}
	f.Fuzz(func(t *testing.T, q string) {
		refs := promql.Refs(q)
		for _, r := range refs {
			if r.Start < 0 || r.Start >= r.End || r.End > len(q) {
				t.Fatalf("Refs(%q): %+v is not inside the query", q, r)
			}
		}
		pq, err := promql.Parse(q)
		if err != nil {
			var pe *promql.Error
			if !errors.As(err, &pe) || pe.Msg == "" {
				t.Fatalf("Parse(%q) = %v, want an *Error with a message", q, err)
			}
			lines := strings.Split(q, "\n")
			if pe.Line < 1 || pe.Line > len(lines) || pe.Col < 1 || pe.Col > utf8.RuneCountInString(lines[pe.Line-1])+1 {
				t.Fatalf("Parse(%q): line %d, column %d is not in the query", q, pe.Line, pe.Col)
			}
			return
		}
		switch pq.Agg {
		case promql.None, promql.Sum, promql.Avg, promql.Min, promql.Max, promql.Count:
		default:
			t.Fatalf("Parse(%q).Agg = %q", q, pq.Agg)
		}
		// The token reader agrees with the parser on what the query names.
		if pq.Name == "" {
			if len(refs) != 0 {
				t.Fatalf("Parse(%q) names no metric, Refs finds %+v", q, refs)
			}
			return
		}
		if len(refs) != 1 || refs[0].Name != pq.Name {
			t.Fatalf("Parse(%q).Name = %q, Refs finds %+v", q, pq.Name, refs)
		}
		if !refs[0].Quoted && q[refs[0].Start:refs[0].End] != pq.Name {
			t.Fatalf("Refs(%q): %+v does not stand on the name", q, refs[0])
		}
		// Renamed, it is the same query on another metric.
		rq := refs[0].Rename(q, "renamed:metric")
		pr, err := promql.Parse(rq)
		if err != nil || pr.Name != "renamed:metric" || pr.Agg != pq.Agg || len(pr.Matchers) != len(pq.Matchers) {
			t.Fatalf("renamed %q → %q: %+v, %v", q, rq, pr, err)
		}
	})
}
