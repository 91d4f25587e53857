package sim

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"time"

	"github.com/scaleout/scaleout/keda"
	"github.com/scaleout/scaleout/platform"
)

// Config is every knob of the simulated fleet. Each field is a plain value
// with a yaml tag: a scenario's `sim:` block decodes straight into it, and
// `scaleout sim` makes each one a flag whose name is the yaml path with "."
// and "_" turned into "-" (replicas.max → --replicas-max). DefaultConfig
// holds the defaults of both.
//
// The fields tagged `yaml:"-"` at the end are not knobs: they have no flag
// and a sim: block cannot set them. They carry what a ScaledObject manifest
// says about its HPA (spec.behavior, the queue trigger's metricType, a KV
// trigger), and the command fills them from one.
type Config struct {
	Model           string        `yaml:"model"`              // served model name
	MaxModelLen     int           `yaml:"max_model_len"`      // 400 when prompt+max_tokens exceed it
	MaxNumSeqs      int           `yaml:"max_num_seqs"`       // running slots per replica
	MaxWaiting      int           `yaml:"max_waiting"`        // waiting-queue bound per replica; 0 = unbounded; full → 429
	TTFT            time.Duration `yaml:"ttft"`               // base prefill time
	PrefillPerToken time.Duration `yaml:"prefill_per_token"`  // extra prefill per prompt token
	ITL             time.Duration `yaml:"itl"`                // inter-token latency with a batch of one
	BatchSlowdown   float64       `yaml:"batch_slowdown"`     // ITL × (1 + slowdown × (running−1))
	KVCapacity      int           `yaml:"kv_capacity_tokens"` // tokens of KV cache per replica
	Replicas        Replicas      `yaml:"replicas"`           // the ScaledObject's min/max and the Deployment's starting size
	ColdStart       time.Duration `yaml:"cold_start"`         // pod start + model load
	GPUQuota        int           `yaml:"gpu_quota"`          // pods that can hold a GPU; 0 = unlimited; the rest stay Pending
	Threshold       float64       `yaml:"threshold"`          // KEDA threshold on the fleet's total waiting (s0-prometheus, of MetricType)
	HPASync         time.Duration `yaml:"hpa_sync"`           // the HPA controller's sync period
	ScaleDownWindow time.Duration `yaml:"scale_down_window"`  // the downscale stabilization window with Behavior nil (the controller flag)
	Namespace       string        `yaml:"namespace"`          // namespace label of every series
	Deployment      string        `yaml:"deployment"`         // the Deployment (and pod name prefix)
	ScaledObject    string        `yaml:"scaled_object"`      // the ScaledObject; its HPA is keda-hpa-<name>
	Paused          bool          `yaml:"paused"`             // start paused, as the GPU tier ships
	Seed            uint64        `yaml:"seed"`               // pod names, output lengths and ids derive from it

	// Behavior is the HPA's spec.behavior (a ScaledObject's
	// advanced.horizontalPodAutoscalerConfig.behavior, as keda reads it:
	// Kubernetes' defaults filled in). nil is the behavior-unset path:
	// scale-up capped at max(2×current, 4) a sync, scale-down held by the
	// highest recommendation of the last ScaleDownWindow. When set, its
	// windows and policies decide and ScaleDownWindow is not used. New
	// copies it.
	Behavior *keda.Behavior `yaml:"-"`
	// MetricType is the target type of the waiting trigger (s0-prometheus):
	// "" or keda.AverageValue (KEDA's default) gives ceil(total/Threshold);
	// keda.Value gives ceil(current × total/Threshold).
	MetricType keda.MetricType `yaml:"-"`
	// KVTrigger, when set, is a second trigger (s1-prometheus) on the
	// replicas' vllm:kv_cache_usage_perc; the HPA takes the larger of the two
	// recommendations. New copies it.
	KVTrigger *KVTrigger `yaml:"-"`
}

// KVTrigger is a prometheus trigger on KV-cache use, e.g.
// sum(vllm:kv_cache_usage_perc{namespace="inference"}) with threshold 0.8.
// The fleet evaluates it at each HPA sync over the replicas that export the
// series (Ready and terminating pods), as it does the waiting trigger; with
// no such replica the query is empty, which KEDA reads as 0.
type KVTrigger struct {
	Aggregate string          // "sum" or "avg" over the replicas' KV fractions (0..1 each)
	Type      keda.MetricType // "" or keda.AverageValue, or keda.Value
	Threshold float64         // the trigger's threshold, in the aggregate's unit
}

