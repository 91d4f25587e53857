package promql

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParseAccepts(t *testing.T) {
	for _, q := range []string{
		"vllm:num_requests_waiting",
		"sum(vllm:num_requests_waiting)",
		`sum(vllm:num_requests_waiting{model_name="m", engine!="1", pod=~"vllm-.*", phase!~"x|y"})`,
		"avg(vllm:kv_cache_usage_perc)",
		"min(x)", "max(x)", "count(x)", "Sum(x)", "MAX (x)",
		"sum by (pod) (x)", "sum(x) by (pod, model_name)", "sum without (instance) (x)", "sum by () (x)",
		`sum by ("utf8.label") (x)`,
		`{__name__="x"}`, `{__name__=~"vllm:.+"}`, `{"my.metric"}`, `{"my.metric", a="b"}`, `x{"quoted.label"="v"}`,
		`x{a='single'}`, "x{a=`raw\\d`}", `x{a="esc\"aped\n"}`, `x{a="b",}`, `x{}`, "x # a comment",
		`kube_horizontalpodautoscaler_status_desired_replicas{horizontalpodautoscaler="keda-hpa-vllm"}`,
		`vllm:e2e_request_latency_seconds_bucket{le="+Inf"}`,
		"\tsum(\n  x\n)\n",
	} {
		if _, err := Parse(q); err != nil {
			t.Errorf("Parse(%q) = %v", q, err)
		}
	}
}

func TestParseRejects(t *testing.T) {
	cases := []struct {
		query string
		col   int
		msg   string
	}{
		{"", 1, "empty query"},
		{"   ", 1, "empty query"},
		{"rate(x[5m])", 1, "function rate(…) is not supported (it needs Prometheus)"},
		{"sum(rate(x[5m]))", 5, "function rate(…) is not supported (it needs Prometheus)"},
		{"histogram_quantile(0.9, sum by (le) (rate(x_bucket[1m])))", 1, "function histogram_quantile(…) is not supported (it needs Prometheus)"},
		{"x[5m]", 2, "range selector […] is not supported: scrape mode sees one instant"},
		{"sum(x[5m])", 6, "range selector […] is not supported: scrape mode sees one instant"},
		{"sum(x) / 5", 8, "binary operator / is not supported"},
		{"x > 5", 3, "binary operator > is not supported"},
		{"x >= 5", 3, "binary operator >= is not supported"},
		{"x - y", 3, "binary operator - is not supported"},
		{"x and y", 3, "set operator and is not supported"},
		{"x offset 5m", 3, "offset and @ modifiers are not supported: scrape mode reads the pages now"},
		{`x{a="b"} @ 1700000000`, 10, "offset and @ modifiers are not supported: scrape mode reads the pages now"},
		{"topk(3, x)", 1, "aggregation topk is not supported"},
		{"quantile by (pod) (0.9, x)", 1, "aggregation quantile is not supported"},
		{"sum(max(x))", 5, "max inside sum(…) is not supported: one aggregation over one selector"},
		{"sum(x, y)", 6, "sum takes one argument"},
		{"sum x", 5, "expected ( after sum"},
		{"sum(", 5, "unexpected end of query"},
		{"sum(x", 1, "sum( is not closed"},
		{"sum()", 5, "sum(…) needs a selector"},
		{"sum by pod (x)", 8, "expected ( after by"},
		{"sum by (pod x)", 13, "expected , or ) in by (…)"},
		{"sum by (pod) (x) by (le)", 18, "grouping given twice"},
		{"(x)", 1, "parentheses are only supported around an aggregation's selector"},
		{"42", 1, "number literals are not supported"},
		{"-1", 1, "number literals are not supported"},
		{`"x"`, 1, "string literals are not supported"},
		{`x{a=="b"}`, 4, "== in a matcher: use = (or =~, !=, !~)"},
		{`x{a<"b"}`, 4, `expected =, !=, =~ or !~ after a, found "<"`},
		{`x{a=b}`, 5, "expected a quoted value after a="},
		{`x{a="b"`, 2, "{ is not closed"},
		{`x{a="b}`, 5, "string is not closed"},
		{`x{a="b" c="d"}`, 9, `expected , or } between matchers, found "c"`},
		{`x{a="\q"}`, 6, "bad escape in string"},
		{`x{a=~"("}`, 6, "bad regular expression: missing closing ): `^(?s:()$`"},
		{`x{1a="b"}`, 3, `expected a label name, found "1"`},
		{`{}`, 1, "a selector needs a metric name or a matcher that does not match the empty string"},
		{`{a=~".*"}`, 1, "a selector needs a metric name or a matcher that does not match the empty string"},
		{`x{__name__="y"}`, 3, "metric name given twice"},
		{`{"x", "y"}`, 7, "metric name given twice"},
		{"sum(x) ÷ 2", 8, `unexpected "÷"`}, // columns count characters, not bytes
		{"x)", 2, "unbalanced )"},
		{"topk", 1, "aggregation topk is not supported"},
		{"sum(max)", 5, "max inside sum(…) is not supported: one aggregation over one selector"},
		{"offset", 1, "offset is a PromQL keyword, not a metric name"},
		{"sum(by)", 5, "by is a PromQL keyword, not a metric name"},
		{`NaN{a="b"}`, 1, "nan is a PromQL keyword, not a metric name"},
	}
	for _, c := range cases {
		t.Run(c.query, func(t *testing.T) {
			_, err := Parse(c.query)
			var qe *Error
			if !errors.As(err, &qe) {
				t.Fatalf("Parse(%q) = %v, want an *Error", c.query, err)
			}
			if qe.Col != c.col || qe.Msg != c.msg {
				t.Errorf("column %d %q, want column %d %q", qe.Col, qe.Msg, c.col, c.msg)
			}
			if qe.Line != 1 {
				t.Errorf("line %d, want 1", qe.Line)
			}
			if want := "; scrape mode supports " + Supported; !strings.HasSuffix(err.Error(), want) {
				t.Errorf("Error() = %q does not say what is supported", err)
			}
		})
	}
}

