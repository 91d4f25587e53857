package keda

import (
	"errors"
	"fmt"
	"math"
	"os"
	"strings"
	"time"

	yaml "go.yaml.in/yaml/v4"

	"github.com/scaleout/scaleout/internal/yamlread"
	"github.com/scaleout/scaleout/platform"
	"github.com/scaleout/scaleout/promql"
)

// ScaledObject is what scaleout needs of a KEDA ScaledObject manifest:
// who it scales, within which bounds, on which Prometheus queries, and the
// HPA KEDA makes of it.
type ScaledObject struct {
	File            string
	Line            int
	Namespace       string // metadata.namespace ("default" when absent)
	Name            string
	Target          string // spec.scaleTargetRef.name
	TargetKind      string // spec.scaleTargetRef.kind (Deployment when absent)
	Min             int32  // spec.minReplicaCount (KEDA's default 0)
	Max             int32  // spec.maxReplicaCount (KEDA's default 100)
	PollingInterval time.Duration
	CooldownPeriod  time.Duration
	Paused          bool   // autoscaling.keda.sh/paused: "true"
	PausedReplicas  *int32 // autoscaling.keda.sh/paused-replicas
	HPAName         string // keda-hpa-<name>, or advanced.horizontalPodAutoscalerConfig.name
	Behavior        *Behavior
	Triggers        []Trigger // every trigger, prometheus or not
}

// Trigger is one entry of spec.triggers. Only prometheus triggers carry a
// query; the others are listed so the HPA's metric names stay right.
type Trigger struct {
	Index               int
	Line                int
	Type                string
	Name                string
	MetricType          MetricType
	ServerAddress       string
	Query               string
	Threshold           float64
	ActivationThreshold float64
	IgnoreNullValues    bool
}

// MetricName is the external metric KEDA gives the HPA for the trigger.
func (t Trigger) MetricName() string { return platform.KEDAMetricName(t.Index, t.Type) }

// Class is what the trigger's query measures (the queue, the KV cache or
// something else) and its aggregation, read from the parsed query.
func (t Trigger) Class() platform.Class { return platform.Classify(t.Query) }

// Aggregation is the aggregation around the trigger's query (sum, avg,
// max, min, count), or "" for a bare selector or a query outside the
// subset promql reads.
func (t Trigger) Aggregation() string { return string(t.Class().Agg) }

// Metric is the trigger as the HPA model's metric.
func (t Trigger) Metric() Metric {
	return Metric{Name: t.MetricName(), Type: t.MetricType, Target: t.Threshold}
}

// HPAMin is the HPA's minReplicas: KEDA turns a minReplicaCount of 0 into 1
// (it scales 1↔0 itself).
func (so *ScaledObject) HPAMin() int32 { return max(so.Min, 1) }

// Prometheus returns the prometheus triggers.
func (so *ScaledObject) Prometheus() []Trigger {
	var out []Trigger
	for _, t := range so.Triggers {
		if t.Type == platform.KEDAPrometheus {
			out = append(out, t)
		}
	}
	return out
}

// HPA is the HPA model KEDA's HPA for this ScaledObject follows, with one
// metric per prometheus trigger.
func (so *ScaledObject) HPA() *HPA {
	h := &HPA{Min: so.HPAMin(), Max: so.Max, Tolerance: DefaultTolerance, Behavior: so.Behavior, DownscaleWindow: DefaultDownscaleWindow}
	for _, t := range so.Prometheus() {
		h.Metrics = append(h.Metrics, t.Metric())
	}
	return h
}

// Predict is the desired replicas the HPA should reach at its next sync,
// given each prometheus trigger's total (NaN when unknown) and the current
// replicas: the largest trigger's recommendation (tolerance, AverageValue or
// Value), within the scale-up rate one sync allows, clamped to the bounds.
// Stabilization is left out on purpose: it only ever holds desired up, and
// scale-down is judged by its own KPI. It returns 0 when no total is known.
func (so *ScaledObject) Predict(totals []float64, current int32) int32 {
	current = max(current, 1)
	var best int32
	known := false
	for i, t := range so.Prometheus() {
		if i >= len(totals) || math.IsNaN(totals[i]) {
			continue
		}
		known = true
		best = max(best, Recommend(t.Metric(), totals[i], current, DefaultTolerance))
	}
	if !known {
		return 0
	}
	if best > current {
		best = min(best, so.scaleUpLimit(current))
	}
	return min(max(best, so.HPAMin()), so.Max)
}

