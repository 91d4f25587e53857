package kube

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	k8stesting "k8s.io/client-go/testing"
)

func apiService(available string, reason, msg string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
		"metadata": map[string]any{"name": ExternalMetricsAPIService},
	}}
	_ = unstructured.SetNestedSlice(u.Object, []any{map[string]any{"type": "Available", "status": available, "reason": reason, "message": msg}}, "status", "conditions")
	return u
}

func find(fs []Finding, sev Severity, text string) (Finding, bool) {
	for _, f := range fs {
		if f.Severity == sev && strings.Contains(f.Msg, text) {
			return f, true
		}
	}
	return Finding{}, false
}

// The runbook's §4 by the tool: a broken trigger (FailedGetExternalMetric)
// with KEDA's own message, the ScaledObject not Ready, the external
// metrics API unavailable, a pod that cannot be scheduled and why.
func TestDiagnoseBrokenTrigger(t *testing.T) {
	failing := autoscalingv2.HorizontalPodAutoscalerCondition{Type: autoscalingv2.ScalingActive, Status: corev1.ConditionFalse, Reason: "FailedGetExternalMetric",
		Message: "the HPA was unable to compute the replica count: unable to get external metric serving/s0-prometheus: unable to fetch metrics from external metrics API"}
	kedaEv := &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{Namespace: "serving", Name: "raw-vllm.1"},
		InvolvedObject: corev1.ObjectReference{Kind: "ScaledObject", Name: "raw-vllm", Namespace: "serving"},
		Type:           corev1.EventTypeWarning, Reason: "KEDAScalerFailed", LastTimestamp: metav1.NewTime(time.Now()),
		Message: `error inspecting prometheus metrics: Post "http://prometheus-operated.monitoring.svc:9090/api/v1/query": dial tcp: lookup prometheus-operated.monitoring.svc: no such host`,
	}
	pending := podObj("raw-vllm-b", corev1.PodCondition{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: "Unschedulable", Message: insufficientGPU})
	k := newCluster(t, []runtime.Object{hpaObj(1, 1, failing), depObj(1), podObj("raw-vllm-a"), pending, kedaEv},
		soObj(nil, soCond("Ready", "False", "ScaledObjectCheckFailed", "Triggers defined in ScaledObject are not working correctly")),
		apiService("False", "FailedDiscoveryCheck", "failing or missing response from https://10.0.0.1:6443"))
	fs := Diagnose(context.Background(), k.c, gpu, false)
	f, ok := find(fs, Failure, "ScalingActive=False (FailedGetExternalMetric)")
	if !ok {
		t.Fatalf("no FailedGetExternalMetric finding: %+v", fs)
	}
	if !strings.Contains(f.Msg, "KEDA says: KEDAScalerFailed: error inspecting prometheus metrics") || !strings.Contains(f.Fix, "serverAddress") {
		t.Errorf("finding without KEDA's message or the fix: %+v", f)
	}
	if _, ok := find(fs, Failure, "is not Ready (ScaledObjectCheckFailed): Triggers defined"); !ok {
		t.Errorf("no ScaledObject-not-Ready finding: %+v", fs)
	}
	if f, ok := find(fs, Failure, "v1beta1.external.metrics.k8s.io unavailable (FailedDiscoveryCheck)"); !ok || f.Fix == "" {
		t.Errorf("no APIService finding with a fix: %+v", fs)
	}
	if f, ok := find(fs, Warning, "pod raw-vllm-b cannot be scheduled (Unschedulable): 0/1 nodes are available: 1 Insufficient nvidia.com/gpu"); !ok || !strings.Contains(f.Fix, "GPU") {
		t.Errorf("no unschedulable-pod finding: %+v", fs)
	}
	for _, f := range fs {
		if f.Severity != Info && f.Fix == "" {
			t.Errorf("finding without a fix: %+v", f)
		}
	}
}

