package kube

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	k8stesting "k8s.io/client-go/testing"
)

const insufficientGPU = "0/1 nodes are available: 1 Insufficient nvidia.com/gpu. preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod."

// The GPU tier as the API tells it: the HPA's rescale with its own
// message and the event's time, the second pod Pending with the
// scheduler's reason, the first pod's Ready transition, and condition
// changes of the HPA and the ScaledObject; values follow the objects.
func TestSourceTellsTheGPUTier(t *testing.T) {
	active := autoscalingv2.HorizontalPodAutoscalerCondition{Type: autoscalingv2.ScalingActive, Status: corev1.ConditionTrue, Reason: "ValidMetricFound"}
	k := newCluster(t, []runtime.Object{hpaObj(1, 1, active), depObj(1), podObj("raw-vllm-a")},
		soObj(nil, soCond("Ready", "True", "ScaledObjectReady", ""), soCond("Active", "False", "ScalerNotActive", "")))
	s := start(t, k, gpu)
	if v, _ := s.Value(Query(gpu, Desired)); !v.OK() || v.V != 1 {
		t.Fatalf("desired = %+v, want 1", v)
	}
	if v, _ := s.Value(Query(gpu, Min)); !v.OK() || v.V != 1 {
		t.Fatalf("min = %+v, want 1", v)
	}
	for _, q := range []string{"", QueryPrefix + "HorizontalPodAutoscaler serving/other .status.desiredReplicas"} {
		if v, ok := s.Value(q); ok {
			t.Errorf("Value(%q) = %+v: the source answers only its own queries", q, v)
		}
	}
	if len(s.Events()) != 0 {
		t.Fatalf("the state found at the start is no event: %v", s.Events())
	}
	at := time.Now().Add(2 * time.Second).Truncate(time.Second) // the API's whole seconds, later than the source's start

	k.awaitOpen(t, "events", 1)
	k.watch("events").Add(&corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{Namespace: "serving", Name: "keda-hpa-raw-vllm.1", UID: "e1"},
		InvolvedObject: corev1.ObjectReference{Kind: "HorizontalPodAutoscaler", Name: hpaRef.Name, Namespace: "serving"},
		Reason:         "SuccessfulRescale", Count: 1, LastTimestamp: metav1.NewTime(at),
		Message: "New size: 2; reason: external metric s0-prometheus(&LabelSelector{MatchLabels:map[string]string{scaledobject.keda.sh/name: raw-vllm,},}) above target",
	})
	// The same event again, unchanged (a relist, a resync): told once.
	k.watch("events").Modify(&corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{Namespace: "serving", Name: "keda-hpa-raw-vllm.1", UID: "e1"},
		InvolvedObject: corev1.ObjectReference{Kind: "HorizontalPodAutoscaler", Name: hpaRef.Name, Namespace: "serving"},
		Reason:         "SuccessfulRescale", Count: 1, LastTimestamp: metav1.NewTime(at), Message: "New size: 2; reason: external metric above target",
	})
	// Another object's event is not about the HPA.
	k.watch("events").Add(&corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{Namespace: "serving", Name: "other.1", UID: "e2"},
		InvolvedObject: corev1.ObjectReference{Kind: "HorizontalPodAutoscaler", Name: "other"},
		Reason:         "SuccessfulRescale", Count: 1, LastTimestamp: metav1.NewTime(at), Message: "New size: 9; reason: other",
	})
	limited := autoscalingv2.HorizontalPodAutoscalerCondition{Type: autoscalingv2.ScalingLimited, Status: corev1.ConditionTrue, Reason: "TooManyReplicas",
		Message: "the desired replica count is more than the maximum replica count", LastTransitionTime: metav1.NewTime(at)}
	k.awaitOpen(t, "horizontalpodautoscalers", 1)
	k.watch("horizontalpodautoscalers").Modify(hpaObj(2, 2, active, limited))
	k.awaitOpen(t, "pods", 1)
	k.watch("pods").Add(podObj("raw-vllm-b", corev1.PodCondition{Type: corev1.PodScheduled, Status: corev1.ConditionFalse,
		Reason: "Unschedulable", Message: insufficientGPU, LastTransitionTime: metav1.NewTime(at.Add(time.Second))}))
	k.watch("pods").Modify(podObj("raw-vllm-a",
		corev1.PodCondition{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(at.Add(-time.Hour))},
		corev1.PodCondition{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(at.Add(3 * time.Second))}))
	k.awaitOpen(t, "scaledobjects", 1)
	k.watch("scaledobjects").Modify(soObj(nil, soCond("Ready", "True", "ScaledObjectReady", ""), soCond("Active", "True", "ScalerActive", "Scaling is performed because triggers are active")))

	await(t, s, "every event", func() bool { return len(s.Events()) >= 5 })
	rescale, ok := hasEvent(s, "k8s_rescale", "New size: 2; reason: external metric")
	switch {
	case !ok:
		t.Fatalf("no k8s_rescale with the HPA's message: %v", s.Events())
	case !rescale.At.Equal(at) || rescale.To == nil || *rescale.To != 2:
		t.Errorf("rescale at %v to %v, want the event's time %v and 2", rescale.At, rescale.To, at)
	}
	if _, ok := hasEvent(s, "k8s_rescale", "New size: 9"); ok {
		t.Error("another HPA's rescale was told")
	}
	n := 0
	for _, e := range s.Events() {
		if e.Kind == "k8s_rescale" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d rescales told, want 1 (a repeat of the same event is not news)", n)
	}
	if e, ok := hasEvent(s, "k8s_condition", "ScalingLimited=True (TooManyReplicas)"); !ok || !e.At.Equal(at) {
		t.Errorf("ScalingLimited change: %+v (found %v), want at %v", e, ok, at)
	}
	if _, ok := hasEvent(s, "k8s_condition", "ScalingActive"); ok {
		t.Error("ScalingActive did not change but was told")
	}
	if e, ok := hasEvent(s, "pod_pending", "raw-vllm-b Pending (Unschedulable): 0/1 nodes are available: 1 Insufficient nvidia.com/gpu"); !ok || !e.At.Equal(at.Add(time.Second)) {
		t.Errorf("pending: %+v (found %v)", e, ok)
	}
	if e, ok := hasEvent(s, "pod_ready", "raw-vllm-a Ready"); !ok || !e.At.Equal(at.Add(3*time.Second)) || e.To == nil || *e.To != 1 {
		t.Errorf("ready: %+v (found %v), want at %v with 1 ready", e, ok, at.Add(3*time.Second))
	}
	if _, ok := hasEvent(s, "pod_scheduled", "raw-vllm-a"); ok {
		t.Error("a scheduling from before the source started was told")
	}
	if _, ok := hasEvent(s, "so_condition", "ScaledObject Active=True (ScalerActive)"); !ok {
		t.Errorf("no so_condition Active=True: %v", s.Events())
	}
	await(t, s, "desired 2", func() bool { v, _ := s.Value(Query(gpu, Desired)); return v.OK() && v.V == 2 })
}

