package keda

import (
	"math"
	"slices"
	"testing"
	"time"

	"pgregory.net/rapid"
)

var t0 = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

func at(sec int) time.Time { return t0.Add(time.Duration(sec) * time.Second) }

func TestRecommend(t *testing.T) {
	avg := func(target float64) Metric { return Metric{Name: "s0-prometheus", Type: AverageValue, Target: target} }
	val := func(target float64) Metric { return Metric{Name: "s0-prometheus", Type: Value, Target: target} }
	tests := []struct {
		name    string
		m       Metric
		total   float64
		current int32
		want    int32
	}{
		// AverageValue: ratio = total / (target × current).
		{"avg ratio 0.9 is inside", avg(1), 9, 10, 10},
		{"avg ratio 1.1 is inside", avg(1), 11, 10, 10},
		{"avg ratio 0.89 is outside: ceil(8.9/1)", avg(1), 8.9, 10, 9},
		{"avg ratio 1.11 is outside: ceil(11.1/1)", avg(1), 11.1, 10, 12},
		{"avg 11/(5×2)=1.1 inside", avg(5), 11, 2, 2},
		{"avg 12/(5×2)=1.2: ceil(12/5)", avg(5), 12, 2, 3},
		{"avg queue 0 asks for 0", avg(5), 0, 3, 0},
		{"avg 37 waiting over 5: ceil(7.4)", avg(5), 37, 1, 8},
		{"avg huge total caps at int32", avg(1), 1e12, 1, math.MaxInt32},
		{"avg current 0: ceil(total/target)", avg(5), 6, 0, 2},
		{"avg below one milli is 0 (KEDA truncates to milli)", avg(0.001), 0.0004, 1, 0},
		// Value: ratio = total / target, desired = ceil(current × ratio).
		{"value ratio 1.1 inside", val(10), 11, 3, 3},
		{"value ratio 0.9 inside", val(10), 9, 3, 3},
		{"value ratio 1.2: ceil(3×1.2)", val(10), 12, 3, 4},
		{"value ratio 0.5: ceil(3×0.5)", val(10), 5, 3, 2},
		{"value current 0: ceil(ratio)", val(10), 25, 0, 3},
		// Unusable input keeps current.
		{"NaN keeps current", avg(5), math.NaN(), 4, 4},
		{"zero target keeps current", avg(0), 10, 4, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Recommend(tt.m, tt.total, tt.current, 0.1); got != tt.want {
				t.Errorf("Recommend(%v, total %g, current %d) = %d, want %d", tt.m, tt.total, tt.current, got, tt.want)
			}
		})
	}
}

// step is one sync of a scripted HPA: at second `at`, with `current`
// replicas and metric totals, the controller must decide want/limited.
type step struct {
	at      int
	current int32
	totals  []float64
	want    int32
	limited string
}

func runSteps(t *testing.T, h *HPA, steps []step) {
	t.Helper()
	for _, s := range steps {
		d := h.Sync(at(s.at), s.current, s.totals)
		if d.Desired != s.want || d.Limited != s.limited {
			t.Fatalf("t=%ds current %d totals %v: desired %d (%q), want %d (%q); recommendations %v",
				s.at, s.current, s.totals, d.Desired, d.Limited, s.want, s.limited, d.Recommendations)
		}
	}
}

func queueHPA(min, max int32) *HPA {
	return &HPA{
		Min: min, Max: max, Tolerance: 0.1, DownscaleWindow: 300 * time.Second,
		Metrics: []Metric{{Name: "s0-prometheus", Type: AverageValue, Target: 5}},
	}
}

func q(v float64) []float64 { return []float64{v} }

func TestSyncScaleUpLimitBehaviorUnset(t *testing.T) {
	// 1000 waiting over threshold 5 asks for 200 every time; behavior unset
	// caps each sync at max(2×current, 4).
	runSteps(t, queueHPA(1, 20), []step{
		{0, 1, q(1000), 4, ScaleUpLimit},       // max(2×1, 4) = 4
		{15, 4, q(1000), 8, ScaleUpLimit},      // max(2×4, 4) = 8
		{30, 8, q(1000), 16, ScaleUpLimit},     // 16 < max 20
		{45, 16, q(1000), 20, TooManyReplicas}, // 32 ≥ max 20: the max holds it
		{60, 20, q(1000), 20, TooManyReplicas},
	})
}

