package sim

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

// submitN submits n jobs of prompt 10 straight to the fleet's gateway.
func submitN(t *testing.T, f *Fleet, n int) []*job {
	t.Helper()
	jobs := make([]*job, n)
	for i := range jobs {
		jobs[i] = newJob(10, 5, 5, uint64(i), f.clk.Now())
		if err := f.submit(jobs[i]); err != nil {
			t.Fatalf("submit %d: %v", i, err)
		}
	}
	return jobs
}

func isAdmitted(j *job) bool {
	select {
	case <-j.admitted:
		return true
	default:
		return false
	}
}

func TestQueueingSlotsAndFIFO(t *testing.T) {
	cfg := testConfig()
	cfg.MaxNumSeqs = 2
	cfg.MaxWaiting = 3
	clk := NewFakeClock(epoch)
	f, err := New(cfg, clk)
	if err != nil {
		t.Fatal(err)
	}
	// 2 slots, 5 requests: 2 run, 3 wait.
	jobs := submitN(t, f, 5)
	s := f.State()
	if s.Running != 2 || s.Waiting != 3 {
		t.Fatalf("2 slots, 5 requests: running %d waiting %d, want 2 and 3", s.Running, s.Waiting)
	}
	for i, j := range jobs {
		if got, want := isAdmitted(j), i < 2; got != want {
			t.Errorf("job %d admitted = %v, want %v", i, got, want)
		}
	}
	// The bounded queue is full: the 6th is refused.
	if err := f.submit(newJob(10, 5, 5, 99, clk.Now())); !errors.Is(err, errQueueFull) {
		t.Fatalf("6th request: %v, want errQueueFull", err)
	}
	// Slots free in FIFO order of arrival, at the instant the slot frees.
	clk.Advance(3 * time.Second)
	f.finish(jobs[1], epoch.Add(2*time.Second), false)
	if !isAdmitted(jobs[2]) || isAdmitted(jobs[3]) || isAdmitted(jobs[4]) {
		t.Fatalf("after one finish: want only job 2 admitted from the queue")
	}
	if got := jobs[2].admittedAt.Sub(epoch); got != 2*time.Second {
		t.Errorf("job 2 admitted at %v, want 2s (when job 1 ended)", got)
	}
	f.finish(jobs[0], clk.Now(), false)
	if !isAdmitted(jobs[3]) || isAdmitted(jobs[4]) {
		t.Fatalf("after two finishes: want job 3 admitted, not job 4")
	}
	// A waiting request whose client leaves is taken out of the queue.
	if !f.cancelWaiting(jobs[4]) {
		t.Fatal("cancelWaiting of a waiting job = false")
	}
	if f.cancelWaiting(jobs[3]) {
		t.Fatal("cancelWaiting of a running job = true")
	}
	s = f.State()
	if s.Running != 2 || s.Waiting != 0 {
		t.Fatalf("running %d waiting %d, want 2 and 0", s.Running, s.Waiting)
	}
	st := f.Stats()
	if st.OK != 2 || st.Aborted != 1 || st.InFlight != 2 {
		t.Errorf("stats %+v: want ok 2, aborted 1, in flight 2", st)
	}
}

func TestGatewayLeastLoaded(t *testing.T) {
	cfg := testConfig()
	cfg.MaxNumSeqs = 1
	cfg.Replicas.Start = 2
	f, err := New(cfg, NewFakeClock(epoch))
	if err != nil {
		t.Fatal(err)
	}
	jobs := submitN(t, f, 5)
	p0, p1 := f.pods[0], f.pods[1]
	// 0 → p0 (tie: oldest), 1 → p1, 2 → p0 (tie), 3 → p1, 4 → p0.
	for i, want := range []*pod{p0, p1, p0, p1, p0} {
		if jobs[i].pod != want {
			t.Errorf("job %d went to %s, want %s", i, jobs[i].pod.name, want.name)
		}
	}
	if p0.running() != 1 || len(p0.waiting) != 2 || p1.running() != 1 || len(p1.waiting) != 1 {
		t.Errorf("p0 %d+%d, p1 %d+%d; want 1+2 and 1+1", p0.running(), len(p0.waiting), p1.running(), len(p1.waiting))
	}
	// No ready pod: 503.
	if err := f.Scale(0); err != nil {
		t.Fatal(err)
	}
	if err := f.submit(newJob(1, 1, 1, 0, epoch)); !errors.Is(err, errNoReplica) {
		t.Errorf("no ready pod: %v, want errNoReplica", err)
	}
}

