package sim

import (
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/scaleout/scaleout/platform"
)

// vLLM's bucket bounds (the same as the captured llm-d-inference-sim page).
var (
	ttftBuckets = []float64{0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0}
	e2eBuckets  = []float64{0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0}
)

// histogram is a fixed-bucket histogram kept per pod.
type histogram struct {
	bounds []float64
	counts []uint64 // per bucket, not cumulative; the last is +Inf
	sum    float64
	n      uint64
}

func (h *histogram) observe(d time.Duration) {
	v := d.Seconds()
	h.counts[sort.SearchFloat64s(h.bounds, v)]++
	h.sum += v
	h.n++
}

// cumulative returns the buckets as Prometheus wants them.
func (h *histogram) cumulative() map[float64]uint64 {
	m := make(map[float64]uint64, len(h.bounds))
	var c uint64
	for i, b := range h.bounds {
		c += h.counts[i]
		m[b] = c
	}
	return m
}

// podMetrics are one pod's vLLM counters and histograms.
type podMetrics struct {
	mu           sync.Mutex
	success      [numReasons]uint64
	promptTokens uint64
	genTokens    uint64
	ttft, e2e    histogram
}

func (m *podMetrics) init() {
	m.ttft = histogram{bounds: ttftBuckets, counts: make([]uint64, len(ttftBuckets)+1)}
	m.e2e = histogram{bounds: e2eBuckets, counts: make([]uint64, len(e2eBuckets)+1)}
}

// firstToken records a request's prefill being done: its prompt tokens and
// its time to first token (from arrival, queue time included, as vLLM does).
func (m *podMetrics) firstToken(prompt int, ttft time.Duration) {
	m.mu.Lock()
	m.promptTokens += uint64(prompt)
	m.ttft.observe(ttft)
	m.mu.Unlock()
}

func (m *podMetrics) generated(n int) {
	if n == 0 {
		return
	}
	m.mu.Lock()
	m.genTokens += uint64(n)
	m.mu.Unlock()
}

func (m *podMetrics) done(reason int, e2e time.Duration) {
	m.mu.Lock()
	m.success[reason]++
	m.e2e.observe(e2e)
	m.mu.Unlock()
}

// collector turns the fleet into series at scrape time.
type collector struct{ f *Fleet }

var _ prometheus.Collector = collector{}

var (
	podLabels  = []string{platform.LabelModelName, platform.LabelNamespace, platform.LabelPod}
	hpaLabels  = []string{platform.LabelNamespace, platform.LabelHPA}
	depLabels  = []string{platform.LabelNamespace, platform.LabelDeployment}
	kedaLabels = []string{platform.LabelNamespace, platform.LabelScaledObject, "scaler", "metric", "triggerIndex", "type"}

	descWaiting = prometheus.NewDesc(platform.VLLMWaiting, "Number of requests waiting to be processed.", podLabels, nil)
	descRunning = prometheus.NewDesc(platform.VLLMRunning, "Number of requests in model execution batches.", podLabels, nil)
	descKV      = prometheus.NewDesc(platform.VLLMKVCache, "KV-cache usage. 1 means 100 percent usage.", podLabels, nil)
	descSuccess = prometheus.NewDesc(platform.VLLMRequestSuccess, "Count of successfully processed requests.", append(podLabels[:3:3], platform.LabelFinishedReason), nil)
	descGen     = prometheus.NewDesc(platform.VLLMGenerationTokens, "Number of generation tokens processed.", podLabels, nil)
	descPrompt  = prometheus.NewDesc(platform.VLLMPromptTokens, "Number of prefill tokens processed.", podLabels, nil)
	descTTFT    = prometheus.NewDesc(platform.VLLMTTFT, "Histogram of time to first token in seconds.", podLabels, nil)
	descE2E     = prometheus.NewDesc(platform.VLLME2E, "Histogram of e2e request latency in seconds.", podLabels, nil)

	descHPADesired = prometheus.NewDesc(platform.HPADesired, "Desired number of replicas of pods managed by this autoscaler.", hpaLabels, nil)
	descHPACurrent = prometheus.NewDesc(platform.HPACurrent, "Current number of replicas of pods managed by this autoscaler.", hpaLabels, nil)
	descHPAMin     = prometheus.NewDesc(platform.HPAMin, "Lower limit for the number of pods that can be set by the autoscaler, default 1.", hpaLabels, nil)
	descHPAMax     = prometheus.NewDesc(platform.HPAMax, "Upper limit for the number of pods that can be set by the autoscaler; cannot be smaller than MinReplicas.", hpaLabels, nil)

	descDepSpec        = prometheus.NewDesc(platform.DeploymentSpec, "Number of desired pods for a deployment.", depLabels, nil)
	descDepReplicas    = prometheus.NewDesc(platform.DeploymentReplicas, "The number of replicas per deployment.", depLabels, nil)
	descDepReady       = prometheus.NewDesc(platform.DeploymentReady, "The number of ready replicas per deployment.", depLabels, nil)
	descDepAvailable   = prometheus.NewDesc(platform.DeploymentAvailable, "The number of available replicas per deployment.", depLabels, nil)
	descDepUnavailable = prometheus.NewDesc(platform.DeploymentUnavailable, "The number of unavailable replicas per deployment.", depLabels, nil)

	descKEDAValue  = prometheus.NewDesc(platform.KEDAScalerValue, "The current value for each scaler's metric that would be used by the HPA in computing the target average.", kedaLabels, nil)
	descKEDAPaused = prometheus.NewDesc(platform.KEDAPaused, "Indicates whether a ScaledObject is paused", []string{platform.LabelNamespace, platform.LabelScaledObject}, nil)
)