func TestSyncClamp(t *testing.T) {
	// Max below the rate limit: TooManyReplicas.
	runSteps(t, queueHPA(1, 5), []step{
		{0, 3, q(100), 5, TooManyReplicas}, // ceil(100/5)=20; limit max(6,4)=6 > max 5
	})
	// Min: a window of 0 forgets the initial recommendation after one sync.
	h := queueHPA(2, 10)
	h.DownscaleWindow = 0
	runSteps(t, h, []step{
		{0, 3, q(0), 3, ScaleDownStabilized}, // the initial recommendation (3, at t=0) is inside a 0s window at t=0
		{15, 3, q(0), 2, TooFewReplicas},     // ceil(0/5)=0 < min 2
	})
	// Current outside [min, max] is corrected before any metric is read.
	h = queueHPA(1, 10)
	if d := h.Sync(at(0), 12, q(0)); d.Desired != 10 || d.Limited != TooManyReplicas || d.Recommendations != nil {
		t.Errorf("current 12 > max 10: %+v", d)
	}
	if d := h.Sync(at(15), 0, q(50)); d.Desired != 0 || d.Limited != ScalingDisabled {
		t.Errorf("current 0 with min 1: %+v", d)
	}
}

func TestSyncScaleDownStabilization(t *testing.T) {
	// Behavior unset, window 300 s: desired stays at the highest
	// recommendation of the last 300 s (a sample exactly 300 s old counts).
	runSteps(t, queueHPA(1, 10), []step{
		{0, 1, q(20), 4, ""},                    // ceil(20/5) = 4 = max(2×1, 4)
		{15, 4, q(20), 4, ""},                   // ratio 20/(5×4) = 1: inside
		{30, 4, q(0), 4, ScaleDownStabilized},   // asks 0; window holds 4 (t=0, t=15)
		{135, 4, q(10), 4, ScaleDownStabilized}, // ratio 0.5, asks ceil(10/5) = 2
		{300, 4, q(0), 4, ScaleDownStabilized},  // cutoff t=0: the 4 of t=0 still counts
		{315, 4, q(0), 4, ScaleDownStabilized},  // cutoff t=15: the 4 of t=15 still counts
		{330, 4, q(0), 2, ScaleDownStabilized},  // cutoff t=30: highest left is the 2 of t=135
		{435, 2, q(0), 2, ScaleDownStabilized},  // cutoff t=135: still the 2
		{450, 2, q(0), 1, TooFewReplicas},       // every recommendation is 0; min 1
	})
}

func TestSyncMetricsMissing(t *testing.T) {
	h := queueHPA(1, 10)
	d := h.Sync(at(0), 3, q(math.NaN()))
	if d.Desired != 3 || !d.MetricsMissing() || d.Limited != MetricsUnavailable || !slices.Equal(d.Recommendations, []int32{-1}) {
		t.Fatalf("all metrics missing: %+v", d)
	}
	// A missing metric records no recommendation: scale-up right after works
	// from the recommendations that were made.
	runSteps(t, h, []step{{15, 3, q(40), 6, ScaleUpLimit}}) // ceil(40/5)=8 > max(2×3,4)=6

	// Two metrics: one missing and the other scaling up: the working one wins.
	two := &HPA{Min: 1, Max: 10, Tolerance: 0.1, DownscaleWindow: 300 * time.Second, Metrics: []Metric{
		{Name: "s0-prometheus", Type: AverageValue, Target: 5},
		{Name: "s1-prometheus", Type: Value, Target: 0.8},
	}}
	d = two.Sync(at(0), 2, []float64{math.NaN(), 1.2}) // Value: ceil(2 × 1.2/0.8) = 3
	if d.Desired != 3 || d.MetricsMissing() || !slices.Equal(d.Recommendations, []int32{-1, 3}) {
		t.Fatalf("one missing, other scaling up: %+v", d)
	}
	// One missing and the other scaling down: the controller does not scale down.
	d = two.Sync(at(15), 3, []float64{math.NaN(), 0.2}) // Value: ceil(3 × 0.25) = 1
	if d.Desired != 3 || !d.MetricsMissing() || !slices.Equal(d.Recommendations, []int32{-1, 1}) {
		t.Fatalf("one missing, other scaling down: %+v", d)
	}
	// Both present: the largest recommendation wins.
	d = two.Sync(at(30), 3, []float64{31, 0.8}) // avg: ceil(31/5)=7; value: ratio 1 → 3
	if d.Desired != 6 || d.Limited != ScaleUpLimit || !slices.Equal(d.Recommendations, []int32{7, 3}) {
		t.Fatalf("largest wins: %+v", d)
	}
	// No metrics at all is the same as all missing.
	none := &HPA{Min: 1, Max: 3, Tolerance: 0.1}
	if d := none.Sync(at(0), 2, nil); !d.MetricsMissing() || d.Desired != 2 {
		t.Fatalf("no metrics: %+v", d)
	}
}

