package rig

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/restmapper"
	"sigs.k8s.io/yaml"
)

// Manifests holds the runbook's two tiers as the rig applies them
// (manifests/*.yaml): both ScaledObjects ship paused.
//
//go:embed manifests/*.yaml
var Manifests embed.FS

// The namespace KEDA runs in, and the names its APIService points at.
const (
	kedaNamespace = "keda"
	kedaService   = "keda-metrics-apiserver"
	// FieldManager is the rig's name in managedFields (server-side apply).
	FieldManager = "scaleout-rig"
	// PausedAnnotation pauses a ScaledObject while "true".
	PausedAnnotation = "autoscaling.keda.sh/paused"
	// PromPlaceholder is the Prometheus address the manifests carry (the
	// runbook's in-cluster one); the rig puts its own in its place.
	PromPlaceholder = "http://prometheus-operated.monitoring.svc:9090"
)

// startAddons starts KEDA, the kube-state-metrics stand-in, the tiers'
// backends and Prometheus, and applies the tiers' manifests.
func (r *Rig) startAddons(ctx context.Context) error {
	ports, err := freePorts(6)
	if err != nil {
		return err
	}
	grpcPort, opMetrics, opProbe, adapterPort, adapterMetrics, promPort := ports[0], ports[1], ports[2], ports[3], ports[4], ports[5]
	r.PrometheusURL = fmt.Sprintf("http://127.0.0.1:%d", promPort)

	if err := r.ensureNamespace(ctx, kedaNamespace); err != nil {
		return err
	}
	crds, err := filepath.Glob(filepath.Join(r.binDir, "keda-crds", "*.yaml"))
	if err != nil || len(crds) == 0 {
		return fmt.Errorf("rig: no KEDA CRDs in %s (rebuild with make rig-build)", filepath.Join(r.binDir, "keda-crds"))
	}
	for _, f := range crds {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		if err := r.Apply(ctx, b); err != nil {
			return fmt.Errorf("rig: KEDA CRDs from %s: %w", f, err)
		}
	}
	if err := waitFor(ctx, "KEDA's CRDs established", nil, 200*time.Millisecond, func(ctx context.Context) error {
		_, err := r.Dynamic.Resource(ScaledObjects).Namespace("default").List(ctx, metav1.ListOptions{Limit: 1})
		return err
	}); err != nil {
		return err
	}
	r.logf("KEDA CRDs established")

	pki := filepath.Join(r.Dir, "pki")
	kedaEnv := []string{"KUBECONFIG=" + r.Kubeconfig, "WATCH_NAMESPACE=", "POD_NAMESPACE=" + kedaNamespace, "KEDA_CLUSTER_OBJECT_NAMESPACE=" + kedaNamespace}
	op, err := r.run("keda-operator", []string{
		"--leader-elect=false",
		"--metrics-bind-address=127.0.0.1:" + strconv.Itoa(opMetrics),
		"--health-probe-bind-address=127.0.0.1:" + strconv.Itoa(opProbe),
		"--metrics-service-bind-address=127.0.0.1:" + strconv.Itoa(grpcPort),
		"--cert-dir=" + filepath.Join(pki, "keda"),
		"--ca-dir=" + filepath.Join(pki, "keda-ca"),
		"--enable-cert-rotation=false",
		"--enable-webhook-patching=false",
		"--enable-apiservice-patching=false",
		"--zap-log-level=info",
	}, kedaEnv...)
	if err != nil {
		return err
	}
	adapter, err := r.run("keda-adapter", []string{
		"--secure-port=" + strconv.Itoa(adapterPort),
		"--bind-address=127.0.0.1",
		"--cert-dir=" + filepath.Join(pki, "keda"),
		"--tls-cert-file=" + filepath.Join(pki, "keda", "tls.crt"),
		"--tls-private-key-file=" + filepath.Join(pki, "keda", "tls.key"),
		"--metrics-service-address=127.0.0.1:" + strconv.Itoa(grpcPort),
		"--port=" + strconv.Itoa(adapterMetrics),
		"--lister-kubeconfig=" + r.Kubeconfig,
		"--authentication-kubeconfig=" + r.Kubeconfig,
		"--authorization-kubeconfig=" + r.Kubeconfig,
	}, kedaEnv...)
	if err != nil {
		return err
	}
	// The adapter runs on the host: the aggregator reaches it through an
	// ExternalName service (localhost) on the adapter's port.
	apisvc := fmt.Sprintf(`apiVersion: v1
kind: Service
metadata: {name: %[1]s, namespace: %[2]s}
spec: {type: ExternalName, externalName: localhost, ports: [{name: https, port: %[3]d, targetPort: %[3]d}]}
---
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: {name: v1beta1.external.metrics.k8s.io}
spec:
  group: external.metrics.k8s.io
  version: v1beta1
  groupPriorityMinimum: 100
  versionPriority: 100
  insecureSkipTLSVerify: true
  service: {name: %[1]s, namespace: %[2]s, port: %[3]d}
`, kedaService, kedaNamespace, adapterPort)
	if err := r.Apply(ctx, []byte(apisvc)); err != nil {
		return err
	}
	if err := waitFor(ctx, "KEDA's operator (health probe)", op, 200*time.Millisecond, httpOK(fmt.Sprintf("http://127.0.0.1:%d/readyz", opProbe), nil, "")); err != nil {
		return err
	}
	if err := waitFor(ctx, "the external metrics API (KEDA's adapter)", adapter, 300*time.Millisecond, func(ctx context.Context) error {
		return r.Client.Discovery().RESTClient().Get().AbsPath("/apis/external.metrics.k8s.io/v1beta1").Do(ctx).Error()
	}); err != nil {
		return err
	}
	r.logf("KEDA operator and metrics adapter up (external.metrics.k8s.io available)")

	ksm, err := r.startStateMetrics()
	if err != nil {
		return err
	}
	r.logf("kube-state-metrics stand-in on %s", ksm)

	var targets []scrapeJob
	if !r.opts.NoTiers {
		for _, t := range Tiers {
			addr, err := r.startBackend(ctx, t)
			if err != nil {
				return err
			}
			r.Gateways[t.Namespace] = "http://" + addr
			targets = append(targets, scrapeJob{name: "vllm-" + t.Namespace, addr: addr})
			r.logf("tier %s: backend for deployment %s on http://%s", t.Namespace, t.Deployment, addr)
		}
	}
	targets = append(targets,
		scrapeJob{name: "kube-state-metrics", addr: ksm},
		scrapeJob{name: "keda-operator", addr: fmt.Sprintf("127.0.0.1:%d", opMetrics)})
	if err := r.startPrometheus(ctx, promPort, targets); err != nil {
		return err
	}
	r.logf("prometheus on %s", r.PrometheusURL)

	if !r.opts.NoTiers {
		for _, t := range Tiers {
			b, err := Manifests.ReadFile("manifests/" + t.File)
			if err != nil {
				return err
			}
			if err := r.Apply(ctx, b); err != nil {
				return fmt.Errorf("rig: manifests/%s: %w", t.File, err)
			}
		}
		for _, t := range Tiers {
			if err := waitFor(ctx, "deployment "+t.Namespace+"/"+t.Deployment+" ready", nil, 200*time.Millisecond, func(ctx context.Context) error {
				_, err := r.readyReplicas(ctx, t.Namespace, t.Deployment, 1)
				return err
			}); err != nil {
				return err
			}
		}
		r.logf("tiers applied (ScaledObjects paused), one ready pod each")
	}
	return nil
}

