package promwatch

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/scaleout/scaleout/measure"
)

// apiAnswer is one scripted answer of the fake Prometheus HTTP API.
type apiAnswer struct {
	status int
	body   string
}

// fakeAPI serves /api/v1/query, answering by the query text, and checks
// what client_golang sends.
func fakeAPI(t *testing.T, answers map[string]apiAnswer, wantTime string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/v1/status/runtimeinfo" { // a server without the status API
			http.NotFound(w, r)
			return
		}
		if r.URL.Path != "/api/v1/query" {
			t.Errorf("path %q, want /api/v1/query", r.URL.Path)
		}
		if r.Method != http.MethodPost {
			t.Errorf("method %s, want POST", r.Method)
		}
		if got := r.FormValue("time"); got != wantTime {
			t.Errorf("time=%q, want %q", got, wantTime)
		}
		a, ok := answers[r.FormValue("query")]
		if !ok {
			t.Errorf("unexpected query %q", r.FormValue("query"))
			w.WriteHeader(http.StatusTeapot)
			return
		}
		if a.status == 0 {
			a.status = http.StatusOK
		}
		if strings.HasPrefix(a.body, "{") {
			w.Header().Set("Content-Type", "application/json")
		}
		w.WriteHeader(a.status)
		fmt.Fprint(w, a.body)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestPrometheusAnswers(t *testing.T) {
	waiting := `"__name__":"vllm:num_requests_waiting","pod":"vllm-0"`
	cases := []struct {
		query    string
		answer   apiAnswer
		want     []Element // when the answer holds
		wantErr  string    // Result.Err.Error() after "prometheus <url>: "
		gap      string    // ToValue's gap; "" means a number
		value    float64
		warnings []string
	}{
		{
			query:  "one",
			answer: apiAnswer{body: apiVector(apiSample(waiting, "6"))},
			want:   []Element{{Labels: map[string]string{"__name__": "vllm:num_requests_waiting", "pod": "vllm-0"}, V: 6}},
			value:  6,
		},
		{
			query:  "zero-samples",
			answer: apiAnswer{body: apiVector()},
			want:   []Element{},
			gap:    "no series",
		},
		{
			query: "two-samples",
			answer: apiAnswer{body: apiVector(
				apiSample(`"pod":"vllm-0"`, "6"),
				apiSample(`"pod":"vllm-1"`, "9"))},
			want: []Element{
				{Labels: map[string]string{"pod": "vllm-0"}, V: 6},
				{Labels: map[string]string{"pod": "vllm-1"}, V: 9},
			},
			gap: "2 series (aggregate with sum(…) or max(…))",
		},
		{
			query:  "a-real-zero",
			answer: apiAnswer{body: apiVector(apiSample(``, "0"))},
			want:   []Element{{Labels: map[string]string{}, V: 0}},
			value:  0,
		},
		{
			query:  "scalar",
			answer: apiAnswer{body: `{"status":"success","data":{"resultType":"scalar","result":[1795814206.5,"3"]}}`},
			want:   []Element{{Labels: map[string]string{}, V: 3}},
			value:  3,
		},
		{
			query:   "matrix",
			answer:  apiAnswer{body: `{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1795814200,"1"],[1795814206,"2"]]}]}}`},
			wantErr: "range vector result: drop the [range] or wrap it in rate(…) or avg_over_time(…)",
			gap:     "range vector result: drop the [range] or wrap it in rate(…) or avg_over_time(…)",
		},
		{
			query:   "string",
			answer:  apiAnswer{body: `{"status":"success","data":{"resultType":"string","result":[1795814206.5,"hello"]}}`},
			wantErr: "string result: the query must return a number",
			gap:     "string result: the query must return a number",
		},
		{
			query:    "warned",
			answer:   apiAnswer{body: `{"status":"success","warnings":["PromQL info: metric might not be a counter"],"data":{"resultType":"vector","result":[` + apiSample(``, "1.5") + `]}}`},
			want:     []Element{{Labels: map[string]string{}, V: 1.5}},
			value:    1.5,
			warnings: []string{"PromQL info: metric might not be a counter"},
		},
		{
			query:  "nan",
			answer: apiAnswer{body: apiVector(apiSample(``, "NaN"))},
			want:   []Element{{Labels: map[string]string{}, V: math.NaN()}},
			gap:    "NaN",
		},
		{
			query:   "bad-query",
			answer:  apiAnswer{status: 400, body: `{"status":"error","errorType":"bad_data","error":"invalid parameter \"query\": 1:5: parse error: unexpected end of input"}`},
			wantErr: "prometheus %s: bad query: 1:5: parse error: unexpected end of input",
			gap:     "bad query: 1:5: parse error: unexpected end of input",
		},
		{
			query:   "exec-error",
			answer:  apiAnswer{status: 422, body: `{"status":"error","errorType":"execution","error":"found duplicate series for the match group"}`},
			wantErr: "prometheus %s: query failed: found duplicate series for the match group",
			gap:     "query failed: found duplicate series for the match group",
		},
		{
			query:   "prom-timeout",
			answer:  apiAnswer{status: 503, body: `{"status":"error","errorType":"timeout","error":"query timed out in expression evaluation"}`},
			wantErr: "prometheus %s: timeout (in Prometheus)",
			gap:     "timeout (in Prometheus)",
		},
		{
			query:   "unavailable",
			answer:  apiAnswer{status: 503, body: "Service Unavailable"},
			wantErr: "prometheus %s: HTTP 503",
			gap:     "HTTP 503",
		},
		{
			query:   "unauthorized",
			answer:  apiAnswer{status: 401, body: "Unauthorized"},
			wantErr: "prometheus %s: HTTP 401 (check the token)",
			gap:     "HTTP 401 (check the token)",
		},
		{
			query:   "not-found",
			answer:  apiAnswer{status: 404, body: "404 page not found"},
			wantErr: "prometheus %s: HTTP 404 (check the address)",
			gap:     "HTTP 404 (check the address)",
		},
		{
			query:   "not-the-api",
			answer:  apiAnswer{body: "<html>Grafana</html>"},
			wantErr: "prometheus %s: bad response: not the Prometheus API's JSON (check the address)",
			gap:     "bad response: not the Prometheus API's JSON (check the address)",
		},
	}
	at := time.Date(2026, 11, 27, 12, 0, 0, 500_000_000, time.UTC)
	answers := map[string]apiAnswer{}
	queries := make([]string, len(cases))
	for i, c := range cases {
		answers[c.query] = c.answer
		queries[i] = c.query
	}
	srv := fakeAPI(t, answers, "1795780800.5")
	p, err := NewPrometheus(srv.URL, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := p.String(), "prometheus "+srv.URL; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	results := p.Eval(ctx, at, queries) // every case at once: results must align
	if len(results) != len(cases) {
		t.Fatalf("%d results for %d queries", len(results), len(cases))
	}
	for i, c := range cases {
		t.Run(c.query, func(t *testing.T) {
			r := results[i]
			if c.wantErr != "" {
				want := c.wantErr
				if strings.Contains(want, "%s") {
					want = fmt.Sprintf(want, srv.URL)
				}
				if r.Err == nil || r.Err.Error() != want {
					t.Fatalf("Err = %v, want %q", r.Err, want)
				}
			} else {
				if r.Err != nil {
					t.Fatalf("Err = %v", r.Err)
				}
				if !equalElements(r.Vector, c.want) {
					t.Errorf("Vector = %v, want %v", r.Vector, c.want)
				}
			}
			if !reflect.DeepEqual(r.Warnings, c.warnings) {
				t.Errorf("Warnings = %q, want %q", r.Warnings, c.warnings)
			}
			want := measure.Value{V: c.value, Gap: c.gap}
			if got := ToValue(r); got != want {
				t.Errorf("ToValue = %+v, want %+v", got, want)
			}
		})
	}
}

// equalElements compares vectors, NaN equal to NaN.
func equalElements(a, b []Element) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !reflect.DeepEqual(a[i].Labels, b[i].Labels) {
			return false
		}
		if a[i].V != b[i].V && !(math.IsNaN(a[i].V) && math.IsNaN(b[i].V)) {
			return false
		}
	}
	return true
}

