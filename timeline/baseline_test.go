package timeline

import (
	"io"
	"testing"
	"time"

	"github.com/scaleout/scaleout/platform"
)

// baselineOf is a baseline with the given values (nil for a gap).
func baselineOf(vals map[string]any) *Baseline {
	b := &Baseline{T: -0.5, Values: map[string]*float64{}}
	for k, v := range vals {
		if f, ok := v.(float64); ok {
			b.Values[k] = fptr(f)
		} else {
			b.Values[k] = nil
		}
	}
	return b
}

// replicaRun is a run of desired and ready samples every 10 s from 0:00,
// with the load stopping at loadEnd, from the given baseline (nil: none
// read).
func replicaRun(t *testing.T, b *Baseline, loadEnd time.Duration, desired, ready []float64) *Report {
	t.Helper()
	tl := New(Config{Interval: 10 * sec, Series: series(platform.Waiting, platform.Desired, platform.Ready), Threshold: 5, Baseline: b})
	for i := range desired {
		at := time.Duration(i) * 10 * sec
		if at == loadEnd {
			tl.LoadStopped(loadEnd, "")
		}
		tl.AddSample(sample(at, 0, desired[i], ready[i]))
	}
	return tl.Report(time.Duration(len(desired))*10*sec, Meta{})
}

// An expectation about something coming about does not count a value the
// fleet already had before the load: a fleet left scaled out by an earlier
// run does not pass "desired >= 2 within 4m".
func TestExpectationsFromTheBaseline(t *testing.T) {
	busy := baselineOf(map[string]any{platform.Waiting: 0.0, platform.Desired: 5.0, platform.Ready: 5.0})
	rest := baselineOf(map[string]any{platform.Waiting: 0.0, platform.Desired: 1.0, platform.Ready: 1.0})
	gap := baselineOf(map[string]any{platform.Waiting: 0.0, platform.Desired: "gap", platform.Ready: 1.0})
	cases := []struct {
		name           string
		base           *Baseline
		desired, ready []float64
		expr           string
		ok             bool
		detail         string
	}{
		{"busy stays high", busy, []float64{5, 5, 5, 5}, []float64{5, 5, 5, 5}, "desired >= 2 within 4m", false,
			"not shown within 4:00 of the load's start: it already held before the load (desired 5 at the baseline) and never stopped holding, so the load did not bring it about"},
		{"no baseline read: as before", nil, []float64{5, 5, 5, 5}, []float64{5, 5, 5, 5}, "desired >= 2 within 4m", true, "held at 0:00 (desired 5)"},
		{"busy falls, then the load raises it", busy, []float64{5, 1, 3, 3}, []float64{5, 1, 1, 3}, "desired >= 2 within 4m", true, "held at 0:20 (desired 3)"},
		{"busy falls and stays down", busy, []float64{5, 5, 1, 1}, []float64{5, 5, 1, 1}, "desired >= 2 within 4m", false,
			"not met within 4:00 of the load's start: best seen desired 1 at 0:20 (2 earlier samples met it only as it did before the load: desired 5 at the baseline)"},
		{"busy for", busy, []float64{5, 5, 5, 5}, []float64{5, 5, 5, 5}, "desired >= 2 for 20s", false,
			"not shown: it already held before the load (desired 5 at the baseline) and never stopped holding, so the load did not bring it about"},
		{"busy always is a state", busy, []float64{5, 5, 5, 5}, []float64{5, 5, 5, 5}, "desired >= 2 always", true, "held in all 4 samples"},
		{"busy at end is a state", busy, []float64{5, 5, 5, 5}, []float64{5, 5, 5, 5}, "desired >= 2 at end", true, "desired was 5 at 0:30"},
		{"at rest, a rise", rest, []float64{1, 3, 3, 1}, []float64{1, 1, 3, 1}, "desired >= 2 within 4m", true, "held at 0:10 (desired 3)"},
		{"at rest, back after the load", rest, []float64{1, 3, 3, 1}, []float64{1, 1, 3, 1}, "ready <= 1 after load", true, "held at 0:30, 10s after the load (ready 1)"},
		{"at rest, nothing rose", rest, []float64{1, 1, 1, 1}, []float64{1, 1, 1, 1}, "ready <= 1 after load", false,
			"not shown after the load: it already held before the load (ready 1 at the baseline) and never stopped holding, so the load did not bring it about"},
		{"a gap in the baseline: the first value stands in", gap, []float64{5, 5, 5, 5}, []float64{1, 1, 1, 1}, "desired >= 2 within 4m", false,
			"not shown within 4:00 of the load's start: it already held before the load (desired 5 at its first sample (no baseline value)) and never stopped holding, so the load did not bring it about"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := replicaRun(t, c.base, 20*sec, c.desired, c.ready)
			o := mustParse(t, c.expr).Evaluate(r)
			if o.OK != c.ok || o.Detail != c.detail {
				t.Errorf("%q = ok %v %q\nwant ok %v %q", c.expr, o.OK, o.Detail, c.ok, c.detail)
			}
		})
	}
}

