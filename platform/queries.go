package platform

import (
	"fmt"
	"slices"
	"strings"

	"github.com/scaleout/scaleout/promql"
)

// WaitingQuery is the requests queued on the pods sel selects (a label
// selector in braces, or "" for every pod).
func WaitingQuery(sel string) string { return "sum(" + VLLMWaiting + sel + ")" }

// RunningQuery is the requests in the running batches of the pods sel selects.
func RunningQuery(sel string) string { return "sum(" + VLLMRunning + sel + ")" }

// KVCacheQuery is the mean KV-cache use of the pods sel selects.
func KVCacheQuery(sel string) string { return "avg(" + VLLMKVCache + sel + ")" }

// DesiredQuery is the HPA's desired replicas.
func DesiredQuery(namespace, hpa string) string {
	return "max(" + HPADesired + hpaSelector(namespace, hpa) + ")"
}

// CurrentQuery is the HPA's current replicas.
func CurrentQuery(namespace, hpa string) string {
	return "max(" + HPACurrent + hpaSelector(namespace, hpa) + ")"
}

func hpaSelector(namespace, hpa string) string {
	return fmt.Sprintf(`{%s=%q,%s=%q}`, LabelNamespace, namespace, LabelHPA, hpa)
}

// ReadyQuery is the Deployment's ready replicas.
func ReadyQuery(namespace, deployment string) string {
	return fmt.Sprintf(`max(%s{%s=%q,%s=%q})`, DeploymentReady, LabelNamespace, namespace, LabelDeployment, deployment)
}

// PausedQuery is KEDA's own word on whether a ScaledObject is paused: 1 or
// 0 (its operator exports it while the ScaledObject exists).
func PausedQuery(scaledObject string) string {
	return fmt.Sprintf(`max(%s{%s=%q})`, KEDAPaused, LabelScaledObject, scaledObject)
}

// SucceededSeries selects the requests the pods sel selects finished, aborts
// left out (the counter to compare with what a client received).
func SucceededSeries(sel string) string {
	inner := strings.TrimSuffix(strings.TrimPrefix(sel, "{"), "}")
	if inner != "" {
		inner += ","
	}
	return fmt.Sprintf(`%s{%s%s!=%q}`, VLLMRequestSuccess, inner, LabelFinishedReason, FinishedAbort)
}

// GeneratedSeries selects the output tokens the pods sel selects generated.
func GeneratedSeries(sel string) string { return VLLMGenerationTokens + sel }

// Kind is what a trigger's query measures.
type Kind int

// The kinds of trigger.
const (
	OtherTrigger Kind = iota // anything else, or a query outside the subset promql.Parse reads
	QueueTrigger             // vLLM's waiting queue
	KVTrigger                // vLLM's KV-cache use, under either name
)

func (k Kind) String() string {
	return [...]string{"other", "queue", "kv-cache"}[k]
}

// Class is a trigger's query as scaleout reads it.
type Class struct {
	Kind   Kind
	Agg    promql.Agg // the aggregation around the selector; None for a bare selector or a query outside the subset
	Metric string     // the metric the selector names; "" when it names none or the query is outside the subset
	Err    error      // a *promql.Error when the query is outside the subset (Kind is then OtherTrigger)
}

// Classify reads a query with promql.Parse and says what it measures by
// the metric its selector names: the queue (vllm:num_requests_waiting), the
// KV cache (vllm:kv_cache_usage_perc or its old name), or something else.
// A query the subset cannot read is OtherTrigger, with Err saying why.
func Classify(query string) Class {
	q, err := promql.Parse(query)
	if err != nil {
		return Class{Err: err}
	}
	c := Class{Agg: q.Agg, Metric: q.Name}
	switch q.Name {
	case VLLMWaiting:
		c.Kind = QueueTrigger
	case VLLMKVCache, VLLMGPUCache:
		c.Kind = KVTrigger
	}
	return c
}

// Retired lists, once each, the renames whose old name a query selects;
// the query may be any PromQL (promql.Refs reads it).
func Retired(query string) []Rename {
	var out []Rename
	for _, ref := range promql.Refs(query) {
		for _, r := range Renames {
			if ref.Name == r.Old && !slices.ContainsFunc(out, func(x Rename) bool { return x.Old == r.Old }) {
				out = append(out, r)
			}
		}
	}
	return out
}

// Alternative is a query rewritten to select the other name of a renamed
// vLLM metric.
type Alternative struct {
	Metric, Other string // the name the query selects, and the one a server may export instead
	Query         string // the query with Other in place of Metric
	Why           string // why a server would export Other and not Metric
}

// Alternatives are the query rewritten, one renamed metric at a time, to
// the other name of each renamed vLLM metric it selects; the query may be
// any PromQL (promql.Refs reads it).
func Alternatives(query string) []Alternative {
	refs := promql.Refs(query)
	var out []Alternative
	for i, ref := range refs {
		other, why, ok := OtherName(ref.Name)
		if !ok || slices.ContainsFunc(refs[:i], func(r promql.Ref) bool { return r.Name == ref.Name }) {
			continue
		}
		q := query
		for j := len(refs) - 1; j >= 0; j-- { // from the end, so the offsets before stay right
			if refs[j].Name == ref.Name {
				q = refs[j].Rename(q, other)
			}
		}
		out = append(out, Alternative{Metric: ref.Name, Other: other, Query: q, Why: why})
	}
	return out
}
