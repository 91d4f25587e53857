package keda

import (
	"math"
	"strings"
	"testing"
	"time"
)

const rawVLLM = `
apiVersion: v1
kind: Service
metadata: {name: raw-vllm}
---
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata:
  name: raw-vllm
  namespace: serving
  annotations:
    autoscaling.keda.sh/paused: "true"
spec:
  scaleTargetRef:
    name: raw-vllm
  pollingInterval: 15
  cooldownPeriod: 300
  minReplicaCount: 1
  maxReplicaCount: 3
  triggers:
    - type: prometheus
      metadata:
        serverAddress: http://prometheus-operated.monitoring.svc:9090
        query: sum(vllm:num_requests_waiting{namespace="serving"})
        threshold: "5"
    - type: prometheus
      metricType: Value
      metadata:
        serverAddress: http://prometheus-operated.monitoring.svc:9090
        query: sum(vllm:kv_cache_usage_perc{namespace="serving"})
        threshold: "0.8"
        activationThreshold: "0.1"
        ignoreNullValues: "false"
`

func TestParseScaledObject(t *testing.T) {
	sos, err := ParseScaledObjects("so.yaml", []byte(rawVLLM))
	if err != nil {
		t.Fatal(err)
	}
	if len(sos) != 1 {
		t.Fatalf("%d ScaledObjects", len(sos))
	}
	so := sos[0]
	if so.Namespace != "serving" || so.Name != "raw-vllm" || so.Target != "raw-vllm" || so.TargetKind != "Deployment" ||
		so.Min != 1 || so.Max != 3 || so.PollingInterval != 15*time.Second || so.CooldownPeriod != 300*time.Second ||
		!so.Paused || so.HPAName != "keda-hpa-raw-vllm" || so.Behavior != nil || so.Line != 6 {
		t.Errorf("parsed %#v", *so)
	}
	if len(so.Triggers) != 2 {
		t.Fatalf("triggers %+v", so.Triggers)
	}
	t0, t1 := so.Triggers[0], so.Triggers[1]
	if t0.Query != `sum(vllm:num_requests_waiting{namespace="serving"})` || t0.Threshold != 5 || t0.MetricType != AverageValue ||
		!t0.IgnoreNullValues || t0.MetricName() != "s0-prometheus" || t0.ServerAddress != "http://prometheus-operated.monitoring.svc:9090" {
		t.Errorf("trigger 0 %+v", t0)
	}
	if t1.MetricType != Value || t1.Threshold != 0.8 || t1.ActivationThreshold != 0.1 || t1.IgnoreNullValues || t1.MetricName() != "s1-prometheus" {
		t.Errorf("trigger 1 %+v", t1)
	}
	if lint := so.Lint(); len(lint) != 0 {
		t.Errorf("lint: %v", lint)
	}
	h := so.HPA()
	if h.Min != 1 || h.Max != 3 || len(h.Metrics) != 2 || h.Metrics[1] != (Metric{Name: "s1-prometheus", Type: Value, Target: 0.8}) {
		t.Errorf("HPA %+v", h)
	}
}

func TestPredict(t *testing.T) {
	so := &ScaledObject{Min: 0, Max: 10, Triggers: []Trigger{
		{Index: 0, Type: "prometheus", MetricType: AverageValue, Threshold: 5},
		{Index: 1, Type: "prometheus", MetricType: Value, Threshold: 0.8},
	}}
	nan := math.NaN()
	cases := []struct {
		waiting, kv float64
		current     int32
		want        int32
	}{
		{0, nan, 1, 1},    // min 0 becomes 1 for the HPA
		{5.4, nan, 1, 1},  // ratio 1.08: inside the 0.1 tolerance
		{5.6, nan, 1, 2},  // ratio 1.12: ceil(5.6/5)
		{31, nan, 1, 4},   // ceil(31/5) = 7, but one sync goes at most to max(2×1, 4)
		{31, nan, 4, 7},   // from 4 the limit is 8
		{200, nan, 8, 10}, // clamped to max
		{0, 0.4, 2, 1},    // Value: ceil(2 × 0.4/0.8) = 1
		{0, 1.6, 2, 4},    // Value: ceil(2 × 1.6/0.8) = 4
		{12, 2.0, 2, 4},   // the larger trigger wins: 3 (waiting) vs 5 (kv), then the max(2×2, 4) cap
		{31, 1.0, 4, 7},   // and when it is the first: 7 (waiting) vs ceil(4 × 1.25) = 5 (kv)
		{nan, nan, 3, 0},  // nothing known
		{nan, 0.96, 5, 6}, // only kv known: ceil(5 × 1.2) = 6
		{10.4, nan, 2, 2}, // ratio 1.04 on 2 replicas
		{0, nan, 3, 1},    // scale down to min
	}
	for _, c := range cases {
		if got := so.Predict([]float64{c.waiting, c.kv}, c.current); got != c.want {
			t.Errorf("Predict(waiting %v, kv %v, current %d) = %d, want %d", c.waiting, c.kv, c.current, got, c.want)
		}
	}
	b := DefaultBehavior()
	b.ScaleUp.Policies = []Policy{{Type: PodsPolicy, Value: 1, Period: 15 * time.Second}}
	so.Behavior = &b
	if got := so.Predict([]float64{100, nan}, 2); got != 3 {
		t.Errorf("with a Pods 1 policy, from 2: %d, want 3", got)
	}
}