func TestPrefillAndITLArithmetic(t *testing.T) {
	cfg := testConfig()
	cfg.TTFT = 100 * time.Millisecond
	cfg.PrefillPerToken = 250 * time.Microsecond
	cfg.ITL = 10 * time.Millisecond
	cfg.BatchSlowdown = 0.5
	f, err := New(cfg, NewFakeClock(epoch))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		prompt int
		want   time.Duration
	}{{0, 100 * time.Millisecond}, {1, 100250 * time.Microsecond}, {400, 200 * time.Millisecond}} {
		if got := f.prefill(tt.prompt); got != tt.want {
			t.Errorf("prefill(%d) = %v, want %v", tt.prompt, got, tt.want)
		}
	}
	for _, tt := range []struct {
		running int
		want    time.Duration
	}{{0, 10 * time.Millisecond}, {1, 10 * time.Millisecond}, {2, 15 * time.Millisecond}, {5, 30 * time.Millisecond}} {
		if got := itl(&cfg, tt.running); got != tt.want {
			t.Errorf("itl(running %d) = %v, want %v", tt.running, got, tt.want)
		}
	}
}

// TestStreamTimingOnFakeClock follows two streamed requests sharing a
// replica token by token on the fake clock: prefill = TTFT + per-token, then
// ITL × (1 + slowdown × (running−1)); the histograms get exact values.
func TestStreamTimingOnFakeClock(t *testing.T) {
	cfg := testConfig()
	cfg.TTFT = 100 * time.Millisecond
	cfg.PrefillPerToken = time.Millisecond
	cfg.ITL = 10 * time.Millisecond
	cfg.BatchSlowdown = 0.5
	cfg.KVCapacity = 100
	h := newHarness(t, cfg, false)
	open := func(prompt string) *eventReader {
		resp := h.post(t.Context(), "/v1/completions", `{"prompt":"`+prompt+`","max_tokens":3,"ignore_eos":true,"stream":true}`)
		t.Cleanup(func() { resp.Body.Close() })
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d", resp.StatusCode)
		}
		return &eventReader{r: bufio.NewReader(resp.Body)}
	}
	// Both are admitted at once, so their headers come back right away.
	a := open("one two")            // prefill 102 ms
	b := open("one two three four") // prefill 104 ms
	waitFor(t, h.f, "two running", func(s State) bool { return s.Running == 2 })
	if kv := h.f.pods[0].kvTokens.Load(); kv != 6 {
		t.Fatalf("KV tokens after admission %d, want the prompts' 6", kv)
	}
	expectEvent := func(r *eventReader, name string, want string) {
		t.Helper()
		ev := recv(t, asyncNext(r), name)
		if !strings.Contains(ev, want) {
			t.Fatalf("%s: got %q, want it to contain %q", name, ev, want)
		}
	}
	h.clk.Advance(102 * time.Millisecond) // a's first token
	expectEvent(a, "a token 1", `"text":"`)
	h.clk.Advance(2 * time.Millisecond) // b's first token at 104 ms
	expectEvent(b, "b token 1", `"text":"`)
	// Two running: ITL = 10 × (1 + 0.5) = 15 ms. a: 117, 132; b: 119, 134.
	h.clk.Advance(13 * time.Millisecond) // 117
	expectEvent(a, "a token 2", `"text":"`)
	h.clk.Advance(2 * time.Millisecond) // 119
	expectEvent(b, "b token 2", `"text":"`)
	h.clk.Advance(13 * time.Millisecond) // 132: a's last
	expectEvent(a, "a token 3", `"text":"`)
	expectEvent(a, "a finish", `"finish_reason":"length"`)
	expectEvent(a, "a done", `[DONE]`)
	waitFor(t, h.f, "a finished", func(s State) bool { return s.Running == 1 })
	h.clk.Advance(2 * time.Millisecond) // 134: b's last (its ITL was read while a still ran)
	expectEvent(b, "b token 3", `"text":"`)
	waitFor(t, h.f, "b finished", func(s State) bool { return s.Running == 0 })

	m := &h.f.pods[0].m
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ttft.n != 2 || !near(m.ttft.sum, 0.102+0.104) {
		t.Errorf("TTFT histogram n %d sum %v, want 2 and 0.206", m.ttft.n, m.ttft.sum)
	}
	if m.e2e.n != 2 || !near(m.e2e.sum, 0.132+0.134) {
		t.Errorf("e2e histogram n %d sum %v, want 2 and 0.266", m.e2e.n, m.e2e.sum)
	}
	if m.promptTokens != 6 || m.genTokens != 6 || m.success[reasonLength] != 2 {
		t.Errorf("prompt %d gen %d length %d, want 6, 6, 2", m.promptTokens, m.genTokens, m.success[reasonLength])
	}
	if kv := h.f.pods[0].kvTokens.Load(); kv != 0 {
		t.Errorf("KV tokens after both finished: %d, want 0", kv)
	}
}