// Tier is one of the runbook's two tiers as the rig runs it.
type Tier struct {
	Namespace    string // serving or inference
	Deployment   string // raw-vllm or vllm-sim
	ScaledObject string // its ScaledObject (paused as shipped)
	File         string // under manifests/
}

// Tiers are the GPU tier (runbook §2) and the CPU-sim tier (§3).
var Tiers = []Tier{
	{Namespace: "serving", Deployment: "raw-vllm", ScaledObject: "raw-vllm", File: "gpu-tier.yaml"},
	{Namespace: "inference", Deployment: "vllm-sim", ScaledObject: "vllm-sim", File: "cpu-tier.yaml"},
}

// ScaledObjects is KEDA's ScaledObject resource.
var ScaledObjects = schema.GroupVersionResource{Group: "keda.sh", Version: "v1alpha1", Resource: "scaledobjects"}

// SetPaused sets or removes a ScaledObject's paused annotation (KEDA then
// deletes or recreates its HPA), as `make keda-demo-down/up` do.
func (r *Rig) SetPaused(ctx context.Context, namespace, name string, paused bool) error {
	val := any(nil)
	if paused {
		val = "true"
	}
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]any{PausedAnnotation: val}}})
	_, err := r.Dynamic.Resource(ScaledObjects).Namespace(namespace).Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{})
	return err
}

func (r *Rig) ensureNamespace(ctx context.Context, name string) error {
	_, err := r.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}

// readyReplicas is the Deployment's status.readyReplicas, an error while
// it is below want.
func (r *Rig) readyReplicas(ctx context.Context, namespace, name string, want int32) (int32, error) {
	d, err := r.Client.AppsV1().Deployments(namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return 0, err
	}
	if d.Status.ReadyReplicas < want {
		return d.Status.ReadyReplicas, fmt.Errorf("%s/%s has %d ready replicas, want %d", namespace, name, d.Status.ReadyReplicas, want)
	}
	return d.Status.ReadyReplicas, nil
}

var docSep = regexp.MustCompile(`(?m)^---\s*$`)

