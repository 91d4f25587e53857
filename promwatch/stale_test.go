package promwatch

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scaleout/scaleout/measure"
)

// stallingProm is a fake Prometheus HTTP API that stalls on command, as a
// Prometheus under SIGSTOP does: every request waits until it resumes (or
// its caller gives up). The test sets each job's scrape interval and newest
// scrape; the series query answers 7.
type stallingProm struct {
	t       *testing.T
	mu      sync.Mutex
	start   time.Time
	jobs    map[string]*fakeJob
	gate    chan struct{} // non-nil while stalled; closed on resume
	arrived chan struct{} // a request came in while stalled
	// beat is set when an evaluation's heartbeat has been answered and
	// cleared by its series query: a series query that finds it clear
	// came before the heartbeat (early counts those).
	beat        bool
	early       int
	targetReads int
}

type fakeJob struct {
	interval, timeout string
	last              time.Time // the newest scrape at the instants the test asks for
}

func newStallingProm(t *testing.T, start time.Time) *stallingProm {
	return &stallingProm{t: t, start: start, jobs: map[string]*fakeJob{}, arrived: make(chan struct{}, 1)}
}

func (p *stallingProm) stall() {
	p.mu.Lock()
	p.gate = make(chan struct{})
	p.mu.Unlock()
	select { // forget an arrival from before
	case <-p.arrived:
	default:
	}
}

func (p *stallingProm) resume() {
	p.mu.Lock()
	close(p.gate)
	p.gate = nil
	p.mu.Unlock()
}

func (p *stallingProm) scraped(job string, at time.Time) {
	p.mu.Lock()
	p.jobs[job].last = at
	p.mu.Unlock()
}

