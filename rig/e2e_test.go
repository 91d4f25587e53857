package rig

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/scaleout/scaleout/platform"
)

// The end-to-end tests share one rig (started by the first test that needs
// it) and stop it in TestMain. Without the binaries they skip, unless
// SCALEOUT_REQUIRE_CLUSTER=1 makes that a failure.
var (
	shared     *Rig
	sharedErr  error
	sharedOnce sync.Once
	sharedLog  = &syncWriter{w: os.Stderr}
)

func TestMain(m *testing.M) {
	code := m.Run()
	if shared != nil {
		if err := shared.Down(); err != nil {
			fmt.Fprintln(os.Stderr, "rig: Down:", err)
			code = 1
		}
	}
	os.Exit(code)
}

type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(b)
}

// binDirOrSkip finds the binaries or skips (fails under
// SCALEOUT_REQUIRE_CLUSTER=1).
func binDirOrSkip(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("skipping the cluster test in -short mode: make test-cluster runs it")
	}
	dir, err := BinDir(".")
	if err == nil {
		return dir
	}
	if os.Getenv("SCALEOUT_REQUIRE_CLUSTER") == "1" {
		t.Fatalf("SCALEOUT_REQUIRE_CLUSTER=1 and %v", err)
	}
	if errors.Is(err, ErrNoBinaries) {
		t.Skipf("skipping the cluster test: %v", err)
	}
	t.Fatal(err)
	return ""
}

// sharedRig is the rig the tier tests share, with both tiers.
func sharedRig(t *testing.T) *Rig {
	t.Helper()
	bin := binDirOrSkip(t)
	sharedOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
		defer cancel()
		start := time.Now()
		shared, sharedErr = Up(ctx, Options{BinDir: bin, Log: sharedLog})
		if sharedErr == nil {
			fmt.Fprintf(sharedLog, "rig: bring-up took %s\n", time.Since(start).Round(100*time.Millisecond))
		}
	})
	if sharedErr != nil {
		t.Fatalf("rig.Up: %v", sharedErr)
	}
	return shared
}

// TestSmoke: every component answers, the tiers are as shipped (one ready
// pod each, ScaledObjects paused, so no HPA), the series scaleout reads are
// in Prometheus with their names and labels, a token bound to a Role can do
// what the Role allows and nothing else, and the API server comes back from
// a restart.
func TestSmoke(t *testing.T) {
	r := sharedRig(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	kc, err := clientcmd.BuildConfigFromFlags("", r.Kubeconfig)
	if err != nil {
		t.Fatalf("the kubeconfig %s: %v", r.Kubeconfig, err)
	}
	cs := kubernetes.NewForConfigOrDie(kc)
	v, err := cs.Discovery().ServerVersion()
	if err != nil || v.GitVersion != K8sVersion {
		t.Fatalf("server version through the kubeconfig: %v %v, want %s", v, err, K8sVersion)
	}
	if err := r.Client.Discovery().RESTClient().Get().AbsPath("/apis/external.metrics.k8s.io/v1beta1").Do(ctx).Error(); err != nil {
		t.Errorf("the external metrics API: %v", err)
	}
	for _, tier := range Tiers {
		so, err := r.Dynamic.Resource(ScaledObjects).Namespace(tier.Namespace).Get(ctx, tier.ScaledObject, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("ScaledObject %s/%s: %v", tier.Namespace, tier.ScaledObject, err)
		}
		if so.GetAnnotations()[PausedAnnotation] != "true" {
			t.Errorf("ScaledObject %s/%s is not shipped paused: %v", tier.Namespace, tier.ScaledObject, so.GetAnnotations())
		}
		if _, err := r.Client.AutoscalingV2().HorizontalPodAutoscalers(tier.Namespace).Get(ctx, "keda-hpa-"+tier.ScaledObject, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("the HPA of the paused %s/%s: %v, want not found", tier.Namespace, tier.ScaledObject, err)
		}
		waitProm(t, ctx, r, fmt.Sprintf(`kube_deployment_status_replicas_ready{namespace=%q,deployment=%q}`, tier.Namespace, tier.Deployment), func(v float64) bool { return v == 1 })
		waitProm(t, ctx, r, fmt.Sprintf(`count(vllm:num_requests_waiting{namespace=%q,pod=~"%s-.+"})`, tier.Namespace, tier.Deployment), func(v float64) bool { return v == 1 })
		waitProm(t, ctx, r, fmt.Sprintf(`keda_scaled_object_paused{namespace=%q,scaledObject=%q}`, tier.Namespace, tier.ScaledObject), func(v float64) bool { return v == 1 })
	}

	// RBAC: a token bound to a Role that may read pods in one namespace.
	_, err = r.Client.RbacV1().Roles("inference").Create(ctx, &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "pod-reader"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list"}}},
	}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	tok, err := r.TokenForRole(ctx, "inference", "pod-reader")
	if err != nil {
		t.Fatal(err)
	}
	path, err := r.KubeconfigFor("pod-reader", tok)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		t.Fatal(err)
	}
	reader := kubernetes.NewForConfigOrDie(rc)
	if _, err := reader.CoreV1().Pods("inference").List(ctx, metav1.ListOptions{}); err != nil {
		t.Errorf("the pod-reader token listing pods in its namespace: %v", err)
	}
	if _, err := reader.CoreV1().Pods("serving").List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("the pod-reader token listing pods in another namespace: %v, want Forbidden", err)
	}
	if _, err := reader.AppsV1().Deployments("inference").List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("the pod-reader token listing deployments: %v, want Forbidden", err)
	}

	// The API server restarts; what it stored is still there.
	if err := r.RestartAPIServer(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Client.RbacV1().Roles("inference").Get(ctx, "pod-reader", metav1.GetOptions{}); err != nil {
		t.Errorf("after the restart: %v", err)
	}
}

