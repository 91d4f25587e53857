package rig

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/kubernetes/fake"
	"sigs.k8s.io/yaml"
)

// TestCacheKeyMatchesBuildScript: BinDir looks where build.sh builds. A
// cache directory made under the Go key is the one build.sh reports present
// (and it then builds nothing).
func TestCacheKeyMatchesBuildScript(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go on PATH")
	}
	root := t.TempDir()
	key, err := cacheKey(".")
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "bin-"+key)
	for _, b := range append(binaries, ".complete") {
		if err := writeFile(filepath.Join(dir, b), nil); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(filepath.Join(dir, b), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// build.sh gets a go that answers `go env` only: if it tried to build
	// anything (a key that differs), it fails at once instead.
	goWrap := filepath.Join(root, "go-env-only")
	if err := os.WriteFile(goWrap, []byte("#!/bin/sh\n[ \"$1\" = env ] && exec go \"$@\"\necho \"build.sh tried: go $*\" >&2\nexit 97\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", "build.sh")
	cmd.Env = append(os.Environ(), "SCALEOUT_RIG_CACHE="+root, "GO="+goWrap)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("build.sh with a present cache: %v (%s)", err, out)
	}
	if got := strings.TrimSpace(string(out)); got != dir {
		t.Fatalf("build.sh says %q, the Go key says %q", got, dir)
	}
	t.Setenv("SCALEOUT_RIG_CACHE", root)
	t.Setenv("SCALEOUT_RIG_BIN", "")
	if got, err := BinDir("."); err != nil || got != dir {
		t.Fatalf("BinDir = %q, %v; want %q", got, err, dir)
	}
	if err := os.Remove(filepath.Join(dir, "kwok")); err != nil {
		t.Fatal(err)
	}
	if _, err := BinDir("."); err == nil || !strings.Contains(err.Error(), "kwok") {
		t.Fatalf("BinDir with kwok missing: %v", err)
	}
}

// TestIssuedCertificates: a certificate the rig issues verifies against
// its CA for loopback serving and as a client.
func TestIssuedCertificates(t *testing.T) {
	ca, err := newAuthority("test-ca")
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := ca.issue("kube-apiserver", "kubernetes.default.svc")
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.pem)
	for _, name := range []string{"127.0.0.1", "localhost", "kubernetes.default.svc", "::1"} {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: name, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			t.Errorf("serving as %s: %v", name, err)
		}
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("as a client: %v", err)
	}
	other, _ := newAuthority("other-ca")
	otherPool := x509.NewCertPool()
	otherPool.AppendCertsFromPEM(other.pem)
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: otherPool, DNSName: "localhost"}); err == nil {
		t.Error("verifies against a CA that did not sign it")
	}
}

func readyPod(name string, ready bool, deleting bool) corev1.Pod {
	st := corev1.ConditionFalse
	if ready {
		st = corev1.ConditionTrue
	}
	p := corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}, Status: corev1.PodStatus{Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: st}}}}
	if deleting {
		now := metav1.Now()
		p.DeletionTimestamp = &now
	}
	return p
}

// TestReadyPods: only Ready pods that are not being deleted, sorted.
func TestReadyPods(t *testing.T) {
	got := ReadyPods([]corev1.Pod{readyPod("c", true, false), readyPod("a", true, false), readyPod("b", false, false), readyPod("d", true, true), {ObjectMeta: metav1.ObjectMeta{Name: "e"}}})
	if strings.Join(got, ",") != "a,c" {
		t.Fatalf("ReadyPods = %v, want [a c]", got)
	}
}

