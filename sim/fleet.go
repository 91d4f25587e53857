// Package sim is the embedded stand-in for a vLLM fleet on Kubernetes: vLLM
// replicas (continuous batching, a FIFO waiting queue each, prefill and
// inter-token timing, KV-cache use) behind one gateway, a Deployment whose
// pods go Pending → Starting → Ready (cold start, GPU quota), and a KEDA
// ScaledObject whose HPA (keda.HPA) scales it on the fleet's total waiting
// requests (and, with Config.KVTrigger, on their KV-cache use), with or
// without spec.behavior (Config.Behavior). It serves the OpenAI API the way
// vLLM does and exports the vllm:*, kube_* and keda_* series a real cluster
// does.
//
// Time comes from an injected Clock. Every wait is for an absolute deadline
// computed on that clock (admission + prefill, then one ITL a token), and
// every recorded duration is a difference of such deadlines, so a fake clock
// gives exact numbers however a test steps it.
//
// Locking: Fleet.mu guards the pods, their queues and slot counts (a count
// is atomic but written under it only), the Deployment and the HPA. The
// token path of a running request takes no fleet lock: it reads its pod's
// running count and adds to its counters atomically (or under the pod's
// metrics lock).
package sim

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/scaleout/scaleout/keda"
	"github.com/scaleout/scaleout/platform"
)

// phase is where a pod is in its life.
type phase int

const (
	phasePending  phase = iota // no GPU under the quota: not scheduled
	phaseStarting              // scheduled: container start + model load (ColdStart)
	phaseReady                 // in the gateway
	phaseDraining              // removed by a scale-down: out of the gateway, finishing what it holds
)

func (p phase) String() string {
	switch p {
	case phasePending:
		return "Pending"
	case phaseStarting:
		return "Starting"
	case phaseReady:
		return "Ready"
	default:
		return "Terminating"
	}
}

// pod is one vLLM replica.
type pod struct {
	name    string
	seq     uint64 // creation order
	phase   phase
	readyAt time.Time // Starting: when it will be ready; Ready/Draining: when it became ready

	waiting []*job // FIFO; guarded by Fleet.mu

	// nRunning is the number of requests holding a running slot. It is
	// written under Fleet.mu only, and read without it on the token path
	// (for the ITL of its requests).
	nRunning atomic.Int32
	// kvTokens is the prompt + generated tokens of its running requests,
	// added to without Fleet.mu on the token path.
	kvTokens atomic.Int64

	m podMetrics
}

// running is the number of requests holding a running slot on p.
func (p *pod) running() int { return int(p.nRunning.Load()) }

// job is one request inside the fleet, from the gateway to its last token.
type job struct {
	prompt  int       // prompt tokens
	out     int       // tokens it will generate
	maxTok  int       // the request's max_tokens (out < maxTok means it stopped)
	seed    uint64    // picks its id and its words
	arrived time.Time // reached the gateway

	admitted   chan struct{} // closed when it gets a running slot
	pod        *pod          // set by submit (Fleet.mu)
	admittedAt time.Time     // written under Fleet.mu before admitted is closed
	started    bool          // Fleet.mu

	kv int64 // KV tokens it added to its pod (owned by the goroutine generating it)
}

func newJob(prompt, maxTokens, out int, seed uint64, arrived time.Time) *job {
	return &job{prompt: prompt, maxTok: maxTokens, out: out, seed: seed, arrived: arrived, admitted: make(chan struct{})}
}

// The finished_reason values of vllm:request_success_total.
const (
	reasonStop = iota
	reasonLength
	reasonAbort
	numReasons
)

var reasonNames = [numReasons]string{platform.FinishedStop, platform.FinishedLength, platform.FinishedAbort}

var (
	errNoReplica = errors.New("no ready replica")
	errQueueFull = errors.New("waiting queue full")
)

// hpaStatus is what the HPA object shows after its last sync.
type hpaStatus struct {
	current, desired int32
	metric           float64 // the waiting total KEDA handed to the HPA (keda_scaler_metrics_value, trigger 0)
	kv               float64 // the KV aggregate of the KV trigger (trigger 1), when there is one
	recs             []int32 // each metric's recommendation (keda.Decision.Recommendations)
	syncs            int
	limited          string
}

