// Package platform is what scaleout knows about the serving platform it
// watches: the series vLLM, kube-state-metrics and KEDA export, with their
// labels and the renames between vLLM versions; KEDA's naming conventions;
// the queries scaleout builds on them; which kind of trigger a query is; and
// the names of the timeline's series. Every other package names these
// through it.
package platform

import (
	"fmt"
	"strings"
)

// The series names scaleout gives meaning to: the timeline's columns, its
// events and KPIs, and the shorthands of a scenario build them.
const (
	Waiting   = "waiting"   // queued requests (the KEDA trigger)
	Running   = "running"   // requests in the running batch
	KVCache   = "kv_cache"  // KV-cache use, a fraction
	Desired   = "desired"   // the HPA's desired replicas
	Current   = "current"   // the HPA's current replicas
	Ready     = "ready"     // the Deployment's ready replicas
	Predicted = "predicted" // the desired replicas KEDA and the HPA should compute (from a ScaledObject)

	// CrossCheckSuffix names a replica series read from Prometheus beside
	// the same series read from the Kubernetes API (desired_prom).
	CrossCheckSuffix = "_prom"
)

// Known tells whether name is one of the series names above.
func Known(name string) bool {
	switch name {
	case Waiting, Running, KVCache, Desired, Current, Ready, Predicted:
		return true
	}
	return false
}

// vLLM's series (V1 engine), on each pod's /metrics page.
const (
	VLLMWaiting          = "vllm:num_requests_waiting" // gauge: queued, not yet scheduled
	VLLMRunning          = "vllm:num_requests_running" // gauge: in the running batch
	VLLMKVCache          = "vllm:kv_cache_usage_perc"  // gauge: a fraction, 0..1
	VLLMGPUCache         = "vllm:gpu_cache_usage_perc" // VLLMKVCache's name before V1 (see Renames)
	VLLMRequestSuccess   = "vllm:request_success_total"
	VLLMPromptTokens     = "vllm:prompt_tokens_total"
	VLLMGenerationTokens = "vllm:generation_tokens_total"
	VLLMTTFT             = "vllm:time_to_first_token_seconds" // histogram, from arrival: queue time included
	VLLME2E              = "vllm:e2e_request_latency_seconds" // histogram

	LabelModelName      = "model_name"
	LabelFinishedReason = "finished_reason" // of VLLMRequestSuccess
	LabelNamespace      = "namespace"       // from the scrape configuration (vLLM does not set it), and on kube-state-metrics and KEDA series
	LabelPod            = "pod"             // from the scrape configuration

	FinishedStop   = "stop" // the values of LabelFinishedReason
	FinishedLength = "length"
	FinishedAbort  = "abort"
)

// kube-state-metrics' HPA and Deployment series (v2; before v2.0 the HPA's
// were kube_hpa_*{hpa=…}).
const (
	HPADesired = "kube_horizontalpodautoscaler_status_desired_replicas"
	HPACurrent = "kube_horizontalpodautoscaler_status_current_replicas"
	HPAMin     = "kube_horizontalpodautoscaler_spec_min_replicas"
	HPAMax     = "kube_horizontalpodautoscaler_spec_max_replicas"
	LabelHPA   = "horizontalpodautoscaler"

	DeploymentSpec        = "kube_deployment_spec_replicas"
	DeploymentReplicas    = "kube_deployment_status_replicas"
	DeploymentReady       = "kube_deployment_status_replicas_ready"
	DeploymentAvailable   = "kube_deployment_status_replicas_available"
	DeploymentUnavailable = "kube_deployment_status_replicas_unavailable"
	LabelDeployment       = "deployment"
)

// The KEDA operator's series (the namespace label may appear as
// exported_namespace).
const (
	KEDAScalerValue   = "keda_scaler_metrics_value" // the raw query total of each trigger
	KEDAPaused        = "keda_scaled_object_paused" // 1 while the ScaledObject is paused
	LabelScaledObject = "scaledObject"
)

// GPUResource is the extended resource a vLLM pod requests for its GPU
// (NVIDIA's device plugin).
const GPUResource = "nvidia.com/gpu"

// ShortOfGPUs says whether the scheduler's message for a pod it could not
// place names the GPU resource ("0/1 nodes are available: 1 Insufficient
// nvidia.com/gpu."): the one-GPU tier's second replica, Pending by design.
func ShortOfGPUs(schedulerMessage string) bool {
	return strings.Contains(schedulerMessage, "Insufficient "+GPUResource)
}

// kedaHPAPrefix starts the name of the HPA KEDA makes for a ScaledObject.
const kedaHPAPrefix = "keda-hpa-"

// KEDAHPAName is the HPA KEDA makes for the ScaledObject (unless the
// ScaledObject names it in advanced.horizontalPodAutoscalerConfig.name).
func KEDAHPAName(scaledObject string) string { return kedaHPAPrefix + scaledObject }

// ScaledObjectOf is the ScaledObject an HPA named keda-hpa-NAME was made for.
func ScaledObjectOf(hpa string) (string, bool) {
	name, ok := strings.CutPrefix(hpa, kedaHPAPrefix)
	return name, ok && name != ""
}

// KEDAPrometheus is the type of KEDA's prometheus triggers.
const KEDAPrometheus = "prometheus"

// KEDAMetricName is the external metric KEDA gives the HPA for its
// trigger at index (0-based) of a scaler type: "s0-prometheus".
func KEDAMetricName(index int, scaler string) string { return fmt.Sprintf("s%d-%s", index, scaler) }

// Rename is a vLLM metric that changed its name.
type Rename struct {
	Old, New            string
	Deprecated, Removed string // the vLLM versions
	OldGone             string // why a server exports New and not Old
	NewMissing          string // why a server exports Old and not New
}

// Renames are the vLLM renames scaleout knows.
var Renames = []Rename{{
	Old: VLLMGPUCache, New: VLLMKVCache, Deprecated: "0.9.2", Removed: "0.12",
	OldGone:    "vLLM V1 renamed it (removed in 0.12)",
	NewMissing: "this server still exports the pre-V1 name",
}}

// String says what the old name is and what to use instead.
func (r Rename) String() string {
	return fmt.Sprintf("%s, deprecated in vLLM %s and removed in %s; use %s", r.Old, r.Deprecated, r.Removed, r.New)
}

// OtherName is the name a vLLM server may export in place of metric,
// either way round a rename, and why it would.
func OtherName(metric string) (other, why string, ok bool) {
	for _, r := range Renames {
		switch metric {
		case r.Old:
			return r.New, r.OldGone, true
		case r.New:
			return r.Old, r.NewMissing, true
		}
	}
	return "", "", false
}
