package kube

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// KEDA's pause annotations: paused "true" stops autoscaling (and deletes
// the HPA); paused-replicas scales to that count and stops.
const (
	PausedAnnotation         = "autoscaling.keda.sh/paused"
	PausedReplicasAnnotation = "autoscaling.keda.sh/paused-replicas"
)

// Pause is a ScaledObject's pause annotations as they were; nil for one
// that was absent.
type Pause struct {
	Paused, PausedReplicas *string
}

// PauseOf reads the pause annotations.
func PauseOf(ann map[string]string) Pause {
	var p Pause
	if v, ok := ann[PausedAnnotation]; ok {
		p.Paused = &v
	}
	if v, ok := ann[PausedReplicasAnnotation]; ok {
		p.PausedReplicas = &v
	}
	return p
}

// Pausing reports whether KEDA treats these annotations as a pause.
func (p Pause) Pausing() bool {
	return p.Paused != nil && strings.EqualFold(*p.Paused, "true") || p.PausedReplicas != nil
}

func (p Pause) String() string {
	var parts []string
	for _, a := range []struct {
		k string
		v *string
	}{{PausedAnnotation, p.Paused}, {PausedReplicasAnnotation, p.PausedReplicas}} {
		if a.v != nil {
			parts = append(parts, fmt.Sprintf("%s=%q", a.k, *a.v))
		}
	}
	if len(parts) == 0 {
		return "no pause annotations"
	}
	return strings.Join(parts, ", ")
}

// patch is the JSON merge patch that sets the annotations to p (null
// removes one).
func (p Pause) patch() []byte {
	b, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]*string{
		PausedAnnotation: p.Paused, PausedReplicasAnnotation: p.PausedReplicas}}})
	return b
}

// Pauser is the guard that acts: it un-pauses a ScaledObject for a run
// and puts back exactly the pause annotations it had.
type Pauser struct {
	c   *Client
	so  Ref
	hpa Ref
	now func() time.Time
	// Every is how often Verify and WaitHPA look (default 1 s).
	Every time.Duration

	prev       Pause
	changed    bool
	unpausedAt time.Time
	restoredAt time.Time
}

// NewPauser returns the guard for the ScaledObject so, whose HPA is hpa.
func NewPauser(c *Client, so, hpa Ref) *Pauser {
	return &Pauser{c: c, so: so, hpa: hpa, now: time.Now, Every: time.Second}
}

// Before is the pause annotations as the ScaledObject had them.
func (g *Pauser) Before() Pause { return g.prev }

// Changed reports whether Unpause changed the ScaledObject (it was paused).
func (g *Pauser) Changed() bool { return g.changed }

// Window is when the ScaledObject was un-paused by the guard and when its
// pause was restored (zero: not yet).
func (g *Pauser) Window() (from, to time.Time) { return g.unpausedAt, g.restoredAt }

// Unpause reads the pause annotations and removes them. A ScaledObject
// that is not paused is left alone.
func (g *Pauser) Unpause(ctx context.Context) error {
	u, err := g.c.Dyn.Resource(ScaledObjects).Namespace(g.so.Namespace).Get(ctx, g.so.Name, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("guard: cannot read ScaledObject %s: %w", g.so, err)
	}
	g.prev = PauseOf(u.GetAnnotations())
	if !g.prev.Pausing() {
		return nil
	}
	if _, err := g.c.Dyn.Resource(ScaledObjects).Namespace(g.so.Namespace).Patch(ctx, g.so.Name, types.MergePatchType, Pause{}.patch(), metav1.PatchOptions{FieldManager: "scaleout"}); err != nil {
		return fmt.Errorf("guard: cannot un-pause ScaledObject %s: %w", g.so, err)
	}
	g.changed, g.unpausedAt = true, g.now()
	return nil
}

// RestoreError is a pause the guard could not put back: the ScaledObject
// stays un-paused (a GPU node stays up) until someone runs Command.
type RestoreError struct {
	SO      Ref
	Command string
	Err     error
}

