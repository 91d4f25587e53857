package run

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scaleout/scaleout/promwatch"
	"github.com/scaleout/scaleout/scenario"
	"github.com/scaleout/scaleout/timeline"
)

// fleet is the counters of a fleet at one instant: pod → successful
// requests; each pod generated 10 tokens per request.
type fleet map[string]float64

func (f fleet) ok() []promwatch.Element {
	var out []promwatch.Element
	for pod, v := range f {
		out = append(out, promwatch.Element{Labels: map[string]string{"__name__": "vllm:request_success_total", "pod": pod, "finished_reason": "length"}, V: v})
	}
	return out
}

func (f fleet) tokens() []promwatch.Element {
	var out []promwatch.Element
	for pod, v := range f {
		out = append(out, promwatch.Element{Labels: map[string]string{"__name__": "vllm:generation_tokens_total", "pod": pod}, V: 10 * v})
	}
	return out
}

// scripted is a /metrics source whose counters follow a script: each Eval
// answers the next fleet (the last one repeats); a nil fleet is a failed
// read. sum(…) of a counter adds its series; other queries answer 1.
type scripted struct {
	mu    sync.Mutex
	steps []fleet
	i     int
}

func (s *scripted) next() fleet {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.steps[min(s.i, len(s.steps)-1)]
	s.i++
	return f
}

func (s *scripted) Eval(_ context.Context, _ time.Time, queries []string) []promwatch.Result {
	f := s.next()
	res := make([]promwatch.Result, len(queries))
	for i, q := range queries {
		inner, sum := strings.CutPrefix(q, "sum(")
		switch {
		case f == nil:
			res[i].Err = &promwatch.SourceError{Source: "scrape", Where: "10.0.0.1:8000", Reason: "connection refused"}
		case strings.HasPrefix(inner, "vllm:request_success_total{"):
			res[i].Vector = f.ok()
		case strings.HasPrefix(inner, "vllm:generation_tokens_total{"):
			res[i].Vector = f.tokens()
		default:
			res[i].Vector = []promwatch.Element{{V: 1}}
			continue
		}
		if sum && len(res[i].Vector) > 0 {
			var total float64
			for _, e := range res[i].Vector {
				total += e.V
			}
			res[i].Vector = []promwatch.Element{{Labels: map[string]string{}, V: total}}
		}
	}
	return res
}

func (s *scripted) String() string { return "scrape of 1 page" }

func withVLLM(sel string) *scenario.Scenario {
	s := &scenario.Scenario{}
	s.Observe.VLLM = sel
	return s
}

// check runs a counter check the way a run does: the start, then the
// watcher's samples through the tap, then the end; the client received ok
// requests with 10 tokens each.
func check(t *testing.T, s *scenario.Scenario, src promwatch.Evaluator, samples int, ok int64) *timeline.Report {
	t.Helper()
	ctx := context.Background()
	c := newCounterCheck(ctx, s, src)
	w := c.tap(src)
	for range samples {
		if res := w.Eval(ctx, time.Now(), []string{"sum(vllm:num_requests_waiting)"}); len(res) != 1 || promwatch.ToValue(res[0]).V != 1 && res[0].Err == nil {
			t.Fatalf("the watcher's own query: %+v", res)
		}
	}
	r := &timeline.Report{Load: timeline.LoadReport{OK: ok, OutputTokens: 10 * ok}}
	c.finish(ctx, r, 0)
	return r
}

func wantServer(t *testing.T, r *timeline.Report, ok int64, detail ...string) {
	t.Helper()
	if r.Server == nil {
		t.Fatalf("no server count; notes %q", r.Notes)
	}
	if r.Server.OK != ok || r.Server.OutputTokens != 10*ok {
		t.Errorf("server %d ok, %d tokens; want %d, %d (%s)", r.Server.OK, r.Server.OutputTokens, ok, 10*ok, r.Server.Detail)
	}
	for _, d := range detail {
		if !strings.Contains(r.Server.Detail, d) {
			t.Errorf("detail %q lacks %q", r.Server.Detail, d)
		}
	}
}

