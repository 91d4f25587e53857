package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/scaleout/scaleout/job"
)

// scaleout job prints the manifests; the Job's pods run the scenario from
// the ConfigMap as shards on the common start.
func TestJobRenders(t *testing.T) {
	dir := t.TempDir()
	p := writeFile(t, dir, "s.yaml", "name: render\ntarget: {url: http://gw.inference:8000}\nload: [{name: a, rate: 2/s, duration: 10s}]\n")
	c := newCLI()
	if code := c.run(t, "job", p, "--image", "reg/scaleout:1", "--parallelism", "3", "--start-at", "2026-12-03T08:00:00Z",
		"-n", "load", "--cpu", "500m", "--", "--rest-wait", "0"); code != 0 {
		t.Fatalf("exit %d: %s", code, c.stderr.String())
	}
	docs := strings.Split(c.stdout.String(), "\n---\n")
	var j batchv1.Job
	if err := sigsyaml.UnmarshalStrict([]byte(docs[len(docs)-1]), &j); err != nil {
		t.Fatal(err)
	}
	args := strings.Join(j.Spec.Template.Spec.Containers[0].Args, " ")
	if j.Name != "scaleout-render-20261203-080000" || j.Namespace != "load" || *j.Spec.Parallelism != 3 ||
		args != "job pod --dir /work/run -- run /config/scenario.yaml --shard $(JOB_COMPLETION_INDEX)/3 --start-at 2026-12-03T08:00:00Z --rest-wait 0" {
		t.Errorf("job %s/%s parallelism %d args %q", j.Namespace, j.Name, *j.Spec.Parallelism, args)
	}
	for name, bad := range map[string][]string{
		"no image":   {"job", p},
		"two files":  {"job", p, p, "--image", "i"},
		"bad start":  {"job", p, "--image", "i", "--start-at", "tomorrow"},
		"dry no app": {"job", p, "--image", "i", "--dry-run"},
		"no file":    {"job", filepath.Join(dir, "nope.yaml"), "--image", "i"},
		"own flag":   {"job", p, "--image", "i", "--", "--out", "x"},
		"past start": {"job", p, "--image", "i", "--start-at", "2020-01-01T00:00:00Z", "--apply"},
	} {
		if code := newCLI().run(t, bad...); code != exitUsage {
			t.Errorf("%s: exit %d, want 2", name, code)
		}
	}
}

// A Job pod runs the shard, then prints its run directory to the log,
// whole; a shard whose expectations failed still exits 0 (the merged run
// decides), one that could not run keeps its code and sends nothing.
func TestJobPodSendsTheRunBack(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end run")
	}
	target, _ := fakeVLLM(t)
	dir := t.TempDir()
	p := writeFile(t, dir, "s.yaml", "target: {url: "+target.URL+"}\nload: [{name: a, duration: 1s, rate: 10/s}]\nexpect: [requests > 1000000]\n")
	runDir := filepath.Join(dir, "run")
	c := newCLI()
	if code := c.run(t, "job", "pod", "--dir", runDir, "--", "run", p, "--quiet"); code != 0 {
		t.Fatalf("exit %d: %s", code, c.stderr.String())
	}
	if !strings.Contains(c.stderr.String(), "expectations failed (exit 1)") {
		t.Errorf("stderr does not say the shard's own verdict:\n%s", c.stderr.String())
	}
	a, err := job.ReadArchive(strings.NewReader(c.stdout.String()))
	if err != nil {
		t.Fatal(err)
	}
	back := filepath.Join(dir, "back")
	if err := job.Extract(a, back); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(runDir)
	if len(ents) < 3 {
		t.Fatalf("run directory has %d files", len(ents))
	}
	for _, e := range ents {
		if e.IsDir() {
			continue
		}
		want, _ := os.ReadFile(filepath.Join(runDir, e.Name()))
		have, err := os.ReadFile(filepath.Join(back, e.Name()))
		if err != nil || !bytes.Equal(want, have) {
			t.Errorf("%s did not come back whole (%v)", e.Name(), err)
		}
	}
	if r := readReportFile(t, back); r.Load.Requests < 5 {
		t.Errorf("the report that came back counts %d requests", r.Load.Requests)
	}

	bad := writeFile(t, dir, "bad.yaml", "load: [{name: a, rat: 1/s}]\n")
	c = newCLI()
	if code := c.run(t, "job", "pod", "--dir", filepath.Join(dir, "run2"), "--", "run", bad); code != exitUsage {
		t.Errorf("bad scenario: exit %d, want 2", code)
	}
	if strings.Contains(c.stdout.String(), "scaleout-archive-begin") {
		t.Error("a shard that did not run sent an archive")
	}
}