func (e *RestoreError) Error() string {
	return fmt.Sprintf("guard: could not re-pause ScaledObject %s: %v", e.SO, e.Err)
}

func (e *RestoreError) Unwrap() error { return e.Err }

// Command is the kubectl command that puts the pause annotations back.
func (g *Pauser) Command() string {
	var set []string
	for _, a := range []struct {
		k string
		v *string
	}{{PausedAnnotation, g.prev.Paused}, {PausedReplicasAnnotation, g.prev.PausedReplicas}} {
		if a.v != nil {
			set = append(set, fmt.Sprintf("%s=%s", a.k, shellQuote(*a.v)))
		}
	}
	return fmt.Sprintf("kubectl -n %s annotate scaledobject %s --overwrite %s", g.so.Namespace, g.so.Name, strings.Join(set, " "))
}

func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// Restore puts the pause annotations back as they were, trying again
// until ctx ends. Nothing is done when Unpause changed nothing; restoring
// twice is harmless.
func (g *Pauser) Restore(ctx context.Context) error {
	if !g.changed {
		return nil
	}
	var err error
	for {
		_, err = g.c.Dyn.Resource(ScaledObjects).Namespace(g.so.Namespace).Patch(ctx, g.so.Name, types.MergePatchType, g.prev.patch(), metav1.PatchOptions{FieldManager: "scaleout"})
		if err == nil {
			if g.restoredAt.IsZero() {
				g.restoredAt = g.now()
			}
			return nil
		}
		if apierrors.IsNotFound(err) || apierrors.IsForbidden(err) || apierrors.IsUnauthorized(err) || !g.wait(ctx) {
			break
		}
	}
	return &RestoreError{SO: g.so, Command: g.Command(), Err: err}
}

// wait pauses Every; false when ctx ended first.
func (g *Pauser) wait(ctx context.Context) bool {
	t := time.NewTimer(g.Every)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// Verify waits until KEDA has honoured the pause: the ScaledObject's
// Paused condition is True, or its HPA is gone. It says how it knows.
func (g *Pauser) Verify(ctx context.Context) (string, error) {
	if !g.changed {
		return "", nil
	}
	var last string
	for {
		u, err := g.c.Dyn.Resource(ScaledObjects).Namespace(g.so.Namespace).Get(ctx, g.so.Name, metav1.GetOptions{})
		if err == nil {
			for _, c := range Conditions(u) {
				if c.Type == "Paused" && c.Status == "True" {
					return fmt.Sprintf("KEDA reports the ScaledObject Paused=True (%s)", c.Reason), nil
				}
			}
			last = "the ScaledObject's Paused condition is not True"
		} else {
			last = "cannot read the ScaledObject: " + short(err)
		}
		if g.hpa.Set() {
			_, err := g.c.Core.AutoscalingV2().HorizontalPodAutoscalers(g.hpa.Namespace).Get(ctx, g.hpa.Name, metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				return fmt.Sprintf("KEDA deleted the HPA %s (it does while paused)", g.hpa), nil
			}
			if err == nil {
				last += " and the HPA " + g.hpa.String() + " still exists"
			}
		}
		if !g.wait(ctx) {
			return "", fmt.Errorf("KEDA has not honoured the pause: %s", last)
		}
	}
}

// WaitHPA waits until the HPA exists (KEDA makes it once un-paused).
func (g *Pauser) WaitHPA(ctx context.Context) error {
	if !g.hpa.Set() {
		return nil
	}
	for {
		_, err := g.c.Core.AutoscalingV2().HorizontalPodAutoscalers(g.hpa.Namespace).Get(ctx, g.hpa.Name, metav1.GetOptions{})
		if err == nil {
			return nil
		}
		if !g.wait(ctx) {
			return fmt.Errorf("KEDA did not create the HPA %s after the un-pause: %s", g.hpa, short(err))
		}
	}
}