// The aggregations a KVTrigger can take.
const (
	AggregateSum = "sum"
	AggregateAvg = "avg"
)

// Replicas is the ScaledObject's minReplicaCount/maxReplicaCount and the
// Deployment's replicas when the fleet starts.
type Replicas struct {
	Min   int32 `yaml:"min"`
	Max   int32 `yaml:"max"`
	Start int32 `yaml:"start"`
}

// DefaultConfig is a fleet that behaves like the runbook's CPU-sim
// deployment, fast enough for a demo: each value says why it is what it is.
func DefaultConfig() Config {
	return Config{
		// The model the runbook's vLLM and llm-d-inference-sim serve.
		Model: "Qwen/Qwen2.5-1.5B-Instruct",
		// A common --max-model-len for a small model on one GPU: bench prompts
		// and outputs fit, and KV numbers stay small.
		MaxModelLen: 4096,
		// A small batch, so a queue builds under a few dozen concurrent
		// requests and the 1→N proof needs little load (the fixtures were
		// captured with 2; vLLM's default of 256 would need thousands).
		MaxNumSeqs: 8,
		// vLLM's waiting queue is unbounded: overload shows as queue depth
		// (what KEDA scales on), not as errors.
		MaxWaiting: 0,
		// 100 ms to the first token and 10 ms a token: the settings the
		// llm-d-inference-sim captures were taken with.
		TTFT: 100 * time.Millisecond,
		ITL:  10 * time.Millisecond,
		// Prefill of a 1.5B model runs at about ten thousand tokens a second:
		// a 1,000-token prompt adds 100 ms.
		PrefillPerToken: 100 * time.Microsecond,
		// Decode is memory-bound, so a bigger batch slows each sequence a
		// little: 8 running → 1.35× the ITL.
		BatchSlowdown: 0.05,
		// Half of max_num_seqs × max_model_len: KV use climbs high only with
		// long contexts, as on a small GPU.
		KVCapacity: 16384,
		// The runbook's throwaway ScaledObject: min 1, max 5; one warm replica.
		Replicas: Replicas{Min: 1, Max: 5, Start: 1},
		// Pod start plus model load; a GPU takes minutes, 30 s keeps a demo
		// short while still lagging the HPA by two syncs.
		ColdStart: 30 * time.Second,
		// The CPU sim holds no GPU.
		GPUQuota: 0,
		// The runbook's threshold: about 5 waiting requests per replica.
		Threshold: 5,
		// Kubernetes' --horizontal-pod-autoscaler-sync-period and
		// --horizontal-pod-autoscaler-downscale-stabilization: the run
		// should show what a cluster really does; scenarios shorten them.
		HPASync:         15 * time.Second,
		ScaleDownWindow: 300 * time.Second,
		// The runbook's CPU-sim namespace, Deployment and ScaledObject.
		Namespace:    "inference",
		Deployment:   "vllm-sim",
		ScaledObject: "vllm-sim",
		// The runbook's sim ScaledObject is applied un-paused (only the GPU
		// tier ships paused).
		Paused: false,
		// Fixed, so two runs of a scenario see the same pod names and lengths.
		Seed: 1,
	}
}