// collect hands the shards, in shard order, to the merge, and exits as
// the merge does: here the merge refuses directories that are not shards
// of one run (exit 2).
func TestCollectHandsShardsToTheMerge(t *testing.T) {
	var logs = map[string]string{}
	st := job.Status{Name: "j", Namespace: "ns", Shards: 2, Done: true}
	for k := range 2 {
		dir := t.TempDir()
		writeFile(t, dir, "report.json", "{}")
		a, err := job.Archive(dir)
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		job.WriteArchive(&b, a)
		pod := "j-" + string(rune('0'+k))
		logs[pod] = b.String()
		// listed out of order: collect goes by completion index
		st.Pods = append([]job.PodStatus{{Index: k, Name: pod, Phase: "Succeeded"}}, st.Pods...)
	}
	from := func(_ context.Context, _, pod string) (io.ReadCloser, error) {
		return io.NopCloser(strings.NewReader(logs[pod])), nil
	}
	out := t.TempDir()
	c := newCLI()
	e := env{stdout: &c.stdout, stderr: &c.stderr}
	if err := collectAndMerge(context.Background(), e, st, from, out); code(err) != exitUsage {
		t.Errorf("merging two non-shards: %v (exit %d), want the merge's refusal, exit 2", err, code(err))
	}
	var got []string
	saved := mergeCollected
	t.Cleanup(func() { mergeCollected = saved })
	mergeCollected = func(_ env, shards []string, o string) error {
		got = append(shards, o)
		return nil
	}
	if err := collectAndMerge(context.Background(), e, st, from, out); err != nil {
		t.Fatal(err)
	}
	if want := []string{job.ShardDir(out, 0), job.ShardDir(out, 1), out}; !slices.Equal(got, want) {
		t.Errorf("merge got %q, want %q", got, want)
	}
}

// scaleout version shows the commit make image stamps (-X main.commit).
func TestVersionShowsTheStampedCommit(t *testing.T) {
	saved := commit
	t.Cleanup(func() { commit = saved })
	commit = "0123456789abcdef-dirty"
	c := newCLI()
	if code := c.run(t, "version"); code != 0 || !strings.Contains(c.stdout.String(), "(commit 0123456789abcdef-dirty)") {
		t.Errorf("exit %d: %q", code, c.stdout.String())
	}
}

// The Job's path end to end on loopback: two pods' command (scaleout job
// pod -- run … --shard K/2 --start-at T) as two processes against one
// scaleout sim, their logs as the pods' logs, then collect: each shard's
// run directory comes back whole and the merge counts every request of
// both.
func TestJobPodsCollectAndMerge(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: three processes")
	}
	dir := t.TempDir()
	url := simURL(t, "--replicas-start", "2", "--replicas-min", "2", "--replicas-max", "2", "--max-num-seqs", "64", "--ttft", "5ms", "--itl", "2ms")
	path := writeFile(t, dir, "s.yaml", shardScenario(t))
	start := time.Now().Add(6 * time.Second).UTC().Format(time.RFC3339Nano)
	st := job.Status{Name: "j", Namespace: "ns", Shards: 2, Done: true}
	var procs []*proc
	for k := range 2 {
		procs = append(procs, startCLI(t, "job", "pod", "--dir", filepath.Join(dir, fmt.Sprintf("pod%d", k)), "--",
			"run", path, "--target", url, "-q", "--shard", fmt.Sprintf("%d/2", k), "--start-at", start))
		st.Pods = append(st.Pods, job.PodStatus{Index: k, Name: fmt.Sprintf("j-%d", k), Phase: "Succeeded"})
	}
	logs := map[string]string{}
	for k, p := range procs {
		if code := p.wait(t, 2*time.Minute); code != 0 {
			t.Fatalf("pod %d: exit %d\n%s", k, code, p.stderr.String())
		}
		logs[fmt.Sprintf("j-%d", k)] = p.stdout.String()
	}
	from := func(_ context.Context, _, pod string) (io.ReadCloser, error) {
		return io.NopCloser(strings.NewReader(logs[pod])), nil
	}
	out := filepath.Join(dir, "merged")
	c := newCLI()
	e := env{stdout: &c.stdout, stderr: &c.stderr}
	if err := collectAndMerge(context.Background(), e, st, from, out); err != nil && code(err) != exitFailed {
		t.Fatalf("collect: %v\n%s", err, c.stderr.String())
	}
	var sum int64
	for k := range 2 {
		want, _ := os.ReadFile(filepath.Join(dir, fmt.Sprintf("pod%d", k), "requests.jsonl"))
		have, err := os.ReadFile(filepath.Join(job.ShardDir(out, k), "requests.jsonl"))
		if err != nil || !bytes.Equal(want, have) || len(want) == 0 {
			t.Errorf("shard %d: requests.jsonl did not come back whole (%v)", k, err)
		}
		sum += readReportFile(t, job.ShardDir(out, k)).Load.Requests
	}
	if m := readReportFile(t, out); m.Load.Requests == 0 || m.Load.Requests != sum {
		t.Errorf("the merged run counts %d requests, the shards %d", m.Load.Requests, sum)
	}
}
