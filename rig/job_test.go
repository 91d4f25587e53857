package rig

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"

	"github.com/scaleout/scaleout/job"
)

// warnings keeps what the API server warns about (PodSecurity's
// restricted level on the Job's pod template, for one).
type warnings struct {
	mu   sync.Mutex
	list []string
}

func (w *warnings) HandleWarningHeader(code int, agent, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.list = append(w.list, text)
}

// TestJobManifests: everything `scaleout job` renders passes the API
// server's server-side dry run (schema, admission with PodSecurity
// enforcing and warning at restricted, and RBAC) for a token bound to the
// launcher Role (job/launcher.yaml) and nothing more; the dry run stores
// nothing; applied for real, the objects are created as rendered.
// Not verified here: the rig's controller manager runs no job controller
// and kwok runs no containers, so no pod of the Job is made, runs a shard,
// or prints its run directory (cmd/scaleout's TestJobPodSendsTheRunBack
// runs the pod's command, job's TestStatusAndCollect the path back).
func TestJobManifests(t *testing.T) {
	bin := binDirOrSkip(t)
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	r, err := Up(ctx, Options{BinDir: bin, ControlPlaneOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Down()

	const ns = "load"
	_, err = r.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: map[string]string{
		"pod-security.kubernetes.io/enforce": "restricted", "pod-security.kubernetes.io/warn": "restricted"}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var launcher rbacv1.Role
	if err := yaml.UnmarshalStrict(job.LauncherRBAC, &launcher); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Client.RbacV1().Roles(ns).Create(ctx, &launcher, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	tok, err := r.TokenForRole(ctx, ns, launcher.Name)
	if err != nil {
		t.Fatal(err)
	}
	kc, err := r.KubeconfigFor("launcher", tok)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := clientcmd.BuildConfigFromFlags("", kc)
	if err != nil {
		t.Fatal(err)
	}
	var warned warnings
	rc.WarningHandler = &warned
	dyn := dynamic.NewForConfigOrDie(rc)
	core := kubernetes.NewForConfigOrDie(rc)

	dir := t.TempDir()
	so := `apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {name: vllm, namespace: inference}
spec:
  scaleTargetRef: {name: vllm}
  triggers:
    - type: prometheus
      metadata: {serverAddress: "http://prometheus:9090", query: "sum(vllm:num_requests_waiting)", threshold: "5"}
`
	if err := os.WriteFile(filepath.Join(dir, "so.yaml"), []byte(so), 0o644); err != nil {
		t.Fatal(err)
	}
	scen := filepath.Join(dir, "s.yaml")
	if err := os.WriteFile(scen, []byte("name: rig\ntarget: {url: \"${GATEWAY_URL}\"}\nload: [{name: a, rate: 2/s, duration: 10s}]\nobserve: {prometheus: \"http://prometheus:9090\", scaledobject: so.yaml}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	b, err := job.LoadBundle(scen, func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	o := job.Options{Name: job.DefaultName(b.Scenario, start), Namespace: ns, Image: "registry.invalid/scaleout:test",
		Parallelism: 3, CPU: "250m", Memory: "256Mi", NodeSelector: map[string]string{"kubernetes.io/os": "linux"},
		StartAt: start, Secrets: []string{"gateway"}, TTL: time.Hour, PullPolicy: "IfNotPresent"}
	objs, err := job.Manifests(b, o)
	if err != nil {
		t.Fatal(err)
	}

	if err := job.Apply(ctx, dyn, objs, true, nil); err != nil {
		t.Fatalf("server-side dry run as the launcher: %v", err)
	}
	if _, err := r.Client.BatchV1().Jobs(ns).Get(ctx, o.Name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("after the dry run the Job is there (or: %v)", err)
	}
	var applied []string
	if err := job.Apply(ctx, dyn, objs, false, nil); err != nil {
		t.Fatalf("apply as the launcher: %v", err)
	}
	for _, u := range objs {
		applied = append(applied, u.GetKind()+"/"+u.GetName())
	}
	if len(warned.list) > 0 {
		t.Errorf("the API server warned: %q", warned.list)
	}
	j, err := r.Client.BatchV1().Jobs(ns).Get(ctx, o.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if *j.Spec.CompletionMode != "Indexed" || *j.Spec.Completions != 3 || *j.Spec.Parallelism != 3 ||
		j.Spec.Template.Spec.ServiceAccountName != "scaleout" || j.Annotations[job.AnnStartAt] != start.Format(time.RFC3339) {
		t.Errorf("the stored Job: %+v", j.Spec)
	}
	cm, err := r.Client.CoreV1().ConfigMaps(ns).Get(ctx, o.Name, metav1.GetOptions{})
	if err != nil || cm.Data["scaledobject.yaml"] != so {
		t.Errorf("the stored ConfigMap: %v", err)
	}
	// Applying again changes nothing and is allowed (server-side apply).
	if err := job.Apply(ctx, dyn, objs, false, nil); err != nil {
		t.Errorf("apply again: %v", err)
	}
	st, err := job.GetStatus(ctx, core, ns, o.Name)
	if err != nil || st.Shards != 3 || st.Scenario != "rig" {
		t.Errorf("status as the launcher: %+v, %v", st, err)
	}

	// The pods' ServiceAccount may read the fleet, in its namespace only.
	rb := rest.CopyConfig(r.Config)
	rb.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:" + ns + ":scaleout"}
	pods := kubernetes.NewForConfigOrDie(rb)
	if _, err := pods.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{}); err != nil {
		t.Errorf("the pods' ServiceAccount listing Deployments: %v", err)
	}
	if _, err := pods.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("the pods' ServiceAccount listing Secrets: %v, want Forbidden", err)
	}
	t.Logf("applied as the launcher: %s", strings.Join(applied, ", "))
}
