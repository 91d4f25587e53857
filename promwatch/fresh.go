package promwatch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"sync"
	"time"

	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
)

// A Prometheus server that has just (re)started answers an instant query
// with the last samples it kept on disk from before, for up to its lookback
// (5m by default), until it scrapes its targets again: a run that watched it
// go away would see the values of the moment it went away, presented as now.
// Beside every evaluation, Prometheus reads the server's start time (GET
// /api/v1/status/runtimeinfo) and, until the server is fresh, its active
// targets' last scrapes (GET /api/v1/targets?state=active), and turns the
// answers of a server that has not scraped since its start into gaps.
//
// A server that stalls (stopped, starved, swapping) keeps answering from
// the samples it had when it stopped scraping. Before the queries, Eval asks
// at the same instant for each job's oldest newest scrape (up is written by
// every scrape, failed ones too): a job whose newest scrape is older than
// its scrape interval and timeout allow turns the answers into gaps.

// ErrUnscraped marks the results of a Prometheus server that has not
// scraped all its targets since it started: the values it answered (kept
// in Result.Vector) may be from before its start.
var ErrUnscraped = errors.New("answers may predate the server's start")

// ErrStale marks the results of a Prometheus server whose newest samples at
// the instant asked for are older than its scrape intervals allow: it has
// stalled or fallen behind, and the values it answered (kept in
// Result.Vector) are from before that.
var ErrStale = errors.New("the newest samples are older than the scrape interval allows")

// freshAfter bounds how long answers are held back after a start is first
// seen: the longest scrape interval worth waiting for. A target scraped
// less often does not hold the run's series back for ever.
var freshAfter = 2 * time.Minute

// clockSlack covers the caller's clock running ahead of the server's.
const clockSlack = time.Second

// statusAPI is what the freshness check needs of a Prometheus server.
type statusAPI interface {
	Runtimeinfo(ctx context.Context) (v1.RuntimeinfoResult, error)
	ActiveTargets(ctx context.Context) ([]activeTarget, error)
}

// activeTarget is what the checks read of an active target: client_golang's
// ActiveTarget has no scrapeInterval.
type activeTarget struct {
	Labels           map[string]string `json:"labels"`
	DiscoveredLabels map[string]string `json:"discoveredLabels"`
	LastScrape       time.Time         `json:"lastScrape"`
	ScrapeInterval   string            `json:"scrapeInterval"` // Prometheus 2.x; older servers have it in DiscoveredLabels only
	ScrapeTimeout    string            `json:"scrapeTimeout"`
}

// durations returns the target's scrape interval and timeout, 0 when the
// server does not say.
func (t activeTarget) durations() (interval, timeout time.Duration) {
	read := func(field, label string) time.Duration {
		if field == "" {
			field = t.DiscoveredLabels[label]
		}
		d, err := model.ParseDuration(field)
		if err != nil {
			return 0
		}
		return time.Duration(d)
	}
	return read(t.ScrapeInterval, "__scrape_interval__"), read(t.ScrapeTimeout, "__scrape_timeout__")
}

// statusClient reads the status endpoints through client_golang: its
// Runtimeinfo, and the targets with state=active (its Targets has no
// filter and would fetch the dropped ones too, which on a shared server
// can be megabytes).
type statusClient struct {
	v1.API
	c statusErrors // a status that is not 2xx is an *apiError
}

