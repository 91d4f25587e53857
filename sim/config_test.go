package sim

import (
	"errors"
	"strings"
	"testing"
	"time"

	yaml "go.yaml.in/yaml/v4"

	"github.com/scaleout/scaleout/keda"
)

func TestDefaultConfigIsValid(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
}

// TestScaledObjectFieldsValid: what a ScaledObject can carry validates,
// "" metric types and select policy included (KEDA's and Kubernetes'
// defaults).
func TestScaledObjectFieldsValid(t *testing.T) {
	pods1 := keda.Behavior{
		ScaleUp:   keda.Rules{Policies: []keda.Policy{{Type: keda.PodsPolicy, Value: 1, Period: 15 * time.Second}}},
		ScaleDown: keda.Rules{SelectPolicy: keda.SelectDisabled},
	}
	def := keda.DefaultBehavior()
	for i, mutate := range []func(*Config){
		func(c *Config) { c.Behavior, c.MetricType = &def, keda.Value },
		func(c *Config) { c.Behavior, c.MetricType = &pods1, keda.AverageValue },
		func(c *Config) { c.KVTrigger = &KVTrigger{Aggregate: AggregateSum, Threshold: 0.8} },
		func(c *Config) { c.KVTrigger = &KVTrigger{Aggregate: AggregateAvg, Type: keda.Value, Threshold: 0.001} },
	} {
		c := DefaultConfig()
		mutate(&c)
		if err := c.Validate(); err != nil {
			t.Errorf("case %d: %v", i, err)
		}
	}
}

// TestScaledObjectFieldsAreNotKnobs: a sim: block (YAML) cannot set
// Behavior, MetricType or KVTrigger.
func TestScaledObjectFieldsAreNotKnobs(t *testing.T) {
	for _, doc := range []string{"metric_type: Value\n", "behavior: {}\n", "kv_trigger: {threshold: 1}\n", "kvtrigger: {}\n", "metrictype: Value\n"} {
		c := DefaultConfig()
		dec := yaml.NewDecoder(strings.NewReader(doc))
		dec.KnownFields(true)
		if err := dec.Decode(&c); err == nil {
			t.Errorf("%q decoded into Config: %+v", doc, c)
		}
	}
}

