package promwatch

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestValidateScrapeQueryAccepts(t *testing.T) {
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
		if err := ValidateScrapeQuery(q); err != nil {
			t.Errorf("ValidateScrapeQuery(%q) = %v", q, err)
		}
	}
}

func TestValidateScrapeQueryRejects(t *testing.T) {
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
	}
	for _, c := range cases {
		t.Run(c.query, func(t *testing.T) {
			err := ValidateScrapeQuery(c.query)
			var qe *QueryError
			if !errors.As(err, &qe) {
				t.Fatalf("ValidateScrapeQuery(%q) = %v, want a *QueryError", c.query, err)
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
	err := ValidateScrapeQuery("sum(\n  rate(x[5m])\n)")
	want := "line 2, column 3: function rate(…) is not supported (it needs Prometheus); scrape mode supports " + Supported
	if err == nil || err.Error() != want {
		t.Errorf("err = %v, want %q", err, want)
	}
}

func TestParseScrapeQueryShape(t *testing.T) {
	q, err := parseScrapeQuery(`max without (instance) ({__name__="w", pod=~"a.*"})`)
	if err != nil {
		t.Fatal(err)
	}
	if q.agg != aggMax || !q.without || !reflect.DeepEqual(q.grouping, []string{"instance"}) || q.name != "w" {
		t.Errorf("parsed %+v", q)
	}
	if len(q.matchers) != 1 || q.matchers[0].label != "pod" || q.matchers[0].op != matchRe {
		t.Errorf("matchers %+v", q.matchers)
	}
	if !q.matchers[0].matches("abc") || q.matchers[0].matches("xabc") {
		t.Error("the regex is not anchored")
	}
}
