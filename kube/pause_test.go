package kube

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	k8stesting "k8s.io/client-go/testing"
)

func annotations(t *testing.T, k *cluster) map[string]string {
	t.Helper()
	u, err := k.dyn.Resource(ScaledObjects).Namespace(soRef.Namespace).Get(context.Background(), soRef.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return u.GetAnnotations()
}

// Un-pause removes both pause annotations; Restore puts back exactly what
// was there (values and absences) and leaves every other annotation alone.
func TestPauserRestoresExactly(t *testing.T) {
	for _, before := range []map[string]string{
		{PausedAnnotation: "true", "team": "serving"},
		{PausedReplicasAnnotation: "0", "team": "serving"},
		{PausedAnnotation: "TRUE", PausedReplicasAnnotation: "1", "team": "serving"},
	} {
		k := newCluster(t, nil, soObj(before))
		g := NewPauser(k.c, soRef, hpaRef)
		if err := g.Unpause(context.Background()); err != nil {
			t.Fatal(err)
		}
		if !g.Changed() {
			t.Fatalf("%v: not seen as paused", before)
		}
		mid := annotations(t, k)
		if _, ok := mid[PausedAnnotation]; ok || mid[PausedReplicasAnnotation] != "" || mid["team"] != "serving" {
			t.Errorf("%v: after the un-pause %v", before, mid)
		}
		if err := g.Restore(context.Background()); err != nil {
			t.Fatal(err)
		}
		after := annotations(t, k)
		if len(after) != len(before) {
			t.Errorf("restored %v, want %v", after, before)
		}
		for key, v := range before {
			if after[key] != v {
				t.Errorf("restored %s=%q, want %q", key, after[key], v)
			}
		}
		if from, to := g.Window(); from.IsZero() || to.Before(from) {
			t.Errorf("window %v..%v", from, to)
		}
	}
}

// A ScaledObject that is not paused is left alone, before and after.
func TestPauserLeavesUnpausedAlone(t *testing.T) {
	k := newCluster(t, nil, soObj(map[string]string{PausedAnnotation: "false"}))
	patches := 0
	k.dyn.PrependReactor("patch", "scaledobjects", func(k8stesting.Action) (bool, runtime.Object, error) {
		patches++
		return false, nil, nil
	})
	g := NewPauser(k.c, soRef, hpaRef)
	if err := g.Unpause(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := g.Restore(context.Background()); err != nil {
		t.Fatal(err)
	}
	if g.Changed() || patches != 0 || annotations(t, k)[PausedAnnotation] != "false" {
		t.Errorf("changed %v, %d patches, annotations %v", g.Changed(), patches, annotations(t, k))
	}
}

// A restore the API refuses says so with the exact kubectl command.
func TestPauserRestoreRefusedNamesTheCommand(t *testing.T) {
	k := newCluster(t, nil, soObj(map[string]string{PausedAnnotation: "true", PausedReplicasAnnotation: "0"}))
	g := NewPauser(k.c, soRef, hpaRef)
	g.Every = time.Millisecond
	if err := g.Unpause(context.Background()); err != nil {
		t.Fatal(err)
	}
	k.dyn.PrependReactor("patch", "scaledobjects", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Group: "keda.sh", Resource: "scaledobjects"}, "raw-vllm", errors.New("RBAC: no patch"))
	})
	err := g.Restore(context.Background())
	var re *RestoreError
	if !errors.As(err, &re) {
		t.Fatalf("err = %v, want a RestoreError", err)
	}
	want := "kubectl -n serving annotate scaledobject raw-vllm --overwrite autoscaling.keda.sh/paused=true autoscaling.keda.sh/paused-replicas=0"
	if re.Command != want {
		t.Errorf("command\n%s\nwant\n%s", re.Command, want)
	}
}

// Verify sees KEDA honour the pause by the Paused condition, or by the HPA
// gone; and says when it did not within its bound.
func TestPauserVerify(t *testing.T) {
	k := newCluster(t, nil, soObj(map[string]string{PausedAnnotation: "true"}, soCond("Paused", "True", "ScaledObjectPaused", "")))
	g := NewPauser(k.c, soRef, hpaRef)
	g.Every = time.Millisecond
	if err := g.Unpause(context.Background()); err != nil {
		t.Fatal(err)
	}
	if how, err := g.Verify(context.Background()); err != nil || !strings.Contains(how, "Paused=True") {
		t.Errorf("verify with Paused=True: %q, %v", how, err)
	}
	k = newCluster(t, nil, soObj(map[string]string{PausedAnnotation: "true"}))
	g = NewPauser(k.c, soRef, hpaRef)
	g.Every = time.Millisecond
	_ = g.Unpause(context.Background())
	if how, err := g.Verify(context.Background()); err != nil || !strings.Contains(how, "deleted the HPA") {
		t.Errorf("verify with no HPA: %q, %v", how, err)
	}
	k = newCluster(t, []runtime.Object{hpaObj(1, 1)}, soObj(map[string]string{PausedAnnotation: "true"}))
	g = NewPauser(k.c, soRef, hpaRef)
	g.Every = time.Millisecond
	_ = g.Unpause(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := g.Verify(ctx); err == nil || !strings.Contains(err.Error(), "still exists") {
		t.Errorf("verify with the HPA still there: %v", err)
	}
}

// The access review asks for each permission a run uses and returns those
// the server denies; patch on scaledobjects only with the acting guard.
func TestMissingAccess(t *testing.T) {
	k := newCluster(t, nil)
	var asked []string
	k.core.PrependReactor("create", "selfsubjectaccessreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		r := a.(k8stesting.CreateAction).GetObject().(*authorizationv1.SelfSubjectAccessReview)
		ra := r.Spec.ResourceAttributes
		asked = append(asked, ra.Verb+" "+ra.Resource)
		r.Status.Allowed = !(ra.Verb == "patch" || ra.Verb == "watch" && ra.Resource == "events")
		if !r.Status.Allowed {
			r.Status.Reason = "no RBAC policy matched"
		}
		return true, r, nil
	})
	missing, err := k.c.Missing(context.Background(), Needs(gpu, false))
	if err != nil {
		t.Fatal(err)
	}
	if len(missing) != 1 || !strings.Contains(missing[0], "watch events in namespace serving (no RBAC policy matched)") {
		t.Errorf("missing = %v", missing)
	}
	if len(asked) != 15 {
		t.Errorf("asked %d reviews, want 15 (get, list, watch on 5 kinds): %v", len(asked), asked)
	}
	missing, _ = k.c.Missing(context.Background(), Needs(gpu, true))
	if len(missing) != 2 || !strings.Contains(missing[1], "patch scaledobjects.keda.sh in namespace serving") {
		t.Errorf("with the acting guard, missing = %v", missing)
	}
}
