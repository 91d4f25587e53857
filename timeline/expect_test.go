package timeline

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/scaleout/scaleout/measure"
	"github.com/scaleout/scaleout/platform"
)

var names = []string{platform.Waiting, platform.Desired, platform.Current, platform.Ready}

func TestParseExpectation(t *testing.T) {
	cases := []struct {
		in   string
		want Expectation
	}{
		{"desired >= 2 within 120s", Expectation{Subject: "desired", Op: ">=", Value: 2, When: WhenWithin, Within: 2 * time.Minute}},
		{"ready>=3 within 5m", Expectation{Subject: "ready", Op: ">=", Value: 3, When: WhenWithin, Within: 5 * time.Minute}},
		{"waiting > 5", Expectation{Subject: "waiting", Op: ">", Value: 5}},
		{"error_rate < 1%", Expectation{Subject: "error_rate", Op: "<", Value: 0.01}},
		{"ttft_p95 < 2s", Expectation{Subject: "ttft_p95", Op: "<", Value: 2}},
		{"tpot_p50 <= 150ms", Expectation{Subject: "tpot_p50", Op: "<=", Value: 0.15}},
		{"desired <= 1 after load within 6m", Expectation{Subject: "desired", Op: "<=", Value: 1, When: WhenAfterLoad, Within: 6 * time.Minute}},
		{"desired <= 1 after load", Expectation{Subject: "desired", Op: "<=", Value: 1, When: WhenAfterLoad}},
		{"intent_lag < 30s", Expectation{Subject: "intent_lag", Op: "<", Value: 30}},
		{"ready <= 1 always", Expectation{Subject: "ready", Op: "<=", Value: 1, When: WhenAlways}},
		{"desired >= 3 for 30s", Expectation{Subject: "desired", Op: ">=", Value: 3, When: WhenFor, For: 30 * time.Second}},
		{"ready == 1 at end", Expectation{Subject: "ready", Op: "==", Value: 1, When: WhenEnd}},
		{"desired ≥ 2", Expectation{Subject: "desired", Op: ">=", Value: 2}},
		{"requests >= 100", Expectation{Subject: "requests", Op: ">=", Value: 100}},
		{"time_to_intent < 1m", Expectation{Subject: "time_to_intent", Op: "<", Value: 60}},
	}
	for _, c := range cases {
		got, err := ParseExpectation(c.in, names)
		if err != nil {
			t.Errorf("%q: %v", c.in, err)
			continue
		}
		if got.Subject != c.want.Subject || got.Op != c.want.Op || got.Value != c.want.Value || got.When != c.want.When ||
			got.Within != c.want.Within || got.For != c.want.For {
			t.Errorf("%q = %+v, want %+v", c.in, *got, c.want)
		}
	}
}

func TestParseExpectationErrors(t *testing.T) {
	cases := []struct {
		in  string
		col int
		msg string
	}{
		{"desird >= 2", 1, `"desird" is not a series, KPI or load figure (did you mean desired?)`},
		{"desired => 2", 9, "want a comparison"},
		{"desired >= two", 12, `"two" is not a number`},
		{"desired >= 2 whithin 2m", 14, `unexpected "whithin"`},
		{"desired >= 2 within 2", 21, `within "2" is not a duration`},
		{"ttft_p95 < 2", 12, `"2" needs a unit: ttft_p95 is a time`},
		{"desired >= 2s", 12, "desired is not a time"},
		{"desired >= 20%", 12, "desired is not a share"},
		{"error_rate < 1% within 2m", 17, `error_rate is one number for the whole run; it takes no "within"`},
		{"desired >= 2 at start", 17, `want "at end"`},
		{"desired >= 2 within 2m extra", 24, `unexpected "extra" after the condition`},
		{"", 1, "want a series"},
		{"error_rate < 1", 14, `"1" is ambiguous: error_rate is a share, write it as a percentage (e.g. 1%)`},
	}
	for _, c := range cases {
		_, err := ParseExpectation(c.in, names)
		var se *SyntaxError
		if !errors.As(err, &se) {
			t.Errorf("%q: err = %v, want a SyntaxError", c.in, err)
			continue
		}
		if se.Col != c.col || !strings.Contains(se.Msg, c.msg) {
			t.Errorf("%q: column %d %q, want column %d containing %q", c.in, se.Col, se.Msg, c.col, c.msg)
		}
	}
}

func TestEvaluate(t *testing.T) {
	r := scripted(t) // desired 1,1,1,3,3,gap,3,1,1 at 1s,11s,… ; load stops at 40s
	cases := []struct {
		expr   string
		ok     bool
		detail string
	}{
		{"desired >= 3 within 35s", true, "held at 0:31 (desired 3)"},
		{"desired >= 3 within 30s", false, "not met within 30s of the load's start: best seen desired 1 at 0:01"},
		{"desired >= 4", false, "not met during the run: best seen desired 3 at 0:31 (1 sample in that span had no value)"},
		{"desired <= 1 after load within 40s", true, "held at 1:11, 31s after the load (desired 1)"},
		{"desired <= 1 after load within 20s", false, "not met within 20s after the load: best seen desired 3 at 0:41 (1 sample in that span had no value)"},
		{"ready <= 3 always", true, "held in all 8 samples with a value (1 sample had none: it was not seen there)"},
		{"ready <= 2 always", false, "broken at 1:01 (ready 3)"},
		{"desired >= 3 for 10s", true, "held from 0:31 to 0:41"},
		{"desired >= 3 for 25s", false, "held for 10s at most, not 25s"}, // the gap at 0:51 proves nothing
		{"desired == 1 at end", true, "desired was 1 at 1:21"},
		{"error_rate < 1%", false, "error_rate was 2.5%"},
		{"error_rate < 5%", true, "error_rate was 2.5%"},
		{"ttft_p50 < 2s", true, "ttft_p50 was 1s"},
		{"time_to_intent <= 31s", true, "time_to_intent was 31s"},
		{"intent_lag < 10s", false, "intent_lag was not reached"},
		{"goodput >= 25%", true, "goodput was 25%"},
	}
	for _, c := range cases {
		e, err := ParseExpectation(c.expr, names)
		if err != nil {
			t.Fatalf("%q: %v", c.expr, err)
		}
		o := e.Evaluate(r)
		if o.OK != c.ok || o.Detail != c.detail || o.Expr != c.expr {
			t.Errorf("%q = ok %v %q, want ok %v %q", c.expr, o.OK, o.Detail, c.ok, c.detail)
		}
	}
}

