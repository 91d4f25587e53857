package timeline

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/scaleout/scaleout/measure"
	"github.com/scaleout/scaleout/platform"
)

var update = flag.Bool("update", false, "rewrite the golden files")

const sec = time.Second

func series(names ...string) []measure.Series {
	out := make([]measure.Series, len(names))
	for i, n := range names {
		out[i] = measure.Series{Name: n, Query: "q_" + n}
	}
	return out
}

func sample(at time.Duration, vals ...any) measure.Sample {
	s := measure.Sample{At: at}
	for _, v := range vals {
		switch v := v.(type) {
		case int:
			s.Values = append(s.Values, measure.Value{V: float64(v)})
		case float64:
			s.Values = append(s.Values, measure.Value{V: v})
		case string:
			s.Values = append(s.Values, measure.Value{Gap: v})
		}
	}
	return s
}

// scripted builds the story of one scale-out: a warm stage at 1/s, a
// ramp to 5/s, then 60 s of observation after the load.
func scripted(t *testing.T) *Report {
	t.Helper()
	tl := New(Config{
		Interval: 10 * sec,
		Series:   series(platform.Waiting, platform.Desired, platform.Current, platform.Ready),
		Stages: []StagePlan{
			{Name: "warm", Plan: "1/s for 20s", Duration: 20 * sec, RateFrom: 1, RateTo: 1},
			{Name: "ramp", Plan: "1/s→5/s for 20s", Duration: 20 * sec, RateFrom: 1, RateTo: 5},
		},
		Threshold: 5,
		SLO:       SLO{TTFT: 500 * time.Millisecond},
	})
	tl.StageStarted(0, 0)
	// warm: 20 requests, one a second, TTFT 100 ms, 10 tokens each over 1 s.
	for i := range 20 {
		at := time.Duration(i) * sec
		tl.AddRequest(&measure.Request{Stage: 0, Seq: uint64(i), Scheduled: at, Sent: at + time.Millisecond,
			TTFT: 100 * time.Millisecond, E2E: sec, Events: 10, OutputTokens: 10, PromptTokens: 5,
			ITL: []time.Duration{100 * time.Millisecond}})
	}
	tl.StageEnded(0, 20*sec, "duration")
	tl.StageStarted(1, 20*sec)
	// ramp: 60 requests, TTFT 1 s (queued), two of them fail with 429.
	for i := range 60 {
		at := 20*sec + time.Duration(i)*sec/3
		r := &measure.Request{Stage: 1, Seq: uint64(i), Scheduled: at, Sent: at, TTFT: sec, E2E: 2 * sec,
			Events: 10, OutputTokens: 10, PromptTokens: 5}
		if i%30 == 7 {
			r = &measure.Request{Stage: 1, Seq: uint64(i), Scheduled: at, Sent: at, E2E: 5 * time.Millisecond,
				Status: 429, Class: measure.HTTPClass(429), Message: "queue is full", OutputTokens: -1, PromptTokens: -1}
		}
		tl.AddRequest(r)
	}
	tl.StageEnded(1, 40*sec, "duration")
	tl.LoadStopped(40*sec, "")
	for _, s := range []measure.Sample{
		sample(1*sec, 0, 1, 1, 1),
		sample(11*sec, 2, 1, 1, 1),
		sample(21*sec, 7, 1, 1, 1),
		sample(31*sec, 15, 3, 1, 1),
		sample(41*sec, 9, 3, 3, 2),
		sample(51*sec, "connection refused", "connection refused", "connection refused", "connection refused"),
		sample(61*sec, 0, 3, 3, 3),
		sample(71*sec, 0, 1, 3, 3),
		sample(81*sec, 0, 1, 1, 1),
	} {
		tl.AddSample(s)
	}
	return tl.Report(90*sec, Meta{Scenario: "story", Started: time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC),
		Target: TargetInfo{URL: "http://127.0.0.1:8000", API: "completions", Model: "m", Stream: true, Observation: "scrape of 1 page"}})
}