// TestSecondRig: a second rig (control plane only) starts and stops on
// the same machine while the shared one runs, on other ports and in
// another directory, and stopping it leaves the first one answering.
func TestSecondRig(t *testing.T) {
	first := sharedRig(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	second, err := Up(ctx, Options{BinDir: binDirOrSkip(t), ControlPlaneOnly: true, Log: &prefixWriter{"second ", sharedLog}})
	if err != nil {
		t.Fatalf("the second rig: %v", err)
	}
	if second.APIURL == first.APIURL || second.Dir == first.Dir {
		t.Errorf("the two rigs share %s / %s", second.APIURL, second.Dir)
	}
	if _, err := second.Client.CoreV1().Nodes().Get(ctx, NodeName, metav1.GetOptions{}); err != nil {
		t.Errorf("the second rig's node: %v", err)
	}
	dir := second.Dir
	if err := second.Down(); err != nil {
		t.Errorf("the second rig's Down: %v", err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("the second rig's directory %s is still there after Down (%v)", dir, err)
	}
	if _, err := first.Client.CoreV1().Nodes().Get(ctx, NodeName, metav1.GetOptions{}); err != nil {
		t.Errorf("the first rig after the second stopped: %v", err)
	}
}

type prefixWriter struct {
	p string
	w io.Writer
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	_, err := p.w.Write([]byte(p.p + string(b)))
	return len(b), err
}

// waitProm polls an instant query until its single value satisfies ok.
func waitProm(t *testing.T, ctx context.Context, r *Rig, query string, ok func(float64) bool) {
	t.Helper()
	var last string
	err := waitFor(ctx, "prometheus "+query, nil, 500*time.Millisecond, func(ctx context.Context) error {
		v, err := promValue(ctx, r.PrometheusURL, query)
		if err != nil {
			last = err.Error()
			return err
		}
		if !ok(v) {
			last = fmt.Sprint(v)
			return fmt.Errorf("%s = %v", query, v)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("%v (last %s)", err, last)
	}
}

// promValue is the value of an instant query that returns one sample.
func promValue(ctx context.Context, base, query string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/v1/query?query="+url.QueryEscape(query), nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var out struct {
		Status string `json:"status"`
		Data   struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
		Error string `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return 0, err
	}
	if out.Status != "success" {
		return 0, fmt.Errorf("%s: %s", query, out.Error)
	}
	if len(out.Data.Result) != 1 {
		return 0, fmt.Errorf("%s: %d series, want 1", query, len(out.Data.Result))
	}
	var v float64
	s, _ := out.Data.Result[0].Value[1].(string)
	_, err = fmt.Sscan(s, &v)
	return v, err
}

// scaleoutBin builds the tool from the main module once per test binary.
var (
	toolOnce sync.Once
	toolPath string
	toolErr  error
)

func scaleoutBin(t *testing.T) string {
	t.Helper()
	toolOnce.Do(func() {
		dir, err := os.MkdirTemp("", "scaleout-tool-")
		if err != nil {
			toolErr = err
			return
		}
		toolPath = filepath.Join(dir, "scaleout")
		cmd := exec.Command("go", "build", "-o", toolPath, "./cmd/scaleout")
		cmd.Dir = ".."
		if out, err := cmd.CombinedOutput(); err != nil {
			toolErr = fmt.Errorf("go build ./cmd/scaleout: %v\n%s", err, out)
		}
	})
	if toolErr != nil {
		t.Fatal(toolErr)
	}
	return toolPath
}

// report is the part of report.json the tests read.
type report struct {
	Verdict      string `json:"verdict"`
	Expectations []struct {
		Expr   string `json:"expr"`
		OK     bool   `json:"ok"`
		Detail string `json:"detail"`
	} `json:"expectations"`
	Guard *struct {
		Required string `json:"required"`
		State    string `json:"state"`
		OK       bool   `json:"ok"`
		Detail   string `json:"detail"`
		Verified string `json:"verified"`
		Command  string `json:"command"`
		Unpaused *struct {
			Start     time.Time  `json:"start"`
			End       *time.Time `json:"end"`
			DurationS float64    `json:"duration_s"`
		} `json:"unpaused"`
	} `json:"guard"`
	Series []struct {
		Name   string `json:"name"`
		Source string `json:"source"`
	} `json:"series"`
	KPIs struct {
		TimeToIntent *float64          `json:"time_to_intent_s"`
		Clock        map[string]string `json:"clock"`
	} `json:"kpis"`
	Events []struct {
		T      float64  `json:"t_s"`
		Kind   string   `json:"kind"`
		Series string   `json:"series"`
		From   *float64 `json:"from"`
		To     *float64 `json:"to"`
		Text   string   `json:"text"`
	} `json:"events"`
	Timeline []struct {
		T      float64             `json:"t_s"`
		Series map[string]*float64 `json:"series"`
	} `json:"timeline"`
}

// runTool runs the scaleout binary with args, its stdout and stderr to the
// shared log; onLine (when not nil) sees each stderr line with the process,
// to signal it. It returns the exit code and all of stderr.
func runTool(t *testing.T, ctx context.Context, onLine func(string, *os.Process), args ...string) (int, string) {
	t.Helper()
	cmd := exec.CommandContext(ctx, scaleoutBin(t), args...)
	cmd.Stdout = &prefixWriter{"scaleout| ", sharedLog}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var all strings.Builder
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		line := sc.Text()
		all.WriteString(line + "\n")
		fmt.Fprintln(sharedLog, "scaleout! "+line)
		if onLine != nil {
			onLine(line, cmd.Process)
		}
	}
	err = cmd.Wait()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("scaleout: %v", err)
	}
	return code, all.String()
}

// runScenario runs the real scaleout binary on a scenario against the rig
// (Prometheus alone, no --kubeconfig) and returns its exit code, report,
// and stderr.
func runScenario(t *testing.T, ctx context.Context, r *Rig, gateway, scenario, scaledObject string, extra ...string) (int, *report, string) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "run")
	args := append([]string{"run", scenario, "--target", gateway, "--prometheus", r.PrometheusURL,
		"--scaledobject", scaledObject, "--out", out, "--rows", "200"}, extra...)
	code, all, rep := runKube(t, ctx, out, nil, args...)
	if rep == nil {
		t.Fatalf("scaleout exit %d and no report.json in %s\n%s", code, out, all)
	}
	return code, rep, all
}

// unpause un-pauses a tier's ScaledObject and waits for its HPA to have
// synced (desired at the minimum) and for Prometheus to see it.
func unpause(t *testing.T, ctx context.Context, r *Rig, tier Tier) {
	t.Helper()
	if err := r.SetPaused(ctx, tier.Namespace, tier.ScaledObject, false); err != nil {
		t.Fatal(err)
	}
	hpa := "keda-hpa-" + tier.ScaledObject
	if err := waitFor(ctx, "HPA "+hpa, nil, 300*time.Millisecond, func(ctx context.Context) error {
		h, err := r.Client.AutoscalingV2().HorizontalPodAutoscalers(tier.Namespace).Get(ctx, hpa, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if h.Status.LastScaleTime == nil && h.Status.DesiredReplicas == 0 {
			return fmt.Errorf("%s not synced yet", hpa)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	waitProm(t, ctx, r, fmt.Sprintf(`kube_horizontalpodautoscaler_status_desired_replicas{namespace=%q,horizontalpodautoscaler=%q}`, tier.Namespace, hpa), func(v float64) bool { return v == 1 })
}

// liveTier un-pauses the tier's ScaledObject for the test; at its end the
// ScaledObject is paused again and the Deployment back at one ready pod, as
// shipped, for the next test.
func liveTier(t *testing.T, ctx context.Context, r *Rig, tier Tier) {
	t.Helper()
	unpause(t, ctx, r, tier)
	restoreTier(t, r, tier)
}

// restoreTier pauses the tier's ScaledObject and scales its Deployment back
// to one ready pod at the end of the test, as shipped, for the next test.
func restoreTier(t *testing.T, r *Rig, tier Tier) {
	t.Cleanup(func() {
		cctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		_ = r.SetPaused(cctx, tier.Namespace, tier.ScaledObject, true)
		scaleTo(t, cctx, r, tier, 1)
	})
}

// scaleTo sets a Deployment's replicas (with its ScaledObject paused) and
// waits until exactly n pods are ready and no other exists.
func scaleTo(t *testing.T, ctx context.Context, r *Rig, tier Tier, n int32) {
	t.Helper()
	patch := fmt.Sprintf(`{"spec":{"replicas":%d}}`, n)
	if _, err := r.Client.AppsV1().Deployments(tier.Namespace).Patch(ctx, tier.Deployment, "application/merge-patch+json", []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := waitFor(ctx, fmt.Sprintf("%s/%s at %d pods", tier.Namespace, tier.Deployment, n), nil, 300*time.Millisecond, func(ctx context.Context) error {
		pods, err := r.Client.CoreV1().Pods(tier.Namespace).List(ctx, metav1.ListOptions{LabelSelector: "app=" + tier.Deployment})
		if err != nil {
			return err
		}
		if len(pods.Items) != int(n) || len(ReadyPods(pods.Items)) != int(n) {
			return fmt.Errorf("%d pods, %d ready", len(pods.Items), len(ReadyPods(pods.Items)))
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// TestGPUTier is runbook §2 on the rig: scenarios/gpu-trigger.yaml through
// the real scaleout binary, KEDA and the HPA controller, read from the API
// (--kubeconfig) with Prometheus beside it as the cross-check, and the
// acting guard. One run proves both: the HPA's desired rises to 2 or more
// (a k8s_rescale with the HPA's own reason, on API time; desired_prom from
// Prometheus agrees) while one pod stays ready (one GPU); the second pod is
// Pending with the scheduler's reason; and the guard leaves the
// ScaledObject paused as shipped.
func TestGPUTier(t *testing.T) {
	r, tier := sharedRig(t), Tiers[0]
	restoreTier(t, r, tier)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	out := filepath.Join(t.TempDir(), "run")
	code, stderr, rep := runKube(t, ctx, out, nil, kubeArgs(r, storyScenario(t, "../scenarios/gpu-trigger.yaml"), out, r.Kubeconfig, "--rows", "200", "--interval", "3s", "--after", "20s")...)
	if code != 0 || rep == nil || rep.Verdict != "pass" {
		t.Fatalf("exit %d, report %+v\n%s", code, rep, tail(stderr, 40))
	}
	logComparison(t, rep)
	var rescale, pending bool
	for _, e := range rep.Events {
		rescale = rescale || e.Kind == "k8s_rescale" && e.To != nil && *e.To >= 2 && strings.Contains(e.Text, "reason: external metric") && strings.Contains(e.Text, "above target")
		pending = pending || e.Kind == "pod_pending" && platform.ShortOfGPUs(e.Text)
	}
	if !rescale || !pending {
		t.Errorf("rescale with the HPA's reason %v, pod Pending for want of a GPU %v: %+v", rescale, pending, rep.Events)
	}
	if rep.KPIs.TimeToIntent == nil || rep.KPIs.Clock["time_to_intent_s"] != "API time" {
		t.Errorf("time to intent %v on clock %v, want the API's", rep.KPIs.TimeToIntent, rep.KPIs.Clock)
	}
	sources := map[string]string{}
	for _, s := range rep.Series {
		sources[s.Name] = s.Source
	}
	if src, ok := sources["desired"]; !ok || src != "kubernetes API" {
		t.Errorf("desired from %q (present %v), want the API", src, ok)
	}
	// Prometheus's desired (kube-state-metrics) is read beside the API's and
	// sees the same intent: the path a run without --kubeconfig takes.
	promMax := -1.0
	for _, row := range rep.Timeline {
		if v := row.Series["desired_prom"]; v != nil {
			promMax = max(promMax, *v)
		}
	}
	if promMax < 2 {
		t.Errorf("desired_prom (Prometheus, source %q) peaked at %g, want >= 2 as the API's", sources["desired_prom"], promMax)
	}
	if !guardRestored(rep) || rep.Guard.State != "paused" {
		t.Errorf("guard: %+v, want paused and ok after the acting guard's restore", rep.Guard)
	}
	shippedPaused(t, ctx, r)
	// The scheduler's own word on the second pod, and the Deployment as KEDA
	// left it: the paused ScaledObject keeps its replicas, so desired >= 2
	// still holds here.
	if msg := unschedulable(ctx, r, tier); !platform.ShortOfGPUs(msg) {
		t.Errorf("the second pod while desired >= 2: %q, want the scheduler's Insufficient %s", msg, GPUResource)
	}
	d, err := r.Client.AppsV1().Deployments(tier.Namespace).Get(ctx, tier.Deployment, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if d.Status.ReadyReplicas != 1 || d.Spec.Replicas == nil || *d.Spec.Replicas < 2 {
		t.Errorf("deployment after the run: spec %v ready %d, want spec >= 2 (KEDA's intent) and ready 1 (one GPU)", d.Spec.Replicas, d.Status.ReadyReplicas)
	}
}

// unschedulable is the PodScheduled message of the tier's Pending pod ("" if
// none is Pending and unschedulable).
func unschedulable(ctx context.Context, r *Rig, tier Tier) string {
	pods, err := r.Client.CoreV1().Pods(tier.Namespace).List(ctx, metav1.ListOptions{LabelSelector: "app=" + tier.Deployment})
	if err != nil {
		return err.Error()
	}
	for _, p := range pods.Items {
		if p.Status.Phase != corev1.PodPending {
			continue
		}
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse {
				return c.Message
			}
		}
	}
	return ""
}

// TestCPUTier is runbook §3 on the rig: scenarios/sim-1toN.yaml scales the
// CPU-sim tier 1→5 and back to 1 through KEDA and the real HPA.
func TestCPUTier(t *testing.T) {
	r, tier := sharedRig(t), Tiers[1]
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	liveTier(t, ctx, r, tier)
	code, rep, stderr := runScenario(t, ctx, r, r.Gateways[tier.Namespace], storyScenario(t, "../scenarios/sim-1toN.yaml"), "manifests/cpu-tier.yaml",
		"--interval", "3s", "--rest-wait", "2m", "--downscale-window", r.opts.DownscaleWindow.String())
	logComparison(t, rep)
	if code != 0 || rep.Verdict != "pass" {
		t.Errorf("scaleout exit %d, verdict %q; expectations %+v\n%s", code, rep.Verdict, rep.Expectations, tail(stderr, 30))
	}
}

// storyScenario is a copy of a runbook scenario whose client self-check
// allows the send lag a machine busy with a whole control plane gives (the
// tiers' subject is the scale-out, not the client; the scenarios name no
// other file, so the copy runs as the original).
func storyScenario(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), filepath.Base(path))
	b = append(b, "\nclient_check: {max_send_lag: 1s, max_shortfall: 10%}\n"...)
	if err := os.WriteFile(out, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return out
}

// logComparison logs the predicted and observed desired of each row and
// the divergence events.
func logComparison(t *testing.T, rep *report) {
	t.Helper()
	var b strings.Builder
	for _, row := range rep.Timeline {
		fmt.Fprintf(&b, "t=%5.0fs", row.T)
		for _, k := range []string{"waiting", "predicted", "desired", "ready"} {
			if v := row.Series[k]; v != nil {
				fmt.Fprintf(&b, " %s=%g", k, *v)
			} else {
				fmt.Fprintf(&b, " %s=-", k)
			}
		}
		b.WriteByte('\n')
	}
	for _, e := range rep.Events {
		if e.Kind == "divergence" {
			fmt.Fprintf(&b, "divergence at %.0fs: %s\n", e.T, e.Text)
		}
	}
	t.Logf("predicted vs observed:\n%s", b.String())
}
