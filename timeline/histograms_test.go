package timeline

import (
	"bytes"
	"math"
	"math/rand/v2"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/scaleout/scaleout/measure"
	"github.com/scaleout/scaleout/platform"
)

// shardedRun feeds the same seeded requests to one whole timeline and to
// n part timelines (request i to part i mod n), every timeline getting the
// same samples, and returns the whole report and the parts after a trip
// through histograms.json.
func shardedRun(t *testing.T, n int) (*Report, []Part) {
	t.Helper()
	plans := []StagePlan{
		{Name: "warm", Plan: "6/s for 20s", Duration: 20 * sec, RateFrom: 6, RateTo: 6},
		{Name: "ramp", Plan: "6/s→30/s for 20s", Duration: 20 * sec, RateFrom: 6, RateTo: 30},
	}
	cfg := func(share float64) Config {
		c := Config{Interval: 5 * sec, Series: series(platform.Waiting, platform.Desired), Threshold: 5,
			SLO: SLO{TTFT: 300 * time.Millisecond}}
		for _, p := range plans {
			p.RateFrom, p.RateTo = p.RateFrom*share, p.RateTo*share
			c.Stages = append(c.Stages, p)
		}
		return c
	}
	whole := New(cfg(1))
	parts := make([]*Timeline, n)
	for k := range parts {
		parts[k] = New(cfg(1 / float64(n)))
	}
	every := append([]*Timeline{whole}, parts...)
	rng := rand.New(rand.NewPCG(3, 4))
	seq := 0
	for st, p := range plans {
		from := time.Duration(st) * 20 * sec
		for _, tl := range every {
			tl.StageStarted(st, from)
		}
		count := int((p.RateFrom + p.RateTo) / 2 * p.Duration.Seconds())
		for i := range count {
			at := from + time.Duration(i)*p.Duration/time.Duration(count)
			r := &measure.Request{Stage: st, Seq: uint64(i), Scheduled: at, Sent: at + time.Duration(rng.IntN(3000))*time.Microsecond,
				TTFT: time.Duration(50+rng.IntN(500)) * time.Millisecond, Events: 8, OutputTokens: 8 + rng.IntN(3), PromptTokens: 16}
			r.E2E = r.TTFT + time.Duration(100+rng.IntN(900))*time.Millisecond
			r.ITL = []time.Duration{time.Duration(5+rng.IntN(40)) * time.Millisecond, time.Duration(5+rng.IntN(40)) * time.Millisecond}
			if rng.IntN(20) == 0 {
				*r = measure.Request{Stage: st, Seq: uint64(i), Scheduled: at, Sent: at, E2E: 3 * time.Millisecond,
					Status: 429, Class: measure.HTTPClass(429), Message: "queue is full", OutputTokens: -1, PromptTokens: -1}
			}
			if rng.IntN(25) == 0 { // the user aborted it (second Ctrl-C)
				r.Class, r.Message, r.Status, r.OutputTokens = measure.Canceled, "aborted", 0, -1
			}
			whole.AddRequest(r)
			parts[seq%n].AddRequest(r)
			seq++
		}
		for _, tl := range every {
			tl.StageEnded(st, from+p.Duration, ByDuration)
		}
	}
	for _, tl := range every {
		tl.LoadStopped(40*sec, "")
		for i := range 12 {
			tl.AddSample(sample(time.Duration(i)*5*sec+sec, min(i, 6), 1+i/3))
		}
	}
	end := 60 * sec
	meta := Meta{Scenario: "shards", Started: time.Date(2026, 12, 3, 7, 0, 0, 0, time.UTC)}
	wr := whole.Report(end, meta)
	var out []Part
	for _, tl := range parts {
		r := tl.Report(end, meta)
		var buf bytes.Buffer
		if err := WriteHistograms(&buf, tl.Histograms(end)); err != nil {
			t.Fatal(err)
		}
		h, err := ReadHistograms(&buf)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, Part{Report: r, Histograms: h})
	}
	return wr, out
}

