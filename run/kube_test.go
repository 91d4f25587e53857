package run

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	dynfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/scaleout/scaleout/kube"
	"github.com/scaleout/scaleout/measure"
	"github.com/scaleout/scaleout/scenario"
	"github.com/scaleout/scaleout/sim"
	"github.com/scaleout/scaleout/timeline"
)

var hpaGVR = schema.GroupVersionResource{Group: "autoscaling", Version: "v2", Resource: "horizontalpodautoscalers"}

// fakeKEDA is a fake API server with what KEDA does to it: a ScaledObject
// serving/raw-vllm whose HPA keda-hpa-raw-vllm exists only while it is not
// paused, a Deployment raw-vllm with one ready pod, and the external
// metrics APIService. Every access review is allowed unless deny says no.
type fakeKEDA struct {
	core *fake.Clientset
	dyn  *dynfake.FakeDynamicClient
	c    *kube.Client

	mu      sync.Mutex
	deny    func(verb, resource string) bool
	reviews int               // access reviews asked
	before  map[string]string // the ScaledObject's annotations at the start
}

func newFakeKEDA(t *testing.T, ann map[string]string) *fakeKEDA {
	t.Helper()
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: "serving", Name: "raw-vllm"},
		Spec:       appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "raw-vllm"}}},
		Status:     appsv1.DeploymentStatus{Replicas: 1, ReadyReplicas: 1},
	}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "serving", Name: "raw-vllm-a", Labels: map[string]string{"app": "raw-vllm"}},
		Status: corev1.PodStatus{Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}}}
	so := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
		"metadata": map[string]any{"namespace": "serving", "name": "raw-vllm"},
		"spec":     map[string]any{"scaleTargetRef": map[string]any{"name": "raw-vllm"}},
	}}
	so.SetAnnotations(ann)
	apisvc := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService", "metadata": map[string]any{"name": kube.ExternalMetricsAPIService},
		"status": map[string]any{"conditions": []any{map[string]any{"type": "Available", "status": "True", "reason": "Passed"}}},
	}}
	objs := []runtime.Object{dep, pod}
	paused := kube.PauseOf(ann).Pausing()
	if !paused {
		objs = append(objs, hpa(1))
	}
	f := &fakeKEDA{core: fake.NewClientset(objs...), before: ann,
		dyn: dynfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), map[schema.GroupVersionResource]string{
			kube.ScaledObjects: "ScaledObjectList", kube.APIServices: "APIServiceList"}, so, apisvc)}
	f.core.PrependReactor("create", "selfsubjectaccessreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		r := a.(k8stesting.CreateAction).GetObject().(*authorizationv1.SelfSubjectAccessReview)
		ra := r.Spec.ResourceAttributes
		f.mu.Lock()
		deny := f.deny
		f.reviews++
		f.mu.Unlock()
		r.Status.Allowed = deny == nil || !deny(ra.Verb, ra.Resource)
		return true, r, nil
	})
	// KEDA: un-paused, it makes the HPA; paused, it deletes it.
	f.dyn.PrependReactor("patch", "scaledobjects", func(a k8stesting.Action) (bool, runtime.Object, error) {
		var p struct {
			Metadata struct {
				Annotations map[string]*string `json:"annotations"`
			} `json:"metadata"`
		}
		if err := json.Unmarshal(a.(k8stesting.PatchAction).GetPatch(), &p); err != nil {
			return true, nil, err
		}
		pause := kube.Pause{Paused: p.Metadata.Annotations[kube.PausedAnnotation], PausedReplicas: p.Metadata.Annotations[kube.PausedReplicasAnnotation]}
		tr := f.core.Tracker()
		if pause.Pausing() {
			if err := tr.Delete(hpaGVR, "serving", "keda-hpa-raw-vllm"); err != nil && !apierrors.IsNotFound(err) {
				return true, nil, err
			}
		} else if _, err := tr.Get(hpaGVR, "serving", "keda-hpa-raw-vllm"); apierrors.IsNotFound(err) {
			if err := tr.Add(hpa(1)); err != nil {
				return true, nil, err
			}
		}
		return false, nil, nil
	})
	f.c = &kube.Client{Core: f.core, Dyn: f.dyn, Where: "fake"}
	saved := kubeConnect
	kubeConnect = func(kube.Config) (*kube.Client, error) { return f.c, nil }
	t.Cleanup(func() { kubeConnect = saved })
	return f
}

