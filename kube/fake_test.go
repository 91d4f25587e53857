package kube

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	dynfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// The objects of the GPU tier: ScaledObject raw-vllm in serving, its HPA
// keda-hpa-raw-vllm and the Deployment raw-vllm with one pod.
var (
	soRef  = Ref{"serving", "raw-vllm"}
	hpaRef = Ref{"serving", "keda-hpa-raw-vllm"}
	depRef = Ref{"serving", "raw-vllm"}
	gpu    = Targets{HPA: hpaRef, Deployment: depRef, ScaledObject: soRef}
)

func hpaObj(desired, current int32, conds ...autoscalingv2.HorizontalPodAutoscalerCondition) *autoscalingv2.HorizontalPodAutoscaler {
	one := int32(1)
	return &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Namespace: hpaRef.Namespace, Name: hpaRef.Name, ResourceVersion: "1"},
		Spec:       autoscalingv2.HorizontalPodAutoscalerSpec{MinReplicas: &one, MaxReplicas: 2},
		Status:     autoscalingv2.HorizontalPodAutoscalerStatus{DesiredReplicas: desired, CurrentReplicas: current, Conditions: conds},
	}
}

func depObj(ready int32) *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: depRef.Namespace, Name: depRef.Name},
		Spec:       appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "raw-vllm"}}},
		Status:     appsv1.DeploymentStatus{Replicas: ready, ReadyReplicas: ready},
	}
}

func podObj(name string, conds ...corev1.PodCondition) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: depRef.Namespace, Name: name, Labels: map[string]string{"app": "raw-vllm"}},
		Status:     corev1.PodStatus{Conditions: conds},
	}
}

func soObj(ann map[string]string, conds ...map[string]any) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
		"metadata": map[string]any{"namespace": soRef.Namespace, "name": soRef.Name},
		"spec":     map[string]any{"scaleTargetRef": map[string]any{"name": depRef.Name}},
	}}
	if ann != nil {
		u.SetAnnotations(ann)
	}
	if len(conds) > 0 {
		list := make([]any, len(conds))
		for i, c := range conds {
			list[i] = c
		}
		_ = unstructured.SetNestedSlice(u.Object, list, "status", "conditions")
	}
	return u
}

func soCond(typ, status, reason, msg string) map[string]any {
	return map[string]any{"type": typ, "status": status, "reason": reason, "message": msg}
}

// cluster is a fake API server: the typed and the dynamic fake clientsets,
// and the watches the source opens, handed to the test to drive.
type cluster struct {
	core *fake.Clientset
	dyn  *dynfake.FakeDynamicClient
	c    *Client

	mu      sync.Mutex
	watches map[string][]*watch.FakeWatcher // resource → every watch opened, in order
	opened  chan string
	// watchErr, when set for a resource, is what its next Watch returns.
	watchErr map[string]error
}

func newCluster(t *testing.T, core []runtime.Object, dyn ...runtime.Object) *cluster {
	t.Helper()
	scheme := runtime.NewScheme()
	k := &cluster{
		core: fake.NewClientset(core...),
		dyn: dynfake.NewSimpleDynamicClientWithCustomListKinds(scheme, map[schema.GroupVersionResource]string{
			ScaledObjects: "ScaledObjectList", APIServices: "APIServiceList"}, dyn...),
		watches: map[string][]*watch.FakeWatcher{}, opened: make(chan string, 100), watchErr: map[string]error{},
	}
	react := func(a k8stesting.Action) (bool, watch.Interface, error) {
		res := a.GetResource().Resource
		k.mu.Lock()
		defer k.mu.Unlock()
		if err := k.watchErr[res]; err != nil {
			delete(k.watchErr, res)
			return true, nil, err
		}
		w := watch.NewFakeWithOptions(watch.FakeOptions{ChannelSize: 100})
		k.watches[res] = append(k.watches[res], w)
		k.opened <- res
		return true, w, nil
	}
	k.core.PrependWatchReactor("*", react)
	k.dyn.PrependWatchReactor("*", react)
	k.c = &Client{Core: k.core, Dyn: k.dyn, Where: "fake"}
	return k
}

// watch is the last watch opened on resource.
func (k *cluster) watch(resource string) *watch.FakeWatcher {
	k.mu.Lock()
	defer k.mu.Unlock()
	ws := k.watches[resource]
	return ws[len(ws)-1]
}

// awaitOpen waits until a watch on resource has been opened n times.
func (k *cluster) awaitOpen(t *testing.T, resource string, n int) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		k.mu.Lock()
		got := len(k.watches[resource])
		k.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-k.opened:
		case <-deadline:
			t.Fatalf("no watch #%d on %s within 20s", n, resource)
		}
	}
}

// await waits, on the source's own change signal, until cond holds.
func await(t *testing.T, s *Source, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		ch := s.Changed()
		if cond() {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("%s: not within 20s; events: %v", what, s.Events())
		}
	}
}

func hasEvent(s *Source, kind string, text string) (Event, bool) {
	for _, e := range s.Events() {
		if string(e.Kind) == kind && strings.Contains(e.Text, text) {
			return e, true
		}
	}
	return Event{}, false
}

func start(t *testing.T, k *cluster, tg Targets) *Source {
	t.Helper()
	s := NewSource(k.c, tg)
	s.Backoff = 10 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); s.Wait() })
	s.Start(ctx)
	if err := s.WaitListed(ctx); err != nil {
		t.Fatal(err)
	}
	return s
}