func TestSyncDefaultBehaviorScaleUp(t *testing.T) {
	b := DefaultBehavior()
	h := queueHPA(1, 100)
	h.Behavior = &b
	runSteps(t, h, []step{
		{0, 1, q(1000), 5, ScaleUpLimit},    // Pods: 1+4=5, Percent: ceil(1×2)=2; Max → 5
		{15, 5, q(1000), 10, ScaleUpLimit},  // the t=0 event is exactly 15 s old: out. 5+4=9, 5×2=10 → 10
		{20, 10, q(1000), 10, ScaleUpLimit}, // the t=15 event (+5) is inside: start 5 → limit 10 = current
		{30, 10, q(1000), 20, ScaleUpLimit}, // t=15 event out: start 10 → 14 or 20 → 20
		{45, 20, q(1000), 40, ScaleUpLimit},
		{60, 40, q(1000), 80, ScaleUpLimit},
		{75, 80, q(1000), 100, TooManyReplicas},
	})
}

func TestSyncBehaviorPolicies(t *testing.T) {
	// Scale down at most 1 pod a minute, no window.
	h := queueHPA(1, 10)
	h.Behavior = &Behavior{
		ScaleUp: DefaultBehavior().ScaleUp,
		ScaleDown: Rules{SelectPolicy: SelectMax, Policies: []Policy{
			{Type: PodsPolicy, Value: 1, Period: 60 * time.Second},
		}},
	}
	runSteps(t, h, []step{
		{0, 5, q(0), 4, ScaleDownLimit},  // asks 0; 5−1 = 4
		{30, 4, q(0), 4, ScaleDownLimit}, // 1 removed in the last 60 s: start 5 → limit 4 = current
		{60, 4, q(0), 3, ScaleDownLimit}, // the t=0 event is exactly 60 s old: out
		{61, 3, q(0), 3, ScaleDownLimit},
	})

	// Percent 100 per 15 s with selectPolicy Min among Pods 4: the smaller wins.
	h = queueHPA(1, 100)
	h.Behavior = &Behavior{
		ScaleUp: Rules{SelectPolicy: SelectMin, Policies: []Policy{
			{Type: PodsPolicy, Value: 4, Period: 15 * time.Second},
			{Type: PercentPolicy, Value: 100, Period: 15 * time.Second},
		}},
		ScaleDown: DefaultBehavior().ScaleDown,
	}
	runSteps(t, h, []step{
		{0, 1, q(1000), 2, ScaleUpLimit},   // min(1+4, 1×2) = 2
		{15, 2, q(1000), 4, ScaleUpLimit},  // min(6, 4)
		{30, 4, q(1000), 8, ScaleUpLimit},  // min(8, 8)
		{45, 8, q(1000), 12, ScaleUpLimit}, // min(12, 16)
	})

	// Disabled holds the size.
	h = queueHPA(1, 100)
	h.Behavior = &Behavior{ScaleUp: Rules{SelectPolicy: SelectDisabled}, ScaleDown: DefaultBehavior().ScaleDown}
	runSteps(t, h, []step{{0, 2, q(1000), 2, ScaleUpLimit}})

	// A scale-up window keeps the lowest recommendation of the window.
	h = queueHPA(1, 100)
	b := DefaultBehavior()
	b.ScaleUp.StabilizationWindow = 60 * time.Second
	h.Behavior = &b
	runSteps(t, h, []step{
		{0, 1, q(15), 1, ScaleUpStabilized},   // asks 3; the initial recommendation 1 (t=0) is in the window: min(3, 1)
		{30, 1, q(15), 1, ScaleUpStabilized},  // still in the window
		{60, 1, q(15), 3, ""},                 // the t=0 samples are exactly 60 s old: out (after the cutoff, not at it)
		{75, 3, q(5), 3, ScaleDownStabilized}, // asks ceil(5/5)=1; the 300 s down window holds 3
	})
}