// A watch that cannot be opened again (the API server restarting) is a
// gap: the values are gaps, not the last ones, and k8s_watch marks when it
// began and when the watch resumed.
func TestSourceMarksGapAndResumes(t *testing.T) {
	k := newCluster(t, []runtime.Object{hpaObj(1, 1)})
	s := start(t, k, Targets{HPA: hpaRef})
	k.awaitOpen(t, "horizontalpodautoscalers", 1)
	k.mu.Lock()
	k.watchErr["horizontalpodautoscalers"] = errors.New(`Get "https://127.0.0.1:6443/apis/autoscaling/v2/namespaces/serving/horizontalpodautoscalers?watch=true": dial tcp 127.0.0.1:6443: connect: connection refused`)
	k.mu.Unlock()
	k.watch("horizontalpodautoscalers").Stop() // the server went away: the watch ends
	await(t, s, "the gap", func() bool { _, ok := hasEvent(s, "k8s_watch", "hpa: gap: watch: "); return ok })
	// The value read while the watch is down is a gap, though the last
	// object said 1: nothing is invented.
	v, _ := s.Value(Query(Targets{HPA: hpaRef}, Desired))
	if v.OK() || !strings.Contains(v.Gap, "connection refused") {
		// it may already have resumed (backoff 10 ms): then the resume is told
		if _, resumed := hasEvent(s, "k8s_watch", "hpa: resumed"); !resumed {
			t.Errorf("desired during the gap = %+v, want a gap naming the refusal", v)
		}
	}
	k.awaitOpen(t, "horizontalpodautoscalers", 2)
	await(t, s, "the resume", func() bool { _, ok := hasEvent(s, "k8s_watch", "hpa: resumed (watch open again)"); return ok })
	k.watch("horizontalpodautoscalers").Modify(hpaObj(3, 1))
	await(t, s, "desired 3 after the resume", func() bool { v, _ := s.Value(Query(Targets{HPA: hpaRef}, Desired)); return v.OK() && v.V == 3 })
}

