package rig

import (
	"context"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/scaleout/scaleout/platform"
)

// StateMetrics is the rig's stand-in for kube-state-metrics, which the
// Go module proxy does not serve (k8s.io/kube-state-metrics/v2 answers 403
// "not available"), so it cannot be built here. It publishes, from the API at
// each scrape, the series scaleout reads with kube-state-metrics' names,
// labels and meanings: per HorizontalPodAutoscaler (namespace,
// horizontalpodautoscaler) status desired/current and spec min/max replicas;
// per Deployment (namespace, deployment) spec, status, ready, available and
// unavailable replicas. Nothing else of kube-state-metrics is there.
type StateMetrics struct{ client kubernetes.Interface }

var (
	smHPA = []string{platform.LabelNamespace, platform.LabelHPA}
	smDep = []string{platform.LabelNamespace, platform.LabelDeployment}

	smDesc = map[string]*prometheus.Desc{
		platform.HPADesired:            prometheus.NewDesc(platform.HPADesired, "Desired number of replicas of pods managed by this autoscaler.", smHPA, nil),
		platform.HPACurrent:            prometheus.NewDesc(platform.HPACurrent, "Current number of replicas of pods managed by this autoscaler.", smHPA, nil),
		platform.HPAMin:                prometheus.NewDesc(platform.HPAMin, "Lower limit for the number of pods that can be set by the autoscaler, default 1.", smHPA, nil),
		platform.HPAMax:                prometheus.NewDesc(platform.HPAMax, "Upper limit for the number of pods that can be set by the autoscaler; cannot be smaller than MinReplicas.", smHPA, nil),
		platform.DeploymentSpec:        prometheus.NewDesc(platform.DeploymentSpec, "Number of desired pods for a deployment.", smDep, nil),
		platform.DeploymentReplicas:    prometheus.NewDesc(platform.DeploymentReplicas, "The number of replicas per deployment.", smDep, nil),
		platform.DeploymentReady:       prometheus.NewDesc(platform.DeploymentReady, "The number of ready replicas per deployment.", smDep, nil),
		platform.DeploymentAvailable:   prometheus.NewDesc(platform.DeploymentAvailable, "The number of available replicas per deployment.", smDep, nil),
		platform.DeploymentUnavailable: prometheus.NewDesc(platform.DeploymentUnavailable, "The number of unavailable replicas per deployment.", smDep, nil),
	}
)

// NewStateMetrics is a stand-in reading through client.
func NewStateMetrics(client kubernetes.Interface) *StateMetrics { return &StateMetrics{client: client} }

// Describe sends the series' descriptions.
func (s *StateMetrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range smDesc {
		ch <- d
	}
}

// Collect lists every HPA and Deployment and sends their series; a failed
// list sends an invalid metric, so the scrape fails rather than shows a gap
// as a zero.
func (s *StateMetrics) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	hpas, err := s.client.AutoscalingV2().HorizontalPodAutoscalers("").List(ctx, metav1.ListOptions{})
	if err != nil {
		ch <- prometheus.NewInvalidMetric(smDesc[platform.HPADesired], err)
		return
	}
	deps, err := s.client.AppsV1().Deployments("").List(ctx, metav1.ListOptions{})
	if err != nil {
		ch <- prometheus.NewInvalidMetric(smDesc[platform.DeploymentSpec], err)
		return
	}
	for i := range hpas.Items {
		collectHPA(ch, &hpas.Items[i])
	}
	for i := range deps.Items {
		collectDeployment(ch, &deps.Items[i])
	}
}

func gauge(ch chan<- prometheus.Metric, name string, v float64, labels ...string) {
	ch <- prometheus.MustNewConstMetric(smDesc[name], prometheus.GaugeValue, v, labels...)
}

func collectHPA(ch chan<- prometheus.Metric, h *autoscalingv2.HorizontalPodAutoscaler) {
	ns, n := h.Namespace, h.Name
	gauge(ch, platform.HPADesired, float64(h.Status.DesiredReplicas), ns, n)
	gauge(ch, platform.HPACurrent, float64(h.Status.CurrentReplicas), ns, n)
	minR := int32(1)
	if h.Spec.MinReplicas != nil {
		minR = *h.Spec.MinReplicas
	}
	gauge(ch, platform.HPAMin, float64(minR), ns, n)
	gauge(ch, platform.HPAMax, float64(h.Spec.MaxReplicas), ns, n)
}

func collectDeployment(ch chan<- prometheus.Metric, d *appsv1.Deployment) {
	ns, n := d.Namespace, d.Name
	spec := int32(1)
	if d.Spec.Replicas != nil {
		spec = *d.Spec.Replicas
	}
	gauge(ch, platform.DeploymentSpec, float64(spec), ns, n)
	gauge(ch, platform.DeploymentReplicas, float64(d.Status.Replicas), ns, n)
	gauge(ch, platform.DeploymentReady, float64(d.Status.ReadyReplicas), ns, n)
	gauge(ch, platform.DeploymentAvailable, float64(d.Status.AvailableReplicas), ns, n)
	gauge(ch, platform.DeploymentUnavailable, float64(d.Status.UnavailableReplicas), ns, n)
}

// Handler serves the series at /metrics.
func (s *StateMetrics) Handler() http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(s)
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.HTTPErrorOnError}))
	return mux
}

// startStateMetrics serves the stand-in on a free loopback port until Down.
func (r *Rig) startStateMetrics() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	srv := &http.Server{Handler: NewStateMetrics(r.Client).Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	r.onDown(func() { _ = srv.Close() })
	return ln.Addr().String(), nil
}
