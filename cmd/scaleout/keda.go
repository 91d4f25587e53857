package main

import (
	"fmt"
	"math"
	"strings"

	"github.com/scaleout/scaleout/keda"
	"github.com/scaleout/scaleout/measure"
	"github.com/scaleout/scaleout/scenario"
	"github.com/scaleout/scaleout/timeline"
)

// triggers ties a ScaledObject's prometheus triggers to the series that
// observe them, so every sample can carry the desired replicas KEDA and
// the HPA should compute from it.
type triggers struct {
	so    *keda.ScaledObject
	names []string // the series of each prometheus trigger, in trigger order
}

// readScaledObject reads the scenario's ScaledObject manifest (observe.scaledobject
// or --scaledobject); nil without one.
func readScaledObject(s *scenario.Scenario) (*keda.ScaledObject, error) {
	if s.Observe.ScaledObject == "" {
		return nil, nil
	}
	return readOneScaledObject(s.Observe.ScaledObject)
}

// readOneScaledObject reads a manifest that must hold exactly one
// ScaledObject (a run, or a simulator, is about one).
func readOneScaledObject(path string) (*keda.ScaledObject, error) {
	sos, err := keda.ReadScaledObjects(path)
	if err != nil {
		return nil, usagef("%v", err)
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

// applyScaledObject derives the run's series from the ScaledObject: each
// prometheus trigger's own query (the one that counts queued requests is
// the timeline's waiting column), desired and current from the HPA KEDA
// makes, ready from the scaled Deployment. Series the scenario names itself
// stay as they are.
func applyScaledObject(s *scenario.Scenario, so *keda.ScaledObject) *triggers {
	o := &s.Observe
	if o.HPA == "" {
		o.HPA = so.Namespace + "/" + so.HPAName
	}
	if o.Deployment == "" && so.TargetKind == "Deployment" {
		o.Deployment = so.Namespace + "/" + so.Target
	}
	t := &triggers{so: so}
	taken := map[string]bool{}
	for _, ser := range o.Series {
		taken[ser.Name] = true
	}
	for _, tr := range so.Prometheus() {
		name := fmt.Sprintf("trigger%d", tr.Index)
		if strings.Contains(tr.Query, "num_requests_waiting") && !taken[scenario.Waiting] {
			name = scenario.Waiting
		}
		if existing, ok := findSeries(o.Series, name); ok && existing.Query != tr.Query {
			name = fmt.Sprintf("trigger%d", tr.Index)
		}
		if !taken[name] {
			o.Series = append(o.Series, measure.Series{Name: name, Query: tr.Query})
			taken[name] = true
		}
		t.names = append(t.names, name)
	}
	return t
}

func findSeries(list []measure.Series, name string) (measure.Series, bool) {
	for _, s := range list {
		if s.Name == name {
			return s, true
		}
	}
	return measure.Series{}, false
}

// timelineSeries is what the timeline shows: the observed series, and the
// predicted desired replicas when a ScaledObject is known.
func timelineSeries(s *scenario.Scenario, t *triggers) []measure.Series {
	out := append([]measure.Series(nil), s.Observe.Series...)
	if t != nil && len(t.names) > 0 && s.Observe.Source() {
		out = append(out, measure.Series{Name: timeline.Predicted, Query: "(computed from the triggers as KEDA and the HPA would)"})
	}
	return out
}

// predict appends the predicted desired replicas to a sample of the
// observed series.
func (t *triggers) predict(smp measure.Sample, series []measure.Series) measure.Sample {
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
	current, ok := val(scenario.Current)
	if !ok {
		if current, ok = val(scenario.Ready); !ok {
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