// Fleet is the simulated deployment: replicas, gateway, Deployment and
// autoscaler. Create it with New, serve Handler, and run Run for the
// controllers.
type Fleet struct {
	cfg     Config
	clk     Clock
	hpaName string
	podHash string // the pod-template-hash of every pod name
	model   []byte // the model name as a JSON string
	reg     *prometheus.Registry
	handler http.Handler

	mu       sync.Mutex
	pods     []*pod // live pods in creation order
	spec     int32  // the Deployment's spec.replicas
	paused   bool
	external bool      // NewExternal: the pods follow SetReadyPods, no HPA
	hpa      *keda.HPA // nil while paused: KEDA deletes the HPA
	status   hpaStatus
	nextSync time.Time // zero: sync at the next turn of Run
	podSeq   uint64
	rng      *rand.Rand // pod names
	// changed is closed at the next state change (nil until someone waits).
	// Only the tests' waitFor waits on it (through changedLocked): the
	// fleet itself never does, and notifyLocked is there to serve them.
	changed chan struct{}

	// onServed, when set (by a test, before the fleet serves), is told
	// what each streamed request really got: the ground truth a timing
	// test holds a client's measurements to.
	onServed func(served)

	kick    chan struct{} // wakes Run after a change outside it
	running atomic.Bool   // Run is running
	reqSeq  atomic.Uint64

	stats struct {
		received, ok, rejected, unavailable, invalid, aborted atomic.Uint64
		inFlight                                              atomic.Int64
		promptTokens, genTokens                               atomic.Uint64
	}
}

// New builds a fleet from a valid cfg on clk (nil: the real clock). Its
// Replicas.Start pods are Ready at once (a warm Deployment), within the GPU
// quota; the rest are Pending. The autoscaler starts with Run.
func New(cfg Config, clk Clock) (*Fleet, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("sim: invalid config: %w", err)
	}
	if clk == nil {
		clk = RealClock()
	}
	// The fleet keeps its own copies: a caller changing its Behavior or
	// KVTrigger afterwards changes nothing here.
	cfg.Behavior = cloneBehavior(cfg.Behavior)
	if cfg.KVTrigger != nil {
		kv := *cfg.KVTrigger
		cfg.KVTrigger = &kv
	}
	f := &Fleet{
		cfg:     cfg,
		clk:     clk,
		hpaName: platform.KEDAHPAName(cfg.ScaledObject),
		podHash: templateHash(cfg.Deployment, cfg.Seed),
		model:   jsonString(cfg.Model),
		rng:     rand.New(rand.NewPCG(cfg.Seed, 0x9e3779b97f4a7c15)),
		kick:    make(chan struct{}, 1),
	}
	now := clk.Now()
	f.mu.Lock()
	f.spec = cfg.Replicas.Start
	for range cfg.Replicas.Start {
		f.addPodLocked()
	}
	f.startPendingLocked(now, true)
	f.paused = cfg.Paused
	if !f.paused {
		f.hpa = f.newHPA()
	}
	f.status = hpaStatus{current: f.spec, desired: f.spec}
	f.mu.Unlock()

	f.reg = prometheus.NewRegistry()
	f.reg.MustRegister(collector{f})
	f.handler = f.routes()
	return f, nil
}

// The external metrics KEDA gives the HPA for the fleet's triggers.
var (
	waitingMetric = platform.KEDAMetricName(0, platform.KEDAPrometheus)
	kvMetric      = platform.KEDAMetricName(1, platform.KEDAPrometheus)
)

// newHPA is the HPA KEDA creates for the ScaledObject: a prometheus trigger
// (s0-prometheus) on the total waiting, of cfg.MetricType, and with a
// KVTrigger a second one (s1-prometheus) on the KV aggregate; spec.behavior
// is cfg.Behavior (nil: unset, and the controller's ScaleDownWindow holds
// scale-down).
func (f *Fleet) newHPA() *keda.HPA {
	h := &keda.HPA{
		Min:             f.cfg.Replicas.Min,
		Max:             f.cfg.Replicas.Max,
		Tolerance:       keda.DefaultTolerance,
		Behavior:        f.cfg.Behavior,
		DownscaleWindow: f.cfg.ScaleDownWindow,
		Metrics:         []keda.Metric{{Name: waitingMetric, Type: metricType(f.cfg.MetricType), Target: f.cfg.Threshold}},
	}
	if k := f.cfg.KVTrigger; k != nil {
		h.Metrics = append(h.Metrics, keda.Metric{Name: kvMetric, Type: metricType(k.Type), Target: k.Threshold})
	}
	return h
}

