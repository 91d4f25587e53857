package run

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"strings"
	"time"

	"github.com/scaleout/scaleout/keda"
	"github.com/scaleout/scaleout/measure"
	"github.com/scaleout/scaleout/platform"
)

// Triggers ties a ScaledObject's prometheus triggers to the series that
// observe them, so every sample can carry the desired replicas KEDA and
// the HPA should compute from it.
type Triggers struct {
	so    *keda.ScaledObject
	names []string // the series of each prometheus trigger, in trigger order
}

// ReadScaledObject reads a manifest that must hold exactly one
// ScaledObject (a run, or a simulator, is about one).
func ReadScaledObject(path string) (*keda.ScaledObject, error) {
	sos, err := keda.ReadScaledObjects(path)
	var pe *fs.PathError
	switch {
	case errors.As(err, &pe):
		return nil, usagef("cannot read the ScaledObject manifest %s: %v", path, pe.Err)
	case err != nil:
		return nil, err // positioned errors, each at its line and column (exit 2)
	}
	if len(sos) > 1 {
		names := make([]string, len(sos))
		for i, so := range sos {
			names[i] = so.Namespace + "/" + so.Name
		}
		return nil, usagef("%s holds %d ScaledObjects (%s): give a file with the one this run is about", path, len(sos), strings.Join(names, ", "))
	}
	return sos[0], nil
}

// newTriggers names the series that observe each prometheus trigger: its
// own query, as the timeline's waiting column when it counts queued
// requests, else as triggerN. own are the scenario's own series: a name
// they take keeps their query, and a trigger whose query one of them has
// already observes it there. It returns the series to add.
func newTriggers(so *keda.ScaledObject, own []measure.Series) (*Triggers, []measure.Series) {
	t := &Triggers{so: so}
	taken := map[string]bool{}
	for _, ser := range own {
		taken[ser.Name] = true
	}
	var add []measure.Series
	for _, tr := range so.Prometheus() {
		name := fmt.Sprintf("trigger%d", tr.Index)
		if tr.Class().Kind == platform.QueueTrigger && !taken[platform.Waiting] {
			name = platform.Waiting
		}
		if existing, ok := findSeries(own, name); ok && existing.Query != tr.Query {
			name = fmt.Sprintf("trigger%d", tr.Index)
		}
		if !taken[name] {
			add = append(add, measure.Series{Name: name, Query: tr.Query})
			taken[name] = true
		}
		t.names = append(t.names, name)
	}
	return t, add
}

func findSeries(list []measure.Series, name string) (measure.Series, bool) {
	for _, s := range list {
		if s.Name == name {
			return s, true
		}
	}
	return measure.Series{}, false
}

// predict appends the predicted desired replicas to a sample of the
// observed series.
func (t *Triggers) predict(smp measure.Sample, series []measure.Series) measure.Sample {
	val := func(name string) (float64, bool) {
		for i, s := range series {
			if s.Name == name && i < len(smp.Values) && smp.Values[i].OK() {
				return smp.Values[i].V, true
			}
		}
		return 0, false
	}
	totals := make([]float64, len(t.names))
	for i, n := range t.names {
		totals[i] = math.NaN()
		if v, ok := val(n); ok {
			totals[i] = v
		}
	}
	current, ok := val(platform.Current)
	if !ok {
		if current, ok = val(platform.Ready); !ok {
			current = 1
		}
	}
	p := measure.Value{Gap: "no trigger value"}
	if n := t.so.Predict(totals, int32(current)); n > 0 {
		p = measure.Value{V: float64(n)}
	}
	smp.Values = append(append([]measure.Value(nil), smp.Values...), p)
	return smp
}

// stabilizer holds the predicted desired up the way the HPA's downscale
// stabilization holds desired: the prediction of a sample is the highest of
// those made within the window before it (kube-controller-manager's
// --horizontal-pod-autoscaler-downscale-stabilization, or the ScaledObject's
// behavior.scaleDown.stabilizationWindowSeconds). A nil stabilizer, or a
// window of 0, leaves the instant prediction alone.
type stabilizer struct {
	window time.Duration
	hist   []predStamp // predictions within the window, oldest first
}

type predStamp struct {
	at time.Duration
	v  float64
}

// newStabilizer is the stabilizer of a run whose controller's downscale
// window is window (0: unknown, no stabilization); a ScaledObject with
// spec.behavior has its own window, which wins when window is set.
func newStabilizer(so *keda.ScaledObject, window time.Duration) *stabilizer {
	if window <= 0 {
		return nil
	}
	if so != nil && so.Behavior != nil {
		window = so.Behavior.ScaleDown.StabilizationWindow
	}
	return &stabilizer{window: window}
}

// apply stabilizes the prediction, the last value of smp (as predict
// appends it). A gap neither counts nor is filled.
func (st *stabilizer) apply(smp measure.Sample) measure.Sample {
	if st == nil || st.window <= 0 || len(smp.Values) == 0 {
		return smp
	}
	last := len(smp.Values) - 1
	if !smp.Values[last].OK() {
		return smp
	}
	cut := smp.At - st.window
	i := 0
	for i < len(st.hist) && st.hist[i].at <= cut {
		i++
	}
	st.hist = append(st.hist[i:], predStamp{smp.At, smp.Values[last].V})
	m := smp.Values[last].V
	for _, h := range st.hist {
		m = max(m, h.v)
	}
	smp.Values = append([]measure.Value(nil), smp.Values...)
	smp.Values[last] = measure.Value{V: m}
	return smp
}
