package promwatch

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scaleout/scaleout/measure"
	"github.com/scaleout/scaleout/promql"
)

const model15 = "Qwen/Qwen2.5-1.5B-Instruct"

// servePage serves a /metrics page and checks what the scraper asks for.
func servePage(t testing.TB, body string) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if !strings.HasPrefix(r.Header.Get("Accept"), "text/plain") {
			t.Errorf("Accept = %q, want text/plain first", r.Header.Get("Accept"))
		}
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		fmt.Fprint(w, body)
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

// scrapeCase is one query over some pages and its exact answer.
type scrapeCase struct {
	query    string
	want     []Element
	value    measure.Value
	warnings []string
}

func runScrapeCases(t *testing.T, s *Scrape, cases []scrapeCase) {
	t.Helper()
	queries := make([]string, len(cases))
	for i, c := range cases {
		queries[i] = c.query
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	results := s.Eval(ctx, time.Time{}, queries)
	if len(results) != len(cases) {
		t.Fatalf("%d results for %d queries", len(results), len(cases))
	}
	for i, c := range cases {
		t.Run(c.query, func(t *testing.T) {
			r := results[i]
			if r.Err != nil {
				t.Fatalf("Err = %v", r.Err)
			}
			if !equalElements(r.Vector, c.want) {
				t.Errorf("Vector = %v\n want %v", r.Vector, c.want)
			}
			if got := ToValue(r); got != c.value {
				t.Errorf("ToValue = %+v, want %+v", got, c.value)
			}
			if !reflect.DeepEqual(r.Warnings, c.warnings) {
				t.Errorf("Warnings = %q, want %q", r.Warnings, c.warnings)
			}
		})
	}
}

func TestScrapeFixture(t *testing.T) {
	srv, hits := servePage(t, fixture(t, "metrics-under-load.txt"))
	inst := hostOf(srv.URL)
	s, err := NewScrape([]string{srv.URL + "/metrics"}, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.String(); got != "scrape of 1 page" {
		t.Errorf("String() = %q", got)
	}
	lbl := func(kv ...string) map[string]string {
		m := map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	one := func(v float64, kv ...string) []Element { return []Element{{Labels: lbl(kv...), V: v}} }
	ok := func(v float64) measure.Value { return measure.Value{V: v} }
	runScrapeCases(t, s, []scrapeCase{
		{
			query: "vllm:num_requests_waiting",
			want:  one(6, "__name__", "vllm:num_requests_waiting", "model_name", model15, "instance", inst),
			value: ok(6),
		},
		{query: "sum(vllm:num_requests_waiting)", want: one(6), value: ok(6)},
		{query: "sum(vllm:num_requests_running)", want: one(2), value: ok(2)},
		{query: "max(vllm:num_requests_waiting{model_name=~\"Qwen/.*\"})", want: one(6), value: ok(6)},
		{query: `{__name__="vllm:num_requests_running"}`, want: one(2, "__name__", "vllm:num_requests_running", "model_name", model15, "instance", inst), value: ok(2)},
		{query: "sum(vllm:kv_cache_usage_perc)", want: one(0), value: ok(0)}, // a real 0 stays a 0
		{query: "sum(vllm:e2e_request_latency_seconds_count)", want: one(3), value: ok(3)},
		{query: "sum(vllm:e2e_request_latency_seconds_sum)", want: one(0.427893455), value: ok(0.427893455)},
		{query: "sum(vllm:time_to_first_token_seconds_count)", want: one(5), value: ok(5)},
		{query: `vllm:time_to_first_token_seconds_bucket{le="0.1"}`, want: one(5, "__name__", "vllm:time_to_first_token_seconds_bucket", "le", "0.1", "model_name", model15, "instance", inst), value: ok(5)},
		{query: `sum(vllm:time_to_first_token_seconds_bucket{le="0.08"})`, want: one(0), value: ok(0)},
		{query: `sum(vllm:e2e_request_latency_seconds_bucket{le="+Inf"})`, want: one(3), value: ok(3)},
		{query: `count(vllm:time_to_first_token_seconds_bucket)`, want: one(23), value: ok(23)},
		{query: `sum(vllm:request_success_total{finish_reason="length"})`, want: one(3), value: ok(3)},
		{query: `sum by (finish_reason) (vllm:request_success_total)`, want: one(3, "finish_reason", "length"), value: ok(3)},
		{query: `sum(vllm:gpu_cache_usage_perc)`, want: []Element{}, value: measure.Value{Gap: "no series"}},
		{
			query: `sum(vllm:num_requests_waiting{namespace="llm"})`,
			want:  []Element{},
			value: measure.Value{Gap: "no series"},
			warnings: []string{`no scraped series has a label "namespace": Prometheus adds labels such as namespace and pod ` +
				`from its scrape configuration, a /metrics page does not`},
		},
	})
	if got := hits.Load(); got != 1 {
		t.Errorf("the page was read %d times for one Eval, want 1", got)
	}
}

func TestScrapeTwoPages(t *testing.T) {
	page := fixture(t, "metrics-under-load.txt")
	second := strings.NewReplacer(
		`vllm:num_requests_waiting{model_name="Qwen/Qwen2.5-1.5B-Instruct"} 6`, `vllm:num_requests_waiting{model_name="Qwen/Qwen2.5-1.5B-Instruct"} 4`,
		`vllm:num_requests_running{model_name="Qwen/Qwen2.5-1.5B-Instruct"} 2`, `vllm:num_requests_running{model_name="Qwen/Qwen2.5-1.5B-Instruct"} 1`,
	).Replace(page)
	if second == page {
		t.Fatal("the second page did not change")
	}
	a, _ := servePage(t, page)
	b, _ := servePage(t, second+"# TYPE proxied gauge\nproxied{instance=\"pod-7:8000\"} 1\n")
	ia, ib := hostOf(a.URL), hostOf(b.URL)
	s, err := NewScrape([]string{a.URL + "/metrics", b.URL + "/metrics"}, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.String(); got != "scrape of 2 pages" {
		t.Errorf("String() = %q", got)
	}
	ok := func(v float64) measure.Value { return measure.Value{V: v} }
	runScrapeCases(t, s, []scrapeCase{
		{query: "sum(vllm:num_requests_waiting)", want: []Element{{Labels: map[string]string{}, V: 10}}, value: ok(10)},
		{query: "avg(vllm:num_requests_waiting)", want: []Element{{Labels: map[string]string{}, V: 5}}, value: ok(5)},
		{query: "min(vllm:num_requests_waiting)", want: []Element{{Labels: map[string]string{}, V: 4}}, value: ok(4)},
		{query: "max(vllm:num_requests_waiting)", want: []Element{{Labels: map[string]string{}, V: 6}}, value: ok(6)},
		{query: "count(vllm:num_requests_waiting)", want: []Element{{Labels: map[string]string{}, V: 2}}, value: ok(2)},
		{query: "sum(vllm:num_requests_running)", want: []Element{{Labels: map[string]string{}, V: 3}}, value: ok(3)},
		{
			query: "vllm:num_requests_waiting",
			want: []Element{
				{Labels: map[string]string{"__name__": "vllm:num_requests_waiting", "model_name": model15, "instance": ia}, V: 6},
				{Labels: map[string]string{"__name__": "vllm:num_requests_waiting", "model_name": model15, "instance": ib}, V: 4},
			},
			value: measure.Value{Gap: "2 series (aggregate with sum(…) or max(…))"},
		},
		{
			query: "sum by (instance) (vllm:num_requests_waiting)",
			want: []Element{
				{Labels: map[string]string{"instance": ia}, V: 6},
				{Labels: map[string]string{"instance": ib}, V: 4},
			},
			value: measure.Value{Gap: "2 series (aggregate with sum(…) or max(…))"},
		},
		{
			query: fmt.Sprintf(`sum(vllm:num_requests_waiting{instance=%q})`, ib),
			want:  []Element{{Labels: map[string]string{}, V: 4}},
			value: ok(4),
		},
		{
			query: "sum without (instance) (vllm:num_requests_waiting)",
			want:  []Element{{Labels: map[string]string{"model_name": model15}, V: 10}},
			value: ok(10),
		},
		{
			query: "proxied",
			want:  []Element{{Labels: map[string]string{"__name__": "proxied", "exported_instance": "pod-7:8000", "instance": ib}, V: 1}},
			value: ok(1),
		},
	})
}

func TestScrapeMatchers(t *testing.T) {
	srv, _ := servePage(t, `# TYPE m gauge
m{pod="a-1",phase="run"} 1
m{pod="a-2",phase="wait"} 2
m{pod="b-1"} 4
# TYPE s summary
s{quantile="0.5"} 0.1
s{quantile="0.99"} 0.9
s_sum 5
s_count 10
# TYPE h histogram
h_bucket{le="1"} 1
h_bucket{le="+Inf"} 2
h_sum 3
# TYPE c_total counter
c_total 7
u 8
`)
	inst := hostOf(srv.URL)
	s, err := NewScrape([]string{srv.URL}, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	v := func(x float64) []Element { return []Element{{Labels: map[string]string{}, V: x}} }
	ok := func(x float64) measure.Value { return measure.Value{V: x} }
	none := measure.Value{Gap: "no series"}
	runScrapeCases(t, s, []scrapeCase{
		{query: `sum(m{pod="a-1"})`, want: v(1), value: ok(1)},
		{query: `sum(m{pod!="a-1"})`, want: v(6), value: ok(6)},
		{query: `sum(m{pod=~"a-.*"})`, want: v(3), value: ok(3)},
		{query: `sum(m{pod=~"a"})`, want: []Element{}, value: none}, // anchored: "a" is not "a-1"
		{query: `sum(m{pod!~"a-.*"})`, want: v(4), value: ok(4)},
		{query: `sum(m{pod!~"a"})`, want: v(7), value: ok(7)},
		{query: `sum(m{pod=~"a-1|b-1"})`, want: v(5), value: ok(5)},
		{query: `sum(m{pod=~"(?i)A-1"})`, want: v(1), value: ok(1)},
		{query: `sum(m{phase=""})`, want: v(4), value: ok(4)}, // a missing label is ""
		{query: `sum(m{phase!=""})`, want: v(3), value: ok(3)},
		{query: `sum(m{pod='a-2'})`, want: v(2), value: ok(2)},
		{query: "sum(m{pod=~`a-\\d`, phase=\"wait\"})", want: v(2), value: ok(2)},
		{query: `sum(m{pod="a-1",})`, want: v(1), value: ok(1)},
		{query: `SUM(m)`, want: v(7), value: ok(7)},
		{query: ` sum ( m ) `, want: v(7), value: ok(7)},
		{query: `sum(m) by (phase)`, want: []Element{
			{Labels: map[string]string{"phase": "run"}, V: 1},
			{Labels: map[string]string{"phase": "wait"}, V: 2},
			{Labels: map[string]string{}, V: 4},
		}, value: measure.Value{Gap: "3 series (aggregate with sum(…) or max(…))"}},
		{query: `count by () (m)`, want: v(3), value: ok(3)},
		{query: `{"m", pod="b-1"}`, want: []Element{{Labels: map[string]string{"__name__": "m", "pod": "b-1", "instance": inst}, V: 4}}, value: ok(4)},
		{query: `s{quantile="0.99"}`, want: []Element{{Labels: map[string]string{"__name__": "s", "quantile": "0.99", "instance": inst}, V: 0.9}}, value: ok(0.9)},
		{query: `sum(s_count)`, want: v(10), value: ok(10)},
		{query: `sum(s_sum)`, want: v(5), value: ok(5)},
		{query: `sum(h_bucket{le="1.0"})`, want: v(1), value: ok(1)}, // le compares as a number
		{query: `sum(h_bucket{le!="1"})`, want: v(2), value: ok(2)},
		{query: `sum(h_count)`, want: []Element{}, value: none}, // no _count line: no series, not a 0
		{query: `sum(h_sum)`, want: v(3), value: ok(3)},
		{query: `sum(c_total)`, want: v(7), value: ok(7)},
		{query: `sum(u)`, want: v(8), value: ok(8)},
		{query: `sum({__name__=~"c_total|u"})`, want: v(15), value: ok(15)},
		{query: `count({__name__=~".+"})`, want: v(12), value: ok(12)},
	})
}

func TestScrapeFailingPage(t *testing.T) {
	good, _ := servePage(t, "# TYPE w gauge\nw 1\n")
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "overloaded", http.StatusServiceUnavailable)
	}))
	defer down.Close()
	garbage, _ := servePage(t, "<html>\nnot metrics\n</html>\n")
	refused := refusedURL(t)

	cases := []struct {
		name    string
		urls    []string
		wantErr string
		gap     string
	}{
		{
			name:    "HTTP 503",
			urls:    []string{good.URL + "/metrics", down.URL + "/metrics"},
			wantErr: "scrape " + down.URL + "/metrics: HTTP 503",
			gap:     hostOf(down.URL) + ": HTTP 503",
		},
		{
			name:    "connection refused",
			urls:    []string{refused + "/metrics", good.URL + "/metrics"},
			wantErr: "scrape " + refused + "/metrics: connection refused",
			gap:     hostOf(refused) + ": connection refused",
		},
		{
			name:    "two pages down",
			urls:    []string{good.URL, refused + "/metrics", down.URL + "/metrics"},
			wantErr: "scrape " + refused + "/metrics: connection refused (and 1 more page)",
			gap:     hostOf(refused) + ": connection refused (+1 more)",
		},
		{
			name:    "not a metrics page",
			urls:    []string{garbage.URL + "/metrics"},
			wantErr: "scrape " + garbage.URL + "/metrics: not a metrics page: line 1: invalid metric name",
			gap:     hostOf(garbage.URL) + ": not a metrics page: line 1: invalid metric name",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, err := NewScrape(c.urls, "", nil)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), waitFor)
			defer cancel()
			results := s.Eval(ctx, time.Time{}, []string{"sum(w)", "w", "rate(w[1m])"})
			for _, r := range results[:2] { // a sum over fewer pages would be a wrong number
				if r.Err == nil || r.Err.Error() != c.wantErr {
					t.Errorf("Err = %v, want %q", r.Err, c.wantErr)
				}
				var se *SourceError
				if !errors.As(r.Err, &se) {
					t.Errorf("Err %T is not a *SourceError", r.Err)
				}
				if got := ToValue(r); got != (measure.Value{Gap: c.gap}) {
					t.Errorf("ToValue = %+v, want gap %q", got, c.gap)
				}
			}
			if got := ToValue(results[2]).Gap; !strings.HasPrefix(got, "bad query: column 1: function rate") {
				t.Errorf("the bad query's gap = %q", got)
			}
		})
	}
}

