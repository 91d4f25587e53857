package sim

import (
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/scaleout/scaleout/keda"
)

// autoscaleConfig is a live fleet of one-slot replicas with no cold start,
// min 1, max 10, syncing every 15 s.
func autoscaleConfig() Config {
	cfg := testConfig()
	cfg.Paused = false
	cfg.Replicas = Replicas{Min: 1, Max: 10, Start: 1}
	cfg.MaxNumSeqs = 1
	cfg.ColdStart = 0
	cfg.HPASync = 15 * time.Second
	return cfg
}

// syncs steps a running fleet's fake clock to its HPA syncs.
type syncs struct {
	t *testing.T
	h *harness
	n int
}

// startSyncs waits for the sync Run makes as it starts (t=0).
func startSyncs(t *testing.T, h *harness) *syncs {
	t.Helper()
	waitFor(t, h.f, "first sync", func(s State) bool { return s.HPASyncs == 1 })
	return &syncs{t: t, h: h, n: 1}
}

// at sets the clock to the sync at epoch+sec and waits for Run to make it.
func (s *syncs) at(sec int) State {
	s.t.Helper()
	s.h.clk.Set(epoch.Add(time.Duration(sec) * time.Second))
	st := waitFor(s.t, s.h.f, fmt.Sprintf("sync %d at t=%ds", s.n+1, sec), func(st State) bool { return st.HPASyncs == s.n+1 })
	s.n++
	return st
}

// drain finishes every job in FIFO order (each finish gives the next its slot).
func drain(t *testing.T, h *harness, jobs []*job) {
	t.Helper()
	for i, j := range jobs {
		if !isAdmitted(j) {
			t.Fatalf("job %d has no slot after every earlier one finished", i)
		}
		h.f.finish(j, h.clk.Now(), false)
	}
	if s := h.f.State(); s.Waiting != 0 || s.Running != 0 {
		t.Fatalf("drained: %+v", s)
	}
}

type step struct {
	at      int // seconds after the start
	desired int32
	limited string
}

// TestBehaviorScaleUpPolicy: with spec.behavior, the scale-up policies set
// the pace. 39 waiting at threshold 5 recommend 8 replicas at every sync
// (the queue stays on the first pod); the behavior-unset path doubles (at
// least 4) a sync, a Pods 1 / 15 s policy adds one replica a period, and a
// Pods 1 / 60 s policy one a minute.
func TestBehaviorScaleUpPolicy(t *testing.T) {
	pods := func(period time.Duration) *keda.Behavior {
		b := keda.DefaultBehavior()
		b.ScaleUp.Policies = []keda.Policy{{Type: keda.PodsPolicy, Value: 1, Period: period}}
		return &b
	}
	for _, tt := range []struct {
		name     string
		behavior *keda.Behavior
		steps    []step
	}{
		{"behavior unset", nil, []step{{15, 4, keda.ScaleUpLimit}, {30, 8, ""}, {45, 8, ""}}},
		{"Pods 1 per 15s", pods(15 * time.Second), []step{
			{15, 2, keda.ScaleUpLimit}, {30, 3, keda.ScaleUpLimit}, {45, 4, keda.ScaleUpLimit},
			{60, 5, keda.ScaleUpLimit}, {75, 6, keda.ScaleUpLimit}, {90, 7, keda.ScaleUpLimit}, {105, 8, ""}, {120, 8, ""}}},
		{"Pods 1 per 60s", pods(time.Minute), []step{
			{15, 2, keda.ScaleUpLimit}, {30, 2, keda.ScaleUpLimit}, {45, 2, keda.ScaleUpLimit}, {60, 2, keda.ScaleUpLimit},
			{75, 3, keda.ScaleUpLimit}, {90, 3, keda.ScaleUpLimit}, {135, 4, keda.ScaleUpLimit}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := autoscaleConfig()
			cfg.Behavior = tt.behavior
			h := newHarness(t, cfg, true)
			if cfg.Behavior != nil {
				// The fleet holds its own copy of the behavior.
				cfg.Behavior.ScaleUp.Policies[0].Value = 100
			}
			s := startSyncs(t, h)
			submitN(t, h.f, 40)
			for _, st := range tt.steps {
				got := s.at(st.at)
				if got.Desired != st.desired || got.Replicas != st.desired || got.Limited != st.limited {
					t.Fatalf("t=%d: desired %d replicas %d limited %q, want %d and %q", st.at, got.Desired, got.Replicas, got.Limited, st.desired, st.limited)
				}
				if !slices.Equal(got.Recommendations, []int32{8}) || got.MetricValue != 39 {
					t.Fatalf("t=%d: recommendations %v on %g waiting, want [8] on 39", st.at, got.Recommendations, got.MetricValue)
				}
			}
		})
	}
}

