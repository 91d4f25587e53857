package promwatch

import (
	"context"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scaleout/scaleout/measure"
)

// step is one state of the scripted cluster behind the fake server.
type step struct {
	status  int // 0: answer with the values; otherwise this HTTP status
	down    bool
	waiting float64
	desired float64
}

// cluster is the state the fake Prometheus API and /metrics page serve.
type cluster struct {
	mu  sync.Mutex
	now step
}

func (c *cluster) set(s step) {
	c.mu.Lock()
	c.now = s
	c.mu.Unlock()
}

func (c *cluster) get() step {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

var watchSeries = []measure.Series{
	{Name: "waiting", Query: "sum(vllm:num_requests_waiting)"},
	{Name: "desired", Query: `max(kube_horizontalpodautoscaler_status_desired_replicas{horizontalpodautoscaler="keda-hpa-vllm"})`},
	{Name: "kv", Query: "sum(vllm:kv_cache_usage_perc)"}, // never exported here: always "no series"
}

// apiHandler serves the cluster as a Prometheus HTTP API and checks that
// each query is evaluated at the watcher's clock.
func (c *cluster) apiHandler(t *testing.T, clock *fakeClock) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := c.get()
		if s.status != 0 {
			w.WriteHeader(s.status)
			return
		}
		if r.URL.Path != "/api/v1/query" { // no status API, as behind some query fronts
			http.NotFound(w, r)
			return
		}
		if got, want := r.FormValue("time"), formatTime(clock.Now()); got != want {
			t.Errorf("time=%s, want the watcher's clock %s", got, want)
		}
		switch r.FormValue("query") {
		case watchSeries[0].Query:
			fmt.Fprint(w, apiVector(apiSample(``, fmt.Sprint(s.waiting))))
		case watchSeries[1].Query:
			fmt.Fprint(w, apiVector(apiSample(`"horizontalpodautoscaler":"keda-hpa-vllm"`, fmt.Sprint(s.desired))))
		default:
			fmt.Fprint(w, apiVector())
		}
	})
}

// pageHandler serves the cluster as one /metrics page.
func (c *cluster) pageHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := c.get()
		if s.status != 0 {
			w.WriteHeader(s.status)
			return
		}
		fmt.Fprintf(w, "# TYPE vllm:num_requests_waiting gauge\nvllm:num_requests_waiting{model_name=%q} %g\n", model15, s.waiting)
		fmt.Fprintf(w, "# TYPE kube_horizontalpodautoscaler_status_desired_replicas gauge\n"+
			"kube_horizontalpodautoscaler_status_desired_replicas{namespace=\"llm\",horizontalpodautoscaler=\"keda-hpa-vllm\"} %g\n", s.desired)
	})
}

// recv waits for the next sample, with a deadline.
func recv(t *testing.T, got <-chan measure.Sample) measure.Sample {
	t.Helper()
	select {
	case s := <-got:
		return s
	case <-time.After(waitFor):
		t.Fatal("no sample arrived")
		return measure.Sample{}
	}
}

