package run

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scaleout/scaleout/measure"
	"github.com/scaleout/scaleout/platform"
	"github.com/scaleout/scaleout/promwatch"
	"github.com/scaleout/scaleout/scenario"
)

// flakySource answers desired 5, ready 1 at first, then only errors: a scrape
// that times out on a busy machine at the end of the rest wait.
type flakySource struct{ calls, good atomic.Int64 }

func (f *flakySource) Eval(_ context.Context, _ time.Time, queries []string) []promwatch.Result {
	out := make([]promwatch.Result, len(queries))
	ok := f.calls.Add(1) <= f.good.Load()
	for i, q := range queries {
		if ok {
			v := 5.0
			if q == "ready" {
				v = 1
			}
			out[i] = promwatch.Result{Vector: []promwatch.Element{{V: v}}}
		} else {
			out[i] = promwatch.Result{Err: errors.New("scrape timed out")}
		}
	}
	return out
}

func (*flakySource) String() string { return "flaky" }

// A rest wait that ends on a reading with gaps still names what kept the
// fleet from rest when it was last read in full, not only the gap. Only
// the first reading is whole: the wait cannot end on it unless the
// machine stalls for the whole wait between two adjacent statements, so
// however late the later readings come, the last one has gaps.
func TestRestRefusalNamesTheLastFullReading(t *testing.T) {
	src := &flakySource{}
	src.good.Store(1)
	series := []measure.Series{{Name: platform.Desired, Query: "desired"}, {Name: platform.Ready, Query: "ready"}}
	s := &scenario.Scenario{}
	s.Observe.Series = series
	s.Observe.Interval = time.Millisecond
	s.Observe.RestWait = 100 * time.Millisecond
	r := &runner{p: &Plan{Scenario: s, Source: src, Columns: series}, o: Options{Display: noDisplay{}}, sig: &interrupts{}}
	_, _, err := r.awaitRest(context.Background())
	if err == nil {
		t.Fatal("a fleet at desired 5 was taken for rest")
	}
	if src.calls.Load() <= src.good.Load() {
		t.Fatalf("the wait ended after %d readings, before any gap", src.calls.Load())
	}
	for _, want := range []string{"desired 5, ready 1: not equal, when last read in full", "the last reading: desired has no value"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("refusal lacks %q:\n%v", want, err)
		}
	}
}