func (collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		descWaiting, descRunning, descKV, descSuccess, descGen, descPrompt, descTTFT, descE2E,
		descHPADesired, descHPACurrent, descHPAMin, descHPAMax,
		descDepSpec, descDepReplicas, descDepReady, descDepAvailable, descDepUnavailable,
		descKEDAValue, descKEDAPaused,
	} {
		ch <- d
	}
}

// podSample is what a scrape reads of one pod under the fleet lock.
type podSample struct {
	p                *pod
	waiting, running int
}

// Collect emits the fleet as it is now. A pod exports vllm:* series from
// Ready until it is gone (a terminating pod still serves its /metrics while
// it finishes); Pending and Starting pods have no server yet.
func (c collector) Collect(ch chan<- prometheus.Metric) {
	f := c.f
	ns, model := f.cfg.Namespace, f.cfg.Model

	f.mu.Lock()
	pods := make([]podSample, 0, len(f.pods))
	var replicas, ready int
	for _, p := range f.pods {
		if p.phase != phaseDraining {
			replicas++
		}
		if p.phase == phaseReady {
			ready++
		}
		if p.phase == phaseReady || p.phase == phaseDraining {
			pods = append(pods, podSample{p: p, waiting: len(p.waiting), running: p.running()})
		}
	}
	spec, paused, st := f.spec, f.paused, f.status
	hpaLive := f.hpa != nil
	external := f.external
	f.mu.Unlock()

	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	for _, s := range pods {
		p := s.p
		gauge(descWaiting, float64(s.waiting), model, ns, p.name)
		gauge(descRunning, float64(s.running), model, ns, p.name)
		gauge(descKV, f.kvUsage(p), model, ns, p.name)

		p.m.mu.Lock()
		for r := range numReasons {
			ch <- prometheus.MustNewConstMetric(descSuccess, prometheus.CounterValue, float64(p.m.success[r]), model, ns, p.name, reasonNames[r])
		}
		ch <- prometheus.MustNewConstMetric(descGen, prometheus.CounterValue, float64(p.m.genTokens), model, ns, p.name)
		ch <- prometheus.MustNewConstMetric(descPrompt, prometheus.CounterValue, float64(p.m.promptTokens), model, ns, p.name)
		ch <- prometheus.MustNewConstHistogram(descTTFT, p.m.ttft.n, p.m.ttft.sum, p.m.ttft.cumulative(), model, ns, p.name)
		ch <- prometheus.MustNewConstHistogram(descE2E, p.m.e2e.n, p.m.e2e.sum, p.m.e2e.cumulative(), model, ns, p.name)
		p.m.mu.Unlock()
	}

	if external {
		return // the cluster's exporters publish the kube_* and keda_* series
	}

	// kube-state-metrics: the HPA exists only while the ScaledObject is live
	// (KEDA deletes it on pause). Its status is what the last sync wrote:
	// current is the spec replicas that sync found, desired what it decided.
	if hpaLive {
		gauge(descHPADesired, float64(st.desired), ns, f.hpaName)
		gauge(descHPACurrent, float64(st.current), ns, f.hpaName)
		gauge(descHPAMin, float64(f.cfg.Replicas.Min), ns, f.hpaName)
		gauge(descHPAMax, float64(f.cfg.Replicas.Max), ns, f.hpaName)
	}
	dep := f.cfg.Deployment
	gauge(descDepSpec, float64(spec), ns, dep)
	gauge(descDepReplicas, float64(replicas), ns, dep)
	gauge(descDepReady, float64(ready), ns, dep)
	gauge(descDepAvailable, float64(ready), ns, dep) // minReadySeconds 0: ready is available
	gauge(descDepUnavailable, float64(max(int(spec)-ready, 0)), ns, dep)

	// KEDA operator: each scaler's value, as the HPA last asked for it (the
	// raw total waiting, and the KV aggregate, at the last sync); absent
	// while paused.
	if hpaLive {
		gauge(descKEDAValue, st.metric, ns, f.cfg.ScaledObject, "prometheusScaler", waitingMetric, "0", "ScaledObject")
		if f.cfg.KVTrigger != nil {
			gauge(descKEDAValue, st.kv, ns, f.cfg.ScaledObject, "prometheusScaler", kvMetric, "1", "ScaledObject")
		}
	}
	pausedV := 0.0
	if paused {
		pausedV = 1
	}
	gauge(descKEDAPaused, pausedV, ns, f.cfg.ScaledObject)
}