func TestWatcherScriptedScaleOut(t *testing.T) {
	modes := []struct {
		name    string
		handler func(*cluster, *testing.T, *fakeClock) http.Handler
		eval    func(url string, rt http.RoundTripper) (Evaluator, error)
		where   func(url string) string // what a page error puts before its reason
	}{
		{
			name:    "prometheus",
			handler: func(c *cluster, t *testing.T, clock *fakeClock) http.Handler { return c.apiHandler(t, clock) },
			eval: func(url string, rt http.RoundTripper) (Evaluator, error) {
				return NewPrometheus(url, "", rt)
			},
			where: func(string) string { return "" },
		},
		{
			name:    "scrape",
			handler: func(c *cluster, _ *testing.T, _ *fakeClock) http.Handler { return c.pageHandler() },
			eval: func(url string, rt http.RoundTripper) (Evaluator, error) {
				return NewScrape([]string{url + "/metrics"}, "", rt)
			},
			where: func(url string) string { return hostOf(url) + ": " },
		},
	}
	for _, mode := range modes {
		t.Run(mode.name, func(t *testing.T) {
			c := &cluster{}
			epoch := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
			clock := &fakeClock{}
			srv := newRestartable(t, mode.handler(c, t, clock))
			tr := &http.Transport{}
			defer tr.CloseIdleConnections()
			ev, err := mode.eval(srv.URL(), tr)
			if err != nil {
				t.Fatal(err)
			}
			w := &Watcher{Eval: ev, Series: watchSeries, Epoch: epoch, Now: clock.Now, Timeout: waitFor}
			ticks := make(chan time.Time)
			got := make(chan measure.Sample, 16)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan struct{})

			where := mode.where(srv.URL())
			noSeries := measure.Value{Gap: "no series"}
			gap := func(reason string) measure.Value { return measure.Value{Gap: where + reason} }
			script := []struct {
				state step
				at    time.Duration
				want  []measure.Value
			}{
				{step{waiting: 0, desired: 1}, 0, []measure.Value{{V: 0}, {V: 1}, noSeries}},
				{step{waiting: 7, desired: 2}, 15 * time.Second, []measure.Value{{V: 7}, {V: 2}, noSeries}},
				{step{waiting: 15, desired: 3}, 30 * time.Second, []measure.Value{{V: 15}, {V: 3}, noSeries}},
				{step{status: 503}, 45 * time.Second, []measure.Value{gap("HTTP 503"), gap("HTTP 503"), gap("HTTP 503")}},
				{step{down: true}, 60 * time.Second, []measure.Value{gap("connection refused"), gap("connection refused"), gap("connection refused")}},
				{step{waiting: 2, desired: 3}, 75 * time.Second, []measure.Value{{V: 2}, {V: 3}, noSeries}},
			}
			down := false
			for i, sc := range script {
				c.set(sc.state)
				switch {
				case sc.state.down && !down:
					srv.stop()
					tr.CloseIdleConnections() // the next request dials, and is refused
				case !sc.state.down && down:
					srv.restart()
				}
				down = sc.state.down
				clock.Set(epoch.Add(sc.at))
				if i == 0 { // Run samples once at start, then on each tick
					go func() {
						defer close(done)
						w.Run(ctx, ticks, func(s measure.Sample) { got <- s })
					}()
				} else {
					ticks <- epoch.Add(sc.at)
				}
				want := measure.Sample{At: sc.at, Values: sc.want}
				if s := recv(t, got); !reflect.DeepEqual(s, want) {
					t.Errorf("step %d:\n got %+v\nwant %+v", i, s, want)
				}
			}
			cancel()
			select {
			case <-done:
			case <-time.After(waitFor):
				t.Fatal("Run did not return after cancel")
			}
			select {
			case s := <-got:
				t.Errorf("a sample after the script: %+v", s)
			default:
			}
		})
	}
}

func TestWatcherDropsTicksDuringASample(t *testing.T) {
	var calls atomic.Int64
	started := make(chan int64, 4)
	release := make(chan struct{})
	ev := evalFunc(func(ctx context.Context, at time.Time, queries []string) []Result {
		n := calls.Add(1)
		started <- n
		if n == 2 {
			<-release // a slow sample
		}
		return []Result{{Vector: []Element{{V: float64(n)}}}}
	})
	epoch := time.Unix(1795780800, 0)
	clock := &fakeClock{t: epoch}
	w := &Watcher{Eval: ev, Series: []measure.Series{{Name: "n", Query: "n"}}, Epoch: epoch, Now: clock.Now, Timeout: waitFor}
	ticks := make(chan time.Time, 8)
	got := make(chan measure.Sample, 8)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go w.Run(ctx, ticks, func(s measure.Sample) { got <- s })

	if s := recv(t, got); !reflect.DeepEqual(s, measure.Sample{At: 0, Values: []measure.Value{{V: 1}}}) {
		t.Fatalf("first sample %+v", s)
	}
	<-started
	clock.Set(epoch.Add(15 * time.Second))
	ticks <- epoch
	<-started // the slow sample is under way
	for range 3 {
		ticks <- epoch // these arrive while it runs: dropped
	}
	close(release)
	if s := recv(t, got); !reflect.DeepEqual(s, measure.Sample{At: 15 * time.Second, Values: []measure.Value{{V: 2}}}) {
		t.Fatalf("slow sample %+v", s)
	}
	clock.Set(epoch.Add(30 * time.Second))
	ticks <- epoch
	// Had the three ticks been queued, the next sample would be number 3
	// taken at 15s; it is the one this tick asked for, at 30s.
	if s := recv(t, got); !reflect.DeepEqual(s, measure.Sample{At: 30 * time.Second, Values: []measure.Value{{V: 3}}}) {
		t.Fatalf("next sample %+v", s)
	}
	if n := calls.Load(); n != 3 {
		t.Errorf("%d evaluations, want 3", n)
	}
}