func near(a, b float64) bool { return a-b < 1e-9 && b-a < 1e-9 }

func asyncNext(r *eventReader) <-chan string {
	ch := make(chan string, 1)
	go func() {
		ev, err := r.next()
		if err != nil {
			ev = "error: " + err.Error()
		}
		ch <- ev
	}()
	return ch
}

// TestQueueTimeInTTFT: a request that waits for a slot gets its first token
// prefill after the slot frees, and its TTFT counts the wait.
func TestQueueTimeInTTFT(t *testing.T) {
	cfg := testConfig()
	cfg.MaxNumSeqs = 1
	cfg.TTFT = 50 * time.Millisecond
	cfg.ITL = 10 * time.Millisecond
	h := newHarness(t, cfg, false)
	a := h.async("/v1/completions", `{"prompt":"x","max_tokens":2,"ignore_eos":true}`) // 0 → 60 ms
	waitFor(t, h.f, "a running", func(s State) bool { return s.Running == 1 })
	h.clk.Advance(20 * time.Millisecond)
	b := h.async("/v1/completions", `{"prompt":"x","max_tokens":2,"ignore_eos":true}`) // arrives at 20 ms, waits
	waitFor(t, h.f, "b waiting", func(s State) bool { return s.Waiting == 1 })
	h.clk.Advance(40 * time.Millisecond) // 60 ms: a ends, b gets the slot
	if r := recv(t, a, "a"); r.status != 200 {
		t.Fatalf("a: %d %s", r.status, r.body)
	}
	h.clk.Advance(60 * time.Millisecond) // 120 ms: b's first token at 110, last at 120
	if r := recv(t, b, "b"); r.status != 200 {
		t.Fatalf("b: %d %s", r.status, r.body)
	}
	waitFor(t, h.f, "both done", func(s State) bool { return s.Stats.OK == 2 })
	m := &h.f.pods[0].m
	m.mu.Lock()
	defer m.mu.Unlock()
	// a: TTFT 50 ms, e2e 60 ms. b: arrived at 20, slot at 60, first token 110 → TTFT 90, e2e 100.
	if !near(m.ttft.sum, 0.050+0.090) || !near(m.e2e.sum, 0.060+0.100) {
		t.Errorf("TTFT sum %v e2e sum %v, want 0.14 and 0.16", m.ttft.sum, m.e2e.sum)
	}
}

var podName = regexp.MustCompile(`^vllm-sim-[bcdfghjklmnpqrstvwxz2456789]{6,10}-[bcdfghjklmnpqrstvwxz2456789]{5}$`)

func phases(s State) string {
	var b strings.Builder
	for i, p := range s.Pods {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s:%s", p.Name[len(p.Name)-5:], p.Phase)
	}
	return b.String()
}

