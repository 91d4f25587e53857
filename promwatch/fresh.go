package promwatch

import (
	"context"
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
// Unscraped reads the server's start time (GET /api/v1/status/runtimeinfo)
// and its targets' last scrapes (GET /api/v1/targets) to tell those answers
// from fresh ones.

// FreshAfter bounds how long after a Prometheus start its answers can be
// held back as possibly older than the start: the longest scrape interval
// worth waiting for. A target scraped less often than this does not hold
// the run's series back for ever.
var FreshAfter = 2 * time.Minute

// statusAPI is what Unscraped needs of a Prometheus server.
type statusAPI interface {
	Runtimeinfo(ctx context.Context) (v1.RuntimeinfoResult, error)
	Targets(ctx context.Context) (v1.TargetsResult, error)
}

// freshness is what one Prometheus remembers of its server's start.
type freshness struct {
	mu          sync.Mutex
	unsupported bool      // the server has no status API (a Thanos or Mimir front, say)
	start       time.Time // the server's start time as last read
	fresh       bool      // every target was scraped since start
}

// Unscraped says why the server's answers may predate its own start, or ""
// when they do not (or when the server cannot tell: no status API, or it does
// not answer, which its queries already report). now is the caller's clock.
func (p *Prometheus) Unscraped(ctx context.Context, now time.Time) string {
	if p.status == nil {
		return ""
	}
	f := &p.fresh
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.unsupported {
		return ""
	}
	ri, err := p.status.Runtimeinfo(ctx)
	if err != nil {
		var ve *v1.Error
		if errors.As(err, &ve) {
			if ae := fromV1(ve); ae.Status == http.StatusNotFound || ae.Type == "bad_response" {
				f.unsupported = true
			}
		}
		return ""
	}
	if ri.StartTime.IsZero() {
		f.unsupported = true
		return ""
	}
	if !ri.StartTime.Equal(f.start) {
		f.start, f.fresh = ri.StartTime, false
	}
	if f.fresh {
		return ""
	}
	if now.Sub(f.start) >= FreshAfter {
		f.fresh = true
		return ""
	}
	ts, err := p.status.Targets(ctx)
	if err != nil {
		return ""
	}
	// No target yet is a server still discovering them (the scrape manager
	// applies discoveries every few seconds), not one with nothing to scrape.
	stale := len(ts.Active) == 0
	for _, t := range ts.Active {
		stale = stale || t.LastScrape.Before(f.start) // never scraped: zero time
	}
	if !stale {
		f.fresh = true
		return ""
	}
	// The reason is a gap's: it must not change from sample to sample while
	// the cause is the same, so it names the start, not the time since.
	return fmt.Sprintf("Prometheus started at %s UTC and has not scraped all its targets since: until it does its answers can predate its start",
		f.start.UTC().Format(time.TimeOnly))
}