// FieldError is one invalid Config field, named by its yaml path.
type FieldError struct {
	Field string // e.g. "replicas.max"
	Msg   string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

// dns1123 is a Kubernetes object name (a DNS-1123 label).
var dns1123 = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// Validate reports every invalid field at once (errors.Join of *FieldError).
func (c Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)})
	}
	if c.Model == "" {
		bad("model", "is empty (want the served model name, e.g. %q)", DefaultConfig().Model)
	}
	if c.MaxModelLen < 2 {
		bad("max_model_len", "%d leaves no room for a prompt and one token (want at least 2)", c.MaxModelLen)
	}
	if c.MaxNumSeqs < 1 {
		bad("max_num_seqs", "%d gives a replica no running slot (want at least 1)", c.MaxNumSeqs)
	}
	if c.MaxWaiting < 0 {
		bad("max_waiting", "%d is negative (0 means unbounded)", c.MaxWaiting)
	}
	for _, d := range []struct {
		field string
		v     time.Duration
	}{{"ttft", c.TTFT}, {"prefill_per_token", c.PrefillPerToken}, {"itl", c.ITL}, {"cold_start", c.ColdStart}, {"scale_down_window", c.ScaleDownWindow}} {
		if d.v < 0 {
			bad(d.field, "%v is negative", d.v)
		}
	}
	if c.BatchSlowdown < 0 || c.BatchSlowdown != c.BatchSlowdown {
		bad("batch_slowdown", "%g is not a factor ≥ 0", c.BatchSlowdown)
	}
	if c.KVCapacity < 1 {
		bad("kv_capacity_tokens", "%d is below 1", c.KVCapacity)
	}
	r := c.Replicas
	if r.Min < 1 {
		bad("replicas.min", "%d is below 1 (KEDA turns 0 into 1 for the HPA; the sim does not scale to zero)", r.Min)
	}
	if r.Max < r.Min {
		bad("replicas.max", "%d is below replicas.min %d", r.Max, r.Min)
	}
	if r.Start < r.Min || r.Start > r.Max {
		bad("replicas.start", "%d is outside replicas.min..replicas.max (%d..%d)", r.Start, r.Min, r.Max)
	}
	if c.GPUQuota < 0 {
		bad("gpu_quota", "%d is negative (0 means unlimited)", c.GPUQuota)
	}
	if !validThreshold(c.Threshold) {
		bad("threshold", "%g is not a positive threshold of at least 0.001", c.Threshold)
	}
	if c.HPASync <= 0 {
		bad("hpa_sync", "%v is not a positive period (Kubernetes uses 15s)", c.HPASync)
	}
	for _, n := range []struct{ field, v string }{{"namespace", c.Namespace}, {"deployment", c.Deployment}, {"scaled_object", c.ScaledObject}} {
		if !dns1123.MatchString(n.v) || len(n.v) > 63 {
			bad(n.field, "%q is not a Kubernetes name (lower-case letters, digits and '-', at most 63)", n.v)
		}
	}
	if !validMetricType(c.MetricType) {
		bad("metric_type", "%q is not a metric type (AverageValue or Value)", c.MetricType)
	}
	if k := c.KVTrigger; k != nil {
		if k.Aggregate != AggregateSum && k.Aggregate != AggregateAvg {
			bad("kv_trigger.aggregate", "%q is not an aggregation of %s (sum or avg)", k.Aggregate, platform.VLLMKVCache)
		}
		if !validMetricType(k.Type) {
			bad("kv_trigger.type", "%q is not a metric type (AverageValue or Value)", k.Type)
		}
		if !validThreshold(k.Threshold) {
			bad("kv_trigger.threshold", "%g is not a positive threshold of at least 0.001", k.Threshold)
		}
	}
	if b := c.Behavior; b != nil {
		// keda checks it against Kubernetes' rules; the errors name its
		// fields in the yaml style of the others.
		if err := b.Validate(); err != nil {
			errs = append(errs, behaviorErrors(err)...)
		}
	}
	return errors.Join(errs...)
}

// behaviorNames spells keda.BehaviorError's Go field names in the yaml
// style of the other fields.
var behaviorNames = map[string]string{
	"ScaleUp": "scale_up", "ScaleDown": "scale_down",
	"StabilizationWindow": "stabilization_window", "SelectPolicy": "select_policy", "Policies": "policies",
	"Type": "type", "Value": "value", "Period": "period",
}

// behaviorErrors turns what keda.Behavior.Validate reports into
// *FieldError under "behavior.".
func behaviorErrors(err error) []error {
	all := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		all = j.Unwrap()
	}
	out := make([]error, 0, len(all))
	for _, e := range all {
		var be *keda.BehaviorError
		if errors.As(e, &be) {
			out = append(out, &FieldError{Field: "behavior." + be.Path(behaviorNames), Msg: be.Msg})
		} else {
			out = append(out, &FieldError{Field: "behavior", Msg: e.Error()})
		}
	}
	return out
}

// validMetricType accepts the target types of an external metric; "" is
// AverageValue, KEDA's default.
func validMetricType(t keda.MetricType) bool {
	return t == "" || t == keda.AverageValue || t == keda.Value
}

// validThreshold is a target the HPA can divide by: KEDA hands it over in
// milli-units, so anything under 0.001 becomes 0.
func validThreshold(v float64) bool {
	return v > 0 && v*1000 >= 1 && !math.IsInf(v, 0)
}