// scaleUpLimit is the most replicas one sync may reach from current, with
// no scale events in the policies' periods (a prediction has no history).
// It is never below current, as in HPA.Sync.
func (so *ScaledObject) scaleUpLimit(current int32) int32 {
	if so.Behavior == nil {
		return legacyScaleUpLimit(current)
	}
	return scaleLimit(time.Time{}, current, nil, nil, so.Behavior.ScaleUp, true)
}

// Lint returns the shapes that cannot scale as intended, each with the fix.
func (so *ScaledObject) Lint() []string {
	var out []string
	proms := so.Prometheus()
	if len(proms) == 0 {
		out = append(out, fmt.Sprintf("%s/%s has no prometheus trigger: scaleout can watch its replicas but not predict them", so.Namespace, so.Name))
	}
	for _, t := range proms {
		q, c := t.Query, t.Class()
		if c.Agg == promql.Avg && t.MetricType == AverageValue {
			out = append(out, fmt.Sprintf("trigger %d (%s) averages under AverageValue: desired = ceil(avg / %g) does not grow with more replicas%s; use sum(…) or metricType: Value",
				t.Index, q, t.Threshold, avgCeiling(c, t.Threshold)))
		}
		if c.Err == nil && c.Agg == promql.None { // a query outside the subset may well aggregate
			out = append(out, fmt.Sprintf("trigger %d (%s) is not aggregated: KEDA needs exactly one sample and fails on several; wrap it in sum(…)", t.Index, q))
		}
		for _, r := range platform.Retired(q) {
			out = append(out, fmt.Sprintf("trigger %d uses %s", t.Index, r))
		}
		if t.Threshold <= 0 {
			out = append(out, fmt.Sprintf("trigger %d has threshold %g: the HPA divides by it; give a positive threshold", t.Index, t.Threshold))
		}
	}
	if so.Min > so.Max {
		out = append(out, fmt.Sprintf("minReplicaCount %d is above maxReplicaCount %d", so.Min, so.Max))
	}
	return out
}

// avgCeiling says how far an averaged KV fraction can drive desired.
func avgCeiling(c platform.Class, threshold float64) string {
	if c.Kind != platform.KVTrigger || threshold <= 0 {
		return ""
	}
	return fmt.Sprintf(" (a KV fraction is at most 1, so it asks for at most %d replicas)", int(math.Ceil(1/threshold)))
}

// ReadScaledObjects reads every ScaledObject of a manifest file (several
// YAML documents may stand in it; other kinds are skipped).
func ReadScaledObjects(path string) ([]*ScaledObject, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParseScaledObjects(path, data)
}

// ParseScaledObjects reads the ScaledObjects of data; file names it in
// errors. It is an error when there is none. Problems are
// yamlread.Errors, each at its line and column.
func ParseScaledObjects(file string, data []byte) ([]*ScaledObject, error) {
	docs, err := yamlread.Documents(file, data)
	if err != nil {
		return nil, err
	}
	r := &soReader{Reader: &yamlread.Reader{File: file}}
	var out []*ScaledObject
	for _, doc := range docs {
		if so := r.read(doc); so != nil {
			out = append(out, so)
		}
	}
	if err := r.Err(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, yamlread.Errors{{File: file, Msg: "no ScaledObject (kind: ScaledObject, apiVersion: keda.sh/v1alpha1) in the file"}}
	}
	return out, nil
}

// soReader reads a manifest leniently: the fields scaleout does not use
// are Kubernetes' business, not errors.
type soReader struct{ *yamlread.Reader }

// get is the value at keys under n, or nil.
func get(n *yaml.Node, keys ...string) *yaml.Node { return yamlread.Get(n, keys...) }

// str reads a string; nil or null is "".
func (r *soReader) str(n *yaml.Node, field string) string {
	if n == nil || yamlread.IsNull(n) {
		return ""
	}
	s, _ := r.Scalar(n, field)
	return s
}

func (r *soReader) num(n *yaml.Node, field string, def float64) float64 {
	if n == nil || yamlread.IsNull(n) {
		return def
	}
	return r.Float(n, field)
}