func TestValidateErrors(t *testing.T) {
	for _, tt := range []struct {
		name   string
		mutate func(*Config)
		want   []string
	}{
		{"max below min", func(c *Config) { c.Replicas = Replicas{Min: 1, Max: 0, Start: 1} },
			[]string{"replicas.max: 0 is below replicas.min 1", "replicas.start: 1 is outside replicas.min..replicas.max (1..0)"}},
		{"min 0", func(c *Config) { c.Replicas.Min = 0 }, []string{"replicas.min: 0 is below 1"}},
		{"start above max", func(c *Config) { c.Replicas.Start = 9 }, []string{"replicas.start: 9 is outside replicas.min..replicas.max (1..5)"}},
		{"no slots", func(c *Config) { c.MaxNumSeqs = 0 }, []string{"max_num_seqs: 0 gives a replica no running slot"}},
		{"negative queue", func(c *Config) { c.MaxWaiting = -1 }, []string{"max_waiting: -1 is negative"}},
		{"negative ttft", func(c *Config) { c.TTFT = -time.Millisecond }, []string{"ttft: -1ms is negative"}},
		{"negative itl", func(c *Config) { c.ITL = -1 }, []string{"itl: -1ns is negative"}},
		{"negative prefill", func(c *Config) { c.PrefillPerToken = -1 }, []string{"prefill_per_token: -1ns is negative"}},
		{"negative cold start", func(c *Config) { c.ColdStart = -time.Second }, []string{"cold_start: -1s is negative"}},
		{"negative window", func(c *Config) { c.ScaleDownWindow = -time.Second }, []string{"scale_down_window: -1s is negative"}},
		{"slowdown", func(c *Config) { c.BatchSlowdown = -0.5 }, []string{"batch_slowdown: -0.5 is not a factor"}},
		{"kv", func(c *Config) { c.KVCapacity = 0 }, []string{"kv_capacity_tokens: 0 is below 1"}},
		{"context", func(c *Config) { c.MaxModelLen = 1 }, []string{"max_model_len: 1 leaves no room"}},
		{"quota", func(c *Config) { c.GPUQuota = -2 }, []string{"gpu_quota: -2 is negative"}},
		{"threshold", func(c *Config) { c.Threshold = 0 }, []string{"threshold: 0 is not a positive threshold"}},
		{"sync", func(c *Config) { c.HPASync = 0 }, []string{"hpa_sync: 0s is not a positive period"}},
		{"model", func(c *Config) { c.Model = "" }, []string{"model: is empty"}},
		{"names", func(c *Config) { c.Namespace, c.Deployment, c.ScaledObject = "Infer", "", "a_b" },
			[]string{`namespace: "Infer" is not a Kubernetes name`, `deployment: "" is not a Kubernetes name`, `scaled_object: "a_b" is not a Kubernetes name`}},
		{"metric type", func(c *Config) { c.MetricType = "Utilization" },
			[]string{`metric_type: "Utilization" is not a metric type (AverageValue or Value)`}},
		{"kv trigger", func(c *Config) { c.KVTrigger = &KVTrigger{Aggregate: "max", Type: "Average", Threshold: 0} },
			[]string{`kv_trigger.aggregate: "max" is not an aggregation`, `kv_trigger.type: "Average" is not a metric type`,
				"kv_trigger.threshold: 0 is not a positive threshold"}},
		{"kv threshold below a milli", func(c *Config) { c.KVTrigger = &KVTrigger{Aggregate: "avg", Threshold: 0.0005} },
			[]string{"kv_trigger.threshold: 0.0005 is not a positive threshold of at least 0.001"}},
		{"behavior", func(c *Config) {
			c.Behavior = &keda.Behavior{
				ScaleUp: keda.Rules{StabilizationWindow: -time.Second, SelectPolicy: "Most",
					Policies: []keda.Policy{{Type: "Pod", Value: 0, Period: 0}}},
				ScaleDown: keda.Rules{StabilizationWindow: 2 * time.Hour, SelectPolicy: keda.SelectMax,
					Policies: []keda.Policy{{Type: keda.PercentPolicy, Value: 100, Period: time.Hour}}},
			}
		}, []string{
			"behavior.scale_up.stabilization_window: -1s is outside 0s..1h",
			`behavior.scale_up.select_policy: "Most" is not Max, Min or Disabled`,
			`behavior.scale_up.policies[0].type: "Pod" is not Pods or Percent`,
			"behavior.scale_up.policies[0].value: 0 is not positive",
			"behavior.scale_up.policies[0].period: 0s is outside 1s..30m",
			"behavior.scale_down.stabilization_window: 2h0m0s is outside 0s..1h",
			"behavior.scale_down.policies[0].period: 1h0m0s is outside 1s..30m",
		}},
		{"behavior without policies", func(c *Config) {
			b := keda.DefaultBehavior()
			b.ScaleDown.Policies = nil
			c.Behavior = &b
		}, []string{"behavior.scale_down.policies: is empty"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			tt.mutate(&c)
			err := c.Validate()
			if err == nil {
				t.Fatal("want an error")
			}
			msgs := strings.Split(err.Error(), "\n")
			if len(msgs) != len(tt.want) {
				t.Fatalf("errors %q, want %d", msgs, len(tt.want))
			}
			for i, w := range tt.want {
				if !strings.HasPrefix(msgs[i], w) {
					t.Errorf("error %d = %q, want it to start with %q", i, msgs[i], w)
				}
			}
			var fe *FieldError
			if !errors.As(err, &fe) || !strings.HasPrefix(tt.want[0], fe.Field+": ") {
				t.Errorf("errors.As FieldError: %v", fe)
			}
			if _, err := New(c, nil); err == nil {
				t.Error("New accepted an invalid config")
			}
		})
	}
}

func TestConfigFromYAML(t *testing.T) {
	c := DefaultConfig()
	doc := `
model: tiny
max_num_seqs: 4
ttft: 250ms
itl: 5ms
kv_capacity_tokens: 1000
replicas: {min: 2, max: 8, start: 2}
cold_start: 2m
threshold: 2.5
scale_down_window: 60s
scaled_object: raw-vllm
paused: true
seed: 42
`
	dec := yaml.NewDecoder(strings.NewReader(doc))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		t.Fatal(err)
	}
	want := DefaultConfig()
	want.Model, want.MaxNumSeqs, want.TTFT, want.ITL, want.KVCapacity = "tiny", 4, 250*time.Millisecond, 5*time.Millisecond, 1000
	want.Replicas = Replicas{Min: 2, Max: 8, Start: 2}
	want.ColdStart, want.Threshold, want.ScaleDownWindow = 2*time.Minute, 2.5, time.Minute
	want.ScaledObject, want.Paused, want.Seed = "raw-vllm", true, 42
	if c != want {
		t.Errorf("decoded %+v\nwant    %+v", c, want)
	}
	if err := c.Validate(); err != nil {
		t.Error(err)
	}
}