func (p *stallingProm) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	gate := p.gate
	p.mu.Unlock()
	if gate != nil {
		select {
		case p.arrived <- struct{}{}:
		default:
		}
		select {
		case <-gate:
		case <-r.Context().Done():
			return
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	switch r.URL.Path {
	case "/api/v1/status/runtimeinfo":
		fmt.Fprintf(w, `{"status":"success","data":{"startTime":%q}}`, p.start.Format(time.RFC3339Nano))
	case "/api/v1/targets":
		p.targetReads++
		var ts []string
		for job, j := range p.jobs {
			ts = append(ts, fmt.Sprintf(`{"labels":{"job":%q,"instance":"%s:8000"},"health":"up","lastScrape":%q,"scrapeInterval":%q,"scrapeTimeout":%q}`,
				job, job, j.last.Format(time.RFC3339Nano), j.interval, j.timeout))
		}
		fmt.Fprintf(w, `{"status":"success","data":{"activeTargets":[%s],"droppedTargets":[]}}`, strings.Join(ts, ","))
	case "/api/v1/query":
		q := r.FormValue("query")
		if strings.HasPrefix(q, "min by (job) (timestamp(up)") {
			if want := "min by (job) (timestamp(up) >= " + formatTime(p.start) + ")"; q != want {
				p.t.Errorf("heartbeat query %q, want %q", q, want)
			}
			var els []string
			for job, j := range p.jobs {
				els = append(els, fmt.Sprintf(`{"metric":{"job":%q},"value":[%s,"%s"]}`, job, r.FormValue("time"), formatTime(j.last)))
			}
			p.beat = true
			fmt.Fprint(w, apiVector(els...))
			return
		}
		if !p.beat {
			p.early++
		}
		p.beat = false
		fmt.Fprint(w, apiVector(apiSample(``, "7")))
	default:
		http.NotFound(w, r)
	}
}

// A Prometheus stopped for a while (SIGSTOP, then SIGCONT) answers, once it
// runs again, from the samples it had when it stopped. Those answers are
// stale gaps, not values, until it has scraped again; an answer that came
// late but whose samples were current at its instant is a value.
func TestWatcherStalledPrometheus(t *testing.T) {
	epoch := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	sec := func(s float64) time.Time { return epoch.Add(time.Duration(s * float64(time.Second))) }
	fake := newStallingProm(t, sec(-600))
	fake.jobs["vllm"] = &fakeJob{interval: "1s", timeout: "1s", last: sec(99.6)}
	fake.jobs["kube"] = &fakeJob{interval: "15s", timeout: "10s", last: sec(92)}
	srv := httptest.NewServer(fake)
	defer srv.Close()
	ev, err := NewPrometheus(srv.URL, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	clock := &fakeClock{}
	w := &Watcher{Eval: ev, Series: []measure.Series{{Name: "waiting", Query: "sum(w)"}}, Epoch: epoch, Now: clock.Now, Timeout: waitFor}
	sample := func(at float64) measure.Value {
		clock.Set(sec(at))
		return w.Sample(context.Background()).Values[0]
	}
	// sampleStalled takes a sample while the server is stopped and resumes
	// it once the sample's first request waits.
	sampleStalled := func(at float64) measure.Value {
		got := make(chan measure.Value, 1)
		go func() { got <- sample(at) }()
		select {
		case <-fake.arrived:
		case <-time.After(waitFor):
			t.Fatal("the sample sent nothing to the stalled server")
		}
		fake.resume()
		return <-got
	}
	const stale = "stale: Prometheus's newest samples are older than its scrape intervals allow"
	want := func(step string, v measure.Value, gap string) {
		t.Helper()
		switch {
		case gap == "" && (!v.OK() || v.V != 7):
			t.Errorf("%s: %+v, want 7", step, v)
		case gap != "" && !strings.HasPrefix(v.Gap, gap):
			t.Errorf("%s: %+v, want a gap starting %q", step, v, gap)
		}
	}

	want("the first sample learns the intervals", sample(100), "")
	fake.mu.Lock()
	fake.early = 0 // the first evaluation has no heartbeat to wait for
	fake.mu.Unlock()
	fake.scraped("vllm", sec(100.6))
	want("scraping every second", sample(101), "")

	fake.scraped("vllm", sec(101.2))
	fake.stall()
	want("answered late, but its samples were current at its instant", sampleStalled(102), "")

	fake.stall()
	w.Timeout = 100 * time.Millisecond // the sample's deadline passes while the server is stopped
	want("no answer within the sample's deadline", sample(103), "timeout")
	w.Timeout = waitFor
	want("answered after the stall, for an instant inside it", sampleStalled(112), stale)
	want("answered at once after the stall, before the server has scraped again", sample(112.5), stale)

	fake.scraped("vllm", sec(112.6))
	fake.scraped("kube", sec(112.6))
	want("scraping again", sample(113), "")

	// A reload that slows a job down: its lag is judged against the
	// interval it has now, read again before anything is called stale.
	fake.mu.Lock()
	fake.jobs["vllm"].interval, fake.jobs["vllm"].timeout = "30s", "10s"
	reads := fake.targetReads
	fake.mu.Unlock()
	fake.scraped("vllm", sec(113))
	want("a job whose interval grew", sample(125), "")
	fake.mu.Lock()
	if fake.targetReads != reads+1 {
		t.Errorf("targets read %d times after the reload, want once", fake.targetReads-reads)
	}
	if fake.early != 0 {
		t.Errorf("%d series queries went out before their heartbeat was answered", fake.early)
	}
	fake.mu.Unlock()

	// The stale answer keeps its value for whoever wants to see it, and
	// says what it is.
	clock.Set(sec(200))
	r := ev.Eval(context.Background(), sec(200), []string{"sum(w)"})[0]
	if !errors.Is(r.Err, ErrStale) || len(r.Vector) != 1 {
		t.Errorf("stale answer: %+v, want ErrStale with its vector", r)
	}
}

// A /metrics page that stops answering for longer than the interval gives
// no value: the sample's deadline is the interval (as a run sets it), so a
// page read late, whose values would belong to a later moment than the
// sample's, is a gap.
func TestWatcherStalledPage(t *testing.T) {
	var mu sync.Mutex
	var gate chan struct{}
	page := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		g := gate
		mu.Unlock()
		if g != nil {
			select {
			case <-g:
			case <-r.Context().Done():
				return
			}
		}
		fmt.Fprint(w, "vllm:num_requests_waiting 4\n")
	})
	srv := httptest.NewServer(page)
	defer srv.Close()
	sc, err := NewScrape([]string{srv.URL + "/metrics"}, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	interval := 100 * time.Millisecond
	w := &Watcher{Eval: sc, Series: []measure.Series{{Name: "waiting", Query: "sum(vllm:num_requests_waiting)"}}, Timeout: interval}
	if v := w.Sample(context.Background()).Values[0]; !v.OK() || v.V != 4 {
		t.Fatalf("before the stall: %+v, want 4", v)
	}
	mu.Lock()
	gate = make(chan struct{})
	mu.Unlock()
	if v := w.Sample(context.Background()).Values[0]; v.OK() || !strings.HasSuffix(v.Gap, "timeout") {
		t.Errorf("page stalled past the interval: %+v, want a timeout gap", v)
	}
	mu.Lock()
	close(gate)
	gate = nil
	mu.Unlock()
	if v := w.Sample(context.Background()).Values[0]; !v.OK() || v.V != 4 {
		t.Errorf("after the stall: %+v, want 4", v)
	}
}