func TestStory(t *testing.T) {
	r := scripted(t)
	if len(r.Timeline) != 9 {
		t.Fatalf("rows = %d, want 9", len(r.Timeline))
	}
	wantSent := []int64{10, 10, 30, 30, 0, 0, 0, 0, 0}
	wantDone := []int64{9, 10, 25, 30, 6, 0, 0, 0, 0}
	wantStage := []string{"warm", "warm", "ramp", "ramp", "after", "after", "after", "after", "after"}
	var inflight int64
	for i, x := range r.Timeline {
		if x.Sent != wantSent[i] || x.Done != wantDone[i] || x.Stage != wantStage[i] {
			t.Errorf("row %d: sent %d done %d stage %s, want %d %d %s", i, x.Sent, x.Done, x.Stage, wantSent[i], wantDone[i], wantStage[i])
		}
		inflight += x.Sent - x.Done
		if x.InFlight != inflight {
			t.Errorf("row %d: in flight %d, want %d", i, x.InFlight, inflight)
		}
	}
	if r.Timeline[0].TargetRPS != 1 || r.Timeline[2].TargetRPS != 2 || r.Timeline[3].TargetRPS != 4 {
		t.Errorf("target rps = %v %v %v", r.Timeline[0].TargetRPS, r.Timeline[2].TargetRPS, r.Timeline[3].TargetRPS)
	}
	if p := r.Timeline[0].TTFTP50; p == nil || *p < 99 || *p > 101 {
		t.Errorf("row 0 ttft p50 = %v", p)
	}
	if p := r.Timeline[2].TTFTP95; p == nil || *p < 990 || *p > 1010 {
		t.Errorf("row 2 ttft p95 = %v", p)
	}
	// 20 warm requests of 10 tokens over [0.1 s, 1 s] after their send.
	if got := r.Timeline[0].OutputTPS + r.Timeline[1].OutputTPS; got < 19.9 || got > 20.1 {
		t.Errorf("warm tokens/s over rows 0-1 = %v, want 20", got)
	}
	if v := r.Timeline[3].Series[platform.Waiting]; v == nil || *v != 15 {
		t.Errorf("row 3 waiting = %v", v)
	}
	if v := r.Timeline[5].Series[platform.Desired]; v != nil || r.Timeline[5].Gaps[platform.Desired] != "connection refused" {
		t.Errorf("row 5 desired = %v gap %q", v, r.Timeline[5].Gaps[platform.Desired])
	}

	var texts []string
	for _, e := range r.Events {
		texts = append(texts, Clock(e.T)+" "+e.Text)
	}
	want := []string{
		"0:00 stage warm (1/s for 20s)",
		"0:20 stage warm ended",
		"0:20 stage ramp (1/s→5/s for 20s)",
		"0:21 waiting 7 > 5 (5 × 1 replica)",
		"0:31 desired 1→3",
		"0:40 stage ramp ended",
		"0:40 load stopped",
		"0:41 current 1→3",
		"0:41 ready 1→2",
		"0:41 waiting 9 ≤ 15",
		"0:51 no value for waiting, desired, current, ready: connection refused",
		"1:01 waiting, desired, current, ready back",
		"1:01 ready 2→3 (some time in the gap after 0:41)",
		"1:11 desired 3→1",
		"1:21 current 3→1",
		"1:21 ready 3→1",
	}
	if strings.Join(texts, "\n") != strings.Join(want, "\n") {
		t.Errorf("events:\n%s\nwant:\n%s", strings.Join(texts, "\n"), strings.Join(want, "\n"))
	}
	k := r.KPIs
	check := func(name string, got *float64, want float64) {
		t.Helper()
		if got == nil || *got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	check("time to queue", k.TimeToQueue, 21)
	check("time to intent", k.TimeToIntent, 31)
	check("time to ready", k.TimeToReady, 41)
	check("scale-in", k.ScaleIn, 31)
	check("ready in", k.ReadyIn, 41)
	if k.Peak[platform.Waiting] != 15 || k.Peak[platform.Desired] != 3 || k.PeakAt[platform.Waiting] != 31 || k.Start[platform.Desired] != 1 {
		t.Errorf("peaks %v at %v start %v", k.Peak, k.PeakAt, k.Start)
	}

	l := r.Load
	if l.Requests != 80 || l.OK != 78 || l.Errors["http_429"] != 2 || l.ErrorSamples["http_429"] != "queue is full" {
		t.Errorf("load = %+v", l)
	}
	if l.OutputTokens != 780 || l.PromptTokens != 390 || l.AchievedRPS != 2 || l.TargetRPS != 2 || l.ErrorRate != 0.025 {
		t.Errorf("load tokens %d %d rps %v target %v err %v", l.OutputTokens, l.PromptTokens, l.AchievedRPS, l.TargetRPS, l.ErrorRate)
	}
	if l.Goodput == nil || l.Goodput.Good != 20 || l.Goodput.Share != 0.25 {
		t.Errorf("goodput = %+v", l.Goodput)
	}
	if p := l.ITL.P50; p == nil || *p < 99 || *p > 101 {
		t.Errorf("itl p50 = %v", p)
	}
	w, ramp := r.Stages[0], r.Stages[1]
	if w.Requests != 20 || w.AchievedRPS != 1 || w.TargetRPS != 1 || ramp.Requests != 60 || ramp.AchievedRPS != 3 || ramp.TargetRPS != 3 {
		t.Errorf("stages: %+v / %+v", w.LoadReport, ramp.LoadReport)
	}
	if p := ramp.TTFT.P50; p == nil || *p < 995 || *p > 1005 {
		t.Errorf("ramp ttft p50 = %v", p)
	}
	if r.Verdict != "none" || r.Partial {
		t.Errorf("verdict %q partial %v", r.Verdict, r.Partial)
	}
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./timeline -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (go test ./timeline -update rewrites it):\n%s", name, got)
	}
}

