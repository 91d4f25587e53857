package job

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// runDir writes a small run directory for shard k.
func runDir(t *testing.T, k int) string {
	dir := t.TempDir()
	write(t, dir, "report.json", fmt.Sprintf(`{"shard": %d}`, k))
	write(t, dir, "requests.jsonl", strings.Repeat(fmt.Sprintf(`{"shard":%d,"ttft":0.1}`+"\n", k), 500))
	write(t, dir, "sub/timeline.csv", "t,waiting\n0,1\n")
	return dir
}

func TestArchiveRoundTrip(t *testing.T) {
	dir := runDir(t, 3)
	a, err := Archive(dir)
	if err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	log.WriteString("timeline…\nverdict: pass · /work/run\n")
	if _, err := WriteArchive(&log, a); err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(log.String(), "\n") {
		if len(line) > 100 {
			t.Fatalf("a log line of %d characters", len(line))
		}
	}
	got, err := ReadArchive(bytes.NewReader(log.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "x")
	if err := Extract(got, out); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"report.json", "requests.jsonl", "sub/timeline.csv"} {
		want, _ := os.ReadFile(filepath.Join(dir, f))
		have, err := os.ReadFile(filepath.Join(out, f))
		if err != nil || !bytes.Equal(want, have) {
			t.Errorf("%s does not come back whole: %v", f, err)
		}
	}

	// A log cut short, a changed byte, no archive at all: each told.
	s := log.String()
	cut := s[:len(s)-len(archiveEnd)-200]
	if _, err := ReadArchive(strings.NewReader(cut)); err == nil || !strings.Contains(err.Error(), "cut") {
		t.Errorf("cut log: %v", err)
	}
	i := strings.Index(s, archiveBegin)
	j := i + strings.Index(s[i:], "\n") + 10
	flipped := s[:j] + string(rune(s[j]^1)) + s[j+1:]
	if _, err := ReadArchive(strings.NewReader(flipped)); err == nil {
		t.Error("a changed byte was not caught")
	}
	if _, err := ReadArchive(strings.NewReader("just a log\n")); err != ErrNoArchive {
		t.Errorf("no archive: %v", err)
	}
}

func TestExtractRefusesEscapes(t *testing.T) {
	for _, name := range []string{"../evil", "/etc/evil", "a/../../evil"} {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		tw := tar.NewWriter(zw)
		tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: 4, Typeflag: tar.TypeReg})
		tw.Write([]byte("boom"))
		tw.Close()
		zw.Close()
		root := t.TempDir()
		if err := Extract(buf.Bytes(), filepath.Join(root, "out")); err == nil {
			t.Errorf("%s extracted", name)
		}
		if _, err := os.Stat(filepath.Join(root, "evil")); err == nil {
			t.Errorf("%s written outside", name)
		}
	}
}