// Apply server-side applies every object in the YAML documents yml (as
// field manager FieldManager, forcing conflicts), in order. Deployments get
// the rig's pod readiness delay (ColdStart) on their pod template, and
// prometheus triggers the rig's Prometheus in place of PromPlaceholder.
func (r *Rig) Apply(ctx context.Context, yml []byte) error {
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(discovery.NewDiscoveryClientForConfigOrDie(r.Config)))
	for _, doc := range docSep.Split(string(yml), -1) {
		if strings.TrimSpace(doc) == "" || isComment(doc) {
			continue
		}
		js, err := yaml.YAMLToJSON([]byte(doc))
		if err != nil {
			return err
		}
		obj := &unstructured.Unstructured{}
		if err := obj.UnmarshalJSON(js); err != nil {
			return err
		}
		r.adapt(obj)
		gvk := obj.GroupVersionKind()
		m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			return fmt.Errorf("%s %s: %w", gvk.Kind, obj.GetName(), err)
		}
		body, err := obj.MarshalJSON()
		if err != nil {
			return err
		}
		force := true
		res := r.Dynamic.Resource(m.Resource)
		var ri interface {
			Patch(context.Context, string, types.PatchType, []byte, metav1.PatchOptions, ...string) (*unstructured.Unstructured, error)
		} = res
		if m.Scope.Name() == "namespace" {
			ri = res.Namespace(obj.GetNamespace())
		}
		if _, err := ri.Patch(ctx, obj.GetName(), types.ApplyPatchType, body, metav1.PatchOptions{FieldManager: FieldManager, Force: &force}); err != nil {
			return fmt.Errorf("apply %s %s/%s: %w", gvk.Kind, obj.GetNamespace(), obj.GetName(), err)
		}
	}
	return nil
}

func isComment(doc string) bool {
	for _, l := range strings.Split(doc, "\n") {
		if t := strings.TrimSpace(l); t != "" && !strings.HasPrefix(t, "#") {
			return false
		}
	}
	return true
}

// The kwok stage annotations that set a pod's delay to Ready.
const (
	readyDelayAnnotation   = "pod-ready.stage.kwok.x-k8s.io/delay"
	readyJitterAnnotation  = "pod-ready.stage.kwok.x-k8s.io/jitter-delay"
	createDelayAnnotation  = "pod-create.stage.kwok.x-k8s.io/delay"
	createJitterAnnotation = "pod-create.stage.kwok.x-k8s.io/jitter-delay"
)

// adapt fits an object to this rig (see Apply).
func (r *Rig) adapt(obj *unstructured.Unstructured) {
	switch obj.GetKind() {
	case "Deployment":
		ann, _, _ := unstructured.NestedStringMap(obj.Object, "spec", "template", "metadata", "annotations")
		if ann == nil {
			ann = map[string]string{}
		}
		// kwok's pod-create stage (scheduled → initialized) waits 1-5 s by
		// default; the whole cold start is the pod-ready stage's, exactly.
		d := r.opts.ColdStart.String()
		ann[createDelayAnnotation], ann[createJitterAnnotation] = "0s", "0s"
		ann[readyDelayAnnotation], ann[readyJitterAnnotation] = d, d
		_ = unstructured.SetNestedStringMap(obj.Object, ann, "spec", "template", "metadata", "annotations")
	case "ScaledObject":
		triggers, _, _ := unstructured.NestedSlice(obj.Object, "spec", "triggers")
		for _, t := range triggers {
			if md, ok := t.(map[string]any)["metadata"].(map[string]any); ok {
				if s, ok := md["serverAddress"].(string); ok && s == PromPlaceholder && r.PrometheusURL != "" {
					md["serverAddress"] = r.PrometheusURL
				}
			}
		}
		_ = unstructured.SetNestedSlice(obj.Object, triggers, "spec", "triggers")
	}
}

type scrapeJob struct{ name, addr string }

// startPrometheus runs Debian's prometheus (from PATH) scraping jobs every
// ScrapeInterval, with honor_labels: the backends and exporters set the
// namespace and pod labels themselves.
func (r *Rig) startPrometheus(ctx context.Context, port int, jobs []scrapeJob) error {
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		return fmt.Errorf("rig: prometheus is not installed (make setup installs Debian's package): %w", err)
	}
	var cfg bytes.Buffer
	iv := r.opts.ScrapeInterval.String()
	fmt.Fprintf(&cfg, "global: {scrape_interval: %s, evaluation_interval: %s}\nscrape_configs:\n", iv, iv)
	for _, j := range jobs {
		fmt.Fprintf(&cfg, "- job_name: %s\n  honor_labels: true\n  static_configs: [{targets: ['%s']}]\n", j.name, j.addr)
	}
	path := filepath.Join(r.Dir, "prometheus.yml")
	if err := writeFile(path, cfg.Bytes()); err != nil {
		return err
	}
	p, err := r.run(bin, []string{
		"--config.file=" + path,
		"--storage.tsdb.path=" + filepath.Join(r.Dir, "prometheus"),
		"--web.listen-address=127.0.0.1:" + strconv.Itoa(port),
		"--storage.tsdb.retention.time=1d",
	})
	if err != nil {
		return err
	}
	return waitFor(ctx, "prometheus", p, 200*time.Millisecond, httpOK(r.PrometheusURL+"/-/ready", nil, ""))
}