func TestQueryErrorOnASecondLine(t *testing.T) {
	_, err := Parse("sum(\n  rate(x[5m])\n)")
	want := "line 2, column 3: function rate(…) is not supported (it needs Prometheus); scrape mode supports " + Supported
	if err == nil || err.Error() != want {
		t.Errorf("err = %v, want %q", err, want)
	}
}

func TestParseShape(t *testing.T) {
	q, err := Parse(`max without (instance) ({__name__="w", pod=~"a.*"})`)
	if err != nil {
		t.Fatal(err)
	}
	if q.Agg != Max || !q.Without || !reflect.DeepEqual(q.Grouping, []string{"instance"}) || q.Name != "w" {
		t.Errorf("parsed %+v", q)
	}
	if len(q.Matchers) != 1 || q.Matchers[0].Label != "pod" || q.Matchers[0].Op != Re {
		t.Errorf("matchers %+v", q.Matchers)
	}
	if !q.Matchers[0].Matches("abc") || q.Matchers[0].Matches("xabc") {
		t.Error("the regex is not anchored")
	}
}

// Name is the metric's name wherever the query gives it, and Refs finds it
// at the place it stands.
func TestParseName(t *testing.T) {
	cases := []struct{ query, name, renamed string }{
		{"sum(vllm:num_requests_waiting)", "vllm:num_requests_waiting", "sum(n)"},
		{`{__name__="a:b", pod="x"}`, "a:b", `{__name__="n", pod="x"}`},
		{`avg by (pod) ({'my.metric'})`, "my.metric", `avg by (pod) ({"n"})`},
		{`sum({__name__=~"a|b"})`, "", ""},
		{"kube_deployment_status_replicas_ready{}\n", "kube_deployment_status_replicas_ready", "n{}\n"},
	}
	for _, c := range cases {
		pq, err := Parse(c.query)
		if err != nil {
			t.Fatalf("Parse(%q): %v", c.query, err)
		}
		if pq.Name != c.name {
			t.Errorf("Parse(%q).Name = %q, want %q", c.query, pq.Name, c.name)
		}
		refs := Refs(c.query)
		if c.name == "" {
			if len(refs) != 0 {
				t.Errorf("Refs(%q) = %+v, want none", c.query, refs)
			}
			continue
		}
		if len(refs) != 1 || refs[0].Name != c.name {
			t.Fatalf("Refs(%q) = %+v, want %s", c.query, refs, c.name)
		}
		if got := refs[0].Rename(c.query, "n"); got != c.renamed {
			t.Errorf("Rename(%q) = %q, want %q", c.query, got, c.renamed)
		}
	}
}

func TestRefs(t *testing.T) {
	cases := []struct {
		query string
		names []string
	}{
		{`sum(rate(vllm:num_requests_waiting{namespace="a"}[5m]))`, []string{"vllm:num_requests_waiting"}},
		{`sum(vllm:gpu_cache_usage_perc) / count(vllm:num_requests_running) * 100`, []string{"vllm:gpu_cache_usage_perc", "vllm:num_requests_running"}},
		{`histogram_quantile(0.9, sum by (le) (rate(vllm:time_to_first_token_seconds_bucket[1m])))`, []string{"vllm:time_to_first_token_seconds_bucket"}},
		{`{__name__="vllm:gpu_cache_usage_perc"} * 2`, []string{"vllm:gpu_cache_usage_perc"}},
		{`x offset 5m and on(pod) group_left(model_name) y @ start()`, []string{"x", "y"}},
		{`sum(x) BY (pod) unless ignoring ("instance") z`, []string{"x", "z"}},
		{`label_replace(up, "dst", "$1", "src", "(.*)")`, []string{"up"}},
		{`max_over_time(x{a="}"}[5m:1m]) > bool 1e-3`, []string{"x"}},
		{`count_values("v", x) or vector(0)`, []string{"x"}},
		{`x{a=~"("} + {a=~"x.*"} - y`, []string{"x", "y"}},
		{`{} or y{`, []string{"y"}},
		{`{__name__=~"vllm:.*"} + Inf - NaN`, nil},
		{`"unterminated x`, nil},
		{`topk(3, x) # y`, []string{"x"}},
	}
	for _, c := range cases {
		var names []string
		for _, r := range Refs(c.query) {
			names = append(names, r.Name)
			if r.Start < 0 || r.End > len(c.query) || r.Start >= r.End {
				t.Errorf("Refs(%q): %+v is not inside the query", c.query, r)
			}
		}
		if !reflect.DeepEqual(names, c.names) {
			t.Errorf("Refs(%q) = %q, want %q", c.query, names, c.names)
		}
	}
	q := `sum(vllm:gpu_cache_usage_perc{a="b"}) / sum({"vllm:gpu_cache_usage_perc"})`
	refs := Refs(q)
	for i := len(refs) - 1; i >= 0; i-- {
		q = refs[i].Rename(q, "vllm:kv_cache_usage_perc")
	}
	if want := `sum(vllm:kv_cache_usage_perc{a="b"}) / sum({"vllm:kv_cache_usage_perc"})`; q != want {
		t.Errorf("renamed: %s, want %s", q, want)
	}
}