// metricType is t with "" read as KEDA's default, AverageValue.
func metricType(t keda.MetricType) keda.MetricType {
	if t == "" {
		return keda.AverageValue
	}
	return t
}

// cloneBehavior is a deep copy of b (nil stays nil).
func cloneBehavior(b *keda.Behavior) *keda.Behavior {
	if b == nil {
		return nil
	}
	c := *b
	c.ScaleUp.Policies = slices.Clone(b.ScaleUp.Policies)
	c.ScaleDown.Policies = slices.Clone(b.ScaleDown.Policies)
	return &c
}

// served is one streamed request as the fleet served it, on its clock:
// when it arrived, and when the writes of its first token and of its end
// began (a client cannot read either sooner).
type served struct {
	arrived, first, last time.Time
}

// Handler serves the gateway API, /metrics and /admin/*.
func (f *Fleet) Handler() http.Handler { return f.handler }

// Run runs the controllers on the fleet's clock until ctx ends: the HPA sync
// every HPASync (first at once) while not paused, and the pod lifecycle
// (Starting → Ready after ColdStart). It returns nil when ctx ends, and an
// error if another Run is already running.
func (f *Fleet) Run(ctx context.Context) error {
	if !f.running.CompareAndSwap(false, true) {
		return errors.New("sim: Run is already running on this fleet")
	}
	defer f.running.Store(false)
	for {
		f.mu.Lock()
		next := f.stepLocked(f.clk.Now())
		f.mu.Unlock()

		var timer Timer
		var fire <-chan time.Time
		if !next.IsZero() {
			// Armed for the instant itself: a duration from a second
			// reading of the clock would arm late if a fake clock moved
			// between the readings.
			timer = newTimerAt(f.clk, next)
			fire = timer.C()
		}
		select {
		case <-ctx.Done():
		case <-fire:
		case <-f.kick:
		}
		if timer != nil {
			timer.Stop()
		}
		if ctx.Err() != nil {
			return nil
		}
	}
}

// wake tells Run that the schedule may have changed.
func (f *Fleet) wake() {
	select {
	case f.kick <- struct{}{}:
	default:
	}
}

// stepLocked does what is due at now and returns when Run must look again
// (zero: nothing scheduled).
func (f *Fleet) stepLocked(now time.Time) time.Time {
	changed := f.promoteLocked(now)
	if f.hpa != nil && (f.nextSync.IsZero() || !now.Before(f.nextSync)) {
		f.syncLocked(now)
		if f.nextSync.IsZero() {
			f.nextSync = now
		}
		for !f.nextSync.After(now) {
			f.nextSync = f.nextSync.Add(f.cfg.HPASync)
		}
		changed = true
	}
	if changed {
		f.notifyLocked()
	}
	var next time.Time
	if f.hpa != nil {
		next = f.nextSync
	}
	for _, p := range f.pods {
		if p.phase == phaseStarting && (next.IsZero() || p.readyAt.Before(next)) {
			next = p.readyAt
		}
	}
	return next
}

// syncLocked is one HPA sync. The metrics are read straight from the fleet
// at sync time: there is no Prometheus scrape interval or KEDA cache between
// the pods and the HPA here, so the sim shows the controller's own delay
// only. Both triggers are evaluated over the pods that export vllm:* series
// (Ready and terminating), as their queries would be.
func (f *Fleet) syncLocked(now time.Time) {
	total, kvSum, n := 0, 0.0, 0
	for _, p := range f.pods {
		if p.phase == phaseReady || p.phase == phaseDraining {
			total += len(p.waiting)
			kvSum += f.kvUsage(p)
			n++
		}
	}
	totals := []float64{float64(total)}
	var kv float64
	if k := f.cfg.KVTrigger; k != nil {
		// An empty result (no pod) is 0: KEDA's ignoreNullValues default.
		kv = kvSum
		if k.Aggregate == AggregateAvg && n > 0 {
			kv = kvSum / float64(n)
		}
		totals = append(totals, kv)
	}
	d := f.hpa.Sync(now, f.spec, totals)
	f.status = hpaStatus{current: f.spec, desired: d.Desired, metric: float64(total), kv: kv, recs: d.Recommendations,
		syncs: f.status.syncs + 1, limited: d.Limited}
	if d.Desired != f.spec {
		f.scaleLocked(d.Desired, now)
	}
}

