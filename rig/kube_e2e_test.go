package rig

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	authv1 "k8s.io/api/authentication/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The tests of issue 13 on the rig: scaleout reading the API itself
// (--kubeconfig), the acting guard, check's troubleshooting, RBAC. Each
// starts from the GPU tier as shipped (paused, one pod) and leaves it so.

// runKube runs the scaleout binary with args (a run whose --out is out);
// onLine sees each stderr line with the process (to signal it). It returns
// the exit code, stderr and the report (nil when none was written). With
// SCALEOUT_RIG_KEEP_REPORTS set, the report is kept there as
// <test name>.report.json.
func runKube(t *testing.T, ctx context.Context, out string, onLine func(string, *os.Process), args ...string) (int, string, *report) {
	t.Helper()
	code, all := runTool(t, ctx, onLine, args...)
	b, err := os.ReadFile(filepath.Join(out, "report.json"))
	if err != nil {
		return code, all, nil
	}
	if keep := os.Getenv("SCALEOUT_RIG_KEEP_REPORTS"); keep != "" {
		_ = os.MkdirAll(keep, 0o755)
		_ = os.WriteFile(filepath.Join(keep, strings.ReplaceAll(t.Name(), "/", "_")+".report.json"), b, 0o644)
	}
	var rep report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	return code, all, &rep
}