func TestRenderGolden(t *testing.T) {
	r := scripted(t)
	var text, csvOut, js bytes.Buffer
	if err := WriteText(&text, r, TextOptions{}); err != nil {
		t.Fatal(err)
	}
	golden(t, "story.txt", text.Bytes())
	if err := WriteCSV(&csvOut, r); err != nil {
		t.Fatal(err)
	}
	golden(t, "story.csv", csvOut.Bytes())
	if err := WriteJSON(&js, r); err != nil {
		t.Fatal(err)
	}
	back, err := ReadJSON(&js)
	if err != nil {
		t.Fatal(err)
	}
	var again bytes.Buffer
	if err := WriteText(&again, back, TextOptions{}); err != nil {
		t.Fatal(err)
	}
	if again.String() != text.String() {
		t.Errorf("a report read back from JSON renders differently:\n%s", again.String())
	}
}

func TestStrideKeepsEventRows(t *testing.T) {
	tl := New(Config{Interval: sec, Series: series(platform.Desired)})
	for i := range 300 {
		d := 1
		if i >= 150 {
			d = 2
		}
		tl.AddSample(sample(time.Duration(i)*sec, d))
	}
	r := tl.Report(300*sec, Meta{Scenario: "long"})
	var b bytes.Buffer
	if err := WriteText(&b, r, TextOptions{MaxRows: 30}); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	if !strings.Contains(out, "2:30") || !strings.Contains(out, "desired 1→2") {
		t.Errorf("the row of the change is missing:\n%s", out)
	}
	if !strings.Contains(out, "(every 10th row of 300 is shown") {
		t.Errorf("no stride note:\n%s", out)
	}
}

// Rows older than the late window are closed and their distributions
// reused, so a long run keeps a bounded number of them.
func TestRowsCloseAndReuseMemory(t *testing.T) {
	tl := New(Config{Interval: sec})
	for i := range 3600 {
		at := time.Duration(i) * sec
		tl.AddRequest(&measure.Request{Sent: at, Scheduled: at, TTFT: 50 * time.Millisecond, E2E: 100 * time.Millisecond, OutputTokens: 1, Events: 1})
	}
	open := 0
	for _, rw := range tl.rows {
		if rw.ttft != nil {
			open++
		}
	}
	if limit := int(lateWindow/sec) + 2; open > limit {
		t.Errorf("%d rows hold a distribution, want at most %d", open, limit)
	}
	if len(tl.free) == 0 {
		t.Error("no distribution was returned for reuse")
	}
	r := tl.Report(3600*sec, Meta{})
	if p := r.Timeline[10].TTFTP50; p == nil || *p < 49 || *p > 51 {
		t.Errorf("a closed row lost its percentile: %v", p)
	}
}