func TestScrapeBadQueriesFetchNothing(t *testing.T) {
	srv, hits := servePage(t, "w 1\n")
	s, err := NewScrape([]string{srv.URL}, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	r := s.Eval(context.Background(), time.Time{}, []string{"rate(w[5m])", "w > 1"})
	for _, x := range r {
		var qe *promql.Error
		if !errors.As(x.Err, &qe) {
			t.Errorf("Err = %v, want a *promql.Error", x.Err)
		}
	}
	if got := ToValue(r[1]).Gap; got != "bad query: column 3: binary operator > is not supported" {
		t.Errorf("gap = %q", got)
	}
	if hits.Load() != 0 {
		t.Errorf("pages were read for queries that cannot be evaluated")
	}
}

func TestScrapeBearerToken(t *testing.T) {
	const token = "p4ge-t0ken"
	var mu sync.Mutex
	var seen []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Get("Authorization"))
		mu.Unlock()
		if r.URL.Path == "/denied" {
			http.Error(w, "bad "+r.Header.Get("Authorization"), http.StatusUnauthorized)
			return
		}
		fmt.Fprint(w, "w 3\n")
	}))
	defer srv.Close()
	for _, path := range []string{"/metrics", "/denied"} {
		s, err := NewScrape([]string{srv.URL + path}, token, nil)
		if err != nil {
			t.Fatal(err)
		}
		r := s.Eval(context.Background(), time.Time{}, []string{"sum(w)"})[0]
		printed := fmt.Sprintf("%v %+v %#v %v %+v %s", s, s, s, r.Err, r, ToValue(r).Gap)
		if strings.Contains(printed, token) {
			t.Errorf("the token leaked: %s", printed)
		}
		want := measure.Value{V: 3}
		if path == "/denied" {
			want = measure.Value{Gap: hostOf(srv.URL) + ": HTTP 401 (check the token)"}
		}
		if got := ToValue(r); got != want {
			t.Errorf("%s: ToValue = %+v, want %+v", path, got, want)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 2 || seen[0] != "Bearer "+token || seen[1] != "Bearer "+token {
		t.Errorf("Authorization headers = %q", seen)
	}
}

func TestScrapeHangTimesOut(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	}))
	defer srv.Close()
	s, err := NewScrape([]string{srv.URL + "/metrics"}, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	r := s.Eval(ctx, time.Time{}, []string{"sum(w)"})[0]
	if want := "scrape " + srv.URL + "/metrics: timeout"; r.Err == nil || r.Err.Error() != want {
		t.Errorf("Err = %v, want %q", r.Err, want)
	}
}

func TestNewScrapeRejects(t *testing.T) {
	for _, c := range []struct {
		urls []string
		want string
	}{
		{nil, "scrape: no /metrics URL given"},
		{[]string{"localhost:8000/metrics"}, `scrape URL: "localhost:8000/metrics" is not an http(s)://host:port address`},
		{[]string{"http://a:1/metrics", "http://a:1/metrics"}, "scrape URL http://a:1/metrics is given twice"},
		{[]string{"http://u:hunter2@a:1/m?token=hunter2", "http://u:hunter2@a:1/m?token=hunter2"}, "scrape URL http://u:xxxxx@a:1/m is given twice"},
	} {
		_, err := NewScrape(c.urls, "", nil)
		if err == nil || err.Error() != c.want {
			t.Errorf("NewScrape(%q) = %v, want %q", c.urls, err, c.want)
		}
	}
}