func TestWatcherRunStopsPromptly(t *testing.T) {
	t.Run("during a sample", func(t *testing.T) {
		inEval := make(chan struct{})
		ev := evalFunc(func(ctx context.Context, at time.Time, queries []string) []Result {
			close(inEval)
			<-ctx.Done() // a hung Prometheus, seen through the context
			return make([]Result, len(queries))
		})
		w := &Watcher{Eval: ev, Series: watchSeries, Timeout: time.Hour}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		var delivered atomic.Int64
		go func() {
			defer close(done)
			w.Run(ctx, make(chan time.Time), func(measure.Sample) { delivered.Add(1) })
		}()
		<-inEval
		cancel()
		select {
		case <-done:
		case <-time.After(waitFor):
			t.Fatal("Run did not return after cancel")
		}
		if n := delivered.Load(); n != 0 {
			t.Errorf("%d samples delivered after cancel, want 0", n)
		}
	})
	t.Run("between ticks", func(t *testing.T) {
		ev := evalFunc(func(ctx context.Context, at time.Time, queries []string) []Result {
			return make([]Result, len(queries))
		})
		w := &Watcher{Eval: ev, Series: watchSeries}
		ctx, cancel := context.WithCancel(context.Background())
		got := make(chan measure.Sample, 1)
		done := make(chan struct{})
		go func() {
			defer close(done)
			w.Run(ctx, make(chan time.Time), func(s measure.Sample) { got <- s })
		}()
		recv(t, got)
		cancel()
		select {
		case <-done:
		case <-time.After(waitFor):
			t.Fatal("Run did not return after cancel")
		}
	})
	t.Run("ticks closed", func(t *testing.T) {
		ev := evalFunc(func(ctx context.Context, at time.Time, queries []string) []Result {
			return make([]Result, len(queries))
		})
		w := &Watcher{Eval: ev, Series: watchSeries}
		ticks := make(chan time.Time)
		close(ticks)
		var n int
		w.Run(context.Background(), ticks, func(measure.Sample) { n++ })
		if n != 1 {
			t.Errorf("%d samples, want the one taken at once", n)
		}
	})
	t.Run("already canceled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		w := &Watcher{Eval: evalFunc(func(context.Context, time.Time, []string) []Result {
			t.Error("Eval called under a canceled context")
			return nil
		}), Series: watchSeries}
		w.Run(ctx, nil, func(measure.Sample) { t.Error("sample delivered") })
	})
}

func TestWatcherSampleTimeout(t *testing.T) {
	// A Prometheus that hangs: the handler blocks until the request's
	// context ends, which the per-sample timeout brings about.
	srv := newRestartable(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		<-r.Context().Done()
	}))
	p, err := NewPrometheus(srv.URL(), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	epoch := time.Unix(1795780800, 0)
	clock := &fakeClock{t: epoch.Add(90 * time.Second)}
	w := &Watcher{Eval: p, Series: watchSeries[:2], Epoch: epoch, Now: clock.Now, Timeout: 50 * time.Millisecond}
	got := w.Sample(context.Background())
	want := measure.Sample{At: 90 * time.Second, Values: []measure.Value{{Gap: "timeout"}, {Gap: "timeout"}}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Sample = %+v, want %+v", got, want)
	}
}