func (r *soReader) int32(n *yaml.Node, field string, def int32) int32 {
	v := r.num(n, field, float64(def))
	if v != math.Trunc(v) || v < 0 || v > math.MaxInt32 {
		r.Failf(n, field, "%q is not a whole number of replicas", n.Value)
		return def
	}
	return int32(v)
}

func (r *soReader) seconds(n *yaml.Node, field string, def time.Duration) time.Duration {
	v := r.num(n, field, def.Seconds())
	if v < 0 {
		r.Failf(n, field, "%g is negative", v)
		return def
	}
	return time.Duration(v * float64(time.Second))
}

// boolean reads "true" or "false", as KEDA's annotations hold them.
func (r *soReader) boolean(n *yaml.Node, field string, def bool) bool {
	if n == nil {
		return def
	}
	switch strings.ToLower(strings.TrimSpace(r.str(n, field))) {
	case "true":
		return true
	case "false":
		return false
	}
	r.Failf(n, field, "%q is not true or false", n.Value)
	return def
}

func (r *soReader) read(doc *yaml.Node) *ScaledObject {
	if k := get(doc, "kind"); k == nil || k.Value != "ScaledObject" {
		return nil
	}
	so := &ScaledObject{File: r.File, Line: doc.Line, Namespace: "default", TargetKind: "Deployment"}
	meta := get(doc, "metadata")
	so.Name = r.str(get(meta, "name"), "metadata.name")
	if so.Name == "" && !r.Reported(get(meta, "name")) {
		r.Failf(doc, "metadata.name", "missing")
	}
	if ns := r.str(get(meta, "namespace"), "metadata.namespace"); ns != "" {
		so.Namespace = ns
	}
	ann := get(meta, "annotations")
	if p := get(ann, "autoscaling.keda.sh/paused"); p != nil {
		so.Paused = r.boolean(p, "metadata.annotations[autoscaling.keda.sh/paused]", false)
	}
	if p := get(ann, "autoscaling.keda.sh/paused-replicas"); p != nil {
		v := r.int32(p, "metadata.annotations[autoscaling.keda.sh/paused-replicas]", 0)
		so.PausedReplicas = &v
		so.Paused = true // KEDA pauses at that count
	}
	spec := get(doc, "spec")
	if spec == nil {
		r.Failf(doc, "spec", "missing")
		return so
	}
	ref := get(spec, "scaleTargetRef")
	so.Target = r.str(get(ref, "name"), "spec.scaleTargetRef.name")
	if so.Target == "" && !r.Reported(get(ref, "name")) {
		r.Failf(spec, "spec.scaleTargetRef.name", "missing (the Deployment the ScaledObject scales)")
	}
	if k := r.str(get(ref, "kind"), "spec.scaleTargetRef.kind"); k != "" {
		so.TargetKind = k
	}
	so.Min = r.int32(get(spec, "minReplicaCount"), "spec.minReplicaCount", 0)
	so.Max = r.int32(get(spec, "maxReplicaCount"), "spec.maxReplicaCount", 100)
	so.PollingInterval = r.seconds(get(spec, "pollingInterval"), "spec.pollingInterval", 30*time.Second)
	so.CooldownPeriod = r.seconds(get(spec, "cooldownPeriod"), "spec.cooldownPeriod", 300*time.Second)
	hpaCfg := get(spec, "advanced", "horizontalPodAutoscalerConfig")
	so.HPAName = "keda-hpa-" + so.Name
	if n := r.str(get(hpaCfg, "name"), "spec.advanced.horizontalPodAutoscalerConfig.name"); n != "" {
		so.HPAName = n
	}
	if b := get(hpaCfg, "behavior"); b != nil {
		so.Behavior = r.behavior(b)
	}
	trigs := get(spec, "triggers")
	if trigs == nil || trigs.Kind != yaml.SequenceNode || len(trigs.Content) == 0 {
		r.Failf(spec, "spec.triggers", "missing: a ScaledObject needs at least one trigger")
		return so
	}
	for i, tn := range trigs.Content {
		so.Triggers = append(so.Triggers, r.trigger(i, tn))
	}
	return so
}