func TestFormat(t *testing.T) {
	for in, want := range map[float64]string{0: "0:00", 5: "0:05", 65: "1:05", 3725: "1:02:05", 2.5: "0:02.5"} {
		if got := Clock(in); got != want {
			t.Errorf("Clock(%v) = %s, want %s", in, got, want)
		}
	}
	for in, want := range map[float64]string{0.5: "0.5s", 45: "45s", 130: "2:10", 305: "5:05"} {
		if got := span(in); got != want {
			t.Errorf("span(%v) = %s, want %s", in, got, want)
		}
	}
}

func TestDivergence(t *testing.T) {
	tl := New(Config{Interval: 5 * sec, Series: series(platform.Desired, platform.Predicted), Grace: 20 * sec})
	// predicted jumps to 4 at 10 s; desired follows only at 40 s.
	for i, v := range [][2]int{{1, 1}, {1, 1}, {1, 4}, {1, 4}, {1, 4}, {1, 4}, {1, 4}, {2, 4}, {4, 4}, {4, 1}} {
		tl.AddSample(sample(time.Duration(i)*5*sec, v[0], v[1]))
	}
	r := tl.Report(50*sec, Meta{})
	var got []string
	for _, e := range r.Events {
		if e.Kind == Divergence {
			got = append(got, Clock(e.T)+" "+e.Text)
		}
	}
	want := []string{
		"0:30 desired 1 has not reached 4, predicted at 0:10, within 20s (one HPA sync plus one sample)",
		"0:40 desired caught up with the prediction 30s after it was made",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("divergence events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if k := r.KPIs; k.IntentLag == nil || *k.IntentLag != 25 || *k.TimeToIntent != 35 {
		t.Errorf("intent lag %v (time to intent %v)", k.IntentLag, k.TimeToIntent)
	}
}

// While the queue keeps growing, every new prediction is one step ahead of
// the last HPA sync; a desired that follows within the grace is no
// divergence.
func TestNoDivergenceWhileFollowing(t *testing.T) {
	tl := New(Config{Interval: 5 * sec, Series: series(platform.Desired, platform.Predicted), Grace: 10 * sec})
	// predicted rises by one every 5 s; desired follows 5 s later.
	for i := range 12 {
		tl.AddSample(sample(time.Duration(i)*5*sec, max(1, i), i+1))
	}
	r := tl.Report(60*sec, Meta{})
	for _, e := range r.Events {
		if e.Kind == Divergence {
			t.Errorf("a following HPA was reported: %s %s", Clock(e.T), e.Text)
		}
	}
}

// A stabilized prediction falls when its window ends, and the HPA's
// desired falls at the same sync: following it down is no divergence
// (the rig's CPU tier showed one false line at each such fall).
func TestNoDivergenceFollowingAFall(t *testing.T) {
	tl := New(Config{Interval: 3 * sec, Series: series(platform.Desired, platform.Predicted), Grace: 8 * sec})
	// {desired, predicted}: up to 4 together, both fall to 2 at 0:15,
	// then to 1 at 0:24; desired then lags a rise to 3 by one sample.
	steps := [][2]int{{1, 1}, {4, 4}, {4, 4}, {4, 4}, {4, 4}, {2, 2}, {2, 2}, {2, 2}, {1, 1}, {1, 1}, {1, 3}, {3, 3}, {3, 3}}
	for i, v := range steps {
		tl.AddSample(sample(time.Duration(i)*3*sec, v[0], v[1]))
	}
	r := tl.Report(time.Duration(len(steps))*3*sec, Meta{})
	for _, e := range r.Events {
		if e.Kind == Divergence {
			t.Errorf("desired following the prediction down was reported: %s %s", Clock(e.T), e.Text)
		}
	}
	// A desired that stays below every prediction since one grace ago is
	// still behind, however the prediction moved in between.
	tl = New(Config{Interval: 3 * sec, Series: series(platform.Desired, platform.Predicted), Grace: 8 * sec})
	for i, v := range [][2]int{{1, 1}, {1, 4}, {1, 4}, {1, 3}, {1, 3}, {1, 3}} {
		tl.AddSample(sample(time.Duration(i)*3*sec, v[0], v[1]))
	}
	var got []string
	for _, e := range tl.Report(18*sec, Meta{}).Events {
		if e.Kind == Divergence {
			got = append(got, Clock(e.T)+" "+e.Text)
		}
	}
	if want := "0:12 desired 1 has not reached 3, predicted at 0:03, within 8s (one HPA sync plus one sample)"; len(got) != 1 || got[0] != want {
		t.Errorf("a desired left behind: %q, want [%q]", got, want)
	}
}

func TestScaledIn(t *testing.T) {
	tl := New(Config{Interval: sec, Series: series(platform.Desired, platform.Current, platform.Ready)})
	steps := []struct {
		d, c, r  int
		loadDone bool
		want     bool
	}{
		{1, 1, 1, false, false},
		{3, 1, 1, false, false},
		{3, 3, 3, true, false}, // the load stopped; still scaled out
		{1, 3, 1, true, false}, // current lags one sync
		{1, 1, 1, true, true},
	}
	for i, s := range steps {
		at := time.Duration(i) * sec
		if s.loadDone && i == 2 {
			tl.LoadStopped(at, "")
		}
		tl.AddSample(sample(at, s.d, s.c, s.r))
		if got := tl.ScaledIn(); got != s.want {
			t.Errorf("step %d: ScaledIn = %v, want %v", i, got, s.want)
		}
	}
	never := New(Config{Interval: sec, Series: series(platform.Desired)})
	never.LoadStopped(0, "")
	never.AddSample(sample(sec, 1))
	if never.ScaledIn() {
		t.Error("a run whose desired never rose counts as scaled in")
	}
}

func TestDesiredFallsDuringLoad(t *testing.T) {
	tl := New(Config{Interval: sec, Series: series(platform.Desired)})
	for i, d := range []int{1, 4, 4, 1, 4} {
		tl.AddSample(sample(time.Duration(i)*sec, d))
	}
	tl.LoadStopped(5*sec, "")
	tl.AddSample(sample(5*sec, 1)) // after the load: scale-in, not a fall
	r := tl.Report(6*sec, Meta{})
	if r.KPIs.FallsInLoad != 1 {
		t.Errorf("falls during load = %d, want 1", r.KPIs.FallsInLoad)
	}
	notes := 0
	for _, e := range r.Events {
		if e.Kind == Note && strings.HasPrefix(e.Text, "desired fell while the load still ran") && e.T == 3 {
			notes++
		}
	}
	if notes != 1 {
		t.Errorf("%d notes about the fall: %+v", notes, r.Events)
	}
}

// A change first seen after a gap happened some time in the gap: the event
// and the KPI say between when.
func TestChangesSeenAfterAGap(t *testing.T) {
	tl := New(Config{Interval: 5 * sec, Series: series(platform.Desired, platform.Ready)})
	down := "connection refused"
	steps := []struct{ d, r any }{{1, 1}, {1, 1}, {down, down}, {down, down}, {3, 1}, {3, 3}, {down, 3}, {1, 3}}
	for i, s := range steps {
		at := time.Duration(i) * 5 * sec
		if i == 6 {
			tl.LoadStopped(at, "")
		}
		tl.AddSample(sample(at, s.d, s.r))
	}
	r := tl.Report(40*sec, Meta{})
	k := r.KPIs
	if low, ok := k.Earliest["time_to_intent_s"]; k.TimeToIntent == nil || *k.TimeToIntent != 20 || !ok || low != 5 {
		t.Errorf("time to intent %v, earliest %v: want 20, 5 (last value before the gap at 0:05)", show(k.TimeToIntent), k.Earliest)
	}
	if _, ok := k.Earliest["time_to_ready_s"]; ok || k.TimeToReady == nil || *k.TimeToReady != 25 {
		t.Errorf("time to ready %v (earliest %v): want 25, seen outside any gap", show(k.TimeToReady), k.Earliest)
	}
	if low, ok := k.Earliest["scale_in_s"]; k.ScaleIn == nil || *k.ScaleIn != 5 || !ok || low != 0 {
		t.Errorf("scale-in %v, earliest %v: want 5 after the load stopped at 0:30, earliest 0", show(k.ScaleIn), k.Earliest)
	}
	var changes []string
	for _, e := range r.Events {
		if e.Kind == Change {
			s := Clock(e.T) + " " + e.Text
			if e.Since != nil {
				s += fmt.Sprintf(" [since %v]", *e.Since)
			}
			changes = append(changes, s)
		}
	}
	want := []string{
		"0:20 desired 1→3 (some time in the gap after 0:05) [since 5]",
		"0:25 ready 1→3",
		"0:35 desired 3→1 (some time in the gap after 0:25) [since 25]",
	}
	if strings.Join(changes, "\n") != strings.Join(want, "\n") {
		t.Errorf("changes:\n%s\nwant:\n%s", strings.Join(changes, "\n"), strings.Join(want, "\n"))
	}
	var b strings.Builder
	if err := WriteText(&b, r, TextOptions{}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "time to intent 5s–20s (in a gap)") {
		t.Errorf("the summary does not give the range:\n%s", b.String())
	}
}

// Waiting first seen above the threshold just after a gap crossed it
// some time in the gap: time to queue gets its earliest bound too.
func TestQueueCrossedInAGap(t *testing.T) {
	tl := New(Config{Interval: 5 * sec, Series: series(platform.Waiting), Threshold: 5})
	for i, w := range []any{1, 2, "timeout", 10} {
		tl.AddSample(sample(time.Duration(i)*5*sec, w))
	}
	r := tl.Report(20*sec, Meta{})
	k := r.KPIs
	if low, ok := k.Earliest["time_to_queue_s"]; k.TimeToQueue == nil || *k.TimeToQueue != 15 || !ok || low != 5 {
		t.Errorf("time to queue %v, earliest %v: want 15, 5 (last value before the gap at 0:05)", show(k.TimeToQueue), k.Earliest)
	}
	var b strings.Builder
	if err := WriteText(&b, r, TextOptions{}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "time to queue 5s–15s (in a gap)") {
		t.Errorf("the summary does not give the range:\n%s", b.String())
	}
}

// The keys of KPIs.Earliest are the JSON names of the KPIs they bound.
func TestEarliestKeysAreJSONNames(t *testing.T) {
	tags := map[string]bool{}
	kt := reflect.TypeFor[KPIs]()
	for i := range kt.NumField() {
		name, _, _ := strings.Cut(kt.Field(i).Tag.Get("json"), ",")
		tags[name] = true
	}
	for _, key := range []string{kpiTimeToQueue, kpiTimeToIntent, kpiTimeToReady, kpiScaleIn, kpiReadyIn} {
		if !tags[key] {
			t.Errorf("%q is not the JSON name of a KPI", key)
		}
	}
}

// show prints a figure that may be missing.
func show[T int64 | float64](v *T) string {
	if v == nil {
		return "nil"
	}
	return fmt.Sprint(*v)
}

// TestRound3: half away from zero, negatives and large values included (the
// client's figures were once rounded by int64(v*1000+0.5), which truncates
// negatives toward zero and overflows above 9.2e12).
func TestRound3(t *testing.T) {
	for _, c := range []struct{ in, want float64 }{
		{1.2345, 1.235}, {0.0005, 0.001}, {0.0004999, 0}, {-0.0016, -0.002}, {-1.2345, -1.235}, {1e13 + 0.25, 1e13 + 0.25}, {3, 3},
	} {
		if got := Round3(c.in); got != c.want {
			t.Errorf("Round3(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}