// shippedPaused checks the GPU tier is as shipped: paused (the exact
// annotation), and KEDA honoured it (no HPA) within a bound.
func shippedPaused(t *testing.T, ctx context.Context, r *Rig) {
	t.Helper()
	tier := Tiers[0]
	so, err := r.Dynamic.Resource(ScaledObjects).Namespace(tier.Namespace).Get(ctx, tier.ScaledObject, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := so.GetAnnotations()[PausedAnnotation]; got != "true" {
		t.Errorf("after the run the ScaledObject's %s = %q, want \"true\" (as shipped)", PausedAnnotation, got)
	}
	err = waitFor(ctx, "KEDA to delete the paused HPA", nil, 300*time.Millisecond, func(ctx context.Context) error {
		_, err := r.Client.AutoscalingV2().HorizontalPodAutoscalers(tier.Namespace).Get(ctx, "keda-hpa-"+tier.ScaledObject, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("HPA still there: %v", err)
	})
	if err != nil {
		t.Error(err)
	}
}

// guardRestored: the report says the acting guard un-paused the
// ScaledObject and restored its pause (End set) and KEDA honoured it (ok).
func guardRestored(rep *report) bool {
	if rep == nil || rep.Guard == nil {
		return false
	}
	g := rep.Guard
	return g.OK && g.Required == "act" && g.Unpaused != nil && g.Unpaused.End != nil
}

// kubeArgs are the arguments of a run of scenario on the GPU tier reading
// the API through kubeconfig, with the acting guard.
func kubeArgs(r *Rig, scenario, out, kubeconfig string, extra ...string) []string {
	return append([]string{"run", scenario, "--target", r.Gateways["serving"], "--prometheus", r.PrometheusURL,
		"--scaledobject", "manifests/gpu-tier.yaml", "--kubeconfig", kubeconfig, "--guard-act", "--out", out,
		"--rest-wait", "1m", "--guard-wait", "1m"}, extra...)
}

// shortGPU is a short scenario on the GPU tier (load of light load at 1/s)
// for the guard's tests: what they prove is the pause restored at the end,
// however the run ends, not the tier's intent (TestGPUTier).
func shortGPU(t *testing.T, load, expect string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "short.yaml")
	y := `name: gpu-short
target: {url: "${GATEWAY:-http://127.0.0.1:1}", api: completions, stream: true}
request: {prompt_tokens: 16, max_tokens: 32, ignore_eos: true}
load:
  - {name: light, duration: ` + load + `, rate: 1/s}
observe:
  interval: 2s
  after: 4s
  vllm: '{namespace="serving"}'
  hpa: serving/keda-hpa-raw-vllm
  deployment: serving/raw-vllm
expect:
  - ` + expect + `
guard: repause
client_check: {max_send_lag: 1s, max_shortfall: 10%}
`
	if err := os.WriteFile(path, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// loadWatch follows a run's stderr (its line is runKube's onLine): it
// notes the acting guard's un-pause, and calls do once, with the process,
// on the first progress line of the load (the "light" stage) after it.
type loadWatch struct {
	do             func(*os.Process) // nil: only watch
	unpaused, done bool
}

func (w *loadWatch) line(l string, p *os.Process) {
	w.unpaused = w.unpaused || strings.Contains(l, "guard: un-paused")
	if w.do != nil && w.unpaused && !w.done && strings.Contains(l, " light ") {
		w.done = true
		w.do(p)
	}
}

// The acting guard re-pauses the ScaledObject it un-paused however the run
// ends: a pass, a fail, a Ctrl-C and a SIGTERM (each signal sent once the
// load runs, on the run's first progress line after the un-pause).
func TestKubeGuardActRepauses(t *testing.T) {
	r := sharedRig(t)
	for _, c := range []struct {
		name   string
		expect string
		sig    os.Signal
		code   int
	}{
		{"pass", "ready <= 1 always", nil, 0},
		{"fail", "ready >= 3 within 5s", nil, 1},
		{"ctrl-c", "ready <= 1 always", os.Interrupt, 130},
		{"sigterm", "ready <= 1 always", syscall.SIGTERM, 130},
	} {
		t.Run(c.name, func(t *testing.T) {
			restoreTier(t, r, Tiers[0])
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			out := filepath.Join(t.TempDir(), "run")
			w := &loadWatch{}
			if c.sig != nil {
				w.do = func(p *os.Process) { _ = p.Signal(c.sig) }
			}
			code, stderr, rep := runKube(t, ctx, out, w.line, kubeArgs(r, shortGPU(t, "10s", c.expect), out, r.Kubeconfig)...)
			if !w.unpaused || c.sig != nil && !w.done {
				t.Errorf("un-paused by the guard %v, signalled %v\n%s", w.unpaused, w.done, tail(stderr, 30))
			}
			if code != c.code || !guardRestored(rep) {
				t.Errorf("exit %d (want %d), report %+v\n%s", code, c.code, rep, tail(stderr, 30))
			}
			shippedPaused(t, ctx, r)
		})
	}
}

// check names a broken trigger (FailedGetExternalMetric) with KEDA's own
// message.
func TestKubeCheckBrokenTrigger(t *testing.T) {
	r := sharedRig(t)
	restoreTier(t, r, Tiers[0])
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	patch := `{"spec":{"triggers":[{"type":"prometheus","metadata":{"serverAddress":"http://127.0.0.1:1","query":"sum(vllm:num_requests_waiting{namespace=\"serving\"})","threshold":"5"}}]}}`
	so := r.Dynamic.Resource(ScaledObjects).Namespace("serving")
	before, err := so.Get(ctx, "raw-vllm", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		spec, _, _ := unstructuredSpec(before.Object)
		b, _ := json.Marshal(map[string]any{"spec": spec})
		_, _ = so.Patch(context.Background(), "raw-vllm", "application/merge-patch+json", b, metav1.PatchOptions{})
	})
	if _, err := so.Patch(ctx, "raw-vllm", "application/merge-patch+json", []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := r.SetPaused(ctx, "serving", "raw-vllm", false); err != nil {
		t.Fatal(err)
	}
	var last string
	err = waitFor(ctx, "ScalingActive False", nil, time.Second, func(ctx context.Context) error {
		cmd := exec.CommandContext(ctx, scaleoutBin(t), "check", "--target", r.Gateways["serving"], "--prometheus", r.PrometheusURL,
			"--scaledobject", "manifests/gpu-tier.yaml", "--kubeconfig", r.Kubeconfig)
		b, _ := cmd.CombinedOutput()
		last = string(b)
		if strings.Contains(last, "ScalingActive=False (FailedGetExternalMetric)") && strings.Contains(last, "KEDA says:") {
			return nil
		}
		return errors.New("not yet")
	})
	if err != nil {
		t.Fatalf("%v; last check:\n%s", err, last)
	}
	t.Logf("scaleout check:\n%s", last)
}

func unstructuredSpec(obj map[string]any) (map[string]any, bool, error) {
	spec, ok := obj["spec"].(map[string]any)
	return spec, ok, nil
}

// The manifest in deploy/rbac.yaml suffices for a run with the acting
// guard; a token bound to a Role without watch on events is refused before
// any load (exit 3), naming the verb.
func TestKubeRBACTokens(t *testing.T) {
	r := sharedRig(t)
	restoreTier(t, r, Tiers[0])
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	manifest, err := os.ReadFile("../deploy/rbac.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Apply(ctx, manifest); err != nil {
		t.Fatal(err)
	}
	hour := int64(3600)
	tr, err := r.Client.CoreV1().ServiceAccounts("serving").CreateToken(ctx, "scaleout", &authv1.TokenRequest{Spec: authv1.TokenRequestSpec{ExpirationSeconds: &hour}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	kc, err := r.KubeconfigFor("scaleout", tr.Status.Token)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "run")
	code, stderr, rep := runKube(t, ctx, out, nil, kubeArgs(r, shortGPU(t, "10s", "ready <= 1 always"), out, kc)...)
	if code != 0 || rep == nil || rep.Verdict != "pass" || !guardRestored(rep) {
		t.Errorf("with deploy/rbac.yaml: exit %d, report %+v\n%s", code, rep, tail(stderr, 30))
	}
	shippedPaused(t, ctx, r)

	_, err = r.Client.RbacV1().Roles("serving").Create(ctx, &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "scaleout-no-events"},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{"autoscaling"}, Resources: []string{"horizontalpodautoscalers"}, Verbs: []string{"get", "list", "watch"}},
			{APIGroups: []string{"apps"}, Resources: []string{"deployments"}, Verbs: []string{"get", "list", "watch"}},
			{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list", "watch"}},
			{APIGroups: []string{""}, Resources: []string{"events"}, Verbs: []string{"get", "list"}},
			{APIGroups: []string{"keda.sh"}, Resources: []string{"scaledobjects"}, Verbs: []string{"get", "list", "watch", "patch"}},
		},
	}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	tok, err := r.TokenForRole(ctx, "serving", "scaleout-no-events")
	if err != nil {
		t.Fatal(err)
	}
	kc, err = r.KubeconfigFor("scaleout-no-events", tok)
	if err != nil {
		t.Fatal(err)
	}
	out = filepath.Join(t.TempDir(), "run")
	code, stderr, _ = runKube(t, ctx, out, nil, kubeArgs(r, shortGPU(t, "10s", "ready <= 1 always"), out, kc)...)
	if code != 3 || !strings.Contains(stderr, "not allowed to watch events in namespace serving") {
		t.Errorf("without watch on events: exit %d, want 3 naming the verb\n%s", code, tail(stderr, 30))
	}
	if _, err := os.Stat(filepath.Join(out, "requests.jsonl")); err == nil {
		t.Error("a run directory with requests: load was sent")
	}
	shippedPaused(t, ctx, r)
}

// kube-apiserver restarted mid-run (once the load runs, after the guard
// un-paused): the watches mark a gap and resume, the run still passes and
// the guard still re-pauses.
func TestKubeAPIServerRestartMidRun(t *testing.T) {
	r := sharedRig(t)
	restoreTier(t, r, Tiers[0])
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out := filepath.Join(t.TempDir(), "run")
	restarted := make(chan error, 1)
	w := &loadWatch{do: func(*os.Process) { go func() { restarted <- r.RestartAPIServer(ctx) }() }}
	code, stderr, rep := runKube(t, ctx, out, w.line, kubeArgs(r, shortGPU(t, "30s", "ready <= 1 always"), out, r.Kubeconfig)...)
	if !w.done {
		t.Fatalf("the API server was not restarted during the run\n%s", tail(stderr, 30))
	}
	if err := <-restarted; err != nil {
		t.Fatalf("restart: %v", err)
	}
	if code != 0 || rep == nil || rep.Verdict != "pass" {
		t.Fatalf("exit %d, report %+v\n%s", code, rep, tail(stderr, 30))
	}
	var gap, resumed bool
	for _, e := range rep.Events {
		gap = gap || e.Kind == "k8s_watch" && strings.Contains(e.Text, ": gap: ")
		resumed = resumed || e.Kind == "k8s_watch" && strings.Contains(e.Text, ": resumed")
	}
	if !gap || !resumed {
		t.Errorf("gap %v, resumed %v: %+v", gap, resumed, rep.Events)
	}
	if !guardRestored(rep) {
		t.Errorf("guard %+v", rep.Guard)
	}
	shippedPaused(t, ctx, r)
}