// kvUsage is a pod's vllm:kv_cache_usage_perc: its running requests' tokens
// over its KV capacity. The sim does not stop admitting when the cache is
// full (no preemption model), so the fraction is capped at 1.
func (f *Fleet) kvUsage(p *pod) float64 {
	kv := float64(p.kvTokens.Load()) / float64(f.cfg.KVCapacity)
	return min(max(kv, 0), 1)
}

// SetPaused pauses or un-pauses the ScaledObject as KEDA does: pausing
// deletes the HPA (its series disappear, replicas stay as they are);
// un-pausing creates a fresh HPA that syncs at once.
//
// In external mode it does nothing: the cluster's ScaledObject is paused
// through the cluster.
func (f *Fleet) SetPaused(paused bool) {
	f.mu.Lock()
	if f.paused != paused && !f.external {
		f.paused = paused
		if paused {
			f.hpa = nil
		} else {
			f.hpa = f.newHPA()
			f.nextSync = time.Time{}
			f.status = hpaStatus{current: f.spec, desired: f.spec, syncs: f.status.syncs}
		}
		f.notifyLocked()
	}
	f.mu.Unlock()
	f.wake()
}

// Scale sets the Deployment's replicas by hand, like `kubectl scale`
// (0..1000); an error in external mode. While the ScaledObject is live its HPA decides them again at its
// next sync, from the new size.
func (f *Fleet) Scale(replicas int32) error {
	if replicas < 0 || replicas > 1000 {
		return fmt.Errorf("sim: replicas %d is outside 0..1000", replicas)
	}
	f.mu.Lock()
	if f.external {
		f.mu.Unlock()
		return errExternal
	}
	f.scaleLocked(replicas, f.clk.Now())
	f.notifyLocked()
	f.mu.Unlock()
	f.wake()
	return nil
}

// --- the Deployment -------------------------------------------------------

// alphanums is the alphabet Kubernetes draws name suffixes from.
const alphanums = "bcdfghjklmnpqrstvwxz2456789"

// templateHash is a pod-template-hash the way the Deployment controller
// spells one (the decimal FNV-32a, each digit mapped into alphanums), here of
// the Deployment name and the seed.
func templateHash(deployment string, seed uint64) string {
	h := fnv.New32a()
	fmt.Fprintf(h, "%s/%d", deployment, seed)
	s := fmt.Sprint(h.Sum32())
	b := make([]byte, len(s))
	for i := range s {
		b[i] = alphanums[int(s[i])%len(alphanums)]
	}
	return string(b)
}

func (f *Fleet) addPodLocked() *pod {
	var name string
	for {
		var suffix [5]byte
		for i := range suffix {
			suffix[i] = alphanums[f.rng.IntN(len(alphanums))]
		}
		name = f.cfg.Deployment + "-" + f.podHash + "-" + string(suffix[:])
		if !f.hasPodLocked(name) {
			break
		}
	}
	return f.appendPodLocked(name, phasePending)
}

// appendPodLocked adds a pod of that name and phase, the newest.
func (f *Fleet) appendPodLocked(name string, ph phase) *pod {
	f.podSeq++
	p := &pod{name: name, seq: f.podSeq, phase: ph}
	p.m.init()
	f.pods = append(f.pods, p)
	return p
}

func (f *Fleet) hasPodLocked(name string) bool {
	for _, p := range f.pods {
		if p.name == name {
			return true
		}
	}
	return false
}