func TestPrometheusTransportFailures(t *testing.T) {
	t.Run("hang ends at the context's deadline", func(t *testing.T) {
		arrived := make(chan struct{}, 1)
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_ = r.ParseForm() // the server notices a client gone only once the body is read
			arrived <- struct{}{}
			<-r.Context().Done() // hangs until the client gives up
		}))
		defer srv.Close()
		p, err := NewPrometheus(srv.URL, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		r := p.Eval(ctx, time.Time{}, []string{"up"})[0]
		<-arrived
		if want := "prometheus " + srv.URL + ": timeout"; r.Err == nil || r.Err.Error() != want {
			t.Fatalf("Err = %v, want %q", r.Err, want)
		}
		if !errors.Is(r.Err, context.DeadlineExceeded) {
			t.Errorf("Err %v does not wrap context.DeadlineExceeded", r.Err)
		}
		if got := ToValue(r); got != (measure.Value{Gap: "timeout"}) {
			t.Errorf("ToValue = %+v", got)
		}
	})
	t.Run("connection refused", func(t *testing.T) {
		addr := refusedURL(t)
		p, err := NewPrometheus(addr, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		r := p.Eval(ctx, time.Time{}, []string{"up", "down"})
		for _, x := range r {
			if want := "prometheus " + addr + ": connection refused"; x.Err == nil || x.Err.Error() != want {
				t.Errorf("Err = %v, want %q", x.Err, want)
			}
			if got := ToValue(x); got != (measure.Value{Gap: "connection refused"}) {
				t.Errorf("ToValue = %+v", got)
			}
		}
	})
	t.Run("https to a plain HTTP server", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, apiVector(apiSample(``, "1")))
		}))
		defer srv.Close()
		addr := "https://" + strings.TrimPrefix(srv.URL, "http://")
		p, err := NewPrometheus(addr, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		r := p.Eval(ctx, time.Time{}, []string{"up"})[0]
		if !errors.Is(r.Err, http.ErrSchemeMismatch) {
			t.Errorf("Err = %v, want one that wraps http.ErrSchemeMismatch", r.Err)
		}
		if got := ToValue(r); got != (measure.Value{Gap: "the server speaks plain HTTP (use http://)"}) {
			t.Errorf("ToValue = %+v", got)
		}
	})
	t.Run("empty query", func(t *testing.T) {
		p, err := NewPrometheus(refusedURL(t), "", nil)
		if err != nil {
			t.Fatal(err)
		}
		r := p.Eval(context.Background(), time.Time{}, []string{"  "})[0]
		if got := ToValue(r); got != (measure.Value{Gap: "bad query: column 1: empty query"}) {
			t.Errorf("ToValue = %+v", got)
		}
	})
}