func TestLive(t *testing.T) {
	tl := New(Config{Interval: sec, Series: series(platform.Desired)})
	e, err := ParseExpectation("desired >= 3 for 2s", []string{platform.Desired})
	if err != nil {
		t.Fatal(err)
	}
	l, err := NewLive(e)
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		v    any
		want bool
	}{{1, false}, {3, false}, {4, false}, {"gap", false}, {3, false}, {3, false}, {3, true}}
	for i, s := range steps {
		tl.AddSample(sample(time.Duration(i)*sec, s.v))
		if got := l.Holds(tl); got != s.want {
			t.Errorf("step %d (%v): holds %v, want %v", i, s.v, got, s.want)
		}
	}
	if _, err := NewLive(mustParse(t, "error_rate < 1%")); err == nil {
		t.Error("a load figure was accepted for until")
	}
	if _, err := NewLive(mustParse(t, "desired >= 2 within 1m")); err == nil {
		t.Error("within was accepted for until")
	}
}

// Sampling jitter does not cost a for condition an interval: samples come
// one interval apart give or take milliseconds, and "for 30s" at 15 s holds
// on three samples in a row, even 29.999 s apart (issue 11, item 9).
func TestForToleratesSamplingJitter(t *testing.T) {
	cases := []struct {
		name     string
		interval time.Duration
		expr     string
		at       []float64 // sample times, seconds; the first does not meet the condition, the rest do
		heldAt   float64   // -1: never
	}{
		{"one late sample", 15 * sec, "ready >= 5 for 30s", []float64{180, 195.001, 210.002, 225.000, 240.001}, 225},
		{"on time", 15 * sec, "ready >= 5 for 30s", []float64{180, 195, 210, 225, 240}, 225},
		{"two samples are not 30s", 15 * sec, "ready >= 5 for 30s", []float64{180, 195.001, 210.002}, -1},
		{"a dropped tick", 15 * sec, "ready >= 5 for 30s", []float64{180, 195.001, 225.000}, 225},
		{"20s rounds up to two intervals", 15 * sec, "ready >= 5 for 20s", []float64{180, 195, 210.001, 225}, 225},
		{"short interval", sec, "ready >= 5 for 2s", []float64{0, 1.001, 2.0, 3.0, 4.0}, 3},
		{"a gap breaks it", 15 * sec, "ready >= 5 for 30s", []float64{180, 195, -210, 225, 240, 255}, 255},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tl := New(Config{Interval: c.interval, Series: series(platform.Ready)})
			l, err := NewLive(mustParse(t, c.expr))
			if err != nil {
				t.Fatal(err)
			}
			liveAt := -1.0
			for i, s := range c.at {
				var v any = 5
				switch {
				case i == 0:
					v = 4
				case s < 0:
					v, s = "gap", -s
				}
				tl.AddSample(sample(time.Duration(s*float64(sec)), v))
				if l.Holds(tl) && liveAt < 0 {
					liveAt = s
				}
			}
			if liveAt != c.heldAt {
				t.Errorf("until: held at %v, want %v", liveAt, c.heldAt)
			}
			o := mustParse(t, c.expr).Evaluate(tl.Report(time.Duration((c.at[len(c.at)-1]+1)*float64(sec)), Meta{}))
			if o.OK != (c.heldAt >= 0) || o.OK && !strings.HasSuffix(o.Detail, " to "+Clock(c.heldAt)) {
				t.Errorf("expectation: ok %v %q, want held at %v", o.OK, o.Detail, c.heldAt)
			}
		})
	}
}

func mustParse(t *testing.T, s string) *Expectation {
	t.Helper()
	e, err := ParseExpectation(s, names)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func FuzzExpectation(f *testing.F) {
	for _, s := range []string{"desired >= 2 within 120s", "error_rate < 1%", "desired <= 1 after load within 6m", "ready == 1 at end", "x ≥ 2 for 3s"} {
		f.Add(s)
	}
	r := New(Config{Interval: sec, Series: series(names...)})
	r.AddSample(measure.Sample{At: 0, Values: []measure.Value{{V: 1}, {V: 1}, {Gap: "no series"}, {V: 2}}})
	rep := r.Report(2*sec, Meta{})
	f.Fuzz(func(t *testing.T, s string) {
		e, err := ParseExpectation(s, names)
		if err != nil {
			var se *SyntaxError
			if !errors.As(err, &se) || se.Col < 1 || se.Col > len(s)+1 {
				t.Fatalf("%q: bad error %v", s, err)
			}
			return
		}
		o := e.Evaluate(rep)
		if o.Detail == "" {
			t.Fatalf("%q: no detail", s)
		}
	})
}