// TestPredictAgreesWithSync: from a fresh HPA, scaling up, Predict is what
// the HPA's first sync decides, whatever the scale-up rules, including
// rules whose limit would fall below current (no policy at all).
func TestPredictAgreesWithSync(t *testing.T) {
	pods1 := DefaultBehavior()
	pods1.ScaleUp.Policies = []Policy{{Type: PodsPolicy, Value: 1, Period: 15 * time.Second}}
	minPolicy := DefaultBehavior()
	minPolicy.ScaleUp.SelectPolicy = SelectMin
	disabled := DefaultBehavior()
	disabled.ScaleUp.SelectPolicy = SelectDisabled
	none := DefaultBehavior()
	none.ScaleUp.Policies = []Policy{} // what scaleUp: {policies: []} would give; the reader refuses it
	for _, tt := range []struct {
		name     string
		behavior *Behavior
	}{{"unset", nil}, {"default", ptr(DefaultBehavior())}, {"Pods 1", &pods1}, {"Min", &minPolicy}, {"Disabled", &disabled}, {"no policy", &none}} {
		so := &ScaledObject{Min: 0, Max: 10, Behavior: tt.behavior, Triggers: []Trigger{{Index: 0, Type: "prometheus", MetricType: AverageValue, Threshold: 5}}}
		for _, c := range []struct {
			waiting float64
			current int32
		}{{100, 2}, {100, 1}, {12, 2}, {31, 4}, {100, 9}} {
			want := so.HPA().Sync(t0, c.current, []float64{c.waiting}).Desired
			if got := so.Predict([]float64{c.waiting}, c.current); got != want {
				t.Errorf("%s: Predict(waiting %g, current %d) = %d, HPA.Sync = %d", tt.name, c.waiting, c.current, got, want)
			}
		}
	}
	// The case the review found: ceil(100/5) = 20, no scale-up policy, from 2.
	if got := (&ScaledObject{Max: 10, Behavior: &none, Triggers: []Trigger{{Type: "prometheus", Threshold: 5}}}).Predict([]float64{100}, 2); got != 2 {
		t.Errorf("no scale-up policy, from 2: Predict %d, want 2 (the size it has)", got)
	}
}

func ptr[T any](v T) *T { return &v }