func (s statusClient) ActiveTargets(ctx context.Context) ([]activeTarget, error) {
	u := s.c.URL("/api/v1/targets", nil)
	u.RawQuery = "state=active"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	resp, body, err := s.c.Do(ctx, req)
	if err != nil {
		return nil, err
	}
	var env struct {
		Status string `json:"status"`
		Data   struct {
			Active []activeTarget `json:"activeTargets"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &env); err != nil || env.Status != "success" {
		return nil, &apiError{Status: resp.StatusCode, Type: "bad_response", Msg: "not the targets API's JSON"}
	}
	return env.Data.Active, nil
}

// freshness is what one Prometheus remembers of its server's start and
// scrape intervals.
type freshness struct {
	mu          sync.Mutex
	unsupported bool      // the server refuses the status API (a Thanos or Mimir front, an RBAC proxy)
	start       time.Time // the server's start time as last read (its clock)
	seen        time.Time // when that start was first read (the caller's clock)
	fresh       bool      // every target was scraped since start
	// ready is the newest last scrape of the first check that found every
	// target scraped since start (the server's clock), readyAt when that
	// check ended (this process's clock).
	ready, readyAt time.Time
	jobs           map[string]time.Duration // job → the oldest its newest scrape may be (interval + timeout); nil: targets not read yet
	interval       time.Duration            // the longest scrape interval among the active targets
}

// unscraped says why the server's answers at `at` may predate its own
// start, or "" when they do not, or when the server cannot tell (its
// queries report a server that does not answer). refused is set when the
// status API itself was refused (a 4xx or an answer that is not its
// JSON): the caller stops asking once it knows the query API answered
// meanwhile. began is when the caller's evaluation began (this process's
// clock). The queries run beside this check.
func (f *freshness) unscraped(ctx context.Context, s statusAPI, at, began time.Time) (why string, refused bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.unsupported {
		return "", false
	}
	ri, err := s.Runtimeinfo(ctx)
	if err != nil {
		return "", isRefusal(err)
	}
	if ri.StartTime.IsZero() {
		return "", true
	}
	if !ri.StartTime.Equal(f.start) {
		f.start, f.seen, f.fresh, f.ready = ri.StartTime, at, false, time.Time{}
	}
	// A check that ended before this evaluation began found every target
	// scraped since the start, the last of them at ready: those samples were
	// stored before these queries ran, and an instant at or after ready
	// holds them. No slack is needed: the server reads `at` as its own.
	if !f.fresh && (at.Sub(f.seen) >= freshAfter || !f.ready.IsZero() && f.readyAt.Before(began) && !at.Before(f.ready)) {
		f.fresh = true
	}
	if f.fresh && f.jobs != nil {
		return "", false
	}
	active, err := s.ActiveTargets(ctx)
	if err != nil {
		return "", isRefusal(err)
	}
	f.learn(active)
	if f.fresh {
		return "", false
	}
	// No target yet is a server still discovering them (the scrape manager
	// applies discoveries every few seconds), not one with nothing to scrape.
	// A scrape of this server began after its start, so a last scrape at or
	// after the start is one since.
	scraped := len(active) > 0
	var last time.Time
	for _, t := range active {
		scraped = scraped && !t.LastScrape.Before(f.start) // never scraped: zero time
		if t.LastScrape.After(last) {
			last = t.LastScrape
		}
	}
	// A server up for freshAfter by its own clock is past its restart, even
	// while a new pod waits for its first scrape.
	if last.Sub(f.start) >= freshAfter {
		f.fresh = true
		return "", false
	}
	if scraped {
		// The queries beside this check may have run before the last of
		// these scrapes was stored, or at an instant before it. A last
		// scrape clearly before `at` (a second of slack for the scrape's
		// own time and the caller's clock) is in their answers; else the
		// next evaluation at or after ready is fresh (above).
		if f.ready.IsZero() {
			f.ready, f.readyAt = last, time.Now()
		}
		if last.Before(at.Add(-clockSlack)) {
			f.fresh = true
			return "", false
		}
	}
	// The reason is a gap's: it must not change from sample to sample while
	// the cause is the same, so it names the start, not the time since.
	return fmt.Sprintf("Prometheus started at %s UTC and has not scraped all its targets since: until it does its answers can predate its start",
		f.start.UTC().Format(time.TimeOnly)), false
}

// learn keeps each job's allowance and the longest scrape interval of the
// active targets. A job whose targets do not say their interval gets none:
// its lag is not judged.
func (f *freshness) learn(active []activeTarget) {
	f.jobs, f.interval = map[string]time.Duration{}, 0
	for _, t := range active {
		iv, to := t.durations()
		if iv <= 0 {
			continue
		}
		if to <= 0 || to > iv {
			to = iv
		}
		job := t.Labels["job"]
		f.jobs[job] = max(f.jobs[job], iv+to)
		f.interval = max(f.interval, iv)
	}
}

// heartbeatQuery asks, per job, for the oldest of its targets' newest
// scrapes since the server's start (up is written by every scrape, failed
// ones too; a series from before the start is a target that went away
// while the server was down, and the start check covers those).
func heartbeatQuery(start time.Time) string {
	return "min by (job) (timestamp(up) >= " + formatTime(start) + ")"
}

// beat is one heartbeat: each job's oldest newest scrape at an instant.
type beat map[string]time.Time

// heartbeat asks for the jobs' scrapes at `at`. It returns nil when the
// server cannot tell: its start or intervals are not known yet, or the
// query failed (the queries' own answers then say why).
func (f *freshness) heartbeat(ctx context.Context, q querier, at time.Time) beat {
	f.mu.Lock()
	start, known := f.start, len(f.jobs) > 0 && !f.unsupported
	f.mu.Unlock()
	if !known || start.IsZero() || at.IsZero() {
		return nil
	}
	val, _, err := q.Query(ctx, heartbeatQuery(start), at)
	vec, ok := val.(model.Vector)
	if err != nil || !ok {
		return nil
	}
	b := beat{}
	for _, s := range vec {
		if s != nil {
			b[string(s.Metric["job"])] = time.UnixMilli(int64(math.Round(float64(s.Value) * 1000)))
		}
	}
	return b
}

// lagging says why the answers at `at` are stale, or "" when they are not:
// a job whose newest scrape is older than its interval and timeout allow
// (plus the clock slack). A job seen lagging makes it read the targets
// again first, so an allowance that changed (a reload, a job gone) is
// current before it decides.
func (f *freshness) lagging(ctx context.Context, s statusAPI, b beat, at time.Time) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	late := func() bool {
		for job, last := range b {
			if allow, ok := f.jobs[job]; ok && at.Sub(last) > allow+clockSlack {
				return true
			}
		}
		return false
	}
	if len(b) == 0 || !late() {
		return ""
	}
	if active, err := s.ActiveTargets(ctx); err == nil {
		f.learn(active)
	}
	if !late() {
		return ""
	}
	return "stale: Prometheus's newest samples are older than its scrape intervals allow (is it stalled or overloaded?)"
}

// scrapeInterval is the longest scrape interval of the active targets as
// last read; 0 when not known.
func (f *freshness) scrapeInterval() time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.interval
}

// isRefusal tells a status API the server does not offer (any 4xx, or a
// 2xx that is not its JSON) from a server that is down or failing (5xx,
// transport errors), which says nothing about the API.
func isRefusal(err error) bool {
	var ve *v1.Error
	if errors.As(err, &ve) {
		err = fromV1(ve)
	}
	var ae *apiError
	return errors.As(err, &ae) && (ae.Status/100 == 4 || ae.Type == "bad_response")
}

func (f *freshness) disable() {
	f.mu.Lock()
	f.unsupported = true
	f.mu.Unlock()
}
