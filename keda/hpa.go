// Package keda models what KEDA and the Kubernetes HorizontalPodAutoscaler do
// with a queue-depth trigger: the replica recommendation of each external
// metric and the controller's stabilization, scaling policies and clamping
// (hpa.go), and reads the ScaledObject manifests that configure them.
//
// The HPA model (this file) is pure and clock-free: every call takes the
// instant it happens at, so the simulator and the tests drive it on their own
// clock. It follows pkg/controller/podautoscaler (horizontal.go and
// replica_calculator.go) of Kubernetes 1.33+, where the tolerance test is
// 1−tolerance ≤ ratio ≤ 1+tolerance.
package keda

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
)

// MetricType is the target type of an external metric.
type MetricType string

// The target types KEDA can give a trigger.
const (
	// AverageValue divides the metric by the current replicas: KEDA's default.
	AverageValue MetricType = "AverageValue"
	// Value compares the metric as a whole (trigger metricType: Value).
	Value MetricType = "Value"
)

// Metric is one external metric of an HPA, as KEDA creates it from a trigger
// (Name is s<index>-<scaler>, e.g. "s0-prometheus").
type Metric struct {
	Name   string
	Type   MetricType
	Target float64 // the trigger's threshold
}

func (m Metric) String() string { return fmt.Sprintf("%s %s %g", m.Name, m.Type, m.Target) }

// milli is a value as KEDA hands it to the HPA: KEDA (v2.14–v2.17) turns the
// float into a milli-quantity with int64(v*1000), truncating, and the HPA
// computes on those milli-units. For whole numbers this changes nothing.
func milli(v float64) float64 {
	m := v * 1000
	if m >= math.MaxInt64 || m <= math.MinInt64 {
		return m
	}
	return float64(int64(m))
}

// within is the controller's tolerance test (Tolerances.isWithin): a ratio
// inside [1−tolerance, 1+tolerance] changes nothing. In float64, ratio 0.9 and
// ratio 1.1 are both inside with tolerance 0.1.
func within(ratio, tolerance float64) bool {
	return 1.0-tolerance <= ratio && ratio <= 1.0+tolerance
}

// ceil32 is int32(math.Ceil(v)) capped at the int32 range as the controller does.
func ceil32(v float64) int32 {
	c := math.Ceil(v)
	switch {
	case c >= math.MaxInt32:
		return math.MaxInt32
	case c <= math.MinInt32:
		return math.MinInt32
	case math.IsNaN(c):
		return 0
	}
	return int32(c)
}

// Recommend is one metric's replica recommendation for a metric total with
// current replicas, before stabilization and limits.
//
// AverageValue (GetExternalPerPodMetricReplicas): ratio = total/(target×current);
// inside the tolerance it recommends current, else ceil(total/target).
// Value (GetExternalMetricReplicas): ratio = total/target; inside the tolerance
// current, else ceil(current×ratio); with current 0, ceil(ratio).
//
// Kubernetes multiplies a Value ratio by the number of ready pods, not by the
// current replicas; this model takes them as equal (see HPA.Sync). A NaN
// total (metric unavailable) or a target that is not positive recommends
// current: the caller decides what an unavailable metric means.
func Recommend(m Metric, total float64, current int32, tolerance float64) int32 {
	usage, target := milli(total), milli(m.Target)
	if math.IsNaN(total) || !(target > 0) {
		return current
	}
	if m.Type == Value {
		ratio := usage / target
		if current == 0 {
			return ceil32(ratio)
		}
		if within(ratio, tolerance) {
			return current
		}
		return ceil32(ratio * float64(current))
	}
	ratio := usage / (target * float64(current))
	if within(ratio, tolerance) {
		return current
	}
	return ceil32(usage / target)
}

// Policy is one scaling policy: change by Value pods ("Pods") or Value percent
// ("Percent") of the replicas at the start of the last Period.
type Policy struct {
	Type   string // "Pods" | "Percent"
	Value  int32
	Period time.Duration
}

// The policy types and selections of spec.behavior.
const (
	PodsPolicy    = "Pods"
	PercentPolicy = "Percent"

	SelectMax      = "Max"
	SelectMin      = "Min"
	SelectDisabled = "Disabled"
)

// Rules is one direction of spec.behavior.
type Rules struct {
	StabilizationWindow time.Duration
	SelectPolicy        string // "Max" | "Min" | "Disabled"
	Policies            []Policy
}