// TestStateMetrics: the stand-in publishes kube-state-metrics' series
// names and labels with the values of the API objects.
func TestStateMetrics(t *testing.T) {
	two, five := int32(2), int32(5)
	cs := fake.NewSimpleClientset(
		&autoscalingv2.HorizontalPodAutoscaler{
			ObjectMeta: metav1.ObjectMeta{Namespace: "serving", Name: "keda-hpa-raw-vllm"},
			Spec:       autoscalingv2.HorizontalPodAutoscalerSpec{MinReplicas: &two, MaxReplicas: 3},
			Status:     autoscalingv2.HorizontalPodAutoscalerStatus{CurrentReplicas: 1, DesiredReplicas: 3},
		},
		&appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Namespace: "serving", Name: "raw-vllm"},
			Spec:       appsv1.DeploymentSpec{Replicas: &five},
			Status:     appsv1.DeploymentStatus{Replicas: 4, ReadyReplicas: 1, AvailableReplicas: 1, UnavailableReplicas: 3},
		},
	)
	srv := httptest.NewServer(NewStateMetrics(cs).Handler())
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	page := string(b)
	for _, want := range []string{
		`kube_horizontalpodautoscaler_status_desired_replicas{horizontalpodautoscaler="keda-hpa-raw-vllm",namespace="serving"} 3`,
		`kube_horizontalpodautoscaler_status_current_replicas{horizontalpodautoscaler="keda-hpa-raw-vllm",namespace="serving"} 1`,
		`kube_horizontalpodautoscaler_spec_min_replicas{horizontalpodautoscaler="keda-hpa-raw-vllm",namespace="serving"} 2`,
		`kube_horizontalpodautoscaler_spec_max_replicas{horizontalpodautoscaler="keda-hpa-raw-vllm",namespace="serving"} 3`,
		`kube_deployment_spec_replicas{deployment="raw-vllm",namespace="serving"} 5`,
		`kube_deployment_status_replicas{deployment="raw-vllm",namespace="serving"} 4`,
		`kube_deployment_status_replicas_ready{deployment="raw-vllm",namespace="serving"} 1`,
		`kube_deployment_status_replicas_available{deployment="raw-vllm",namespace="serving"} 1`,
		`kube_deployment_status_replicas_unavailable{deployment="raw-vllm",namespace="serving"} 3`,
	} {
		if !strings.Contains(page, want+"\n") {
			t.Errorf("missing %s in\n%s", want, page)
		}
	}
}

// TestManifestsShipPausedAndAdapt: every ScaledObject in manifests/ is
// paused, and Apply's adaptation puts the rig's Prometheus and the cold
// start where they belong and nowhere else.
func TestManifestsShipPausedAndAdapt(t *testing.T) {
	r := &Rig{opts: Options{ColdStart: 7 * time.Second}, PrometheusURL: "http://127.0.0.1:1234"}
	seen := 0
	for _, tier := range Tiers {
		b, err := Manifests.ReadFile("manifests/" + tier.File)
		if err != nil {
			t.Fatal(err)
		}
		for _, doc := range docSep.Split(string(b), -1) {
			if isComment(doc) {
				continue
			}
			var obj unstructured.Unstructured
			if err := yaml.Unmarshal([]byte(doc), &obj.Object); err != nil {
				t.Fatalf("%s: %v", tier.File, err)
			}
			r.adapt(&obj)
			switch obj.GetKind() {
			case "ScaledObject":
				seen++
				if obj.GetAnnotations()[PausedAnnotation] != "true" {
					t.Errorf("%s: ScaledObject %s is not paused", tier.File, obj.GetName())
				}
				if obj.GetNamespace() != tier.Namespace || obj.GetName() != tier.ScaledObject {
					t.Errorf("%s: ScaledObject %s/%s, want %s/%s", tier.File, obj.GetNamespace(), obj.GetName(), tier.Namespace, tier.ScaledObject)
				}
				triggers, _, _ := unstructured.NestedSlice(obj.Object, "spec", "triggers")
				for _, tr := range triggers {
					md := tr.(map[string]any)["metadata"].(map[string]any)
					if md["serverAddress"] != r.PrometheusURL {
						t.Errorf("%s: trigger serverAddress %v after adapt", tier.File, md["serverAddress"])
					}
				}
			case "Deployment":
				ann, _, _ := unstructured.NestedStringMap(obj.Object, "spec", "template", "metadata", "annotations")
				if ann[readyDelayAnnotation] != "7s" || ann[readyJitterAnnotation] != "7s" {
					t.Errorf("%s: pod template annotations %v, want the 7s readiness delay", tier.File, ann)
				}
			}
		}
	}
	if seen != len(Tiers) {
		t.Errorf("%d ScaledObjects in the manifests, want %d", seen, len(Tiers))
	}
}