// startPendingLocked schedules Pending pods, oldest first, while the GPU
// quota has room. Every live pod but a Pending one holds a GPU, a
// terminating one included until it is gone. warm makes them Ready at once.
func (f *Fleet) startPendingLocked(now time.Time, warm bool) {
	held := 0
	for _, p := range f.pods {
		if p.phase != phasePending {
			held++
		}
	}
	for _, p := range f.pods {
		if p.phase != phasePending || (f.cfg.GPUQuota > 0 && held >= f.cfg.GPUQuota) {
			continue
		}
		held++
		if warm {
			p.phase, p.readyAt = phaseReady, now
		} else {
			p.phase, p.readyAt = phaseStarting, now.Add(f.cfg.ColdStart)
		}
	}
}

// promoteLocked makes Starting pods whose cold start is over Ready.
func (f *Fleet) promoteLocked(now time.Time) bool {
	changed := false
	for _, p := range f.pods {
		if p.phase == phaseStarting && !p.readyAt.After(now) {
			p.phase = phaseReady
			changed = true
		}
	}
	return changed
}

// scaleLocked sets spec.replicas and reconciles the pods as a ReplicaSet
// does: new pods go Pending (then Starting within the quota); removal takes
// Pending pods first, then Starting, then the Ready pod that became ready
// last, newest first within each. A removed Ready pod leaves the gateway at
// once and goes away when it has finished what it holds.
func (f *Fleet) scaleLocked(n int32, now time.Time) {
	f.spec = n
	active := 0
	for _, p := range f.pods {
		if p.phase != phaseDraining {
			active++
		}
	}
	for ; active < int(n); active++ {
		f.addPodLocked()
	}
	for ; active > int(n); active-- {
		v := f.victimLocked()
		if v.phase == phaseReady {
			v.phase = phaseDraining
			if v.running() == 0 && len(v.waiting) == 0 {
				f.removePodLocked(v)
			}
		} else {
			f.removePodLocked(v)
		}
	}
	// Once for every removal above: the GPUs they freed go to Pending pods.
	f.rescheduleLocked(now)
}

// victimLocked picks the pod a scale-down removes next.
func (f *Fleet) victimLocked() *pod {
	var v *pod
	for _, p := range f.pods {
		if p.phase == phaseDraining {
			continue
		}
		switch {
		case v == nil, p.phase < v.phase:
			v = p
		case p.phase > v.phase:
		case p.phase == phaseReady && !p.readyAt.Equal(v.readyAt):
			if p.readyAt.After(v.readyAt) {
				v = p
			}
		case p.seq > v.seq:
			v = p
		}
	}
	return v
}

// removePodLocked deletes a pod: its series go with it. Its GPU is free,
// but only for the caller's next rescheduleLocked.
func (f *Fleet) removePodLocked(v *pod) {
	for i, p := range f.pods {
		if p == v {
			f.pods = append(f.pods[:i], f.pods[i+1:]...)
			break
		}
	}
}

// rescheduleLocked gives the free GPUs to the oldest Pending pods, makes
// Ready what is due at now, and tells Run its schedule may have changed.
func (f *Fleet) rescheduleLocked(now time.Time) {
	f.startPendingLocked(now, false)
	f.promoteLocked(now)
	f.wake()
}

// --- the gateway and the replicas' queues ---------------------------------

// pickLocked is the gateway's choice: the ready pod with the fewest running
// plus waiting requests, the oldest on a tie; nil when none is ready.
func (f *Fleet) pickLocked() *pod {
	var best *pod
	bestLoad := 0
	for _, p := range f.pods {
		if p.phase != phaseReady {
			continue
		}
		if load := p.running() + len(p.waiting); best == nil || load < bestLoad {
			best, bestLoad = p, load
		}
	}
	return best
}

// submit routes j to a replica: it runs at once when a slot is free, else it
// waits in that replica's FIFO queue. errNoReplica (503) when no pod is
// ready, errQueueFull (429) when the bounded queue is full.
func (f *Fleet) submit(j *job) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	p := f.pickLocked()
	switch {
	case p == nil:
		return errNoReplica
	case p.running() < f.cfg.MaxNumSeqs:
		// A free slot takes the request from its arrival: the time the
		// gateway spent reading and checking it is part of its prefill,
		// not added to it.
		f.startLocked(p, j, j.arrived, p.nRunning.Load()+1)
	case f.cfg.MaxWaiting > 0 && len(p.waiting) >= f.cfg.MaxWaiting:
		return errQueueFull
	default:
		j.pod = p
		p.waiting = append(p.waiting, j)
	}
	f.stats.inFlight.Add(1)
	f.notifyLocked()
	return nil
}

