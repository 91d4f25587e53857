package main

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"

	"github.com/scaleout/scaleout/sim"
)

// scaleout report prints a stored run again, rebuilds its page, and
// compares two runs; --vegeta-results is read by vegeta's own decoder.
func TestReportAndVegetaResults(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end run")
	}
	target, _ := fakeVLLM(t)
	dir := t.TempDir()
	p := writeFile(t, dir, "r.yaml", "target: {url: "+target.URL+"}\nload: [{name: only, duration: 2s, rate: 25/s}]\nclient_check: {max_send_lag: 2s, max_shortfall: 50%}\n")
	runA, runB := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	vr := filepath.Join(dir, "results.bin")
	c := newCLI()
	if code := c.run(t, "run", p, "--out", runA, "--vegeta-results", vr); code != 0 {
		t.Fatalf("exit %d: %s", code, c.stderr.String())
	}
	first := c.stdout.String()
	c = newCLI()
	if code := c.run(t, "run", p, "--out", runB, "--quiet"); code != 0 {
		t.Fatalf("second run: exit %d: %s%s", code, c.stdout.String(), c.stderr.String())
	}

	// vegeta reads the results: as many as the report counts, all 200.
	f, err := os.Open(vr)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := vegeta.DecoderFor(f)
	if dec == nil {
		t.Fatal("vegeta does not recognise the results encoding")
	}
	var m vegeta.Metrics
	for {
		var res vegeta.Result
		if err := dec.Decode(&res); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		m.Add(&res)
	}
	m.Close()
	r := readReportFile(t, runA)
	if int64(m.Requests) != r.Load.Requests || m.Success != 1 || m.StatusCodes["200"] != int(r.Load.Requests) {
		t.Errorf("vegeta sees %d requests, success %v, codes %v; the report %d", m.Requests, m.Success, m.StatusCodes, r.Load.Requests)
	}

	// The stored run prints as it did, and report.html is rebuilt.
	if err := os.Remove(filepath.Join(runA, "report.html")); err != nil {
		t.Fatal(err)
	}
	c = newCLI()
	if code := c.run(t, "report", runA); code != 0 {
		t.Fatalf("report exit %d: %s", code, c.stderr.String())
	}
	again := c.stdout.String()
	strip := regexp.MustCompile(`(?m)^(run directory:|rebuilt) .*\n`)
	if strip.ReplaceAllString(again, "") != strip.ReplaceAllString(first, "") {
		t.Errorf("the stored run prints differently:\n%s\nthen:\n%s", first, again)
	}
	if _, err := os.Stat(filepath.Join(runA, "report.html")); err != nil {
		t.Error("report.html was not rebuilt")
	}

	c = newCLI()
	if code := c.run(t, "report", runA, runB); code != 0 {
		t.Fatalf("compare exit %d: %s", code, c.stderr.String())
	}
	cmp := c.stdout.String()
	for _, want := range []string{"comparing " + runA, "requests", "ttft p95", "e2e p99", "verdict"} {
		if !strings.Contains(cmp, want) {
			t.Errorf("comparison lacks %q:\n%s", want, cmp)
		}
	}
	if code := newCLI().run(t, "report", filepath.Join(dir, "nope")); code != exitUsage {
		t.Errorf("a missing run: exit %d, want 2", code)
	}
}

