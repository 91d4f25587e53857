package run

import (
	"errors"
	"fmt"

	"github.com/scaleout/scaleout/measure"
	"github.com/scaleout/scaleout/platform"
	"github.com/scaleout/scaleout/scenario"
	"github.com/scaleout/scaleout/timeline"
)

// parseExpectations parses expect: entries, --expect flags and every
// stage's until against the run's series; errors point at the file, line
// and column.
func parseExpectations(s *scenario.Scenario, series []measure.Series) (list []*timeline.Expectation, until map[int]*timeline.Expectation, errs scenario.Errors) {
	until = map[int]*timeline.Expectation{}
	var names []string
	for _, ser := range series {
		names = append(names, ser.Name)
	}
	fail := func(e scenario.Expect, field string, err error) {
		col := e.Col
		var se *timeline.SyntaxError
		if errors.As(err, &se) {
			col += se.Col - 1
			msg := se.Msg
			if se.Unobserved != "" {
				msg += ": " + unobservedWhy(s, se.Unobserved)
			}
			err = errors.New(msg)
		}
		pe := &scenario.Error{File: e.File, Line: e.Line, Col: col, Field: field, Msg: fmt.Sprintf("%v (in %q)", err, e.Text)}
		if e.Line == 0 { // from a flag: say the column inside the flag's text
			pe.Col = 0
			pe.Field = "" // the flag's own index names it
			pe.Msg = fmt.Sprintf("column %d: %v (in %q)", col, err, e.Text)
		}
		errs = append(errs, pe)
	}
	for i, e := range s.Expect {
		ex, err := timeline.ParseExpectation(e.Text, names)
		if err != nil {
			fail(e, fmt.Sprintf("expect[%d]", i), err)
			continue
		}
		list = append(list, ex)
	}
	for i, st := range s.Load {
		if st.Until == nil {
			continue
		}
		field := fmt.Sprintf("load[%d].until", i)
		ex, err := timeline.ParseExpectation(st.Until.Text, names)
		if err != nil {
			fail(*st.Until, field, err)
			continue
		}
		if _, err := timeline.NewLive(ex); err != nil {
			fail(*st.Until, field, err)
			continue
		}
		if !s.Observe.Source() {
			fail(*st.Until, field, fmt.Errorf("until needs observation (observe.prometheus or observe.scrape)"))
			continue
		}
		until[i] = ex
	}
	return list, until, errs
}

// unobservedWhy says why a series scaleout knows is not among the run's.
func unobservedWhy(s *scenario.Scenario, name string) string {
	if !s.Observe.Source() {
		return "the scenario observes nothing (no observe.prometheus, observe.scrape or sim: block); add one to watch " + name
	}
	switch name {
	case platform.Desired, platform.Current:
		return "observe.hpa (NAMESPACE/NAME) is not set, and observe.series does not name it"
	case platform.Ready:
		return "observe.deployment (NAMESPACE/NAME) is not set, and observe.series does not name it"
	case platform.Predicted:
		return "it comes from a ScaledObject (observe.scaledobject or --scaledobject), and none is given"
	}
	return "observe.vllm is not set, and observe.series does not name it"
}

// evaluate checks every expectation against the report.
func evaluate(list []*timeline.Expectation, r *timeline.Report) []timeline.Outcome {
	var out []timeline.Outcome
	for _, e := range list {
		o := e.Evaluate(r)
		if r.Partial && !o.OK {
			o.Detail += " (partial run: interrupted before its end)"
		}
		out = append(out, o)
	}
	return out
}
