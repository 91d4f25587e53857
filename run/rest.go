package run

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/scaleout/scaleout/kube"
	"github.com/scaleout/scaleout/measure"
	"github.com/scaleout/scaleout/platform"
	"github.com/scaleout/scaleout/promwatch"
	"github.com/scaleout/scaleout/scenario"
	"github.com/scaleout/scaleout/timeline"
)

// awaitRest reads the fleet before the load: every series (and the
// HPA's minimum) once an interval until the fleet is at rest, for at most
// observe.rest_wait. With rest_wait 0 it reads it once and the run goes
// on from there; a fleet still not at rest when the wait is over is a
// refusal (exit 3): a run from there cannot show what its load does. It
// returns the baseline (nil when nothing is observed) and when it was
// read.
func (r *runner) awaitRest(ctx context.Context) (*timeline.Baseline, time.Time, error) {
	s := r.p.Scenario
	if r.p.Source == nil {
		return nil, time.Time{}, nil
	}
	series := s.Observe.Series
	minQuery := hpaMinQuery(s.Observe.HPA)
	if k := r.p.Kube; k != nil && k.targets.HPA.Set() {
		minQuery = kube.Query(k.targets, kube.Min)
	}
	if minQuery != "" {
		series = append(slices.Clip(series), measure.Series{Name: "min", Query: minQuery})
	}
	w := &promwatch.Watcher{Eval: r.p.Source, Series: series, Timeout: s.Observe.Interval}
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	r.sig.set(stop, stop)
	limit := r.restLimit()
	start := time.Now()
	// known is the last reading in which every series had a value: when
	// the wait ends on a reading with gaps (a scrape that timed out on a
	// busy machine), the refusal still names what kept the fleet from rest.
	var known *timeline.Baseline
	for waiting := false; ; waiting = true {
		at := time.Now()
		smp := w.Sample(ctx)
		if r.sig.count() > 0 {
			return nil, at, ErrInterrupted
		}
		if err := ctx.Err(); err != nil {
			return nil, at, cannotRun(err)
		}
		b := r.baselineOf(smp, minQuery != "")
		if len(b.Gaps) == 0 {
			known = b
		}
		waited := at.Sub(start)
		b.WaitedS = math.Round(waited.Seconds()*1000) / 1000
		if b.AtRest || waited >= limit {
			if waiting || !b.AtRest {
				r.o.Display.Rest(b, limit, true)
			}
			if !b.AtRest && limit > 0 {
				why := strings.Join(b.NotAtRest, "; ")
				if len(b.Gaps) > 0 && known != nil && !known.AtRest {
					why = fmt.Sprintf("%s, when last read in full; the last reading: %s", strings.Join(known.NotAtRest, "; "), why)
				}
				return b, at, cannotRun(fmt.Errorf("the fleet is not at rest after waiting %s for it (%s): a run from there cannot show what its load does. "+
					"Wait longer (--rest-wait 15m, or observe.rest_wait), or run from where it is (--rest-wait 0: the report names the baseline, and expectations that already held then do not count)",
					scenario.FormatDuration(limit), why))
			}
			return b, at, nil
		}
		r.o.Display.Rest(b, limit, false)
		next := time.NewTimer(min(s.Observe.Interval, limit-time.Since(start)))
		select {
		case <-ctx.Done():
		case <-next.C:
		}
		next.Stop()
	}
}

// hpaMinQuery reads the HPA's minReplicas (kube-state-metrics, and the
// simulator's /metrics) for observe.hpa's NAMESPACE/NAME; "" without one.
func hpaMinQuery(hpa string) string {
	ns, name, ok := strings.Cut(hpa, "/")
	if !ok {
		return ""
	}
	return fmt.Sprintf(`max(kube_horizontalpodautoscaler_spec_min_replicas{namespace=%q,horizontalpodautoscaler=%q})`, ns, name)
}

// baselineOf turns one reading of the series (and, when hasMin, the HPA's
// minimum after them) into a baseline with every column of the timeline.
// The minimum is the HPA's as read, else the ScaledObject's, else the sim
// block's.
func (r *runner) baselineOf(smp measure.Sample, hasMin bool) *timeline.Baseline {
	b := &timeline.Baseline{Values: map[string]*float64{}}
	if hasMin {
		last := len(smp.Values) - 1
		if v := smp.Values[last]; v.OK() {
			b.MinReplicas, b.MinFrom = &v.V, "hpa"
		}
		smp.Values = smp.Values[:last]
	}
	switch {
	case b.MinReplicas != nil:
	case r.p.ScaledObject != nil:
		b.MinReplicas, b.MinFrom = fptr(float64(r.p.ScaledObject.HPAMin())), "scaledobject"
	case r.p.Sim != nil:
		b.MinReplicas, b.MinFrom = fptr(float64(r.p.Sim.Config.Replicas.Min)), "sim"
	}
	if r.p.Predicts {
		smp = r.p.Triggers.predict(smp, r.p.Scenario.Observe.Series)
	}
	for i, ser := range r.p.Columns {
		v := smp.Values[i]
		if !v.OK() {
			b.Values[ser.Name] = nil
			if b.Gaps == nil {
				b.Gaps = map[string]string{}
			}
			b.Gaps[ser.Name] = v.Gap
			continue
		}
		b.Values[ser.Name] = fptr(v.V)
	}
	b.AtRest, b.NotAtRest = judgeRest(b)
	return b
}

// judgeRest says whether the fleet is at rest, by the series observed:
// nothing waiting or running, and desired, current and ready equal to each
// other and to the minimum when it is known. A series observed without a
// value keeps it from rest: rest cannot be told. The reasons say what
// keeps it from rest.
func judgeRest(b *timeline.Baseline) (bool, []string) {
	var why []string
	value := func(name string) (v float64, observed, ok bool) {
		p, observed := b.Values[name]
		if !observed {
			return 0, false, false
		}
		if p == nil {
			why = append(why, fmt.Sprintf("%s has no value: %s", name, b.Gaps[name]))
			return 0, true, false
		}
		return *p, true, true
	}
	for _, name := range []string{platform.Waiting, platform.Running} {
		if v, _, ok := value(name); ok && v != 0 {
			why = append(why, fmt.Sprintf("%s %s", name, FormatValue(measure.Value{V: v})))
		}
	}
	var reps, offMin []string
	var first *float64
	equal := true
	for _, name := range []string{platform.Desired, platform.Current, platform.Ready} {
		v, _, ok := value(name)
		if !ok {
			continue
		}
		rep := name + " " + FormatValue(measure.Value{V: v})
		reps = append(reps, rep)
		if first == nil {
			first = fptr(v)
		}
		equal = equal && v == *first
		if m := b.MinReplicas; m != nil && v != *m {
			offMin = append(offMin, rep)
		}
	}
	switch {
	case len(offMin) > 0:
		why = append(why, fmt.Sprintf("%s: not the minimum %s", strings.Join(offMin, ", "), FormatValue(measure.Value{V: *b.MinReplicas})))
	case !equal && b.MinReplicas == nil:
		why = append(why, strings.Join(reps, ", ")+": not equal")
	}
	return len(why) == 0, why
}

func fptr(v float64) *float64 { return &v }