func podPhases(s State) []string {
	out := make([]string, len(s.Pods))
	for i, p := range s.Pods {
		out[i] = p.Phase
	}
	return out
}

func TestDeploymentLifecycleAndScaleDownOrder(t *testing.T) {
	cfg := testConfig()
	cfg.Replicas = Replicas{Min: 1, Max: 10, Start: 1}
	cfg.ColdStart = 30 * time.Second
	cfg.GPUQuota = 4
	h := newHarness(t, cfg, true)
	f := h.f

	s := f.State()
	if len(s.Pods) != 1 || s.Pods[0].Phase != "Ready" || !podName.MatchString(s.Pods[0].Name) {
		t.Fatalf("start: %+v", s.Pods)
	}
	hash := strings.Split(s.Pods[0].Name, "-")[2]

	// Scale to 3 at t=0: two new pods start (quota 4), ready at t=30s.
	must(t, f.Scale(3))
	s = f.State()
	if got := strings.Join(podPhases(s), ","); got != "Ready,Starting,Starting" {
		t.Fatalf("after scale 3: %s", phases(s))
	}
	h.clk.Advance(29 * time.Second)
	h.clk.Advance(time.Second)
	s = waitFor(t, f, "3 ready at 30s", func(s State) bool { return s.Ready == 3 })

	// Scale to 5 at t=30s: one starts (4 GPUs), one stays Pending over the quota.
	must(t, f.Scale(5))
	s = f.State()
	if got := strings.Join(podPhases(s), ","); got != "Ready,Ready,Ready,Starting,Pending" {
		t.Fatalf("after scale 5: %s", phases(s))
	}
	for _, p := range s.Pods {
		if !podName.MatchString(p.Name) || strings.Split(p.Name, "-")[2] != hash {
			t.Errorf("pod name %q: want vllm-sim-%s-xxxxx", p.Name, hash)
		}
	}
	names := func(s State) []string {
		n := make([]string, len(s.Pods))
		for i, p := range s.Pods {
			n[i] = p.Name
		}
		return n
	}
	before := names(s)
	// Scale-down order: the Pending pod, then the Starting one, then the
	// newest Ready (the last created of those that became ready together).
	for _, step := range []struct {
		to   int32
		gone string
	}{{4, before[4]}, {3, before[3]}, {2, before[2]}, {1, before[1]}} {
		must(t, f.Scale(step.to))
		s = f.State()
		for _, n := range names(s) {
			if n == step.gone {
				t.Fatalf("scale to %d kept %s; pods %s", step.to, n, phases(s))
			}
		}
		if len(s.Pods) != int(step.to) {
			t.Fatalf("scale to %d: %d pods (%s)", step.to, len(s.Pods), phases(s))
		}
	}
	if s.Pods[0].Name != before[0] {
		t.Fatalf("the oldest pod must stay: %s", phases(s))
	}
}