func TestDefaultBehavior(t *testing.T) {
	b := DefaultBehavior()
	want := Behavior{
		ScaleUp: Rules{SelectPolicy: "Max", Policies: []Policy{
			{"Pods", 4, 15 * time.Second}, {"Percent", 100, 15 * time.Second},
		}},
		ScaleDown: Rules{StabilizationWindow: 300 * time.Second, SelectPolicy: "Max", Policies: []Policy{
			{"Percent", 100, 15 * time.Second},
		}},
	}
	if b.ScaleUp.StabilizationWindow != want.ScaleUp.StabilizationWindow ||
		b.ScaleUp.SelectPolicy != want.ScaleUp.SelectPolicy || !slices.Equal(b.ScaleUp.Policies, want.ScaleUp.Policies) ||
		b.ScaleDown.StabilizationWindow != want.ScaleDown.StabilizationWindow ||
		b.ScaleDown.SelectPolicy != want.ScaleDown.SelectPolicy || !slices.Equal(b.ScaleDown.Policies, want.ScaleDown.Policies) {
		t.Fatalf("DefaultBehavior() = %+v, want %+v", b, want)
	}
}

// TestSyncProperties: desired always lies in [min, max], and under a
// constant metric the HPA settles on one size within the window plus a few
// syncs.
func TestSyncProperties(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		minR := rapid.Int32Range(1, 10).Draw(rt, "min")
		maxR := rapid.Int32Range(minR, 60).Draw(rt, "max")
		target := rapid.Float64Range(0.5, 20).Draw(rt, "target")
		window := time.Duration(rapid.IntRange(0, 20).Draw(rt, "windowSyncs")) * 15 * time.Second
		h := &HPA{Min: minR, Max: maxR, Tolerance: 0.1, DownscaleWindow: window,
			Metrics: []Metric{{Name: "s0-prometheus", Type: AverageValue, Target: target}}}
		if rapid.Bool().Draw(rt, "behavior") {
			b := DefaultBehavior()
			b.ScaleDown.StabilizationWindow = window
			h.Behavior = &b
		}
		current := rapid.Int32Range(minR, maxR).Draw(rt, "start")
		now := t0
		// A random history first: desired must stay in range throughout.
		for i, n := 0, rapid.IntRange(0, 40).Draw(rt, "steps"); i < n; i++ {
			total := rapid.Float64Range(0, 1000).Draw(rt, "total")
			if rapid.IntRange(0, 9).Draw(rt, "missing") == 0 {
				total = math.NaN()
			}
			d := h.Sync(now, current, []float64{total})
			if d.Desired < minR || d.Desired > maxR {
				rt.Fatalf("t=%v current %d total %g: desired %d outside [%d, %d]", now.Sub(t0), current, total, d.Desired, minR, maxR)
			}
			current = d.Desired
			now = now.Add(15 * time.Second)
		}
		// Then a constant metric: it must settle.
		total := rapid.Float64Range(0, 1000).Draw(rt, "constant")
		syncs := int(window/(15*time.Second)) + 30
		var last []int32
		for i := 0; i < syncs; i++ {
			d := h.Sync(now, current, []float64{total})
			if d.Desired < minR || d.Desired > maxR {
				rt.Fatalf("desired %d outside [%d, %d]", d.Desired, minR, maxR)
			}
			current = d.Desired
			last = append(last, current)
			now = now.Add(15 * time.Second)
		}
		tail := last[len(last)-5:]
		for _, v := range tail {
			if v != tail[0] {
				rt.Fatalf("constant total %g (target %g) did not settle: %v", total, target, last)
			}
		}
		// Settled means: what the metric asks for, clamped, or a size the
		// tolerance accepts.
		want := min(max(int32(math.Ceil(milli(total)/milli(target))), minR), maxR)
		ratio := milli(total) / (milli(target) * float64(current))
		if current != want && !within(ratio, 0.1) {
			rt.Fatalf("settled at %d; the metric asks for %d (ratio %g)", current, want, ratio)
		}
	})
}