// Behavior is spec.behavior.
type Behavior struct {
	ScaleUp, ScaleDown Rules
}

// Kubernetes' bounds on spec.behavior (MaxStabilizationWindowSeconds,
// MaxPeriodSeconds).
const (
	maxStabilizationWindow = time.Hour
	maxPolicyPeriod        = 30 * time.Minute
)

// BehaviorError is one part of a Behavior that Kubernetes' API would refuse.
// It names the part by its Go fields, so that each reader of a Behavior can
// spell the place its own way (see Path).
type BehaviorError struct {
	Rules  string // "ScaleUp" or "ScaleDown"
	Policy int    // the index in Rules.Policies, or -1 when the error is in the Rules themselves
	Field  string // of Rules: StabilizationWindow, SelectPolicy or Policies; of a Policy: Type, Value or Period
	Msg    string
}

// manifestNames spells the Go fields the way spec.behavior does.
var manifestNames = map[string]string{
	"ScaleUp": "scaleUp", "ScaleDown": "scaleDown",
	"StabilizationWindow": "stabilizationWindowSeconds", "SelectPolicy": "selectPolicy", "Policies": "policies",
	"Type": "type", "Value": "value", "Period": "periodSeconds",
}

// Path is the place of the error with every Go field name renamed through
// names (a name it lacks stays as it is), e.g. "scaleUp.policies[0].value".
func (e *BehaviorError) Path(names map[string]string) string {
	name := func(k string) string {
		if n, ok := names[k]; ok {
			return n
		}
		return k
	}
	var b strings.Builder
	b.WriteString(name(e.Rules))
	if e.Policy >= 0 {
		fmt.Fprintf(&b, ".%s[%d]", name("Policies"), e.Policy)
	}
	b.WriteString("." + name(e.Field))
	return b.String()
}

// Error spells the place as spec.behavior does.
func (e *BehaviorError) Error() string { return e.Path(manifestNames) + ": " + e.Msg }

// Validate reports every part of b that Kubernetes' API would refuse, as an
// errors.Join of *BehaviorError in field order: a stabilization window
// outside 0..1h, an unknown select policy, no policy at all (unless the
// direction is Disabled), and a policy with an unknown type, a value below 1
// or a period outside 1s..30m. An empty SelectPolicy is Max, Kubernetes'
// default. The HPA model relies on it: with no policy, nothing would bound a
// scale.
func (b Behavior) Validate() error {
	var errs []error
	for _, d := range []struct {
		name string
		r    Rules
	}{{"ScaleUp", b.ScaleUp}, {"ScaleDown", b.ScaleDown}} {
		bad := func(policy int, field, format string, args ...any) {
			errs = append(errs, &BehaviorError{Rules: d.name, Policy: policy, Field: field, Msg: fmt.Sprintf(format, args...)})
		}
		r := d.r
		if r.StabilizationWindow < 0 || r.StabilizationWindow > maxStabilizationWindow {
			bad(-1, "StabilizationWindow", "%v is outside 0s..1h (Kubernetes' bounds)", r.StabilizationWindow)
		}
		switch r.SelectPolicy {
		case "", SelectMax, SelectMin, SelectDisabled:
		default:
			bad(-1, "SelectPolicy", "%q is not Max, Min or Disabled", r.SelectPolicy)
		}
		if len(r.Policies) == 0 && r.SelectPolicy != SelectDisabled {
			bad(-1, "Policies", "is empty (want at least one policy, or a Disabled select policy)")
		}
		for i, p := range r.Policies {
			if p.Type != PodsPolicy && p.Type != PercentPolicy {
				bad(i, "Type", "%q is not Pods or Percent", p.Type)
			}
			if p.Value < 1 {
				bad(i, "Value", "%d is not positive", p.Value)
			}
			if p.Period < time.Second || p.Period > maxPolicyPeriod {
				bad(i, "Period", "%v is outside 1s..30m (Kubernetes' bounds)", p.Period)
			}
		}
	}
	return errors.Join(errs...)
}