// The KPIs measure changes from the baseline: a fleet that was at 5 before
// the load has no time to intent for staying at 5, and a queue that was
// already long has not crossed the threshold.
func TestKPIsFromTheBaseline(t *testing.T) {
	busy := baselineOf(map[string]any{platform.Waiting: 40.0, platform.Desired: 5.0, platform.Ready: 5.0})
	tl := New(Config{Interval: 10 * sec, Series: series(platform.Waiting, platform.Desired, platform.Ready), Threshold: 5, Baseline: busy})
	tl.AddSample(sample(0, 40, 5, 5))
	tl.AddSample(sample(10*sec, 60, 5, 5))
	r := tl.Report(20*sec, Meta{})
	k := r.KPIs
	if k.TimeToIntent != nil || k.TimeToReady != nil || k.TimeToQueue != nil {
		t.Errorf("KPIs from a busy baseline: intent %v ready %v queue %v, want none", show(k.TimeToIntent), show(k.TimeToReady), show(k.TimeToQueue))
	}
	if k.Start[platform.Desired] != 5 || k.Start[platform.Waiting] != 40 || r.Baseline != busy {
		t.Errorf("start %v, baseline %+v", k.Start, r.Baseline)
	}

	rest := baselineOf(map[string]any{platform.Waiting: 0.0, platform.Desired: 1.0, platform.Ready: 1.0})
	tl = New(Config{Interval: 10 * sec, Series: series(platform.Waiting, platform.Desired, platform.Ready), Threshold: 5, Baseline: rest})
	tl.AddSample(sample(0, 20, 1, 1)) // the queue rose between the baseline and the first sample
	tl.AddSample(sample(10*sec, 30, 3, 1))
	k = tl.Report(20*sec, Meta{}).KPIs
	if show(k.TimeToQueue) != "0" || show(k.TimeToIntent) != "10" || k.TimeToReady != nil {
		t.Errorf("KPIs from a baseline at rest: queue %s intent %s ready %s, want 0, 10, none", show(k.TimeToQueue), show(k.TimeToIntent), show(k.TimeToReady))
	}
}

// until obeys the same rule: a stage does not end on a value the fleet had
// before the load.
func TestLiveFromTheBaseline(t *testing.T) {
	busy := baselineOf(map[string]any{platform.Desired: 5.0})
	tl := New(Config{Interval: sec, Series: series(platform.Desired), Baseline: busy})
	l, err := NewLive(mustParse(t, "desired >= 2"))
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range []struct {
		v    any
		want bool
	}{{5, false}, {"gap", false}, {4, false}, {1, false}, {2, true}} {
		tl.AddSample(sample(time.Duration(i)*sec, s.v))
		if got := l.Holds(tl); got != s.want {
			t.Errorf("step %d (%v): holds %v, want %v", i, s.v, got, s.want)
		}
	}
}

// A run that ends just after a row began leaves a last row whose span
// rounds to 0: the page still renders (no NaN rate in its data).
func TestHTMLRowOfZeroSpan(t *testing.T) {
	r := &Report{IntervalS: 0.1, Timeline: []Row{{T: 0, Span: 0.1, Sent: 2}, {T: 0.1, Span: 0, Sent: 1, Done: 1}}, Verdict: None}
	if err := WriteHTML(io.Discard, r, Assets{}); err != nil {
		t.Fatal(err)
	}
}