// TestBehaviorScaleDownWindow: with spec.behavior, its scale-down window
// holds desired and Config.ScaleDownWindow plays no part; without it,
// ScaleDownWindow does. The queue's 8 is recommended at t=15 and the queue
// drains before t=30.
func TestBehaviorScaleDownWindow(t *testing.T) {
	window60 := keda.DefaultBehavior()
	window60.ScaleDown.StabilizationWindow = time.Minute
	held := []step{
		{30, 5, keda.ScaleDownStabilized}, {45, 5, keda.ScaleDownStabilized}, {60, 5, keda.ScaleDownStabilized},
		// The 8 of t=15 is exactly 60 s old: out of the window. The empty
		// queue recommends 0, which min holds at 1.
		{75, 1, keda.TooFewReplicas},
	}
	for _, tt := range []struct {
		name      string
		behavior  *keda.Behavior
		legacyWin time.Duration
		up        step
		steps     []step
	}{
		// The default scale-up policies: max(1+4 pods, 1×200 %) = 5.
		{"behavior window 60s, legacy window 0", &window60, 0, step{15, 5, keda.ScaleUpLimit}, held},
		{"behavior window 60s, legacy window 300s", &window60, 300 * time.Second, step{15, 5, keda.ScaleUpLimit}, held},
		{"behavior unset, legacy window 0", nil, 0, step{15, 4, keda.ScaleUpLimit}, []step{{30, 1, keda.TooFewReplicas}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := autoscaleConfig()
			cfg.Behavior = tt.behavior
			cfg.ScaleDownWindow = tt.legacyWin
			h := newHarness(t, cfg, true)
			s := startSyncs(t, h)
			jobs := submitN(t, h.f, 40)
			for i, st := range append([]step{tt.up}, tt.steps...) {
				if i == 1 {
					drain(t, h, jobs)
				}
				got := s.at(st.at)
				if got.Desired != st.desired || got.Replicas != st.desired || got.Limited != st.limited {
					t.Fatalf("t=%d: desired %d replicas %d limited %q, want %d and %q", st.at, got.Desired, got.Replicas, got.Limited, st.desired, st.limited)
				}
			}
		})
	}
}

// TestValueMetricType: a Value target multiplies: desired =
// ceil(current × total / threshold), where AverageValue gives
// ceil(total / threshold). 6 waiting at threshold 5 from 2 replicas.
func TestValueMetricType(t *testing.T) {
	for _, tt := range []struct {
		name  string
		typ   keda.MetricType
		steps []step
	}{
		// ceil(2×6/5) = 3, ceil(3×6/5) = 4, ceil(4×6/5) = 5, ceil(5×6/5) = 6.
		{"Value", keda.Value, []step{{15, 3, ""}, {30, 4, ""}, {45, 5, ""}, {60, 6, ""}}},
		// ceil(6/5) = 2 at every sync.
		{"AverageValue", keda.AverageValue, []step{{15, 2, ""}, {30, 2, ""}}},
		{"unset is AverageValue", "", []step{{15, 2, ""}, {30, 2, ""}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := autoscaleConfig()
			cfg.Replicas.Start = 2
			cfg.MetricType = tt.typ
			h := newHarness(t, cfg, true)
			s := startSyncs(t, h)
			submitN(t, h.f, 8) // one running and three waiting on each pod
			for _, st := range tt.steps {
				got := s.at(st.at)
				if got.MetricValue != 6 {
					t.Fatalf("t=%d: metric %g, want 6 waiting", st.at, got.MetricValue)
				}
				if got.Desired != st.desired || got.Replicas != st.desired || got.Limited != st.limited {
					t.Fatalf("t=%d: desired %d replicas %d limited %q, want %d and %q", st.at, got.Desired, got.Replicas, got.Limited, st.desired, st.limited)
				}
			}
		})
	}
}

// submitKV submits n requests of prompt tokens each, spread over the pods by
// the gateway; a running one holds its prompt's tokens of KV cache.
func submitKV(t *testing.T, f *Fleet, n, prompt int) []*job {
	t.Helper()
	jobs := make([]*job, n)
	for i := range jobs {
		jobs[i] = newJob(prompt, 5, 5, uint64(i), f.clk.Now())
		must(t, f.submit(jobs[i]))
	}
	return jobs
}

