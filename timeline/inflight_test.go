package timeline

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/scaleout/scaleout/measure"
)

// Each stage's max_in_flight is measured: the most in flight at the ends
// of the rows within it and at the instants the run told; a stage that
// never started has none (null), never 0.
func TestStageMaxInFlight(t *testing.T) {
	tl := New(Config{Interval: 10 * sec, Stages: []StagePlan{
		{Name: "one", Duration: 20 * sec, RateFrom: 1, RateTo: 1},
		{Name: "two", Duration: 20 * sec, RateFrom: 4, RateTo: 4},
		{Name: "three", Duration: 20 * sec, RateFrom: 1, RateTo: 1},
	}})
	tl.StageStarted(0, 0)
	// Stage one: one request at a time, each 0.5 s.
	for i := range 20 {
		at := time.Duration(i) * sec
		tl.AddRequest(&measure.Request{Stage: 0, Scheduled: at, Sent: at, E2E: sec / 2})
	}
	tl.StageEnded(0, 20*sec, ByDuration)
	tl.StageStarted(1, 20*sec)
	// Stage two: 4/s, each 3 s long: 12 in flight at a row's end.
	for i := range 80 {
		at := 20*sec + time.Duration(i)*sec/4
		tl.AddRequest(&measure.Request{Stage: 1, Scheduled: at, Sent: at, E2E: 3 * sec})
	}
	tl.StageInFlight(1, 13) // the client's peak rose to 13 in the stage
	tl.StageEnded(1, 40*sec, ByInterrupt)
	tl.LoadStopped(40*sec, "interrupted")
	r := tl.Report(45*sec, Meta{PeakInFlight: 13})

	get := func(i int) *int64 { return r.Stages[i].MaxInFlight }
	if v := get(0); v == nil || *v != 0 {
		t.Errorf("stage one: max_in_flight %v, want 0 (nothing in flight at its row ends)", show(v))
	}
	if v := get(1); v == nil || *v != 13 {
		t.Errorf("stage two: max_in_flight %v, want 13 (the peak the run told)", show(v))
	}
	if v := get(2); v != nil {
		t.Errorf("stage three never started: max_in_flight %d, want null", *v)
	}
	if r.Load.MaxInFlight == nil || *r.Load.MaxInFlight != 13 {
		t.Errorf("run: max_in_flight %v, want 13", show(r.Load.MaxInFlight))
	}
	var buf bytes.Buffer
	if err := WriteJSON(&buf, r); err != nil {
		t.Fatal(err)
	}
	var raw struct {
		Stages []map[string]any `json:"stages"`
	}
	if err := json.Unmarshal(buf.Bytes(), &raw); err != nil {
		t.Fatal(err)
	}
	if v, ok := raw.Stages[2]["max_in_flight"]; !ok || v != nil {
		t.Errorf("report.json: a stage that did not start has max_in_flight %v, want null", v)
	}
	if v := raw.Stages[1]["max_in_flight"]; v != 13.0 {
		t.Errorf("report.json: stage two max_in_flight %v, want 13", v)
	}
}

// Requests the user aborted with a second Ctrl-C are counted apart:
// neither done nor errors in their row, not errors in the load figures,
// and the run's last row, a few milliseconds long, shows no rate that
// would dwarf the load curve.
func TestAbortedAreNotErrors(t *testing.T) {
	tl := New(Config{Interval: 5 * sec, Stages: []StagePlan{{Name: "s", Duration: 60 * sec, RateFrom: 10, RateTo: 10}}})
	tl.StageStarted(0, 0)
	// 10/s for 10 s, each request 0.2 s.
	for i := range 100 {
		at := time.Duration(i) * sec / 10
		tl.AddRequest(&measure.Request{Stage: 0, Scheduled: at, Sent: at, E2E: sec / 5, OutputTokens: 1})
	}
	// 116 long requests sent from 10 s on, aborted at 15.01 s by the
	// second Ctrl-C; one real failure.
	for i := range 116 {
		at := 10*sec + time.Duration(i)*sec/100
		tl.AddRequest(&measure.Request{Stage: 0, Scheduled: at, Sent: at, E2E: 15*sec + 10*time.Millisecond - at,
			Class: measure.Canceled, Message: "aborted", OutputTokens: -1})
	}
	tl.AddRequest(&measure.Request{Stage: 0, Scheduled: 5 * sec, Sent: 5 * sec, E2E: sec, Status: 500, Class: measure.HTTPClass(500), OutputTokens: -1})
	tl.StageEnded(0, 12*sec, ByInterrupt)
	tl.LoadStopped(12*sec, "interrupted")
	r := tl.Report(15*sec+10*time.Millisecond, Meta{Partial: true})

	last := r.Timeline[len(r.Timeline)-1]
	if last.Aborted != 116 || last.Done != 0 || last.Errors != 0 {
		t.Errorf("last row: done %d, errors %d, aborted %d; want 0, 0, 116", last.Done, last.Errors, last.Aborted)
	}
	if last.InFlight != 0 {
		t.Errorf("last row: in flight %d after every request ended, want 0", last.InFlight)
	}
	if r.Load.Aborted != 116 || r.Stages[0].Aborted != 116 {
		t.Errorf("aborted: load %d, stage %d; want 116", r.Load.Aborted, r.Stages[0].Aborted)
	}
	if _, ok := r.Load.Errors[string(measure.Canceled)]; ok || r.Load.Errors["http_500"] != 1 {
		t.Errorf("errors %v: want http_500 1 and no canceled", r.Load.Errors)
	}
	if want := round6(1.0 / 101); r.Load.ErrorRate != want {
		t.Errorf("error rate %v, want %v (1 failure of the 101 requests not aborted)", r.Load.ErrorRate, want)
	}
	if r.Load.Requests != 217 {
		t.Errorf("requests %d, want 217 (aborted requests were sent)", r.Load.Requests)
	}

	// The chart: no rate for the 10 ms row; its axis follows the real curve.
	d := buildChartData(r)
	for i, name := range d.Load.Names {
		if !strings.HasSuffix(name, "/s") {
			continue
		}
		for j, v := range d.Load.Values[i] {
			if v != nil && *v > 40 {
				t.Errorf("chart %s at %gs: %g/s, above anything the run did", name, d.T[j], *v)
			}
		}
	}
	var text bytes.Buffer
	if err := WriteText(&text, r, TextOptions{}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text.String(), "116 aborted by the user (not errors)") || !strings.Contains(text.String(), "abort") {
		t.Errorf("the text does not count the aborted requests apart:\n%s", text.String())
	}
	var csv bytes.Buffer
	if err := WriteCSV(&csv, r); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(csv.String()), "\n")
	if !strings.Contains(lines[0], ",errors,aborted,") || !strings.Contains(lines[len(lines)-1], ",0,0,0,116,") {
		t.Errorf("timeline.csv: no aborted column, or the last row does not hold done 0, in flight 0, errors 0, aborted 116:\n%s\n%s", lines[0], lines[len(lines)-1])
	}
}