func TestWatcherAbandonsAStuckEvaluator(t *testing.T) {
	defer func(g time.Duration) { stuckGrace = g }(stuckGrace)
	stuckGrace = 0
	var calls atomic.Int64
	release := make(chan struct{})
	ev := evalFunc(func(ctx context.Context, at time.Time, queries []string) []Result {
		if calls.Add(1) == 1 {
			<-release // ignores its context
		}
		return []Result{{Vector: []Element{{V: 5}}}}
	})
	epoch := time.Unix(1795780800, 0)
	clock := &fakeClock{t: epoch}
	w := &Watcher{Eval: ev, Series: watchSeries[:1], Epoch: epoch, Now: clock.Now, Timeout: 100 * time.Millisecond}
	ticks := make(chan time.Time)
	got := make(chan measure.Sample, 4)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go w.Run(ctx, ticks, func(s measure.Sample) { got <- s })

	if s := recv(t, got); !reflect.DeepEqual(s.Values, []measure.Value{{Gap: gapStuck}}) {
		t.Fatalf("stuck sample %+v", s)
	}
	ticks <- epoch
	if s := recv(t, got); !reflect.DeepEqual(s.Values, []measure.Value{{Gap: gapStillStuck}}) {
		t.Fatalf("while stuck %+v", s)
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("Eval called %d times while the first was stuck", n)
	}
	close(release)
	deadline := time.After(waitFor)
	for { // the abandoned Eval returns in its own time; then sampling resumes
		select {
		case ticks <- epoch:
		case <-deadline:
			t.Fatal("sampling did not resume")
		}
		s := recv(t, got)
		if reflect.DeepEqual(s.Values, []measure.Value{{V: 5}}) {
			break
		}
		if !reflect.DeepEqual(s.Values, []measure.Value{{Gap: gapStillStuck}}) {
			t.Fatalf("unexpected sample %+v", s)
		}
	}
	if n := calls.Load(); n != 2 {
		t.Errorf("Eval called %d times, want 2", n)
	}
}

func TestWatcherShortAnswer(t *testing.T) {
	ev := evalFunc(func(context.Context, time.Time, []string) []Result { return []Result{{}} })
	w := &Watcher{Eval: ev, Series: watchSeries}
	s := w.Sample(context.Background())
	for _, v := range s.Values {
		if v.Gap != "evaluator answered 1 of 3 queries" {
			t.Errorf("gap %q", v.Gap)
		}
	}
}

func TestWatcherDefaults(t *testing.T) {
	var deadline time.Time
	ev := evalFunc(func(ctx context.Context, at time.Time, queries []string) []Result {
		deadline, _ = ctx.Deadline()
		if strings.Join(queries, "|") != watchSeries[0].Query+"|"+watchSeries[1].Query {
			t.Errorf("queries %q", queries)
		}
		return []Result{{Vector: []Element{{V: 1}}}, {Err: fmt.Errorf("boom")}}
	})
	before := time.Now()
	w := &Watcher{Eval: ev, Series: watchSeries[:2], Epoch: before}
	s := w.Sample(context.Background())
	if s.At < 0 || s.At > time.Since(before) {
		t.Errorf("At = %v outside [0, %v]", s.At, time.Since(before))
	}
	if d := deadline.Sub(before); d < DefaultTimeout || d > DefaultTimeout+time.Since(before) {
		t.Errorf("deadline %v after the start, want about %v", d, DefaultTimeout)
	}
	if want := []measure.Value{{V: 1}, {Gap: "boom"}}; !reflect.DeepEqual(s.Values, want) {
		t.Errorf("Values = %+v, want %+v", s.Values, want)
	}
}