// DefaultBehavior is what Kubernetes fills in when spec.behavior is set but a
// part is omitted: scale up without stabilization by the larger of 4 pods or
// 100 % per 15 s; scale down with a 300 s window by up to 100 % per 15 s.
// (Kubernetes leaves the scale-down window unset and takes it from the
// controller's --horizontal-pod-autoscaler-downscale-stabilization, 300 s by
// default; set ScaleDown.StabilizationWindow to HPA.DownscaleWindow to match a
// controller that runs another value.)
func DefaultBehavior() Behavior {
	return Behavior{
		ScaleUp: Rules{
			StabilizationWindow: 0,
			SelectPolicy:        SelectMax,
			Policies: []Policy{
				{Type: PodsPolicy, Value: 4, Period: 15 * time.Second},
				{Type: PercentPolicy, Value: 100, Period: 15 * time.Second},
			},
		},
		ScaleDown: Rules{
			StabilizationWindow: 300 * time.Second,
			SelectPolicy:        SelectMax,
			Policies: []Policy{
				{Type: PercentPolicy, Value: 100, Period: 15 * time.Second},
			},
		},
	}
}

// The reasons Decision.Limited reports, as the HPA's conditions spell them.
const (
	ScaleUpLimit        = "ScaleUpLimit"        // ScalingLimited: the scale-up rate held it
	ScaleDownLimit      = "ScaleDownLimit"      // ScalingLimited: a scale-down policy held it
	TooManyReplicas     = "TooManyReplicas"     // ScalingLimited: clamped to max
	TooFewReplicas      = "TooFewReplicas"      // ScalingLimited: clamped to min
	ScaleDownStabilized = "ScaleDownStabilized" // AbleToScale: a higher recommendation in the window held it
	ScaleUpStabilized   = "ScaleUpStabilized"   // AbleToScale: a lower recommendation in the scale-up window held it
	ScalingDisabled     = "ScalingDisabled"     // ScalingActive=False: the target has 0 replicas and min is not 0
	MetricsUnavailable  = "FailedGetExternalMetric"
)

// DefaultTolerance is the controller's --horizontal-pod-autoscaler-tolerance.
const DefaultTolerance = 0.1

// DefaultDownscaleWindow is the controller's
// --horizontal-pod-autoscaler-downscale-stabilization.
const DefaultDownscaleWindow = 300 * time.Second

// HPA is one HorizontalPodAutoscaler as the controller sees it: its spec and
// the controller's memory of it (past recommendations and scale events).
// The zero state is a newly created HPA. An HPA is not safe for concurrent
// use; its owner serialises Sync calls.
type HPA struct {
	Min, Max  int32
	Tolerance float64 // 0.1
	// Behavior is spec.behavior. nil (KEDA without
	// advanced.horizontalPodAutoscalerConfig.behavior): scale-up is capped at
	// max(2×current, 4) per sync, scale-down takes the highest recommendation
	// of the last DownscaleWindow.
	Behavior *Behavior
	// DownscaleWindow is the behavior-unset stabilization window (the
	// controller flag, 300 s by default).
	DownscaleWindow time.Duration
	Metrics         []Metric

	recs     []stamped // unstabilized recommendations, oldest first
	upEvents []stamped // replicas added by each rescale (behavior set only)
	dnEvents []stamped // replicas removed by each rescale (behavior set only)
}

type stamped struct {
	at time.Time
	n  int32
}

// Decision is the outcome of one controller sync.
type Decision struct {
	// Desired is the replica count the HPA sets on the target (it equals
	// current when nothing changes).
	Desired int32
	// Recommendations holds each metric's recommendation before
	// stabilization and limits; -1 for a metric that was unavailable. It is
	// nil when the controller did not read the metrics (current outside
	// [min, max], or current 0).
	Recommendations []int32
	// Limited names what held Desired away from the largest recommendation:
	// "" (nothing), ScaleUpLimit, ScaleDownLimit, TooManyReplicas,
	// TooFewReplicas, ScaleDownStabilized, ScaleUpStabilized, ScalingDisabled,
	// or FailedGetExternalMetric when metrics were unavailable.
	Limited string
}

// MetricsMissing reports that every metric was unavailable (or some were and
// the others asked to scale down): the HPA keeps current and reports
// ScalingActive=False (`kubectl get hpa` shows <unknown>).
func (d Decision) MetricsMissing() bool { return d.Limited == MetricsUnavailable }

