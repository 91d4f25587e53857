package run

import (
	"testing"
	"time"

	"github.com/scaleout/scaleout/keda"
	"github.com/scaleout/scaleout/measure"
)

func predSample(at time.Duration, v float64) measure.Sample {
	return measure.Sample{At: at, Values: []measure.Value{{V: 9}, {V: v}}}
}

// TestStabilizerHoldsTheWindow: the prediction is the highest of the
// window before it, as the HPA holds desired; it falls once the high one
// is older than the window, and a gap is neither filled nor counted.
func TestStabilizerHoldsTheWindow(t *testing.T) {
	st := newStabilizer(&keda.ScaledObject{}, 30*time.Second)
	steps := []struct {
		at   time.Duration
		in   float64
		gap  bool
		want float64
	}{
		{0, 1, false, 1},
		{10 * time.Second, 5, false, 5},
		{20 * time.Second, 1, false, 5},
		{30 * time.Second, 0, true, 0},
		{39 * time.Second, 2, false, 5}, // 5 made at 10 s is within 30 s
		{40 * time.Second, 1, false, 2}, // 5 is 30 s old: out; 2 from 39 s holds
		{70 * time.Second, 1, false, 1},
	}
	for _, s := range steps {
		smp := predSample(s.at, s.in)
		if s.gap {
			smp.Values[1] = measure.Value{Gap: "no trigger value"}
		}
		in := smp.Values[1]
		got := st.apply(smp)
		if s.gap {
			if got.Values[1].OK() {
				t.Errorf("at %s: a gap became %v", s.at, got.Values[1].V)
			}
			continue
		}
		if got.Values[1].V != s.want || got.Values[0].V != 9 {
			t.Errorf("at %s: prediction %v → %v (first value %v), want %v", s.at, s.in, got.Values[1].V, got.Values[0].V, s.want)
		}
		if smp.Values[1] != in {
			t.Errorf("at %s: apply changed the caller's sample", s.at)
		}
	}
}

// TestStabilizerWindowSources: no window is no stabilizer; a ScaledObject
// with spec.behavior brings its own scale-down window.
func TestStabilizerWindowSources(t *testing.T) {
	if st := newStabilizer(&keda.ScaledObject{}, 0); st != nil {
		t.Errorf("window 0: %+v, want nil", st)
	}
	if got := newStabilizer(nil, 0).apply(predSample(0, 3)); got.Values[1].V != 3 {
		t.Errorf("a nil stabilizer changed the prediction to %v", got.Values[1].V)
	}
	so := &keda.ScaledObject{Behavior: &keda.Behavior{ScaleDown: keda.Rules{StabilizationWindow: 2 * time.Minute}}}
	if st := newStabilizer(so, 30*time.Second); st == nil || st.window != 2*time.Minute {
		t.Errorf("with behavior: %+v, want the behavior's 2m window", st)
	}
}
