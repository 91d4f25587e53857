package promwatch

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/scaleout/scaleout/promql"
)

// benchQueries are six series a scale-out run watches, over the fixture page.
var benchQueries = []string{
	"sum(vllm:num_requests_waiting)",
	"sum(vllm:num_requests_running)",
	"avg(vllm:kv_cache_usage_perc)",
	`sum(vllm:request_success_total{finish_reason=~"stop|length"})`,
	"sum(vllm:time_to_first_token_seconds_count)",
	`sum by (le) (vllm:e2e_request_latency_seconds_bucket{le!="+Inf"})`,
}

// BenchmarkScrapeEval is one Eval of the six queries against the fixture
// page served over loopback HTTP: fetch, parse, flatten, evaluate.
func BenchmarkScrapeEval(b *testing.B) {
	srv, _ := servePage(b, fixture(b, "metrics-under-load.txt"))
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	s, err := NewScrape([]string{srv.URL + "/metrics"}, "", tr)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		for _, r := range s.Eval(ctx, time.Time{}, benchQueries) {
			if r.Err != nil || len(r.Vector) == 0 {
				b.Fatalf("result %+v", r)
			}
		}
	}
}

// BenchmarkScrapeParseEval is the same work without the network: parse the
// page, flatten it and evaluate the six queries.
func BenchmarkScrapeParseEval(b *testing.B) {
	text := fixture(b, "metrics-under-load.txt")
	b.SetBytes(int64(len(text)))
	b.ReportAllocs()
	for b.Loop() {
		parser := expfmt.NewTextParser(model.UTF8Validation)
		fams, err := parser.TextToMetricFamilies(strings.NewReader(text))
		if err != nil {
			b.Fatal(err)
		}
		pages := []*page{newPage(fams, "127.0.0.1:8000")}
		for _, q := range benchQueries {
			pq, err := promql.Parse(q)
			if err != nil {
				b.Fatal(err)
			}
			if r := evalScrapeQuery(pq, pages); len(r.Vector) == 0 {
				b.Fatalf("%s: no series", q)
			}
		}
	}
}

// BenchmarkScrapeEvalOnly evaluates the six queries over a page already
// parsed: the cost of the PromQL subset alone.
func BenchmarkScrapeEvalOnly(b *testing.B) {
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(fixture(b, "metrics-under-load.txt")))
	if err != nil {
		b.Fatal(err)
	}
	pages := []*page{newPage(fams, "127.0.0.1:8000")}
	b.ReportAllocs()
	for b.Loop() {
		for _, q := range benchQueries {
			pq, _ := promql.Parse(q)
			evalScrapeQuery(pq, pages)
		}
	}
}