// startLocked gives j a running slot on p at instant at; running is p's
// count of running requests with j, stored before j learns of its slot.
func (f *Fleet) startLocked(p *pod, j *job, at time.Time, running int32) {
	j.pod, j.admittedAt, j.started = p, at, true
	p.nRunning.Store(running)
	j.kv = int64(j.prompt)
	p.kvTokens.Add(j.kv)
	close(j.admitted)
}

// cancelWaiting takes j out of its queue when its client went away before
// it got a slot. It reports false when j has a slot already: the caller then
// finishes it as an abort.
func (f *Fleet) cancelWaiting(j *job) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if j.started {
		return false
	}
	p := j.pod
	for i, w := range p.waiting {
		if w == j {
			p.waiting = append(p.waiting[:i], p.waiting[i+1:]...)
			break
		}
	}
	f.stats.inFlight.Add(-1)
	f.stats.aborted.Add(1)
	f.maybeGoneLocked(p, f.clk.Now())
	f.notifyLocked()
	return true
}

// finish frees j's slot at instant end (its last token, or the abort) and
// gives it to the head of the queue.
func (f *Fleet) finish(j *job, end time.Time, aborted bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p := j.pod
	// The count is stored once j's slot has a new holder (or none is
	// waiting), so the token path never sees it dip during the hand-over.
	running := p.nRunning.Load() - 1
	p.kvTokens.Add(-j.kv)
	for int(running) < f.cfg.MaxNumSeqs && len(p.waiting) > 0 {
		next := p.waiting[0]
		p.waiting[0] = nil
		p.waiting = p.waiting[1:]
		at := end
		if at.Before(next.arrived) {
			at = next.arrived
		}
		running++
		f.startLocked(p, next, at, running)
	}
	p.nRunning.Store(running)
	f.stats.inFlight.Add(-1)
	if aborted {
		f.stats.aborted.Add(1)
	} else {
		f.stats.ok.Add(1)
	}
	f.maybeGoneLocked(p, f.clk.Now())
	f.notifyLocked()
}

// maybeGoneLocked removes a terminating pod that has finished everything at
// now, and hands its GPU on.
func (f *Fleet) maybeGoneLocked(p *pod, now time.Time) {
	if p.phase == phaseDraining && p.running() == 0 && len(p.waiting) == 0 {
		f.removePodLocked(p)
		f.rescheduleLocked(now)
	}
}

// prefill is the time from a slot to the first token.
func (f *Fleet) prefill(promptTokens int) time.Duration {
	return f.cfg.TTFT + time.Duration(promptTokens)*f.cfg.PrefillPerToken
}

// itl is the time between two tokens of a request sharing its replica with
// running−1 others: ITL × (1 + BatchSlowdown × (running−1)).
func itl(cfg *Config, running int) time.Duration {
	if running < 1 {
		running = 1
	}
	return time.Duration(math.Round(float64(cfg.ITL) * (1 + cfg.BatchSlowdown*float64(running-1))))
}

// --- observing the fleet ---------------------------------------------------

// notifyLocked wakes everyone waiting for a state change.
func (f *Fleet) notifyLocked() {
	if f.changed != nil {
		close(f.changed)
		f.changed = nil
	}
}

// changedLocked is closed at the next state change.
func (f *Fleet) changedLocked() <-chan struct{} {
	if f.changed == nil {
		f.changed = make(chan struct{})
	}
	return f.changed
}

