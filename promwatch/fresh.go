package promwatch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
)

// A Prometheus server that has just (re)started answers an instant query
// with the last samples it kept on disk from before, for up to its lookback
// (5m by default), until it scrapes its targets again: a run that watched it
// go away would see the values of the moment it went away, presented as now.
// Beside every evaluation, Prometheus reads the server's start time (GET
// /api/v1/status/runtimeinfo) and, until the server is fresh, its active
// targets' last scrapes (GET /api/v1/targets?state=active), and turns the
// answers of a server that has not scraped since its start into gaps.

// ErrUnscraped marks the results of a Prometheus server that has not
// scraped all its targets since it started: the values it answered (kept
// in Result.Vector) may be from before its start.
var ErrUnscraped = errors.New("answers may predate the server's start")

// freshAfter bounds how long answers are held back after a start is first
// seen: the longest scrape interval worth waiting for. A target scraped
// less often does not hold the run's series back for ever.
var freshAfter = 2 * time.Minute

// statusAPI is what the freshness check needs of a Prometheus server.
type statusAPI interface {
	Runtimeinfo(ctx context.Context) (v1.RuntimeinfoResult, error)
	ActiveTargets(ctx context.Context) ([]v1.ActiveTarget, error)
}

// statusClient reads the status endpoints through client_golang: its
// Runtimeinfo, and the targets with state=active (its Targets has no
// filter and would fetch the dropped ones too, which on a shared server
// can be megabytes).
type statusClient struct {
	v1.API
	c statusErrors // a status that is not 2xx is an *apiError
}

func (s statusClient) ActiveTargets(ctx context.Context) ([]v1.ActiveTarget, error) {
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
		Status string           `json:"status"`
		Data   v1.TargetsResult `json:"data"`
	}
	if err := json.Unmarshal(body, &env); err != nil || env.Status != "success" {
		return nil, &apiError{Status: resp.StatusCode, Type: "bad_response", Msg: "not the targets API's JSON"}
	}
	return env.Data.Active, nil
}

// freshness is what one Prometheus remembers of its server's start.
type freshness struct {
	mu          sync.Mutex
	unsupported bool      // the server refuses the status API (a Thanos or Mimir front, an RBAC proxy)
	start       time.Time // the server's start time as last read (its clock)
	seen        time.Time // when that start was first read (the caller's clock)
	fresh       bool      // every target was scraped since start
}

// unscraped says why the server's answers may predate its own start, or ""
// when they do not, or when the server cannot tell (its queries report a
// server that does not answer). refused is set when the status API itself
// was refused (a 4xx or an answer that is not its JSON): the caller stops
// asking once it knows the query API answered meanwhile. now is the
// caller's clock; the server's start and last scrapes are compared only
// with each other, so the two clocks need not agree.
func (f *freshness) unscraped(ctx context.Context, s statusAPI, now time.Time) (why string, refused bool) {
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
		f.start, f.seen, f.fresh = ri.StartTime, now, false
	}
	if f.fresh || now.Sub(f.seen) >= freshAfter {
		f.fresh = true
		return "", false
	}
	active, err := s.ActiveTargets(ctx)
	if err != nil {
		return "", isRefusal(err)
	}
	// No target yet is a server still discovering them (the scrape manager
	// applies discoveries every few seconds), not one with nothing to scrape.
	stale := len(active) == 0
	var last time.Time
	for _, t := range active {
		stale = stale || t.LastScrape.Before(f.start) // never scraped: zero time
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
	// The reason is a gap's: it must not change from sample to sample while
	// the cause is the same, so it names the start, not the time since.
	why = fmt.Sprintf("Prometheus started at %s UTC and has not scraped all its targets since: until it does its answers can predate its start",
		f.start.UTC().Format(time.TimeOnly))
	if !stale {
		// Every target has been scraped since the start. The queries run
		// beside this check at the sample's instant: a scrape that came
		// after it is not in their answers. One that clearly came before it
		// (a second of slack for the two clocks) is, and this answer is
		// fresh; else it is held back and the next one is.
		f.fresh = true
		if last.Before(now.Add(-time.Second)) {
			return "", false
		}
	}
	return why, false
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