// The merge of the parts is the whole run: counts, tokens and every
// percentile equal (histograms add exactly), rows added on the clock, the
// planned load the sum of the parts'.
func TestMergeEqualsTheWholeRun(t *testing.T) {
	whole, parts := shardedRun(t, 3)
	m, mh, err := Merge(parts)
	if err != nil {
		t.Fatal(err)
	}
	same := func(what string, a, b LoadReport) {
		t.Helper()
		if a.Requests != b.Requests || a.OK != b.OK || a.Aborted != b.Aborted || a.PromptTokens != b.PromptTokens || a.OutputTokens != b.OutputTokens ||
			!reflect.DeepEqual(a.Errors, b.Errors) || a.ErrorRate != b.ErrorRate {
			t.Errorf("%s: merged %d requests %d ok %d/%d tokens errors %v rate %v; whole %d %d %d/%d %v %v", what,
				a.Requests, a.OK, a.PromptTokens, a.OutputTokens, a.Errors, a.ErrorRate, b.Requests, b.OK, b.PromptTokens, b.OutputTokens, b.Errors, b.ErrorRate)
		}
		for name, pair := range map[string][2]measure.Summary{"ttft": {a.TTFT, b.TTFT}, "e2e": {a.E2E, b.E2E}, "itl": {a.ITL, b.ITL},
			"tpot": {a.TPOT, b.TPOT}, "send_lag": {a.SendLag, b.SendLag}} {
			if !reflect.DeepEqual(pair[0], pair[1]) {
				t.Errorf("%s %s: merged %s, whole %s", what, name, showSummary(pair[0]), showSummary(pair[1]))
			}
		}
		if math.Abs(a.TargetRPS-b.TargetRPS) > 0.002 || a.AchievedRPS != b.AchievedRPS {
			t.Errorf("%s: merged target %v achieved %v, whole %v %v", what, a.TargetRPS, a.AchievedRPS, b.TargetRPS, b.AchievedRPS)
		}
		if (a.Goodput == nil) != (b.Goodput == nil) || a.Goodput != nil && a.Goodput.Good != b.Goodput.Good {
			t.Errorf("%s: goodput merged %+v, whole %+v", what, a.Goodput, b.Goodput)
		}
	}
	if whole.Load.Aborted == 0 {
		t.Fatal("no aborted request in the run: the merge of aborted requests is not tested")
	}
	same("run", m.Load, whole.Load)
	for i := range whole.Stages {
		same("stage "+whole.Stages[i].Name, m.Stages[i].LoadReport, whole.Stages[i].LoadReport)
	}
	if len(m.Timeline) != len(whole.Timeline) {
		t.Fatalf("%d rows merged, %d whole", len(m.Timeline), len(whole.Timeline))
	}
	for i, w := range whole.Timeline {
		g := m.Timeline[i]
		if g.Sent != w.Sent || g.Done != w.Done || g.Aborted != w.Aborted || g.InFlight != w.InFlight || g.Errors != w.Errors || g.Stage != w.Stage ||
			!reflect.DeepEqual(g.TTFTP50, w.TTFTP50) || !reflect.DeepEqual(g.TTFTP95, w.TTFTP95) ||
			!reflect.DeepEqual(g.LagP50, w.LagP50) || !reflect.DeepEqual(g.LagP99, w.LagP99) || !reflect.DeepEqual(g.LagMax, w.LagMax) ||
			math.Abs(g.OutputTPS-w.OutputTPS) > 0.002 || math.Abs(g.TargetRPS-w.TargetRPS) > 0.002 ||
			!reflect.DeepEqual(g.Series, w.Series) {
			t.Errorf("row %d: merged %+v\nwhole %+v", i, g, w)
		}
	}
	if m.Load.MaxInFlight == nil || *m.Load.MaxInFlight != *whole.Load.MaxInFlight {
		t.Errorf("max in flight: merged %s, whole %d", peakOf(m.Load.MaxInFlight), *whole.Load.MaxInFlight)
	}
	if !reflect.DeepEqual(m.KPIs, whole.KPIs) {
		t.Errorf("KPIs: merged %+v, whole %+v", m.KPIs, whole.KPIs)
	}
	if mh.Run.Requests != whole.Load.Requests || len(mh.Rows) != len(whole.Timeline) {
		t.Errorf("merged histograms: %d requests, %d rows", mh.Run.Requests, len(mh.Rows))
	}
	// The merged histograms merge again: a merge of one part is itself.
	again, _, err := Merge([]Part{{Report: m, Histograms: mh}})
	if err != nil || !reflect.DeepEqual(again.Load.TTFT, m.Load.TTFT) {
		t.Errorf("merging the merge: %v, ttft %s then %s", err, showSummary(again.Load.TTFT), showSummary(m.Load.TTFT))
	}
}