func TestDeploymentDrainAndQuota(t *testing.T) {
	cfg := testConfig()
	cfg.Replicas = Replicas{Min: 1, Max: 10, Start: 2}
	cfg.ColdStart = 10 * time.Second
	cfg.GPUQuota = 2
	cfg.MaxNumSeqs = 1
	h := newHarness(t, cfg, true)
	f := h.f
	p0, p1 := f.pods[0], f.pods[1]

	// p1 (newest ready) gets a running and a waiting request.
	jobs := submitN(t, f, 4) // p0, p1, p0, p1
	if jobs[1].pod != p1 || jobs[3].pod != p1 {
		t.Fatalf("routing: %s %s", jobs[1].pod.name, jobs[3].pod.name)
	}
	// Scale to 1: p1 leaves the gateway but keeps its work.
	must(t, f.Scale(1))
	s := f.State()
	if s.Ready != 1 || s.Terminating != 1 || s.Pods[1].Running != 1 || s.Pods[1].Waiting != 1 {
		t.Fatalf("after scale 1: %s %+v", phases(s), s.Pods)
	}
	// New requests go to p0 only.
	more := submitN(t, f, 2)
	for _, j := range more {
		if j.pod != p0 {
			t.Fatalf("a request went to the terminating pod")
		}
	}
	// Scale back to 2: the new pod is Pending, the terminating one holds the GPU.
	must(t, f.Scale(2))
	s = f.State()
	if s.Pending != 1 || s.Terminating != 1 || s.Ready != 1 {
		t.Fatalf("after scale 2: %s", phases(s))
	}
	// p1 finishes its running request; its waiting one runs there, not elsewhere.
	f.finish(jobs[1], h.clk.Now(), false)
	if !isAdmitted(jobs[3]) || jobs[3].pod != p1 {
		t.Fatalf("the terminating pod must run its own queue")
	}
	if s = f.State(); s.Terminating != 1 {
		t.Fatalf("p1 must stay while it runs: %s", phases(s))
	}
	f.finish(jobs[3], h.clk.Now(), false)
	// p1 is gone; its GPU goes to the Pending pod, which starts.
	s = f.State()
	if s.Terminating != 0 || s.Starting != 1 || s.Pending != 0 {
		t.Fatalf("after p1 drained: %s", phases(s))
	}
	for _, p := range s.Pods {
		if p.Name == p1.name {
			t.Fatal("p1 still listed")
		}
	}
	h.clk.Advance(10 * time.Second)
	waitFor(t, f, "the new pod ready after its cold start", func(s State) bool { return s.Ready == 2 })
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestAutoscalerLoop drives the HPA with a scripted queue on the fake clock.
func TestAutoscalerLoop(t *testing.T) {
	cfg := testConfig()
	cfg.Paused = false
	cfg.Replicas = Replicas{Min: 1, Max: 10, Start: 1}
	cfg.MaxNumSeqs = 1
	cfg.ColdStart = 0
	cfg.HPASync = 15 * time.Second
	cfg.ScaleDownWindow = 300 * time.Second
	h := newHarness(t, cfg, true)
	f := h.f
	syncs := 1
	sync := func(at int) State {
		t.Helper()
		h.clk.Set(epoch.Add(time.Duration(at) * time.Second))
		s := waitFor(t, f, fmt.Sprintf("sync %d at t=%ds", syncs+1, at), func(s State) bool { return s.HPASyncs == syncs+1 })
		syncs++
		return s
	}
	// The first sync happens as Run starts, on an empty queue.
	s := waitFor(t, f, "first sync", func(s State) bool { return s.HPASyncs == 1 })
	if s.Desired != 1 || s.Replicas != 1 {
		t.Fatalf("t=0: %+v", s)
	}
	// 40 requests on one slot: 39 wait.
	jobs := submitN(t, f, 40)
	if s = f.State(); s.Waiting != 39 {
		t.Fatalf("waiting %d, want 39", s.Waiting)
	}
	// First sync after the queue grew: ceil(39/5) = 8, capped at max(2×1, 4) = 4.
	s = sync(15)
	if s.Desired != 4 || s.Replicas != 4 || s.Limited != "ScaleUpLimit" || s.MetricValue != 39 || s.Ready != 4 {
		t.Fatalf("t=15: %+v", s)
	}
	// Next: 8 (the queue stays on the first pod; new pods are idle).
	s = sync(30)
	if s.Desired != 8 || s.Replicas != 8 {
		t.Fatalf("t=30: %+v", s)
	}
	// The queue drains.
	for i, j := range jobs {
		if !isAdmitted(j) {
			t.Fatalf("FIFO: job %d has no slot after every earlier one finished", i)
		}
		f.finish(j, h.clk.Now(), false)
	}
	if s = f.State(); s.Waiting != 0 || s.Running != 0 {
		t.Fatalf("drained: %+v", s)
	}
	// The window holds 8 while any recommendation of 8 is at most 300 s old:
	// the last one was made at t=30, so through t=330.
	for at := 45; at <= 330; at += 15 {
		if s = sync(at); s.Desired != 8 || s.Replicas != 8 {
			t.Fatalf("t=%d: desired %d replicas %d, want 8 (stabilized)", at, s.Desired, s.Replicas)
		}
		if s.Limited != "ScaleDownStabilized" {
			t.Fatalf("t=%d: limited %q", at, s.Limited)
		}
	}
	s = sync(345)
	if s.Desired != 1 || s.Replicas != 1 || s.Ready != 1 {
		t.Fatalf("t=345: back to min: %+v", s)
	}
}

func TestPausedAndAdmin(t *testing.T) {
	cfg := testConfig()
	cfg.Paused = true
	cfg.MaxNumSeqs = 1
	cfg.ColdStart = 30 * time.Second
	h := newHarness(t, cfg, true)
	f := h.f
	submitN(t, f, 40)

	// Paused: KEDA deleted the HPA: no HPA or scaler series, paused = 1.
	fams := scrape(t, h)
	for _, name := range []string{
		"kube_horizontalpodautoscaler_status_desired_replicas", "kube_horizontalpodautoscaler_status_current_replicas",
		"kube_horizontalpodautoscaler_spec_min_replicas", "kube_horizontalpodautoscaler_spec_max_replicas",
		"keda_scaler_metrics_value",
	} {
		if _, ok := fams[name]; ok {
			t.Errorf("%s present while paused", name)
		}
	}
	if v := value(t, fams, "keda_scaled_object_paused", nil); v != 1 {
		t.Errorf("keda_scaled_object_paused = %v, want 1", v)
	}
	// A manual scale to 2 starts a pod; once the Run loop has made it ready
	// at t=30s, it has gone past two sync periods without a sync.
	must(t, f.Scale(2))
	h.clk.Advance(30 * time.Second)
	s := waitFor(t, f, "manual pod ready", func(s State) bool { return s.Ready == 2 })
	if s.HPASyncs != 0 || s.Replicas != 2 || s.Waiting != 39 {
		t.Fatalf("paused: %+v", s)
	}

	// Un-pause through /admin: a fresh HPA syncs at once: ceil(39/5) = 8 → max(2×2, 4) = 4.
	var st State
	adminPost(t, h, "/admin/unpause", &st)
	if st.Paused {
		t.Fatal("unpause answered paused")
	}
	s = waitFor(t, f, "first sync after unpause", func(s State) bool { return s.HPASyncs == 1 })
	if s.Desired != 4 || s.Replicas != 4 {
		t.Fatalf("after unpause: %+v", s)
	}
	fams = scrape(t, h)
	if v := value(t, fams, "keda_scaled_object_paused", nil); v != 0 {
		t.Errorf("paused gauge %v after unpause", v)
	}
	if v := value(t, fams, "kube_horizontalpodautoscaler_status_desired_replicas", nil); v != 4 {
		t.Errorf("HPA desired %v, want 4", v)
	}
	// Pause again: replicas stay, the HPA's series go.
	adminPost(t, h, "/admin/pause", &st)
	if !st.Paused || st.Replicas != 4 {
		t.Fatalf("after pause: %+v", st)
	}
	fams = scrape(t, h)
	if _, ok := fams["kube_horizontalpodautoscaler_status_desired_replicas"]; ok {
		t.Error("HPA series present after pause")
	}
	// GET /admin/state.
	resp, err := h.srv.Client().Get(h.srv.URL + "/admin/state")
	must(t, err)
	defer resp.Body.Close()
	var got State
	must(t, decodeBody(resp, &got))
	if !got.Paused || got.Replicas != 4 || got.Desired != 4 || got.Waiting != 39 || got.Stats.InFlight != 40 || len(got.Pods) != 4 {
		t.Fatalf("GET /admin/state: %+v", got)
	}
	// Bad scale requests are 400s in the OpenAI error shape.
	bad := h.post(context.Background(), "/admin/scale?replicas=-1", "")
	bad.Body.Close()
	if bad.StatusCode != http.StatusBadRequest {
		t.Errorf("scale -1: %d", bad.StatusCode)
	}
}

func TestRunTwice(t *testing.T) {
	cfg := testConfig()
	cfg.Paused = false
	h := newHarness(t, cfg, true)
	waitFor(t, h.f, "Run's first sync", func(s State) bool { return s.HPASyncs == 1 })
	if err := h.f.Run(context.Background()); err == nil {
		t.Fatal("a second Run must fail")
	}
}