func (r *soReader) trigger(i int, n *yaml.Node) Trigger {
	field := fmt.Sprintf("spec.triggers[%d]", i)
	t := Trigger{Index: i, Line: n.Line, Type: r.str(get(n, "type"), field+".type"), Name: r.str(get(n, "name"), field+".name"), MetricType: AverageValue, IgnoreNullValues: true}
	switch mt := r.str(get(n, "metricType"), field+".metricType"); mt {
	case "", "AverageValue":
	case "Value":
		t.MetricType = Value
	default:
		r.Failf(get(n, "metricType"), field+".metricType", "%q is not supported here (AverageValue or Value)", mt)
	}
	if t.Type != "prometheus" {
		return t
	}
	md := get(n, "metadata")
	t.ServerAddress = r.str(get(md, "serverAddress"), field+".metadata.serverAddress")
	t.Query = strings.TrimSpace(r.str(get(md, "query"), field+".metadata.query"))
	if t.Query == "" && !r.Reported(get(md, "query")) {
		r.Failf(n, field+".metadata.query", "missing: a prometheus trigger needs a query")
	}
	if th := get(md, "threshold"); th != nil {
		t.Threshold = r.num(th, field+".metadata.threshold", 0)
	} else {
		r.Failf(n, field+".metadata.threshold", "missing: KEDA needs a threshold for a prometheus trigger")
	}
	t.ActivationThreshold = r.num(get(md, "activationThreshold"), field+".metadata.activationThreshold", 0)
	t.IgnoreNullValues = r.boolean(get(md, "ignoreNullValues"), field+".metadata.ignoreNullValues", true)
	return t
}

const behaviorField = "spec.advanced.horizontalPodAutoscalerConfig.behavior"

func (r *soReader) behavior(n *yaml.Node) *Behavior {
	b := DefaultBehavior()
	rules := func(key string, into *Rules) {
		rn := get(n, key)
		if rn == nil {
			return
		}
		field := behaviorField + "." + key
		if w := get(rn, "stabilizationWindowSeconds"); w != nil {
			into.StabilizationWindow = r.seconds(w, field+".stabilizationWindowSeconds", into.StabilizationWindow)
		}
		if s := r.str(get(rn, "selectPolicy"), field+".selectPolicy"); s != "" {
			into.SelectPolicy = s
		}
		if ps := get(rn, "policies"); ps != nil && ps.Kind == yaml.SequenceNode {
			into.Policies = nil
			for j, pn := range ps.Content {
				pf := fmt.Sprintf("%s.policies[%d]", field, j)
				into.Policies = append(into.Policies, Policy{Type: r.str(get(pn, "type"), pf+".type"), Value: r.int32(get(pn, "value"), pf+".value", 0),
					Period: r.seconds(get(pn, "periodSeconds"), pf+".periodSeconds", 15*time.Second)})
			}
		}
	}
	rules("scaleUp", &b.ScaleUp)
	rules("scaleDown", &b.ScaleDown)
	r.validateBehavior(n, b)
	return &b
}

// validateBehavior reports what Behavior.Validate finds in b, each at the
// node of the manifest it comes from. A value the reader could not read
// has its error already and is not reported twice.
func (r *soReader) validateBehavior(n *yaml.Node, b Behavior) {
	err := b.Validate()
	if err == nil {
		return
	}
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	for _, e := range errs {
		var be *BehaviorError
		if !errors.As(e, &be) {
			r.Failf(n, behaviorField, "%v", e)
			continue
		}
		at := behaviorNode(n, be)
		if r.Reported(at) {
			continue
		}
		r.Failf(at, behaviorField+"."+be.Path(manifestNames), "%s", be.Msg)
	}
}

// behaviorNode is the node of the behavior block n that be is about: its
// field when the manifest sets it, else the nearest enclosing node it has
// (a field Kubernetes defaulted has no node of its own).
func behaviorNode(n *yaml.Node, be *BehaviorError) *yaml.Node {
	rn := get(n, manifestNames[be.Rules])
	if rn == nil {
		return n
	}
	at := rn
	if be.Policy >= 0 {
		ps := get(rn, "policies")
		if ps == nil || ps.Kind != yaml.SequenceNode || be.Policy >= len(ps.Content) {
			return rn
		}
		at = ps.Content[be.Policy]
	}
	if f := get(at, manifestNames[be.Field]); f != nil {
		return f
	}
	return at
}

// String prints the ScaledObject the way the findings name it.
func (so *ScaledObject) String() string {
	return fmt.Sprintf("ScaledObject %s/%s (%s %s, %d..%d replicas)", so.Namespace, so.Name, so.TargetKind, so.Target, so.HPAMin(), so.Max)
}