// A Job of three shards in the fake API: status reads it and its pods by
// shard; collect brings each shard's directory back from its log.
func TestStatusAndCollect(t *testing.T) {
	const ns, name = "load", "scaleout-x-20261203-080000"
	three := int32(3)
	sel := &metav1.LabelSelector{MatchLabels: map[string]string{"batch.kubernetes.io/controller-uid": "u1"}}
	objs := []runtime.Object{&batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Annotations: map[string]string{
			AnnStartAt: "2026-12-03T08:00:00Z", AnnShards: "3", AnnScenario: "x"}},
		Spec: batchv1.JobSpec{Completions: &three, Parallelism: &three, Selector: sel},
		Status: batchv1.JobStatus{Succeeded: 3, Conditions: []batchv1.JobCondition{
			{Type: batchv1.JobComplete, Status: corev1.ConditionTrue}}},
	}}
	logs := map[string]string{}
	var dirs []string
	for k := range 3 {
		pod := fmt.Sprintf("%s-%d-abcde", name, k)
		objs = append(objs, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: pod, Namespace: ns,
				Labels:      map[string]string{"batch.kubernetes.io/controller-uid": "u1"},
				Annotations: map[string]string{IndexAnnotation: strconv.Itoa(k)}},
			Status: corev1.PodStatus{Phase: corev1.PodSucceeded, ContainerStatuses: []corev1.ContainerStatus{{
				Name: Container, State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{Reason: "Completed"}}}}},
		})
		d := runDir(t, k)
		dirs = append(dirs, d)
		a, err := Archive(d)
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		b.WriteString("verdict: pass\n")
		WriteArchive(&b, a)
		logs[pod] = b.String()
	}
	// A pod of another Job in the namespace is not one of ours.
	objs = append(objs, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "other-0", Namespace: ns,
		Labels: map[string]string{"batch.kubernetes.io/controller-uid": "u2"}, Annotations: map[string]string{IndexAnnotation: "0"}}})
	core := fake.NewClientset(objs...)
	ctx := context.Background()
	st, err := GetStatus(ctx, core, ns, name)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Done || st.Shards != 3 || st.Succeeded != 3 || len(st.Pods) != 3 || st.StartAt.Format("15:04") != "08:00" {
		t.Fatalf("status %+v", st)
	}
	for k, p := range st.Pods {
		if p.Index != k || p.Reason != "Completed" {
			t.Errorf("pod %d: %+v", k, p)
		}
	}
	fromMap := func(_ context.Context, _, pod string) (io.ReadCloser, error) {
		return io.NopCloser(strings.NewReader(logs[pod])), nil
	}
	out := t.TempDir()
	got, err := Collect(ctx, st, fromMap, out)
	if err != nil {
		t.Fatal(err)
	}
	for k := range 3 {
		if got[k] != ShardDir(out, k) {
			t.Errorf("shard %d in %s", k, got[k])
		}
		want, _ := os.ReadFile(filepath.Join(dirs[k], "requests.jsonl"))
		have, _ := os.ReadFile(filepath.Join(ShardDir(out, k), "requests.jsonl"))
		if !bytes.Equal(want, have) {
			t.Errorf("shard %d: requests.jsonl differs", k)
		}
	}

	// A shard whose pod failed: collect says which, and why.
	st.Pods[1].Phase, st.Pods[1].Reason, st.Pods[1].ExitCode = corev1.PodFailed, "Error", ptr(int32(3))
	if _, err := Collect(ctx, st, fromMap, t.TempDir()); err == nil || !strings.Contains(err.Error(), "shard 1: no pod succeeded") || !strings.Contains(err.Error(), "exit 3") {
		t.Errorf("failed shard: %v", err)
	}
}

// Apply sends each object once, in order, as a server-side apply by
// scaleout, dry-run when asked.
func TestApplyIsServerSideApply(t *testing.T) {
	objs := testManifests(t)
	dyn := dynfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), map[schema.GroupVersionResource]string{})
	var seen []string
	dyn.PrependReactor("patch", "*", func(a k8stesting.Action) (bool, runtime.Object, error) {
		p := a.(k8stesting.PatchAction)
		o := p.(k8stesting.PatchActionImpl).GetPatchOptions()
		if o.FieldManager != FieldManager || len(o.DryRun) != 1 || o.DryRun[0] != metav1.DryRunAll || o.Force == nil || !*o.Force {
			t.Errorf("patch options %+v", o)
		}
		seen = append(seen, fmt.Sprintf("%s %s %s", p.GetResource().Resource, p.GetName(), p.GetPatchType()))
		return true, nil, nil
	})
	var applied int
	if err := Apply(context.Background(), dyn, objs, true, func(*unstructured.Unstructured) { applied++ }); err != nil {
		t.Fatal(err)
	}
	// One apply per object, in the order rendered.
	var want []string
	for _, u := range objs {
		gvr, _ := GVR(u)
		want = append(want, gvr.Resource+" "+u.GetName()+" application/apply-patch+yaml")
	}
	if applied != len(objs) || strings.Join(seen, "|") != strings.Join(want, "|") || !strings.HasPrefix(seen[len(seen)-1], "jobs ") {
		t.Errorf("applied %d: %q", applied, seen)
	}
}