// A watch the server has expired (410 Gone) is listed again: what was
// deleted in between is seen gone, and the watch goes on.
func TestSourceRelistsOnGone(t *testing.T) {
	k := newCluster(t, []runtime.Object{hpaObj(2, 2)})
	s := start(t, k, Targets{HPA: hpaRef})
	k.awaitOpen(t, "horizontalpodautoscalers", 1)
	var lists atomic.Int32
	k.core.PrependReactor("list", "horizontalpodautoscalers", func(a k8stesting.Action) (bool, runtime.Object, error) {
		lists.Add(1)
		return false, nil, nil
	})
	// KEDA deleted the HPA while the watch was away (paused).
	if err := k.core.Tracker().Delete(schema.GroupVersionResource{Group: "autoscaling", Version: "v2", Resource: "horizontalpodautoscalers"}, "serving", hpaRef.Name); err != nil {
		t.Fatal(err)
	}
	gone := apierrors.NewResourceExpired("too old resource version: 1 (5)")
	k.watch("horizontalpodautoscalers").Error(&gone.ErrStatus)
	k.awaitOpen(t, "horizontalpodautoscalers", 2)
	await(t, s, "the HPA seen gone", func() bool {
		v, _ := s.Value(Query(Targets{HPA: hpaRef}, Desired))
		return !v.OK() && strings.Contains(v.Gap, "no HPA")
	})
	if _, ok := hasEvent(s, "k8s_watch", "410 Gone"); !ok {
		t.Errorf("no k8s_watch event for the relist: %v", s.Events())
	}
	if _, ok := hasEvent(s, "k8s_condition", "deleted"); !ok {
		t.Errorf("the HPA's deletion was not told: %v", s.Events())
	}
	if n := lists.Load(); n != 1 {
		t.Errorf("listed %d times after the 410, want 1", n)
	}
}

// A panic in a goroutine of the source goes to Panic, not to the process.
func TestSourcePanicIsRouted(t *testing.T) {
	k := newCluster(t, []runtime.Object{hpaObj(1, 1)})
	got := make(chan any, 1)
	k.core.PrependWatchReactor("horizontalpodautoscalers", func(k8stesting.Action) (bool, watch.Interface, error) {
		panic("reactor exploded")
	})
	s := NewSource(k.c, Targets{HPA: hpaRef})
	s.Panic = func(v any) { got <- v }
	ctx, cancel := context.WithCancel(context.Background())
	defer func() { cancel(); s.Wait() }()
	s.Start(ctx)
	select {
	case v := <-got:
		if v != "reactor exploded" {
			t.Fatalf("panic value %v", v)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the panic was not routed")
	}
}

// The ScaledObject deleted mid-run: told, and its conditions forgotten.
func TestSourceTellsScaledObjectDeleted(t *testing.T) {
	k := newCluster(t, nil, soObj(nil, soCond("Ready", "True", "ScaledObjectReady", "")))
	s := start(t, k, Targets{ScaledObject: soRef})
	k.awaitOpen(t, "scaledobjects", 1)
	k.watch("scaledobjects").Delete(soObj(nil))
	await(t, s, "the deletion", func() bool {
		_, ok := hasEvent(s, "so_condition", "ScaledObject serving/raw-vllm deleted: KEDA no longer scales the Deployment")
		return ok
	})
}
