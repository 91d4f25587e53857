package promwatch

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scaleout/scaleout/measure"
)

// restartingProm is a fake Prometheus HTTP API whose start time and targets'
// last scrapes the test sets; its query answers a constant 7.
type restartingProm struct {
	mu      sync.Mutex
	start   time.Time
	scrapes []time.Time  // one per active target; zero: never scraped
	status  int          // the status endpoints' HTTP status; 0: they answer
	statusN atomic.Int32 // status requests seen
}

func (p *restartingProm) set(start time.Time, scrapes ...time.Time) {
	p.mu.Lock()
	p.start, p.scrapes = start, scrapes
	p.mu.Unlock()
}

func (p *restartingProm) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	defer p.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	switch r.URL.Path {
	case "/api/v1/query":
		fmt.Fprint(w, apiVector(apiSample(``, "7")))
		return
	case "/api/v1/status/runtimeinfo", "/api/v1/targets":
		p.statusN.Add(1)
		if p.status != 0 {
			w.WriteHeader(p.status)
			return
		}
	}
	if r.URL.Path == "/api/v1/status/runtimeinfo" {
		fmt.Fprintf(w, `{"status":"success","data":{"startTime":%q,"CWD":"/"}}`, p.start.Format(time.RFC3339Nano))
		return
	}
	var ts []string
	for i, at := range p.scrapes {
		last := "0001-01-01T00:00:00Z"
		if !at.IsZero() {
			last = at.Format(time.RFC3339Nano)
		}
		ts = append(ts, fmt.Sprintf(`{"labels":{"instance":"pod-%d"},"scrapePool":"vllm","health":"up","lastScrape":%q}`, i, last))
	}
	fmt.Fprintf(w, `{"status":"success","data":{"activeTargets":[%s],"droppedTargets":[]}}`, strings.Join(ts, ","))
}

func TestWatcherHidesAnswersFromBeforeAPrometheusStart(t *testing.T) {
	fake := &restartingProm{}
	srv := httptest.NewServer(fake)
	defer srv.Close()
	ev, err := NewPrometheus(srv.URL, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	clock := &fakeClock{}
	epoch := time.Date(2026, 11, 28, 1, 0, 0, 0, time.UTC)
	w := &Watcher{Eval: ev, Series: []measure.Series{{Name: "waiting", Query: "sum(w)"}, {Name: "ready", Query: "max(r)"}}, Epoch: epoch, Now: clock.Now}
	sec := func(n int) time.Time { return epoch.Add(time.Duration(n) * time.Second) }
	wantGap := "Prometheus started at 01:00:30 UTC and has not scraped all its targets since"

	steps := []struct {
		name    string
		now     int
		start   int
		scrapes []int // seconds; -1 never
		gap     string
	}{
		{"running for a while, all scraped", 10, -600, []int{9, 8}, ""},
		{"restarted, no target discovered yet", 31, 30, nil, wantGap},
		{"restarted, nothing scraped yet", 32, 30, []int{-1, 5}, wantGap},
		{"one target scraped since", 34, 30, []int{33, 5}, wantGap},
		{"every target scraped since, the last perhaps after this sample's instant: held back once more", 36, 30, []int{33, 35}, wantGap},
		{"asked for an instant before the last of those scrapes: still held back", 34, 30, []int{33, 35}, wantGap},
		{"then fresh, and targets are not read again", 38, 30, []int{-1, -1}, ""},
		{"restarted again", 50, 49, []int{40, 41}, "Prometheus started at 01:00:49 UTC"},
		{"a target that is never scraped holds nothing back for longer than freshAfter after the start was seen", 50 + int(freshAfter/time.Second), 49, []int{-1, 41}, ""},
		{"restarted long ago by its own clock: a new pod waiting for its first scrape holds nothing back", 300, -3600, []int{-1, 299}, ""},
		{"restarted, and every target scraped well before this sample's instant: fresh at once", 410, 400, []int{402, 403}, ""},
	}
	for _, st := range steps {
		var scrapes []time.Time
		for _, s := range st.scrapes {
			at := time.Time{}
			if s >= 0 {
				at = sec(s)
			}
			scrapes = append(scrapes, at)
		}
		fake.set(sec(st.start), scrapes...)
		clock.Set(sec(st.now))
		s := w.Sample(context.Background())
		for i, v := range s.Values {
			switch {
			case st.gap == "" && !v.OK():
				t.Errorf("%s: series %d is a gap %q, want 7", st.name, i, v.Gap)
			case st.gap == "" && v.V != 7:
				t.Errorf("%s: series %d = %v, want 7", st.name, i, v.V)
			case st.gap != "" && !strings.HasPrefix(v.Gap, st.gap):
				t.Errorf("%s: series %d = %+v, want a gap starting %q", st.name, i, v, st.gap)
			}
		}
	}

	// A status API the server refuses while its queries answer is asked
	// once, then left alone; one that fails (5xx) is asked again.
	for _, tc := range []struct {
		status, asks int
	}{{http.StatusNotFound, 1}, {http.StatusForbidden, 1}, {http.StatusServiceUnavailable, 3}} {
		fake.mu.Lock()
		fake.status = tc.status
		fake.mu.Unlock()
		ev, err = NewPrometheus(srv.URL, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		w.Eval = ev
		fake.statusN.Store(0)
		for range 3 {
			if v := w.Sample(context.Background()).Values[0]; !v.OK() || v.V != 7 {
				t.Fatalf("status API answering %d: %+v, want 7", tc.status, v)
			}
		}
		if n := fake.statusN.Load(); int(n) != tc.asks {
			t.Errorf("status API answering %d: asked %d times, want %d", tc.status, n, tc.asks)
		}
	}
}