// Stats counts what the gateway did since the fleet started, over every pod
// that ever lived: when nothing is in flight, Received = Served =
// OK + Rejected + Unavailable + Invalid + Aborted.
type Stats struct {
	Received         uint64 `json:"received"`          // requests to the completion endpoints
	Served           uint64 `json:"served"`            // answered: the sum of the five below
	OK               uint64 `json:"ok"`                // 200 with their whole output
	Rejected         uint64 `json:"rejected"`          // 429: the replica's waiting queue was full
	Unavailable      uint64 `json:"unavailable"`       // 503: no ready replica
	Invalid          uint64 `json:"invalid"`           // 400/404/405: bad body, unknown model, over the context
	Aborted          uint64 `json:"aborted"`           // the client went away first
	InFlight         int64  `json:"in_flight"`         // waiting or running now
	PromptTokens     uint64 `json:"prompt_tokens"`     // of requests that reached their first token
	GenerationTokens uint64 `json:"generation_tokens"` // tokens generated
}

// Stats returns the gateway's counts.
func (f *Fleet) Stats() Stats {
	s := &f.stats
	st := Stats{
		InFlight:         s.inFlight.Load(),
		OK:               s.ok.Load(),
		Rejected:         s.rejected.Load(),
		Unavailable:      s.unavailable.Load(),
		Invalid:          s.invalid.Load(),
		Aborted:          s.aborted.Load(),
		PromptTokens:     s.promptTokens.Load(),
		GenerationTokens: s.genTokens.Load(),
		Received:         s.received.Load(),
	}
	st.Served = st.OK + st.Rejected + st.Unavailable + st.Invalid + st.Aborted
	return st
}

// PodState is one pod in State.
type PodState struct {
	Name    string `json:"name"`
	Phase   string `json:"phase"` // Pending, Starting, Ready or Terminating
	Running int    `json:"running"`
	Waiting int    `json:"waiting"`
}

// State is a snapshot of the fleet, as GET /admin/state returns it.
type State struct {
	Paused      bool       `json:"paused"`
	Replicas    int32      `json:"replicas"`     // the Deployment's spec.replicas
	Desired     int32      `json:"desired"`      // the HPA's desired replicas at its last sync; while paused, spec.replicas
	Limited     string     `json:"limited"`      // what held the last HPA decision ("" when nothing did)
	MetricValue float64    `json:"metric_value"` // the total waiting the HPA last read (s0-prometheus)
	HPASyncs    int        `json:"hpa_syncs"`    // HPA syncs since the fleet started
	Pending     int        `json:"pending"`
	Starting    int        `json:"starting"`
	Ready       int        `json:"ready"`
	Terminating int        `json:"terminating"`
	Waiting     int        `json:"waiting"` // over every pod
	Running     int        `json:"running"`
	Pods        []PodState `json:"pods"` // in creation order
	Stats       Stats      `json:"stats"`

	// KVMetricValue is the KV aggregate the HPA last read (s1-prometheus);
	// 0 without a KV trigger.
	KVMetricValue float64 `json:"kv_metric_value,omitempty"`
	// Recommendations is each trigger's recommendation at the last sync,
	// s0-prometheus first (-1: unavailable), before stabilization and
	// limits: the largest is what the HPA proposed. nil before the first
	// sync and when the sync did not read the metrics (replicas outside
	// min..max).
	Recommendations []int32 `json:"recommendations,omitempty"`
}

// State returns a snapshot of the fleet.
func (f *Fleet) State() State {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.stateLocked()
}

func (f *Fleet) stateLocked() State {
	s := State{
		Paused:      f.paused,
		Replicas:    f.spec,
		Desired:     f.status.desired,
		Limited:     f.status.limited,
		MetricValue: f.status.metric,
		HPASyncs:    f.status.syncs,

		KVMetricValue:   f.status.kv,
		Recommendations: slices.Clone(f.status.recs),
		Pods:            make([]PodState, 0, len(f.pods)),
		Stats:           f.Stats(),
	}
	if f.hpa == nil {
		s.Desired = f.spec
	}
	for _, p := range f.pods {
		switch p.phase {
		case phasePending:
			s.Pending++
		case phaseStarting:
			s.Starting++
		case phaseReady:
			s.Ready++
		case phaseDraining:
			s.Terminating++
		}
		s.Waiting += len(p.waiting)
		s.Running += p.running()
		s.Pods = append(s.Pods, PodState{Name: p.name, Phase: p.phase.String(), Running: p.running(), Waiting: len(p.waiting)})
	}
	return s
}

// splitmix64 is a seeded, stateless mixer: ids and output lengths derive from
// the fleet seed and a request's sequence number without a shared generator.
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}
