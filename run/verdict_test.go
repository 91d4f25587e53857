package run

import (
	"errors"
	"testing"
	"time"

	"github.com/scaleout/scaleout/scenario"
	"github.com/scaleout/scaleout/timeline"
)

// A scenario file's client_check starts from scenario's defaults; a plan
// without one is judged by timeline's. The two must be the same limits.
func TestClientCheckDefaultsAgree(t *testing.T) {
	if lag := time.Duration(timeline.LagLimitMS * float64(time.Millisecond)); lag != scenario.DefaultMaxSendLag || timeline.ShortfallLimit != scenario.DefaultMaxShortfall {
		t.Errorf("timeline's client-check defaults (%v, %v) differ from scenario's (%v, %v)", lag, timeline.ShortfallLimit, scenario.DefaultMaxSendLag, scenario.DefaultMaxShortfall)
	}
}

// Every input that bears on the verdict moves it, and the order in which
// they were gathered does not.
func TestDecide(t *testing.T) {
	ok := timeline.Outcome{Expr: "desired >= 2 within 2m", OK: true}
	bad := timeline.Outcome{Expr: "ready >= 2 within 3m"}
	client := timeline.Outcome{Expr: "the client delivered the planned load"}
	unpaused := &timeline.GuardResult{Required: "repause", State: "unpaused"}
	paused := &timeline.GuardResult{Required: "repause", State: "paused", OK: true}
	for _, c := range []struct {
		name   string
		r      timeline.Report
		strict bool
		want   timeline.Verdict
	}{
		{"nothing expected", timeline.Report{}, false, timeline.None},
		{"all held", timeline.Report{Expectations: []timeline.Outcome{ok, ok}}, false, timeline.Pass},
		{"one failed", timeline.Report{Expectations: []timeline.Outcome{ok, bad}}, false, timeline.Fail},
		{"failed first", timeline.Report{Expectations: []timeline.Outcome{bad, ok}}, false, timeline.Fail},
		{"client limited, nothing expected", timeline.Report{Expectations: []timeline.Outcome{client}}, false, timeline.Fail},
		{"guard un-paused, lenient", timeline.Report{Expectations: []timeline.Outcome{ok}, Guard: unpaused}, false, timeline.Pass},
		{"guard un-paused, strict", timeline.Report{Expectations: []timeline.Outcome{ok}, Guard: unpaused}, true, timeline.Fail},
		{"guard un-paused, strict, nothing expected", timeline.Report{Guard: unpaused}, true, timeline.Fail},
		{"guard paused, strict", timeline.Report{Expectations: []timeline.Outcome{ok}, Guard: paused}, true, timeline.Pass},
		{"partial keeps what it measured", timeline.Report{Expectations: []timeline.Outcome{ok}, Partial: true}, false, timeline.Pass},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := Decide(&c.r, c.strict, nil); got != c.want {
				t.Errorf("Decide = %s, want %s", got, c.want)
			}
		})
	}
}

// A run whose results could not be written is never a pass, whatever it
// measured.
func TestDecideUnwritten(t *testing.T) {
	r := &timeline.Report{Expectations: []timeline.Outcome{{Expr: "desired >= 2 within 2m", OK: true}}}
	if got := Decide(r, false, errors.New("no space left on device")); got != timeline.Unrecorded {
		t.Errorf("Decide = %s, want %s", got, timeline.Unrecorded)
	}
}