func TestLint(t *testing.T) {
	doc := `
kind: ScaledObject
metadata: {name: x}
spec:
  scaleTargetRef: {name: x}
  triggers:
    - type: prometheus
      metadata: {query: 'avg(vllm:gpu_cache_usage_perc)', threshold: "0.8"}
    - type: prometheus
      metadata: {query: 'vllm:num_requests_waiting', threshold: "5"}
`
	sos, err := ParseScaledObjects("x.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	lint := strings.Join(sos[0].Lint(), "\n")
	for _, want := range []string{
		"trigger 0 (avg(vllm:gpu_cache_usage_perc)) averages under AverageValue",
		"asks for at most 2 replicas",
		"trigger 0 uses vllm:gpu_cache_usage_perc",
		"trigger 1 (vllm:num_requests_waiting) is not aggregated",
	} {
		if !strings.Contains(lint, want) {
			t.Errorf("lint lacks %q:\n%s", want, lint)
		}
	}
	if sos[0].Namespace != "default" || sos[0].Max != 100 || sos[0].Min != 0 || sos[0].PollingInterval != 30*time.Second {
		t.Errorf("defaults: %+v", sos[0])
	}
}

func TestBehavior(t *testing.T) {
	doc := `
kind: ScaledObject
metadata: {name: b, namespace: n}
spec:
  scaleTargetRef: {name: d}
  advanced:
    horizontalPodAutoscalerConfig:
      name: my-hpa
      behavior:
        scaleDown:
          stabilizationWindowSeconds: 60
          policies: [{type: Pods, value: 1, periodSeconds: 30}]
  triggers: [{type: prometheus, metadata: {query: 'sum(x)', threshold: "2"}}]
`
	sos, err := ParseScaledObjects("b.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	so := sos[0]
	if so.HPAName != "my-hpa" || so.Behavior == nil {
		t.Fatalf("%+v", so)
	}
	d, u := so.Behavior.ScaleDown, so.Behavior.ScaleUp
	if d.StabilizationWindow != time.Minute || len(d.Policies) != 1 || d.Policies[0] != (Policy{Type: PodsPolicy, Value: 1, Period: 30 * time.Second}) {
		t.Errorf("scale down %+v", d)
	}
	if len(u.Policies) != 2 || u.StabilizationWindow != 0 {
		t.Errorf("scale up keeps the defaults: %+v", u)
	}
}

func TestManifestErrors(t *testing.T) {
	cases := []struct{ doc, want string }{
		{"kind: Service\n", "m.yaml: no ScaledObject"},
		{"kind: ScaledObject\nmetadata: {name: x}\nspec:\n  scaleTargetRef: {name: x}\n  maxReplicaCount: lots\n  triggers: [{type: prometheus, metadata: {query: 'sum(x)'}}]\n",
			`m.yaml:5:20: spec.maxReplicaCount: "lots" is not a number`},
		{"kind: ScaledObject\nmetadata: {name: x}\nspec:\n  scaleTargetRef: {name: x}\n  triggers: [{type: prometheus, metadata: {query: 'sum(x)'}}]\n",
			"m.yaml:5:14: spec.triggers[0].metadata.threshold: missing"},
		{"kind: ScaledObject\nmetadata: {name: x}\nspec: {scaleTargetRef: {name: x}}\n", "spec.triggers: missing"},
		{"a: [\n", "m.yaml:2:1: not valid YAML: did not find expected node content"},
	}
	for _, c := range cases {
		_, err := ParseScaledObjects("m.yaml", []byte(c.doc))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("err = %v, want %q", err, c.want)
		}
	}
}

// TestManifestNotAString: a name given as a list is reported as that, once,
// not again as missing.
func TestManifestNotAString(t *testing.T) {
	doc := "kind: ScaledObject\nmetadata: {name: [x]}\nspec:\n  scaleTargetRef: {name: {a: b}}\n  triggers: [{type: prometheus, metadata: {query: [q], threshold: '5'}}]\n"
	_, err := ParseScaledObjects("m.yaml", []byte(doc))
	want := "m.yaml:2:18: metadata.name: want a single value, got a list\n" +
		"m.yaml:4:26: spec.scaleTargetRef.name: want a single value, got a mapping\n" +
		"m.yaml:5:51: spec.triggers[0].metadata.query: want a single value, got a list"
	if err == nil || err.Error() != want {
		t.Errorf("got\n%v\nwant\n%s", err, want)
	}
}

// TestBehaviorErrors: the reader refuses what Behavior.Validate refuses, each
// error at its place in the manifest, and only once.
func TestBehaviorErrors(t *testing.T) {
	const f = "spec.advanced.horizontalPodAutoscalerConfig.behavior."
	cases := []struct{ rules, want string }{
		{"scaleUp: {policies: []}", "m.yaml:9:30: " + f + "scaleUp.policies: is empty (want at least one policy, or a Disabled select policy)"},
		{"scaleDown: {selectPolicy: Disabled, policies: []}", ""},
		{"scaleUp: {selectPolicy: Most}", "m.yaml:9:34: " + f + `scaleUp.selectPolicy: "Most" is not Max, Min or Disabled`},
		{"scaleUp: {stabilizationWindowSeconds: 7200}", "m.yaml:9:48: " + f + "scaleUp.stabilizationWindowSeconds: 2h0m0s is outside 0s..1h (Kubernetes' bounds)"},
		{"scaleDown: {policies: [{type: Pods, value: 0, periodSeconds: 15}, {type: Pod, value: 1, periodSeconds: 3600}]}",
			"m.yaml:9:53: " + f + "scaleDown.policies[0].value: 0 is not positive\n" +
				"m.yaml:9:83: " + f + `scaleDown.policies[1].type: "Pod" is not Pods or Percent` + "\n" +
				"m.yaml:9:113: " + f + "scaleDown.policies[1].periodSeconds: 1h0m0s is outside 1s..30m (Kubernetes' bounds)"},
		// A policy without a type is placed at the policy.
		{"scaleUp: {policies: [{value: 1, periodSeconds: 15}]}", "m.yaml:9:31: " + f + `scaleUp.policies[0].type: "" is not Pods or Percent`},
		// A value the reader cannot read is reported once, not again as 0.
		{"scaleUp: {policies: [{type: Pods, value: lots, periodSeconds: 15}]}", "m.yaml:9:51: " + f + `scaleUp.policies[0].value: "lots" is not a number`},
	}
	for _, c := range cases {
		doc := "kind: ScaledObject\nmetadata: {name: x}\nspec:\n  scaleTargetRef: {name: x}\n" +
			"  triggers: [{type: prometheus, metadata: {query: 'sum(x)', threshold: '5'}}]\n" +
			"  advanced:\n    horizontalPodAutoscalerConfig:\n      behavior:\n        {" + c.rules + "}\n"
		_, err := ParseScaledObjects("m.yaml", []byte(doc))
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != c.want {
			t.Errorf("%s:\n got %s\nwant %s", c.rules, got, c.want)
		}
	}
}