// The merged run's peak in flight is no lower than any part's own (a
// client's peak between row ends), and a part that measured none is
// merged all the same.
func TestMergeMaxInFlight(t *testing.T) {
	_, parts := shardedRun(t, 2)
	m, _, err := Merge(parts)
	if err != nil {
		t.Fatal(err)
	}
	rows := *m.Load.MaxInFlight
	high, none := *parts[0].Report, *parts[1].Report
	high.Load.MaxInFlight = new(rows + 50)
	none.Load.MaxInFlight = nil
	m, _, err = Merge([]Part{{Report: &high, Histograms: parts[0].Histograms}, {Report: &none, Histograms: parts[1].Histograms}})
	if err != nil {
		t.Fatal(err)
	}
	if m.Load.MaxInFlight == nil || *m.Load.MaxInFlight != rows+50 {
		t.Errorf("max in flight %s, want part 0's own peak %d (the merged rows reach %d)", peakOf(m.Load.MaxInFlight), rows+50, rows)
	}
}

func peakOf(p *int64) string {
	if p == nil {
		return "null"
	}
	return strconv.FormatInt(*p, 10)
}

func showSummary(s measure.Summary) string {
	f := func(p *float64) float64 {
		if p == nil {
			return -1
		}
		return *p
	}
	return strings.Join([]string{"p50", ftoa(f(s.P50)), "p99", ftoa(f(s.P99)), "max", ftoa(f(s.Max)), "n", ftoa(float64(s.N))}, " ")
}

func ftoa(v float64) string { return num(v) }

// Parts that are not of one run are refused, saying what differs.
func TestMergeRefusesMismatchedParts(t *testing.T) {
	_, parts := shardedRun(t, 2)
	other := *parts[1].Report
	other.IntervalS = 2
	if _, _, err := Merge([]Part{parts[0], {Report: &other, Histograms: parts[1].Histograms}}); err == nil || !strings.Contains(err.Error(), "interval") {
		t.Errorf("different intervals merged: %v", err)
	}
	renamed := *parts[1].Report
	renamed.Stages = append([]StageReport(nil), renamed.Stages...)
	renamed.Stages[1].Name = "hold"
	if _, _, err := Merge([]Part{parts[0], {Report: &renamed, Histograms: parts[1].Histograms}}); err == nil || !strings.Contains(err.Error(), `"hold"`) {
		t.Errorf("different stages merged: %v", err)
	}
	bad := *parts[1].Histograms
	bad.Stages = append([]StageState(nil), bad.Stages...)
	bad.Stages[0].TTFT = "not a histogram"
	if _, _, err := Merge([]Part{parts[0], {Report: parts[1].Report, Histograms: &bad}}); err == nil || !strings.Contains(err.Error(), "ttft") {
		t.Errorf("a broken histogram merged: %v", err)
	}
}
