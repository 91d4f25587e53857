package job

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
)

// FieldManager owns the fields scaleout applies.
const FieldManager = "scaleout"

// GVR is the resource of an object Manifests renders.
func GVR(u *unstructured.Unstructured) (schema.GroupVersionResource, error) {
	res, ok := kinds[u.GetKind()]
	if !ok {
		return schema.GroupVersionResource{}, fmt.Errorf("%s: not a kind scaleout job renders", u.GetKind())
	}
	gv, err := schema.ParseGroupVersion(u.GetAPIVersion())
	if err != nil {
		return schema.GroupVersionResource{}, err
	}
	return gv.WithResource(res), nil
}

// Apply applies objs in order with server-side apply (created when absent,
// scaleout's fields taken over when present). With dryRun the API server
// runs admission, validation and authorization and stores nothing.
// applied is called after each object.
func Apply(ctx context.Context, dyn dynamic.Interface, objs []*unstructured.Unstructured, dryRun bool, applied func(*unstructured.Unstructured)) error {
	for _, u := range objs {
		gvr, err := GVR(u)
		if err != nil {
			return err
		}
		body, err := json.Marshal(u.Object)
		if err != nil {
			return err
		}
		opts := metav1.PatchOptions{FieldManager: FieldManager, Force: ptr(true)}
		if dryRun {
			opts.DryRun = []string{metav1.DryRunAll}
		}
		if _, err := dyn.Resource(gvr).Namespace(u.GetNamespace()).Patch(ctx, u.GetName(), types.ApplyPatchType, body, opts); err != nil {
			return fmt.Errorf("%s %s/%s: %w", u.GetKind(), u.GetNamespace(), u.GetName(), err)
		}
		if applied != nil {
			applied(u)
		}
	}
	return nil
}

// Status is a Job and its shards, as the API has them.
type Status struct {
	Name, Namespace string
	Scenario        string
	Shards          int
	StartAt         time.Time
	Active          int
	Succeeded       int
	Failed          int
	Done            bool   // the Job completed (every shard succeeded)
	FailedReason    string // the Job failed, and why
	Pods            []PodStatus
}

// PodStatus is one pod of the Job.
type PodStatus struct {
	Index    int // the completion index (shard), -1 if the pod has none
	Name     string
	Phase    corev1.PodPhase
	Reason   string // why it waits or ended, from its container state
	ExitCode *int32
	Node     string
}

// GetStatus reads the Job and its pods, the pods by shard.
func GetStatus(ctx context.Context, core kubernetes.Interface, namespace, name string) (Status, error) {
	j, err := core.BatchV1().Jobs(namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return Status{}, err
	}
	st := Status{Name: name, Namespace: namespace, Scenario: j.Annotations[AnnScenario],
		Active: int(j.Status.Active), Succeeded: int(j.Status.Succeeded), Failed: int(j.Status.Failed)}
	if j.Spec.Completions != nil {
		st.Shards = int(*j.Spec.Completions)
	}
	if t, err := time.Parse(time.RFC3339, j.Annotations[AnnStartAt]); err == nil {
		st.StartAt = t
	}
	for _, c := range j.Status.Conditions {
		if c.Status != corev1.ConditionTrue {
			continue
		}
		switch c.Type {
		case batchv1.JobComplete:
			st.Done = true
		case batchv1.JobFailed:
			st.FailedReason = c.Reason
			if c.Message != "" {
				st.FailedReason += ": " + c.Message
			}
		}
	}
	// The Job's own selector (its controller-uid), else its name's label.
	lo := metav1.ListOptions{LabelSelector: "batch.kubernetes.io/job-name=" + name}
	if j.Spec.Selector != nil {
		if sel, err := metav1.LabelSelectorAsSelector(j.Spec.Selector); err == nil {
			lo.LabelSelector = sel.String()
		}
	}
	pods, err := core.CoreV1().Pods(namespace).List(ctx, lo)
	if err != nil {
		return st, err
	}
	for _, p := range pods.Items {
		ps := PodStatus{Index: -1, Name: p.Name, Phase: p.Status.Phase, Node: p.Spec.NodeName}
		if i, err := strconv.Atoi(p.Annotations[IndexAnnotation]); err == nil {
			ps.Index = i
		}
		for _, cs := range p.Status.ContainerStatuses {
			if cs.Name != Container {
				continue
			}
			switch {
			case cs.State.Terminated != nil:
				ps.Reason, ps.ExitCode = cs.State.Terminated.Reason, ptr(cs.State.Terminated.ExitCode)
			case cs.State.Waiting != nil:
				ps.Reason = cs.State.Waiting.Reason
			}
		}
		st.Pods = append(st.Pods, ps)
	}
	slices.SortFunc(st.Pods, func(a, b PodStatus) int {
		return cmp.Or(cmp.Compare(a.Index, b.Index), strings.Compare(a.Name, b.Name))
	})
	return st, nil
}

// LogFunc opens a pod's container log.
type LogFunc func(ctx context.Context, namespace, pod string) (io.ReadCloser, error)

// PodLogs reads logs through the API (get on pods/log).
func PodLogs(core kubernetes.Interface) LogFunc {
	return func(ctx context.Context, namespace, pod string) (io.ReadCloser, error) {
		return core.CoreV1().Pods(namespace).GetLogs(pod, &corev1.PodLogOptions{Container: Container}).Stream(ctx)
	}
}

// ShardDir is where Collect puts shard k's run directory under out.
func ShardDir(out string, k int) string {
	return filepath.Join(out, "shards", strconv.Itoa(k))
}

// Collect brings every shard's run directory back from its pod's log into
// ShardDir(out, k) and returns the directories by shard. Every shard must
// have succeeded: a run missing one is not the scenario's run.
func Collect(ctx context.Context, st Status, logs LogFunc, out string) ([]string, error) {
	if st.Shards < 1 {
		return nil, fmt.Errorf("job %s/%s has no completions", st.Namespace, st.Name)
	}
	var dirs []string
	var errs []error
	for k := range st.Shards {
		i := slices.IndexFunc(st.Pods, func(p PodStatus) bool { return p.Index == k && p.Phase == corev1.PodSucceeded })
		if i < 0 {
			errs = append(errs, fmt.Errorf("shard %d: no pod succeeded%s", k, shardPods(st, k)))
			continue
		}
		p := st.Pods[i]
		rc, err := logs(ctx, st.Namespace, p.Name)
		if err != nil {
			errs = append(errs, fmt.Errorf("shard %d: the log of pod %s: %w", k, p.Name, err))
			continue
		}
		data, err := ReadArchive(rc)
		rc.Close()
		if err != nil {
			errs = append(errs, fmt.Errorf("shard %d: pod %s: %w", k, p.Name, err))
			continue
		}
		dir := ShardDir(out, k)
		if err := Extract(data, dir); err != nil {
			errs = append(errs, fmt.Errorf("shard %d: pod %s: %w", k, p.Name, err))
			continue
		}
		dirs = append(dirs, dir)
	}
	return dirs, errors.Join(errs...)
}

func shardPods(st Status, k int) string {
	s := ""
	for _, p := range st.Pods {
		if p.Index == k {
			s += fmt.Sprintf(" (pod %s %s", p.Name, p.Phase)
			if p.Reason != "" {
				s += " " + p.Reason
			}
			if p.ExitCode != nil {
				s += fmt.Sprintf(" exit %d", *p.ExitCode)
			}
			s += ")"
		}
	}
	if s == "" {
		return " (no pod)"
	}
	return s
}