func hpa(desired int32) *autoscalingv2.HorizontalPodAutoscaler {
	one := int32(1)
	return &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Namespace: "serving", Name: "keda-hpa-raw-vllm"},
		Spec:       autoscalingv2.HorizontalPodAutoscalerSpec{MinReplicas: &one, MaxReplicas: 2},
		Status:     autoscalingv2.HorizontalPodAutoscalerStatus{DesiredReplicas: desired, CurrentReplicas: desired},
	}
}

// annotations are the ScaledObject's annotations now.
func (f *fakeKEDA) annotations(t *testing.T) map[string]string {
	t.Helper()
	u, err := f.dyn.Resource(kube.ScaledObjects).Namespace("serving").Get(context.Background(), "raw-vllm", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return u.GetAnnotations()
}

// restored checks the ScaledObject has exactly the annotations it had and
// KEDA's HPA is gone again.
func (f *fakeKEDA) restored(t *testing.T) {
	t.Helper()
	got := f.annotations(t)
	if len(got) != len(f.before) {
		t.Errorf("annotations after the run %v, want exactly %v", got, f.before)
	}
	for k, v := range f.before {
		if got[k] != v {
			t.Errorf("annotation %s = %q after the run, want %q", k, got[k], v)
		}
	}
	if _, err := f.core.Tracker().Get(hpaGVR, "serving", "keda-hpa-raw-vllm"); !apierrors.IsNotFound(err) {
		t.Errorf("the HPA is still there after the run (KEDA deletes it while paused): %v", err)
	}
}

// serveSim serves a simulated vLLM fleet to send the load to.
func serveSim(t *testing.T) (*sim.Fleet, string) {
	t.Helper()
	cfg := sim.DefaultConfig()
	cfg.TTFT, cfg.ITL = 5*time.Millisecond, time.Millisecond
	fleet, err := sim.New(cfg, sim.RealClock())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { _ = fleet.Run(ctx) }()
	srv := httptest.NewServer(fleet.Handler())
	t.Cleanup(func() { srv.Close(); cancel() })
	return fleet, srv.URL
}

// relaxedClientCheck keeps the client's self-check out of these runs'
// verdicts: they test the API's side, and on a shared machine a few
// sends go out late.
const relaxedClientCheck = "client_check: {max_send_lag: 10s, max_shortfall: 50%}\n"

// apiScenario writes a short run reading the API alone (the scenario's
// load and expectations, then observe); it returns the file's path.
func apiScenario(t *testing.T, url, rest string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "api.yaml")
	text := "target: {url: " + url + "}\nrequest: {prompt_tokens: 8, max_tokens: 4}\n" + relaxedClientCheck + rest +
		"observe: {interval: 100ms, after: 0s, rest_wait: 0s, hpa: serving/keda-hpa-raw-vllm, deployment: serving/raw-vllm, kubernetes: {}}\n"
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// actScenario is a short run with the acting guard, reading the API alone.
func actScenario(t *testing.T, url, expect string) string {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "act.yaml")
	text := `
target: {url: ` + url + `}
request: {prompt_tokens: 8, max_tokens: 4}
` + relaxedClientCheck + `load: [{name: light, duration: 1s, rate: 5/s}]
observe:
  interval: 100ms
  after: 0s
  rest_wait: 0s
  hpa: serving/keda-hpa-raw-vllm
  deployment: serving/raw-vllm
  kubernetes: {}
guard: act
expect: [` + expect + `]
`
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// hooks is a display that calls onStage when a stage starts, on the run's
// own goroutine.
type hooks struct {
	noDisplay
	onStage func(int)
}

func (h hooks) Stage(i int) {
	if h.onStage != nil {
		h.onStage(i)
	}
}

func runAct(t *testing.T, path string, o Options) (*Result, error) {
	t.Helper()
	p, err := Prepare(context.Background(), path, scenario.Overrides{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	if p.Kube == nil {
		t.Fatal("the plan does not read the Kubernetes API")
	}
	if o.Out == "" {
		o.Out = filepath.Join(t.TempDir(), "run")
	}
	o.GuardWait = 10 * time.Second
	o.Drain = 10 * time.Second
	var log strings.Builder
	if o.Log == nil {
		o.Log = &syncWriter{w: &log}
	}
	return Run(context.Background(), p, o)
}

type syncWriter struct {
	mu sync.Mutex
	w  *strings.Builder
}

func (s *syncWriter) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(b)
}

func (s *syncWriter) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.String()
}

// checkGuard checks report.json's guard: the pause restored, KEDA seen to
// honour it, the un-paused window there.
func checkGuard(t *testing.T, res *Result) {
	t.Helper()
	g := res.Report.Guard
	switch {
	case g == nil:
		t.Fatal("no guard in the report")
	case !g.OK || g.State != "paused" || !strings.Contains(g.Verified, "deleted the HPA"):
		t.Errorf("guard %+v", g)
	case g.Unpaused == nil || g.Unpaused.End == nil || g.Unpaused.End.Before(g.Unpaused.Start) || g.Unpaused.DurationS <= 0:
		t.Errorf("un-paused window %+v", g.Unpaused)
	case !strings.Contains(g.Before, `autoscaling.keda.sh/paused="true"`):
		t.Errorf("guard.before = %q", g.Before)
	}
	data, err := os.ReadFile(filepath.Join(res.Dir, "report.json"))
	if err != nil {
		t.Fatalf("%v (the run directory's error: %v)", err, res.WriteErr)
	}
	if !strings.Contains(string(data), `"unpaused": {`) {
		t.Errorf("report.json has no guard.unpaused window")
	}
}

var pausedAnn = map[string]string{kube.PausedAnnotation: "true", "team": "serving"}

// The acting guard after a pass: un-paused for the run, the pause put back
// exactly, KEDA seen to honour it, the window reported.
func TestGuardActAfterPass(t *testing.T) {
	f := newFakeKEDA(t, pausedAnn)
	_, url := serveSim(t)
	var during map[string]string
	res, err := runAct(t, actScenario(t, url, "ready >= 1 at end"), Options{Display: hooks{onStage: func(int) { during = f.annotations(t) }}})
	if err != nil {
		t.Fatal(err)
	}
	if _, paused := during[kube.PausedAnnotation]; paused || during["team"] != "serving" {
		t.Errorf("annotations during the load %v: want the pause removed and the rest kept", during)
	}
	if res.Report.Verdict != timeline.Pass {
		t.Errorf("verdict %s, want pass: %+v", res.Report.Verdict, res.Report.Expectations)
	}
	checkGuard(t, res)
	f.restored(t)
	for _, s := range res.Report.Series {
		if s.Name == "desired" && s.Source != SourceAPI {
			t.Errorf("desired's source %q, want %q", s.Source, SourceAPI)
		}
	}
}

// After a fail: the same restore; the verdict stays the expectation's.
func TestGuardActAfterFail(t *testing.T) {
	f := newFakeKEDA(t, pausedAnn)
	_, url := serveSim(t)
	res, err := runAct(t, actScenario(t, url, "ready >= 5 at end"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Report.Verdict != timeline.Fail {
		t.Errorf("verdict %s, want fail", res.Report.Verdict)
	}
	checkGuard(t, res)
	f.restored(t)
}

// Ctrl-C and SIGTERM during the load: a partial run, and the pause put back.
func TestGuardActAfterInterrupt(t *testing.T) {
	for _, sig := range []os.Signal{os.Interrupt, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			f := newFakeKEDA(t, pausedAnn)
			_, url := serveSim(t)
			signals := make(chan os.Signal, 1)
			res, err := runAct(t, actScenario(t, url, "ready >= 1 at end"), Options{Signals: signals,
				Display: hooks{onStage: func(int) { signals <- sig }}})
			if err != nil {
				t.Fatal(err)
			}
			if !res.Report.Partial {
				t.Error("the run is not partial")
			}
			checkGuard(t, res)
			f.restored(t)
		})
	}
}

// An error after the un-pause (the run directory cannot be made): the
// run fails (exit 3) and the pause is put back all the same.
func TestGuardActAfterError(t *testing.T) {
	f := newFakeKEDA(t, pausedAnn)
	_, url := serveSim(t)
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := runAct(t, actScenario(t, url, "ready >= 1 at end"), Options{Out: filepath.Join(file, "run")})
	if err == nil || res != nil {
		t.Fatalf("res %v, err %v: want the run directory's error", res, err)
	}
	f.restored(t)
}

// A panic on the run's goroutine, and one in a goroutine of the run (the
// Kubernetes source's): the pause is put back before the panic goes on.
func TestGuardActAfterPanic(t *testing.T) {
	catch := func(f func()) (v any) {
		defer func() { v = recover() }()
		f()
		return nil
	}
	t.Run("run", func(t *testing.T) {
		f := newFakeKEDA(t, pausedAnn)
		_, url := serveSim(t)
		v := catch(func() {
			_, _ = runAct(t, actScenario(t, url, "ready >= 1 at end"), Options{Display: hooks{onStage: func(int) { panic("display exploded") }}})
		})
		if v != "display exploded" {
			t.Fatalf("recovered %v", v)
		}
		f.restored(t)
	})
	t.Run("background", func(t *testing.T) {
		f := newFakeKEDA(t, pausedAnn)
		_, url := serveSim(t)
		var mu sync.Mutex
		var first *watch.FakeWatcher
		f.core.PrependWatchReactor("pods", func(k8stesting.Action) (bool, watch.Interface, error) {
			mu.Lock()
			defer mu.Unlock()
			if first == nil {
				first = watch.NewFake()
				return true, first, nil
			}
			panic("pods watch exploded")
		})
		v := catch(func() {
			_, _ = runAct(t, actScenario(t, url, "ready >= 1 at end"), Options{Display: hooks{onStage: func(int) {
				mu.Lock()
				defer mu.Unlock()
				first.Stop() // the watch ends: the source opens it again, and that panics
			}}})
		})
		if v == nil || !strings.Contains(fmt.Sprint(v), "pods watch exploded") {
			t.Fatalf("recovered %v", v)
		}
		f.restored(t)
	})
}

// A token without a verb the run uses gets a clear error before anything
// is changed or sent (exit 3).
func TestMissingVerbRefusesBeforeTheLoad(t *testing.T) {
	f := newFakeKEDA(t, pausedAnn)
	f.deny = func(verb, resource string) bool { return verb == "patch" && resource == "scaledobjects" }
	fleet, url := serveSim(t)
	_, err := runAct(t, actScenario(t, url, "ready >= 1 at end"), Options{})
	var pe *PreflightError
	if !errors.As(err, &pe) || !strings.Contains(err.Error(), "not allowed to patch scaledobjects.keda.sh in namespace serving") {
		t.Fatalf("err = %v, want the missing patch named", err)
	}
	var re *Error
	if !errors.As(err, &re) || re.Class != CannotRun {
		t.Errorf("err class: %v (want CannotRun, exit 3)", err)
	}
	if n := fleet.Stats().Received; n != 0 {
		t.Errorf("%d requests sent", n)
	}
	if got := f.annotations(t); got[kube.PausedAnnotation] != "true" {
		t.Errorf("the ScaledObject was changed: %v", got)
	}
}

// The API's events reach the timeline on the run's clock, and time to
// intent is the rescale's API time (kpis.clock says so).
func TestAPIEventsAndKPIs(t *testing.T) {
	f := newFakeKEDA(t, nil)
	_, url := serveSim(t)
	path := apiScenario(t, url, "load: [{name: light, duration: 2s, rate: 5/s}]\nexpect: [desired >= 2]\n")
	var at time.Time
	res, err := runAct(t, path, Options{Display: hooks{onStage: func(int) {
		at = time.Now().Add(time.Second).Truncate(time.Second)
		ctx := context.Background()
		_, err := f.core.CoreV1().Events("serving").Create(ctx, &corev1.Event{
			ObjectMeta:     metav1.ObjectMeta{Namespace: "serving", Name: "keda-hpa-raw-vllm.1", UID: "u1"},
			InvolvedObject: corev1.ObjectReference{Kind: "HorizontalPodAutoscaler", Name: "keda-hpa-raw-vllm", Namespace: "serving"},
			Reason:         "SuccessfulRescale", Count: 1, LastTimestamp: metav1.NewTime(at),
			Message: "New size: 2; reason: external metric s0-prometheus above target"}, metav1.CreateOptions{})
		if err != nil {
			panic(err)
		}
		if _, err := f.core.AutoscalingV2().HorizontalPodAutoscalers("serving").Update(ctx, hpa(2), metav1.UpdateOptions{}); err != nil {
			panic(err)
		}
	}}})
	if err != nil {
		t.Fatal(err)
	}
	r := res.Report
	var rescale *timeline.Event
	for i, e := range r.Events {
		if e.Kind == timeline.K8sRescale {
			rescale = &r.Events[i]
		}
	}
	if rescale == nil || !strings.Contains(rescale.Text, "New size: 2; reason: external metric s0-prometheus above target") {
		t.Fatalf("no k8s_rescale with the HPA's message: %+v", r.Events)
	}
	if r.KPIs.TimeToIntent == nil || *r.KPIs.TimeToIntent != rescale.T || r.KPIs.Clock[timeline.KPITimeToIntent] != "API time" {
		t.Errorf("time to intent %v (clock %v), want the rescale's %v on API time", r.KPIs.TimeToIntent, r.KPIs.Clock, rescale.T)
	}
	want := at.Sub(r.Started).Seconds() // started is before the epoch: an upper bound
	if rescale.T > want+0.001 {
		t.Errorf("rescale at %.3f s, later than its API time allows (%.3f s after the start)", rescale.T, want)
	}
	if r.Verdict != timeline.Pass {
		t.Errorf("verdict %s: %+v", r.Verdict, r.Expectations)
	}
	var text strings.Builder
	if err := timeline.WriteText(&text, r, timeline.TextOptions{}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text.String(), "(API time)") || !strings.Contains(text.String(), "New size: 2") {
		t.Errorf("the printed run does not show the rescale and its API time:\n%s", text.String())
	}
}

// scaleout check names a broken trigger (FailedGetExternalMetric) with
// KEDA's own message, and its fix.
func TestCheckNamesBrokenTrigger(t *testing.T) {
	f := newFakeKEDA(t, nil)
	h := hpa(1)
	h.Status.Conditions = []autoscalingv2.HorizontalPodAutoscalerCondition{{Type: autoscalingv2.ScalingActive, Status: corev1.ConditionFalse,
		Reason: "FailedGetExternalMetric", Message: "the HPA was unable to compute the replica count: unable to get external metric serving/s0-prometheus"}}
	if _, err := f.core.AutoscalingV2().HorizontalPodAutoscalers("serving").Update(context.Background(), h, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.core.CoreV1().Events("serving").Create(context.Background(), &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{Namespace: "serving", Name: "raw-vllm.1"},
		InvolvedObject: corev1.ObjectReference{Kind: "ScaledObject", Name: "raw-vllm", Namespace: "serving"},
		Type:           corev1.EventTypeWarning, Reason: "KEDAScalerFailed", LastTimestamp: metav1.Now(),
		Message: "error inspecting prometheus metrics: no such host"}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	_, url := serveSim(t)
	p, err := PrepareFlags(context.Background(), scenario.Overrides{Target: url})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if p.Kube != nil {
		t.Fatal("nothing names an object: the API is not read")
	}
	path := actScenario(t, url, "ready >= 1 at end")
	p, err = Prepare(context.Background(), path, scenario.Overrides{GuardAct: false})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	p.Scenario.Guard = "" // check as a run without the acting guard would
	findings, err := Check(context.Background(), p)
	if err == nil {
		t.Fatalf("check passed: %v", findings)
	}
	var hit *Finding
	for i, fd := range findings {
		if fd.Level == Fail && strings.Contains(fd.Msg, "ScalingActive=False (FailedGetExternalMetric)") {
			hit = &findings[i]
		}
	}
	if hit == nil || !strings.Contains(hit.Msg, "KEDA says: KEDAScalerFailed: error inspecting prometheus metrics: no such host") || hit.Fix == "" {
		t.Fatalf("no FailedGetExternalMetric finding with KEDA's message and a fix: %+v", findings)
	}
}

// The API's replica series take the place of the Prometheus ones, which
// stay as a cross-check; without Prometheus they are dropped.
func TestAPISeries(t *testing.T) {
	tg := kube.Targets{HPA: kube.Ref{Namespace: "serving", Name: "keda-hpa-raw-vllm"}, Deployment: kube.Ref{Namespace: "serving", Name: "raw-vllm"}}
	in := []measure.Series{{Name: "waiting", Query: "sum(vllm:num_requests_waiting)"}, {Name: "desired", Query: "kube_desired"}, {Name: "ready", Query: "kube_ready"}}
	got := apiSeries(in, tg, true)
	var names []string
	for _, s := range got {
		names = append(names, s.Name+"="+s.Source)
	}
	want := "waiting=,desired=kubernetes API,ready=kubernetes API,current=kubernetes API,desired_prom=,ready_prom="
	if strings.Join(names, ",") != want {
		t.Errorf("series %s\nwant    %s", strings.Join(names, ","), want)
	}
	if got[4].Query != "kube_desired" || !strings.HasPrefix(got[1].Query, kube.QueryPrefix) {
		t.Errorf("queries: %+v", got)
	}
	if n := len(apiSeries(in, tg, false)); n != 4 {
		t.Errorf("without Prometheus %d series, want 4 (no cross-check)", n)
	}
}

// A cluster that is not configured leaves the run to Prometheus; one named
// explicitly that does not answer is exit 3; one not named that does not
// answer is a note.
func TestPlanKubeReachability(t *testing.T) {
	_, url := serveSim(t)
	saved := kubeConnect
	t.Cleanup(func() { kubeConnect = saved })
	path := actScenario(t, url, "ready >= 1 at end")
	kubeConnect = func(kube.Config) (*kube.Client, error) { return nil, kube.ErrNoConfig }
	if _, err := Prepare(context.Background(), path, scenario.Overrides{}); err == nil || !strings.Contains(err.Error(), "no kubeconfig found") {
		t.Errorf("guard: act without a cluster: %v", err)
	}
	dir := t.TempDir()
	plain := filepath.Join(dir, "plain.yaml")
	if err := os.WriteFile(plain, []byte("target: {url: "+url+"}\nload: [{duration: 1s, rate: 1/s}]\nobserve: {scrape: ["+url+"/metrics], hpa: serving/keda-hpa-raw-vllm}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := Prepare(context.Background(), plain, scenario.Overrides{})
	if err != nil || p.Kube != nil {
		t.Fatalf("no cluster configured: kube %v, err %v", p.Kube, err)
	}
	p.Close()
	down := fake.NewClientset()
	down.PrependReactor("get", "version", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, fmt.Errorf("dial tcp 127.0.0.1:6443: connect: connection refused")
	})
	kubeConnect = func(kube.Config) (*kube.Client, error) { return &kube.Client{Core: down, Where: "context down"}, nil }
	p, err = Prepare(context.Background(), plain, scenario.Overrides{})
	if err != nil || p.Kube != nil || len(p.Notes) != 1 || !strings.Contains(p.Notes[0], "connection refused") {
		t.Fatalf("unreachable, not named: kube %v, notes %v, err %v", p.Kube, p.Notes, err)
	}
	p.Close()
	// Reachable, not named, allowed: the API's series beside the pages'
	// (the scrape mode does not take the API's queries for its own).
	f := newFakeKEDA(t, nil)
	p, err = Prepare(context.Background(), plain, scenario.Overrides{})
	if err != nil || p.Kube == nil {
		t.Fatalf("reachable and allowed, with observe.scrape: err %v", err)
	}
	p.Close()
	// Reachable, not named, and not allowed to watch events: a note, the
	// run as before.
	f.deny = func(verb, resource string) bool { return verb == "watch" && resource == "events" }
	p, err = Prepare(context.Background(), plain, scenario.Overrides{})
	if err != nil || p.Kube != nil || len(p.Notes) != 1 || !strings.Contains(p.Notes[0], "not allowed to watch events in namespace serving") {
		t.Fatalf("reachable but denied, not named: kube %v, notes %v, err %v", p.Kube, p.Notes, err)
	}
	p.Close()
	kubeConnect = func(kube.Config) (*kube.Client, error) { return &kube.Client{Core: down, Where: "context down"}, nil }
	_, err = Prepare(context.Background(), plain, scenario.Overrides{Context: "down"})
	var re *Error
	if !errors.As(err, &re) || re.Class != CannotRun {
		t.Errorf("unreachable and named by --context: %v, want exit 3", err)
	}
}

// The access review is asked once per run, whoever asks first: the plan
// (a cluster found, not named), the acting guard, or the preflight; and
// scaleout check of a scenario with guard: act reviews the patch too.
func TestAccessReviewAskedOnce(t *testing.T) {
	_, url := serveSim(t)
	all := kube.Targets{HPA: kube.Ref{Namespace: "serving", Name: "keda-hpa-raw-vllm"}, Deployment: kube.Ref{Namespace: "serving", Name: "raw-vllm"},
		ScaledObject: kube.Ref{Namespace: "serving", Name: "raw-vllm"}}
	reviews := func(f *fakeKEDA) int {
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.reviews
	}
	t.Run("found, not named", func(t *testing.T) {
		f := newFakeKEDA(t, nil)
		plain := filepath.Join(t.TempDir(), "plain.yaml")
		if err := os.WriteFile(plain, []byte("target: {url: "+url+"}\nload: [{duration: 1s, rate: 1/s}]\nobserve: {scrape: ["+url+"/metrics], hpa: serving/keda-hpa-raw-vllm}\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		p, err := Prepare(context.Background(), plain, scenario.Overrides{})
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		if p.Kube == nil {
			t.Fatalf("the plan does not read the Kubernetes API: %v", p.Notes)
		}
		findings, _ := Check(context.Background(), p)
		want := len(kube.Needs(p.Kube.targets, false))
		if n := reviews(f); n != want {
			t.Errorf("%d access reviews, want %d (one per permission): %v", n, want, findings)
		}
	})
	t.Run("guard act", func(t *testing.T) {
		f := newFakeKEDA(t, pausedAnn)
		res, err := runAct(t, actScenario(t, url, "ready >= 1 at end"), Options{})
		if err != nil {
			t.Fatal(err)
		}
		if n, want := reviews(f), len(kube.Needs(all, true)); n != want {
			t.Errorf("%d access reviews, want %d (one per permission)", n, want)
		}
		checkGuard(t, res)
	})
	t.Run("check with guard act", func(t *testing.T) {
		f := newFakeKEDA(t, pausedAnn)
		f.deny = func(verb, resource string) bool { return verb == "patch" && resource == "scaledobjects" }
		p, err := Prepare(context.Background(), actScenario(t, url, "ready >= 1 at end"), scenario.Overrides{})
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		findings, err := Check(context.Background(), p)
		if err == nil || !strings.Contains(err.Error(), "not allowed to patch scaledobjects.keda.sh in namespace serving") {
			t.Errorf("check of guard: act without patch: err %v, findings %v", err, findings)
		}
		if n, want := reviews(f), len(kube.Needs(all, true)); n != want {
			t.Errorf("%d access reviews, want %d", n, want)
		}
	})
}

// A pause the guard cannot put back (the API refuses the patch): the run
// fails, the report says the ScaledObject is still un-paused, and the exact
// kubectl command is printed.
func TestGuardActCannotRepause(t *testing.T) {
	f := newFakeKEDA(t, pausedAnn)
	_, url := serveSim(t)
	patches := 0
	f.dyn.PrependReactor("patch", "scaledobjects", func(k8stesting.Action) (bool, runtime.Object, error) {
		patches++ // the run's goroutine alone patches
		if patches > 1 {
			return true, nil, apierrors.NewForbidden(kube.ScaledObjects.GroupResource(), "raw-vllm", errors.New("token expired"))
		}
		return false, nil, nil
	})
	var log strings.Builder
	res, err := runAct(t, actScenario(t, url, "ready >= 1 at end"), Options{Log: &syncWriter{w: &log}})
	if err != nil {
		t.Fatal(err)
	}
	g := res.Report.Guard
	cmd := "kubectl -n serving annotate scaledobject raw-vllm --overwrite autoscaling.keda.sh/paused=true"
	if res.Report.Verdict != timeline.Fail || g == nil || g.OK || g.State != "unpaused" || g.Command != cmd || g.Unpaused == nil || g.Unpaused.End != nil {
		t.Errorf("verdict %s, guard %+v", res.Report.Verdict, g)
	}
	if !strings.Contains(log.String(), "!!!     "+cmd) {
		t.Errorf("the command is not printed:\n%s", log.String())
	}
	if _, paused := f.annotations(t)[kube.PausedAnnotation]; paused {
		t.Error("the fake refused the patch, yet the ScaledObject is paused")
	}
}

// The API server going away mid-run: the API's series are gaps that say
// why (never the last value), and a k8s_watch event marks the gap.
func TestAPIGapMidRun(t *testing.T) {
	f := newFakeKEDA(t, nil)
	_, url := serveSim(t)
	var mu sync.Mutex
	var first *watch.FakeWatcher
	calls := 0
	f.core.PrependWatchReactor("horizontalpodautoscalers", func(k8stesting.Action) (bool, watch.Interface, error) {
		mu.Lock()
		defer mu.Unlock()
		calls++
		if calls == 1 {
			first = watch.NewFake()
			return true, first, nil
		}
		return true, nil, errors.New("dial tcp 127.0.0.1:6443: connect: connection refused")
	})
	path := apiScenario(t, url, "load: [{name: light, duration: 1s, rate: 5/s}]\n")
	res, err := runAct(t, path, Options{Display: hooks{onStage: func(int) {
		mu.Lock()
		defer mu.Unlock()
		first.Stop()
	}}})
	if err != nil {
		t.Fatal(err)
	}
	r := res.Report
	gapEvent := false
	for _, e := range r.Events {
		gapEvent = gapEvent || e.Kind == timeline.K8sWatch && strings.Contains(e.Text, "hpa: gap: watch: dial tcp 127.0.0.1:6443: connect: connection refused")
	}
	if !gapEvent {
		t.Errorf("no k8s_watch gap event: %+v", r.Events)
	}
	gapRows := 0
	for _, row := range r.Timeline {
		if strings.Contains(row.Gaps["desired"], "kubernetes watch down") {
			gapRows++
			if row.Series["desired"] != nil {
				t.Errorf("row %v has a value in a gap", row.T)
			}
		}
	}
	if gapRows == 0 {
		t.Errorf("no row of desired says the watch is down: %+v", r.Timeline)
	}
}