// Sync is one HPA controller sync at now with current replicas (the target's
// spec replicas, which the model also takes as its status and ready
// replicas) and each metric's total, in Metrics order (NaN = unavailable).
func (h *HPA) Sync(now time.Time, current int32, totals []float64) Decision {
	// recordInitialRecommendation: a new HPA remembers the size it found.
	if h.recs == nil {
		h.recs = []stamped{{at: now, n: current}}
	}
	var d Decision
	switch {
	case current == 0 && h.Min != 0:
		return Decision{Desired: 0, Limited: ScalingDisabled}
	case current > h.Max:
		d.Desired, d.Limited = h.Max, TooManyReplicas
	case current < h.Min:
		d.Desired, d.Limited = h.Min, TooFewReplicas
	default:
		proposal, recs, ok := h.computeReplicasForMetrics(current, totals)
		d.Recommendations = recs
		if !ok {
			// The controller returns before it stabilizes or rescales:
			// nothing is recorded and the target keeps its size.
			return Decision{Desired: current, Recommendations: recs, Limited: MetricsUnavailable}
		}
		if h.Behavior == nil {
			d.Desired, d.Limited = h.normalize(now, current, proposal)
		} else {
			d.Desired, d.Limited = h.normalizeWithBehavior(now, current, proposal)
		}
	}
	if d.Desired != current {
		h.storeScaleEvent(now, current, d.Desired)
	}
	return d
}

// computeReplicasForMetrics returns the largest recommendation of the
// metrics that worked. It fails when every metric failed, or when some failed
// and the rest would scale down (the controller does not scale down on
// partial information).
func (h *HPA) computeReplicasForMetrics(current int32, totals []float64) (int32, []int32, bool) {
	recs := make([]int32, len(h.Metrics))
	var best int32
	invalid := 0
	for i, m := range h.Metrics {
		if i >= len(totals) || math.IsNaN(totals[i]) || !(milli(m.Target) > 0) {
			recs[i] = -1
			invalid++
			continue
		}
		r := Recommend(m, totals[i], current, h.Tolerance)
		recs[i] = r
		if best == 0 || r > best {
			best = r
		}
	}
	if invalid >= len(h.Metrics) || (invalid > 0 && best < current) {
		return -1, recs, false
	}
	return best, recs, true
}

// normalize is normalizeDesiredReplicas (spec.behavior unset).
func (h *HPA) normalize(now time.Time, current, proposal int32) (int32, string) {
	// stabilizeRecommendation: the highest recommendation not older than the
	// window (a sample exactly at the cutoff still counts), this one included.
	cutoff := now.Add(-h.DownscaleWindow)
	stabilized := proposal
	kept := h.recs[:0]
	for _, r := range h.recs {
		if r.at.Before(cutoff) {
			continue
		}
		stabilized = max(stabilized, r.n)
		kept = append(kept, r)
	}
	h.recs = append(kept, stamped{at: now, n: proposal})

	reason := ""
	if stabilized != proposal {
		reason = ScaleDownStabilized
	}
	// convertDesiredReplicasWithRules.
	upLimit := legacyScaleUpLimit(current)
	maxAllowed, maxReason := h.Max, TooManyReplicas
	if h.Max > upLimit {
		maxAllowed, maxReason = upLimit, ScaleUpLimit
	}
	switch {
	case stabilized < h.Min:
		return h.Min, TooFewReplicas
	case stabilized > maxAllowed:
		return maxAllowed, maxReason
	}
	return stabilized, reason
}

// normalizeWithBehavior is normalizeDesiredReplicasWithBehaviors.
func (h *HPA) normalizeWithBehavior(now time.Time, current, proposal int32) (int32, string) {
	b := h.Behavior
	upCutoff := now.Add(-b.ScaleUp.StabilizationWindow)
	downCutoff := now.Add(-b.ScaleDown.StabilizationWindow)
	up, down := proposal, proposal
	kept := h.recs[:0]
	for _, r := range h.recs {
		if r.at.After(upCutoff) {
			up = min(up, r.n)
		}
		if r.at.After(downCutoff) {
			down = max(down, r.n)
		}
		if r.at.Before(upCutoff) && r.at.Before(downCutoff) {
			continue // too old for either window: the controller overwrites it
		}
		kept = append(kept, r)
	}
	h.recs = append(kept, stamped{at: now, n: proposal})

	stabilized := current
	if stabilized < up {
		stabilized = up
	}
	if stabilized > down {
		stabilized = down
	}
	reason := ""
	if stabilized != proposal {
		if proposal >= current {
			reason = ScaleUpStabilized
		} else {
			reason = ScaleDownStabilized
		}
	}

	// convertDesiredReplicasWithBehaviorRate.
	switch {
	case stabilized > current:
		limit := scaleLimit(now, current, h.upEvents, h.dnEvents, b.ScaleUp, true)
		maxAllowed, maxReason := h.Max, TooManyReplicas
		if maxAllowed > limit {
			maxAllowed, maxReason = limit, ScaleUpLimit
		}
		if stabilized > maxAllowed {
			return maxAllowed, maxReason
		}
	case stabilized < current:
		limit := scaleLimit(now, current, h.upEvents, h.dnEvents, b.ScaleDown, false)
		minAllowed, minReason := h.Min, TooFewReplicas
		if minAllowed < limit {
			minAllowed, minReason = limit, ScaleDownLimit
		}
		if stabilized < minAllowed {
			return minAllowed, minReason
		}
	}
	return stabilized, reason
}

