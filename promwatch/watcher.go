package promwatch

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/scaleout/scaleout/measure"
)

// Watcher samples named series on ticks. It is configuration only: Sample
// and Run keep their state on their own stack, so one Watcher may serve a
// preflight Sample and then a Run.
type Watcher struct {
	Eval    Evaluator
	Series  []measure.Series
	Epoch   time.Time        // offsets in samples are measured from it
	Now     func() time.Time // nil means time.Now
	Timeout time.Duration    // per sample; 0 means DefaultTimeout (10s)
}

// stuckGrace is how long a sample waits, after its deadline, for an
// Evaluator that does not honour its context before giving up on it.
// The package's own Evaluators return within microseconds of the deadline.
var stuckGrace = time.Second

// Reasons for gaps the watcher itself produces.
const (
	gapStuck      = "timeout (evaluator did not stop)"
	gapStillStuck = "previous sample still running"
)

// Sample evaluates every series at one instant (Now, read once) within
// Timeout and stamps the sample with that instant minus Epoch. A series whose
// query failed holds a gap with its reason.
func (w *Watcher) Sample(ctx context.Context) measure.Sample {
	s, _ := w.sample(ctx)
	return s
}

// sample returns the sample and, when the Evaluator overran its deadline and
// grace and is still running, a channel closed once it returns (nil otherwise).
func (w *Watcher) sample(ctx context.Context) (measure.Sample, <-chan struct{}) {
	if ctx == nil {
		ctx = context.Background()
	}
	at := w.now()
	queries := make([]string, len(w.Series))
	for i, s := range w.Series {
		queries[i] = s.Query
	}
	ctx, cancel := context.WithTimeout(ctx, w.timeout())
	defer cancel()

	answer := make(chan []Result, 1) // buffered: an abandoned Eval still finishes
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		answer <- w.Eval.Eval(ctx, at, queries)
	}()
	var results []Result
	select {
	case results = <-answer:
	case <-ctx.Done():
		grace := time.NewTimer(stuckGrace)
		defer grace.Stop()
		select {
		case results = <-answer:
		case <-grace.C:
			reason := gapStuck
			if errors.Is(ctx.Err(), context.Canceled) {
				reason = "canceled"
			}
			return w.gaps(at, reason), finished
		}
	}
	if len(results) != len(w.Series) {
		return w.gaps(at, fmt.Sprintf("evaluator answered %d of %d queries", len(results), len(w.Series))), nil
	}
	sample := measure.Sample{At: at.Sub(w.Epoch), Values: make([]measure.Value, len(w.Series))}
	for i, r := range results {
		sample.Values[i] = ToValue(r)
	}
	return sample, nil
}

func (w *Watcher) gaps(at time.Time, reason string) measure.Sample {
	s := measure.Sample{At: at.Sub(w.Epoch), Values: make([]measure.Value, len(w.Series))}
	for i := range s.Values {
		s.Values[i].Gap = reason
	}
	return s
}

func (w *Watcher) now() time.Time {
	if w.Now != nil {
		return w.Now()
	}
	return time.Now()
}

func (w *Watcher) timeout() time.Duration {
	if w.Timeout > 0 {
		return w.Timeout
	}
	return DefaultTimeout
}

// Run takes a sample at once and then on every tick until ctx ends (or
// ticks is closed), calling out with each, on Run's goroutine. Samples never
// overlap: ticks that arrive while a sample is taken are dropped, so a slow
// Prometheus thins the samples instead of queueing them. The tick's value is
// not used: Now is the one clock. A sample cut short because ctx ended is not
// delivered. An Evaluator that ignores its context is abandoned after
// Timeout plus a grace period; until it returns, each tick yields a sample of
// gaps instead of a second concurrent Eval.
func (w *Watcher) Run(ctx context.Context, ticks <-chan time.Time, out func(measure.Sample)) {
	var stuck <-chan struct{} // closed when an abandoned Eval returns
	take := func() bool {
		var s measure.Sample
		if stuck != nil {
			select {
			case <-stuck:
				stuck = nil
			default:
			}
		}
		if stuck != nil {
			s = w.gaps(w.now(), gapStillStuck)
		} else {
			s, stuck = w.sample(ctx)
		}
		if ctx.Err() != nil {
			return false
		}
		open := true
	drain: // drop the ticks that came while sampling
		for {
			select {
			case _, ok := <-ticks:
				if !ok {
					open = false
					break drain
				}
			default:
				break drain
			}
		}
		out(s)
		return open
	}
	if ctx.Err() != nil || !take() {
		return
	}
	for {
		select {
		case <-ctx.Done():
			return
		case _, ok := <-ticks:
			if !ok || ctx.Err() != nil || !take() {
				return
			}
		}
	}
}