// TestKVTrigger: with an empty queue, a KV trigger on sum over the replicas
// scales on KV use; avg under AverageValue cannot leave 2 replicas (the
// fact the keda package's lint warns of), and without the trigger nothing
// scales. Two replicas at 0.8 KV each: sum 1.6, avg 0.8, threshold 0.5.
func TestKVTrigger(t *testing.T) {
	for _, tt := range []struct {
		name    string
		kv      *KVTrigger
		value   float64
		recs    []int32
		desired int32
	}{
		{"sum", &KVTrigger{Aggregate: AggregateSum, Threshold: 0.5}, 1.6, []int32{0, 4}, 4},                         // ceil(1.6/0.5)
		{"sum Value", &KVTrigger{Aggregate: AggregateSum, Type: keda.Value, Threshold: 0.5}, 1.6, []int32{0, 7}, 4}, // ceil(2×3.2), capped at max(2×2, 4)
		{"avg", &KVTrigger{Aggregate: AggregateAvg, Threshold: 0.5}, 0.8, []int32{0, 2}, 2},                         // ceil(0.8/0.5)
		{"avg Value", &KVTrigger{Aggregate: AggregateAvg, Type: keda.Value, Threshold: 0.5}, 0.8, []int32{0, 4}, 4},
		{"none", nil, 0, []int32{0}, 2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := autoscaleConfig()
			cfg.Replicas.Start = 2
			cfg.MaxNumSeqs = 8
			cfg.KVCapacity = 100
			cfg.KVTrigger = tt.kv
			h := newHarness(t, cfg, true)
			if tt.kv != nil {
				tt.kv.Threshold = 1000 // the fleet holds its own copy
			}
			s := startSyncs(t, h)
			submitKV(t, h.f, 4, 40) // two on each pod: 80 of 100 KV tokens
			got := s.at(15)
			if got.Waiting != 0 || got.MetricValue != 0 {
				t.Fatalf("the queue is not empty: %+v", got)
			}
			if math.Abs(got.KVMetricValue-tt.value) > 1e-12 || !slices.Equal(got.Recommendations, tt.recs) {
				t.Fatalf("KV %g, recommendations %v; want %g and %v", got.KVMetricValue, got.Recommendations, tt.value, tt.recs)
			}
			if got.Desired != tt.desired || got.Replicas != tt.desired {
				t.Fatalf("desired %d replicas %d, want %d", got.Desired, got.Replicas, tt.desired)
			}
		})
	}
}

// TestKVTriggerEmptyFleet: with no replica exporting the series the KV
// query is empty, which KEDA reads as 0.
func TestKVTriggerEmptyFleet(t *testing.T) {
	for _, agg := range []string{AggregateSum, AggregateAvg} {
		t.Run(agg, func(t *testing.T) {
			cfg := autoscaleConfig()
			cfg.ColdStart = time.Hour
			cfg.KVTrigger = &KVTrigger{Aggregate: agg, Threshold: 0.5}
			h := newHarness(t, cfg, true)
			s := startSyncs(t, h)
			must(t, h.f.Scale(0)) // the warm pod goes
			must(t, h.f.Scale(1)) // one Starting pod: no series yet
			got := s.at(15)
			if got.Ready != 0 || got.KVMetricValue != 0 || !slices.Equal(got.Recommendations, []int32{0, 0}) || got.Desired != 1 {
				t.Fatalf("%+v", got)
			}
		})
	}
}

// TestKEDAScalerSeriesForBothTriggers: /metrics has keda_scaler_metrics_value
// for the waiting trigger (triggerIndex 0) and the KV trigger (1), each the
// value the HPA read at its last sync; the KV one is the sum of the
// vllm:kv_cache_usage_perc series the pods export.
func TestKEDAScalerSeriesForBothTriggers(t *testing.T) {
	cfg := autoscaleConfig()
	cfg.Replicas.Start = 2
	cfg.MaxNumSeqs = 2
	cfg.KVCapacity = 100
	cfg.ColdStart = time.Hour // new pods stay Starting: the exported KV is the two pods'
	cfg.KVTrigger = &KVTrigger{Aggregate: AggregateSum, Threshold: 0.5}
	h := newHarness(t, cfg, true)
	s := startSyncs(t, h)
	submitKV(t, h.f, 6, 40) // each pod: two running (80 KV tokens), one waiting
	got := s.at(15)
	if got.MetricValue != 2 || math.Abs(got.KVMetricValue-1.6) > 1e-12 || !slices.Equal(got.Recommendations, []int32{1, 4}) || got.Desired != 4 {
		t.Fatalf("t=15: %+v", got)
	}

	fams := scrape(t, h)
	labels := func(index, metric string) map[string]string {
		return map[string]string{"namespace": cfg.Namespace, "scaledObject": cfg.ScaledObject, "scaler": "prometheusScaler",
			"metric": metric, "triggerIndex": index, "type": "ScaledObject"}
	}
	if n := len(fams["keda_scaler_metrics_value"].GetMetric()); n != 2 {
		t.Fatalf("%d keda_scaler_metrics_value series, want 2", n)
	}
	if v := value(t, fams, "keda_scaler_metrics_value", labels("0", "s0-prometheus")); v != 2 {
		t.Errorf("trigger 0 = %g, want 2 waiting", v)
	}
	kv := value(t, fams, "keda_scaler_metrics_value", labels("1", "s1-prometheus"))
	if math.Abs(kv-1.6) > 1e-12 {
		t.Errorf("trigger 1 = %g, want 1.6", kv)
	}
	var sum float64
	for _, m := range fams["vllm:kv_cache_usage_perc"].GetMetric() {
		sum += m.GetGauge().GetValue()
	}
	if sum != kv {
		t.Errorf("sum(vllm:kv_cache_usage_perc) = %g, trigger 1 = %g", sum, kv)
	}

	// Without a KV trigger only trigger 0 is exported.
	cfg.KVTrigger = nil
	h2 := newHarness(t, cfg, true)
	startSyncs(t, h2)
	fams = scrape(t, h2)
	if ms := fams["keda_scaler_metrics_value"].GetMetric(); len(ms) != 1 || labelsOf(ms[0])["triggerIndex"] != "0" {
		t.Fatalf("without a KV trigger: %v", ms)
	}
}