// scaleout sim serves until it is told to stop, and --scaledobject makes it
// that ScaledObject's stand-in.
func TestSimCommand(t *testing.T) {
	dir := t.TempDir()
	so := writeFile(t, dir, "so.yaml", strings.Replace(scaledObject(`autoscaling.keda.sh/paused: "true"`, trigger(waitingOK, "7")),
		"namespace: inference", "namespace: serving", 1))
	c := newCLI()
	done := make(chan int)
	go func() { done <- c.run(t, "sim", "--listen", "127.0.0.1:0", "--scaledobject", so, "--hpa-sync", "1s") }()
	addr := ""
	waitFor(t, "the simulator to say where it listens", 10*time.Second, func() bool {
		m := regexp.MustCompile(`on http://(127\.0\.0\.1:\d+)`).FindStringSubmatch(c.stdout.String())
		if m != nil {
			addr = m[1]
		}
		return addr != ""
	})
	resp, err := http.Get("http://" + addr + "/admin/state")
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Paused   bool  `json:"paused"`
		Replicas int32 `json:"replicas"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&st)
	resp.Body.Close()
	if !st.Paused {
		t.Errorf("the ScaledObject's paused annotation was not applied: %+v", st)
	}
	resp, err = http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(page), `keda_scaled_object_paused{namespace="serving",scaledObject="vllm-sim"} 1`) {
		t.Errorf("metrics do not carry the ScaledObject's names:\n%s", page)
	}
	if !strings.Contains(c.stdout.String(), "threshold 7 waiting per replica") {
		t.Errorf("the trigger's threshold was not applied: %s", c.stdout.String())
	}
	c.signals <- os.Interrupt
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("exit %d: %s", code, c.stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("scaleout sim did not stop on SIGTERM")
	}
}

// guard: repause waits at the end for the ScaledObject to be re-paused,
// as the runbook's flow has it (the re-pause while the run waits),
// and with --strict-guard fails the run when nobody does.
func TestGuardWaitsForRepause(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end run")
	}
	cfg := sim.DefaultConfig()
	cfg.HPASync = time.Second
	_, srv := serveSim(t, cfg)
	dir := t.TempDir()
	p := writeFile(t, dir, "g.yaml", `sim: {}
load: [{duration: 1s, rate: 2/s}]
client_check: {max_send_lag: 2s, max_shortfall: 50%}
observe: {interval: 250ms, after: 0s}
guard: repause
`)
	args := []string{"run", p, "--target", srv.URL, "--scrape", srv.URL + "/metrics", "--strict-guard"}

	// Nobody re-pauses: the loud warning, and exit 1.
	c := newCLI()
	if code := c.run(t, append(args, "--out", filepath.Join(dir, "a"), "--guard-wait", "500ms")...); code != exitFailed {
		t.Fatalf("exit %d, want 1\n%s", code, c.stderr.String())
	}
	if r := readReportFile(t, filepath.Join(dir, "a")); r.Guard == nil || r.Guard.OK || r.Guard.State != "unpaused" {
		t.Errorf("guard %+v", r.Guard)
	}
	if !strings.Contains(c.stderr.String(), "!!! GUARD: inference/vllm-sim is still UN-PAUSED") {
		t.Errorf("no loud warning:\n%s", c.stderr.String())
	}
	// The way to re-pause is a command this repository's user has: kubectl,
	// with the platform team's make target named as theirs.
	for _, want := range []string{"kubectl -n inference annotate scaledobject vllm-sim autoscaling.keda.sh/paused=true --overwrite", "the platform team's"} {
		if !strings.Contains(c.stderr.String(), want) {
			t.Errorf("the guard does not say %q:\n%s", want, c.stderr.String())
		}
	}

	// Re-paused while the run waits: the guard holds, exit 0.
	c = newCLI()
	go func() {
		if err := await("the guard to ask for the re-pause", time.Minute, func() bool { return strings.Contains(c.stderr.String(), "re-pause it now") }); err != nil {
			t.Error(err) // the run then ends at --guard-wait, un-paused, and fails below
			return
		}
		resp, err := http.Post(srv.URL+"/admin/pause", "", nil)
		if err == nil {
			resp.Body.Close()
		}
	}()
	if code := c.run(t, append(args, "--out", filepath.Join(dir, "b"), "--guard-wait", "30s")...); code != 0 {
		t.Fatalf("exit %d\n%s", code, c.stderr.String())
	}
	if r := readReportFile(t, filepath.Join(dir, "b")); r.Guard == nil || !r.Guard.OK || r.Guard.State != "paused" {
		t.Errorf("guard %+v", r.Guard)
	}
}

// A run whose results cannot all be written (here the vegeta results go to
// /dev/full, a device that is always full) is not recorded: exit 3, a line
// that says why, and no PASS although every expectation held.
func TestUnwrittenRunIsNotAPass(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end run")
	}
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Skip("no /dev/full here")
	}
	target, _ := fakeVLLM(t)
	dir := t.TempDir()
	p := writeFile(t, dir, "w.yaml", "target: {url: "+target.URL+"}\nload: [{name: only, duration: 1s, rate: 10/s}]\nclient_check: {max_send_lag: 2s}\nexpect: [requests >= 5]\n")
	out := filepath.Join(dir, "run")
	c := newCLI()
	if code := c.run(t, "run", p, "--out", out, "--vegeta-results", "/dev/full"); code != exitCannotRun {
		t.Fatalf("exit %d, want 3\n%s\n%s", code, c.stdout.String(), c.stderr.String())
	}
	if text := c.stdout.String(); strings.Contains(text, "PASS") || !strings.Contains(text, "ok    requests >= 5") || !strings.Contains(text, "verdict: NOT RECORDED") {
		t.Errorf("stdout:\n%s", text)
	}
	if want := "could not be written whole, so the run is not recorded (exit 3): /dev/full: "; !strings.Contains(c.stderr.String(), want) {
		t.Errorf("stderr lacks %q:\n%s", want, c.stderr.String())
	}
	r := readReportFile(t, out)
	if r.Verdict != "unrecorded" || r.RequestsJSONL == nil || *r.RequestsJSONL != r.Load.Requests || countLines(t, filepath.Join(out, "requests.jsonl")) != int(r.Load.Requests) {
		t.Errorf("report.json: verdict %s, requests.jsonl lines %v of %d", r.Verdict, r.RequestsJSONL, r.Load.Requests)
	}
}