// changeInPeriod sums the events newer than now−period (getReplicasChangePerPeriod).
func changeInPeriod(now time.Time, period time.Duration, events []stamped) int32 {
	cutoff := now.Add(-period)
	var n int32
	for _, e := range events {
		if e.at.After(cutoff) {
			n += e.n
		}
	}
	return n
}

// legacyScaleUpLimit is calculateScaleUpLimit: with spec.behavior unset,
// one sync goes at most to twice the replicas, or 4.
func legacyScaleUpLimit(current int32) int32 { return int32(math.Max(2*float64(current), 4)) }

// scaleLimit is calculateScaleUpLimitWithScalingRules (up) and
// calculateScaleDownLimitWithBehaviors (!up): the most replicas the policies
// allow going up, or the fewest going down, each policy measured from the
// replicas at the start of its period. Max selects the policy that allows the
// largest change, Min the smallest. A Percent policy rounds up going up and
// truncates going down, as Kubernetes does.
//
// The limit never points the other way from current: when recent events
// have used up every policy, or there is no policy, it is current, which is
// the clamp convertDesiredReplicasWithBehaviorRate applies to both.
func scaleLimit(now time.Time, current int32, up, down []stamped, r Rules, scaleUp bool) int32 {
	if r.SelectPolicy == SelectDisabled {
		return current
	}
	// The largest change is the highest limit up and the lowest one down.
	pick, result := max32, int32(math.MinInt32)
	if (r.SelectPolicy == SelectMin) == scaleUp {
		pick, result = min32, math.MaxInt32
	}
	for _, p := range r.Policies {
		start := current - changeInPeriod(now, p.Period, up) + changeInPeriod(now, p.Period, down)
		var proposed int32
		switch {
		case p.Type == PodsPolicy && scaleUp:
			proposed = start + p.Value
		case p.Type == PodsPolicy:
			proposed = start - p.Value
		case p.Type == PercentPolicy && scaleUp:
			proposed = int32(math.Ceil(float64(start) * (1 + float64(p.Value)/100)))
		case p.Type == PercentPolicy:
			proposed = int32(float64(start) * (1 - float64(p.Value)/100))
		default:
			continue
		}
		result = pick(result, proposed)
	}
	if scaleUp {
		return max(result, current)
	}
	return min(result, current)
}

func min32(a, b int32) int32 { return min(a, b) }
func max32(a, b int32) int32 { return max(a, b) }

// storeScaleEvent remembers a rescale for the behavior policies (the
// controller keeps none when spec.behavior is unset) and forgets events older
// than the longest policy period, which no policy can count any more.
func (h *HPA) storeScaleEvent(now time.Time, from, to int32) {
	if h.Behavior == nil {
		return
	}
	if to > from {
		h.upEvents = appendEvent(h.upEvents, now, to-from, longestPeriod(h.Behavior.ScaleUp))
	} else {
		h.dnEvents = appendEvent(h.dnEvents, now, from-to, longestPeriod(h.Behavior.ScaleDown))
	}
}

func appendEvent(events []stamped, now time.Time, n int32, keep time.Duration) []stamped {
	cutoff := now.Add(-keep)
	kept := events[:0]
	for _, e := range events {
		if !e.at.Before(cutoff) {
			kept = append(kept, e)
		}
	}
	return append(kept, stamped{at: now, n: n})
}

func longestPeriod(r Rules) time.Duration {
	var p time.Duration
	for _, x := range r.Policies {
		p = max(p, x.Period)
	}
	return p
}