func TestPrometheusBearerToken(t *testing.T) {
	const token = "s3cr3t-t0ken"
	var mu sync.Mutex
	var seen []string
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, "other:"+r.Header.Get("Authorization"))
		mu.Unlock()
		fmt.Fprint(w, apiVector(apiSample(``, "2")))
	}))
	defer other.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth := r.Header.Get("Authorization")
		mu.Lock()
		seen = append(seen, auth)
		mu.Unlock()
		switch r.FormValue("query") {
		case "ok":
			fmt.Fprint(w, apiVector(apiSample(``, "1")))
		case "echo": // a server that repeats the credential in its error
			w.WriteHeader(400)
			fmt.Fprintf(w, `{"status":"error","errorType":"bad_data","error":"rejected %s"}`, auth)
		case "redirect":
			http.Redirect(w, r, other.URL+"/api/v1/query?query=x", http.StatusFound)
		default:
			w.WriteHeader(401)
			fmt.Fprintf(w, "bad token %s", auth)
		}
	}))
	defer srv.Close()

	p, err := NewPrometheus(srv.URL, token, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	results := p.Eval(ctx, time.Time{}, []string{"ok", "echo", "denied", "redirect"})
	if got := ToValue(results[0]); got != (measure.Value{V: 1}) {
		t.Errorf("ok: %+v", got)
	}
	if got := ToValue(results[1]); got != (measure.Value{Gap: "bad query: rejected Bearer [REDACTED]"}) {
		t.Errorf("echo: %+v", got)
	}
	if got := ToValue(results[2]); got != (measure.Value{Gap: "HTTP 401 (check the token)"}) {
		t.Errorf("denied: %+v", got)
	}
	if got := ToValue(results[3]); got != (measure.Value{V: 2}) {
		t.Errorf("redirect: %+v", got)
	}
	mu.Lock()
	for _, s := range seen {
		switch {
		case strings.HasPrefix(s, "other:"):
			if s != "other:" {
				t.Errorf("the token went to another host after a redirect: %q", s)
			}
		case s != "Bearer "+token:
			t.Errorf("Authorization = %q, want the bearer token", s)
		}
	}
	mu.Unlock()
	printed := fmt.Sprintf("%v %+v %#v %s", p, p, p, p.String())
	for _, r := range results {
		printed += fmt.Sprintf(" %v %+v %s", r.Err, r, ToValue(r).Gap)
	}
	if strings.Contains(printed, token) {
		t.Errorf("the token leaked: %s", printed)
	}
}

