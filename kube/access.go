package kube

import (
	"context"
	"fmt"
	"strings"

	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Need is one permission the tool uses.
type Need struct {
	Verb, Group, Resource, Namespace string
}

func (n Need) String() string {
	r := n.Resource
	if n.Group != "" {
		r += "." + n.Group
	}
	where := "cluster-wide"
	if n.Namespace != "" {
		where = "in namespace " + n.Namespace
	}
	return n.Verb + " " + r + " " + where
}

// Needs are the permissions a run uses on t: get, list and watch on each
// kind it follows, and patch on scaledobjects when the guard acts. They are
// what deploy/rbac.yaml grants, no more.
func Needs(t Targets, act bool) []Need {
	var out []Need
	read := func(group, resource, ns string) {
		for _, v := range []string{"get", "list", "watch"} {
			out = append(out, Need{v, group, resource, ns})
		}
	}
	if r := t.HPA; r.Set() {
		read("autoscaling", "horizontalpodautoscalers", r.Namespace)
		read("", "events", r.Namespace)
	}
	if r := t.Deployment; r.Set() {
		read("apps", "deployments", r.Namespace)
		read("", "pods", r.Namespace)
	}
	if r := t.ScaledObject; r.Set() {
		read(ScaledObjects.Group, ScaledObjects.Resource, r.Namespace)
		if act {
			out = append(out, Need{"patch", ScaledObjects.Group, ScaledObjects.Resource, r.Namespace})
		}
	}
	return dedupe(out)
}

func dedupe(ns []Need) []Need {
	seen := map[Need]bool{}
	var out []Need
	for _, n := range ns {
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	return out
}

// Missing asks the API server (SelfSubjectAccessReview) for each need and
// returns those it denies, each with the server's reason when it gives one.
func (c *Client) Missing(ctx context.Context, needs []Need) ([]string, error) {
	var out []string
	for _, n := range needs {
		r, err := c.Core.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authorizationv1.SelfSubjectAccessReview{
			Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &authorizationv1.ResourceAttributes{
				Verb: n.Verb, Group: n.Group, Resource: n.Resource, Namespace: n.Namespace}},
		}, metav1.CreateOptions{})
		if err != nil {
			return out, fmt.Errorf("cannot ask the API server what this identity may do (SelfSubjectAccessReview): %w", err)
		}
		if !r.Status.Allowed {
			m := n.String()
			if why := strings.TrimSpace(r.Status.Reason + " " + r.Status.EvaluationError); why != "" {
				m += " (" + why + ")"
			}
			out = append(out, m)
		}
	}
	return out, nil
}