// Conditions that are states, not faults, are no failure: ScaledToZero
// False (the workload is simply not at zero: seen on the rig when the
// acting guard un-paused a tier left at 3 replicas), ScalingLimited, and a
// type this release does not know.
func TestDiagnoseHPAStatesAreNotFaults(t *testing.T) {
	conds := []autoscalingv2.HorizontalPodAutoscalerCondition{
		{Type: autoscalingv2.AbleToScale, Status: corev1.ConditionTrue, Reason: "ReadyForNewScale"},
		{Type: autoscalingv2.ScalingActive, Status: corev1.ConditionTrue, Reason: "ValidMetricFound"},
		{Type: autoscalingv2.ScalingLimited, Status: corev1.ConditionFalse, Reason: "DesiredWithinRange"},
		{Type: "ScaledToZero", Status: corev1.ConditionFalse, Reason: "NotScaledToZero", Message: "the HPA controller did not scale the workload to zero"},
		{Type: "SomethingNew", Status: corev1.ConditionFalse, Reason: "Whatever"},
	}
	k := newCluster(t, []runtime.Object{hpaObj(3, 3, conds...), depObj(1), podObj("raw-vllm-a")},
		soObj(nil, soCond("Ready", "True", "ScaledObjectReady", "ScaledObject is defined correctly and is ready for scaling")),
		apiService("True", "Passed", "all checks passed"))
	fs := Diagnose(context.Background(), k.c, gpu, false)
	for _, f := range fs {
		if f.Severity == Failure {
			t.Errorf("a state taken for a fault: %+v", f)
		}
	}
	if _, ok := find(fs, Info, "able to scale"); !ok {
		t.Errorf("no able-to-scale finding: %+v", fs)
	}
}

// A paused ScaledObject explains the missing HPA (and is no failure when
// the guard will un-pause it); a missing Deployment is named.
func TestDiagnosePausedAndMissing(t *testing.T) {
	k := newCluster(t, nil, soObj(map[string]string{PausedAnnotation: "true"}), apiService("True", "Passed", "all checks passed"))
	fs := Diagnose(context.Background(), k.c, gpu, false)
	if f, ok := find(fs, Failure, "is paused (autoscaling.keda.sh/paused=\"true\"): KEDA deletes its HPA"); !ok || !strings.Contains(f.Fix, "--guard-act") {
		t.Errorf("no paused finding with the fix: %+v", fs)
	}
	if _, ok := find(fs, Failure, "HPA serving/keda-hpa-raw-vllm does not exist"); ok {
		t.Errorf("the missing HPA is told beside the pause that explains it: %+v", fs)
	}
	if _, ok := find(fs, Failure, "Deployment serving/raw-vllm does not exist"); !ok {
		t.Errorf("no missing-Deployment finding: %+v", fs)
	}
	if _, ok := find(fs, Info, "is available"); !ok {
		t.Errorf("the available APIService is not told: %+v", fs)
	}
	fs = Diagnose(context.Background(), k.c, gpu, true)
	if _, ok := find(fs, Failure, "is paused"); ok {
		t.Errorf("with the acting guard a pause is no failure: %+v", fs)
	}
	k = newCluster(t, nil, soObj(nil))
	fs = Diagnose(context.Background(), k.c, gpu, false)
	if _, ok := find(fs, Failure, "does not exist though the ScaledObject is not paused: KEDA has not made it"); !ok {
		t.Errorf("no missing-HPA finding: %+v", fs)
	}
}

// An object the API refuses to give is a failure that names it and the
// access to grant.
func TestDiagnoseForbidden(t *testing.T) {
	k := newCluster(t, []runtime.Object{hpaObj(1, 1), depObj(1)}, soObj(nil), apiService("True", "Passed", "all checks passed"))
	k.core.PrependReactor("get", "deployments", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Group: "apps", Resource: "deployments"}, depRef.Name, errors.New("no role"))
	})
	fs := Diagnose(context.Background(), k.c, gpu, false)
	if f, ok := find(fs, Failure, "cannot read Deployment serving/raw-vllm: "); !ok || !strings.Contains(f.Fix, "deploy/rbac.yaml") {
		t.Errorf("no forbidden-Deployment finding with the fix: %+v", fs)
	}
}