func TestCountersThroughScrapes(t *testing.T) {
	sel := withVLLM(`{namespace="inference"}`)
	t.Run("scale-in", func(t *testing.T) {
		// p1 served 4 and went away: its counts stay.
		src := &scripted{steps: []fleet{{"p0": 10, "p1": 5}, {"p0": 20, "p1": 9}, {"p0": 25}, {"p0": 30}}}
		wantServer(t, check(t, sel, src, 2, 24), 24, "rose by exactly what the client received")
	})
	t.Run("scale-in with counts after the last scrape", func(t *testing.T) {
		// p1 served 2 more after its last scrape, then went away.
		src := &scripted{steps: []fleet{{"p0": 10, "p1": 5}, {"p0": 20, "p1": 9}, {"p0": 30}}}
		wantServer(t, check(t, sel, src, 1, 26), 24, "2 fewer successful requests", "need not be a loss", "pod p1 went away during the run;", "at most 2 requests (20 tokens) cannot be seen")
	})
	t.Run("restart", func(t *testing.T) {
		// p0 restarted between two samples: 50 before, 40 after.
		src := &scripted{steps: []fleet{{"p0": 100}, {"p0": 150}, {"p0": 3}, {"p0": 40}}}
		wantServer(t, check(t, sel, src, 2, 90), 90, "rose by exactly")
	})
	t.Run("restart with counts before it", func(t *testing.T) {
		src := &scripted{steps: []fleet{{"p0": 100}, {"p0": 150}, {"p0": 40}}}
		wantServer(t, check(t, sel, src, 1, 95), 90, "pod p0 restarted, counting again from 0", "at most 5 requests")
	})
	t.Run("pod added", func(t *testing.T) {
		src := &scripted{steps: []fleet{{"p0": 10}, {"p0": 15, "p1": 4}, {"p0": 20, "p1": 7}}}
		wantServer(t, check(t, sel, src, 1, 17), 17, "rose by exactly")
	})
	t.Run("pod added and gone", func(t *testing.T) {
		src := &scripted{steps: []fleet{{"p0": 10}, {"p0": 15, "p1": 4}, {"p0": 20}}}
		wantServer(t, check(t, sel, src, 1, 14), 14, "rose by exactly")
	})
	t.Run("no counters at the start", func(t *testing.T) {
		src := &scripted{steps: []fleet{{}, {"p0": 5}, {"p0": 12}}}
		wantServer(t, check(t, sel, src, 1, 12), 12, "rose by exactly")
	})
	t.Run("a failed sample is skipped", func(t *testing.T) {
		src := &scripted{steps: []fleet{{"p0": 10}, nil, {"p0": 30}}}
		wantServer(t, check(t, sel, src, 1, 20), 20)
	})
	t.Run("more than the client", func(t *testing.T) {
		src := &scripted{steps: []fleet{{}, {"p0": 12}}}
		wantServer(t, check(t, sel, src, 0, 10), 12, "2 more successful requests", "every series counted from 0")
	})
}

func TestCountersCannotCheck(t *testing.T) {
	for _, tt := range []struct {
		name string
		s    *scenario.Scenario
		src  promwatch.Evaluator
		want string
	}{
		{"nothing observed", withVLLM(`{namespace="inference"}`), nil, "nothing is observed"},
		{"no observe.vllm", withVLLM(""), &scripted{steps: []fleet{{"p0": 1}}}, "observe.vllm is not set"},
		{"unreadable at the start", withVLLM(`{a="b"}`), &scripted{steps: []fleet{nil, {"p0": 1}}}, "could not read them before the load (10.0.0.1:8000: connection refused)"},
		{"unreadable at the end", withVLLM(`{a="b"}`), &scripted{steps: []fleet{{"p0": 1}, nil}}, "could not read them at the end (10.0.0.1:8000: connection refused)"},
		{"no counters at all", withVLLM(`{a="b"}`), &scripted{steps: []fleet{{}}}, `no vllm:request_success_total series matched vllm:request_success_total{a="b",finished_reason!="abort"}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := check(t, tt.s, tt.src, 0, 5)
			if r.Server != nil || len(r.Notes) != 1 || !strings.Contains(r.Notes[0], "the vLLM counters were not compared with the client's counts: "+tt.want) {
				t.Errorf("server %+v, notes %q; want a note with %q", r.Server, r.Notes, tt.want)
			}
		})
	}
}

// stored is a Prometheus server: it answers the counters now (each Eval the
// next fleet), its time, and every sample it stored.
type stored struct {
	scripted
	now     time.Time
	samples map[string][]sample // pod → samples, oldest first
}

type sample struct {
	at time.Time
	v  float64
}

func (s *stored) Eval(ctx context.Context, at time.Time, queries []string) []promwatch.Result {
	if len(queries) == 3 && queries[2] == "time()" {
		res := s.scripted.Eval(ctx, at, queries[:2])
		return append(res, promwatch.Result{Vector: []promwatch.Element{{V: float64(s.now.UnixMilli()) / 1000}}})
	}
	return s.scripted.Eval(ctx, at, queries)
}

func (s *stored) Samples(_ context.Context, selector string, window time.Duration, after time.Time) ([]promwatch.Points, error) {
	if window <= 0 || !after.Equal(s.now) {
		return nil, errors.New("asked for the wrong range")
	}
	var out []promwatch.Points
	for pod, ss := range s.samples {
		p := promwatch.Points{Labels: map[string]string{"pod": pod, "finished_reason": "length"}}
		tokens := strings.HasPrefix(selector, "vllm:generation_tokens_total")
		if tokens {
			p.Labels = map[string]string{"pod": pod}
		}
		for _, x := range ss {
			if x.at.After(after) {
				v := x.v
				if tokens {
					v *= 10
				}
				p.At, p.V = append(p.At, x.at), append(p.V, v)
			}
		}
		out = append(out, p)
	}
	return out, nil
}

func (s *stored) String() string { return "prometheus http://127.0.0.1:9090" }

// Through Prometheus the tally comes from every stored sample: p0 restarted
// (50 before, 40 after), p1 came, served 9 and went away; a sample from
// before the start does not count.
func TestCountersThroughPrometheus(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	src := &stored{
		scripted: scripted{steps: []fleet{{"p0": 100}, {"p0": 40}}},
		now:      t0,
		samples: map[string][]sample{
			"p0": {{at(-15), 90}, {at(0), 100}, {at(15), 150}, {at(30), 3}, {at(45), 40}},
			"p1": {{at(-300), 77}, {at(15), 5}, {at(30), 9}},
		},
	}
	wantServer(t, check(t, withVLLM(`{namespace="inference"}`), src, 0, 99), 99, "rose by exactly")

	src.i = 0
	r := check(t, withVLLM(`{namespace="inference"}`), src, 0, 101)
	wantServer(t, r, 99, "pod p1 went away during the run and pod p0 restarted, counting again from 0;", "at most 2 requests (20 tokens)")
}