// A server that refuses POST is asked again with GET, as client_golang
// does, and its status reaches the gap.
func TestPrometheusGetFallback(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodPost:
			w.WriteHeader(http.StatusMethodNotAllowed)
		case r.FormValue("query") == "up":
			fmt.Fprint(w, apiVector(apiSample(``, "4")))
		default:
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprint(w, `{"status":"error","errorType":"timeout","error":"query timed out"}`)
		}
	}))
	defer srv.Close()
	p, err := NewPrometheus(srv.URL, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	r := p.Eval(ctx, time.Time{}, []string{"up", "slow"})
	if got := ToValue(r[0]); got != (measure.Value{V: 4}) {
		t.Errorf("up: %+v", got)
	}
	if got := ToValue(r[1]); got != (measure.Value{Gap: "timeout (in Prometheus)"}) {
		t.Errorf("slow: %+v", got)
	}
	var ae *apiError
	if !errors.As(r[1].Err, &ae) || ae.Status != http.StatusServiceUnavailable || ae.Type != "timeout" {
		t.Errorf("slow: Err = %#v, want an *apiError with status 503 and type timeout", r[1].Err)
	}
}

func TestNewPrometheusAddress(t *testing.T) {
	p, err := NewPrometheus("http://admin:hunter2@prometheus.monitoring:9090/prom/", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := p.String(), "prometheus http://admin:xxxxx@prometheus.monitoring:9090/prom"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	for _, bad := range []string{"", "prometheus:9090", "ftp://x:21", "http://", "http://a b:9090", "http://u:hunter2@[::1"} {
		_, err := NewPrometheus(bad, "", nil)
		if err == nil {
			t.Errorf("NewPrometheus(%q): no error", bad)
			continue
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("NewPrometheus(%q): the password leaked: %v", bad, err)
		}
	}
}

// fakeQuerier answers through a function.
type fakeQuerier func(ctx context.Context, q string, ts time.Time) (model.Value, []string, error)

func (f fakeQuerier) Query(ctx context.Context, q string, ts time.Time) (model.Value, []string, error) {
	return f(ctx, q, ts)
}

func TestPrometheusQueriesRunConcurrently(t *testing.T) {
	const n = 5
	var arrived sync.WaitGroup
	arrived.Add(n)
	all := make(chan struct{})
	go func() { arrived.Wait(); close(all) }()
	at := time.Unix(1795780800, 0)
	q := fakeQuerier(func(ctx context.Context, query string, ts time.Time) (model.Value, []string, error) {
		if !ts.Equal(at) {
			t.Errorf("ts = %v, want %v", ts, at)
		}
		arrived.Done()
		select { // a sequential Eval would never get every query in flight
		case <-all:
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		}
		var v float64
		fmt.Sscanf(query, "q%g", &v)
		return model.Vector{{Metric: model.Metric{"q": model.LabelValue(query)}, Value: model.SampleValue(v)}}, nil, nil
	})
	p := newPrometheus(q, "prometheus fake", "")
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	queries := []string{"q0", "q1", "q2", "q3", "q4"}
	results := p.Eval(ctx, at, queries)
	for i, r := range results {
		want := []Element{{Labels: map[string]string{"q": queries[i]}, V: float64(i)}}
		if r.Err != nil || !equalElements(r.Vector, want) {
			t.Errorf("result %d = %+v, want %v", i, r, want)
		}
	}
}

func TestPrometheusNilContext(t *testing.T) {
	q := fakeQuerier(func(ctx context.Context, query string, ts time.Time) (model.Value, []string, error) {
		if ctx == nil {
			t.Error("nil context reached the querier")
		}
		if _, ok := ctx.Deadline(); !ok {
			t.Error("no deadline on a context that had none: want DefaultTimeout")
		}
		return &model.Scalar{Value: 4}, nil, nil
	})
	var nilCtx context.Context
	r := newPrometheus(q, "prometheus fake", "").Eval(nilCtx, time.Time{}, []string{"x"})
	if got := ToValue(r[0]); got != (measure.Value{V: 4}) {
		t.Errorf("ToValue = %+v", got)
	}
}

func TestToVectorNativeHistogram(t *testing.T) {
	_, err := toVector(model.Vector{{Histogram: &model.SampleHistogram{Count: 3}}})
	if err == nil || !strings.Contains(err.Error(), "histogram_count") {
		t.Errorf("err = %v", err)
	}
}

// Samples asks for selector[window] at the server's now and keeps each
// series' samples after `after`; the server's error text loses the token
// and what Redact removes.
func TestPrometheusSamples(t *testing.T) {
	after := time.Unix(1000, 0)
	q := fakeQuerier(func(ctx context.Context, query string, ts time.Time) (model.Value, []string, error) {
		if query == "bad[10000ms]" {
			return nil, nil, &apiError{Status: 422, Type: "execution", Msg: "echo tok-en and pass-word"}
		}
		if query != `c{a="b"}[10000ms]` || !ts.IsZero() {
			t.Errorf("query %q at %v", query, ts)
		}
		return model.Matrix{{Metric: model.Metric{"pod": "p0"}, Values: []model.SamplePair{
			{Timestamp: model.TimeFromUnix(1000), Value: 5}, {Timestamp: model.TimeFromUnix(1004), Value: 7}, {Timestamp: model.TimeFromUnix(1009), Value: 2}}}}, nil, nil
	})
	p := newPrometheus(q, "prometheus fake", "tok-en")
	p.Redact(func(s string) string { return strings.ReplaceAll(s, "pass-word", "[REDACTED]") })
	got, err := p.Samples(context.Background(), `c{a="b"}`, 10*time.Second, after)
	if err != nil || len(got) != 1 || got[0].Labels["pod"] != "p0" || !slices.Equal(got[0].V, []float64{7, 2}) || !got[0].At[0].Equal(time.Unix(1004, 0)) {
		t.Errorf("Samples = %+v, %v", got, err)
	}
	if _, err := p.Samples(context.Background(), "bad", 10*time.Second, after); err == nil || strings.Contains(err.Error(), "tok-en") || strings.Contains(err.Error(), "pass-word") {
		t.Errorf("err = %v", err)
	}
}
