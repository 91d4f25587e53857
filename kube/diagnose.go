package kube

import (
	"context"
	"fmt"
	"sort"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/scaleout/scaleout/platform"
)

// Severity is how serious a finding is.
type Severity int

const (
	Info Severity = iota
	Warning
	Failure
)

// Finding is one result of Diagnose: what was found and its one-line fix.
type Finding struct {
	Severity Severity
	Msg, Fix string
}

// Diagnose runs the runbook's troubleshooting checks against the API: the
// ScaledObject Ready (and paused or not), the HPA there and able to read
// its metric (FailedGetExternalMetric, with KEDA's own message), the
// external metrics APIService available, the Deployment there, and its pods
// schedulable (the scheduler's reason when not). act says the guard will
// un-pause the ScaledObject itself, so a pause is no failure.
func Diagnose(ctx context.Context, c *Client, t Targets, act bool) []Finding {
	var fs []Finding
	add := func(s Severity, msg, fix string) { fs = append(fs, Finding{s, msg, fix}) }
	var so *unstructured.Unstructured
	paused := false
	if r := t.ScaledObject; r.Set() {
		u, err := c.Dyn.Resource(ScaledObjects).Namespace(r.Namespace).Get(ctx, r.Name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			add(Failure, "ScaledObject "+r.String()+" does not exist in the cluster", "kubectl apply -f the ScaledObject manifest (or fix its namespace/name)")
		case err != nil:
			fs = append(fs, cannotRead("ScaledObject "+r.String(), err))
		default:
			so = u
			p := PauseOf(u.GetAnnotations())
			paused = p.Pausing()
			switch {
			case paused && act:
				add(Info, fmt.Sprintf("ScaledObject %s is paused (%s): the guard un-pauses it for the run and restores it after", r, p), "")
			case paused:
				add(Failure, fmt.Sprintf("ScaledObject %s is paused (%s): KEDA deletes its HPA and scales nothing", r, p),
					fmt.Sprintf("un-pause for the run: kubectl -n %s annotate scaledobject %s %s- %s- (re-pause after), or let scaleout do both: guard: act / --guard-act", r.Namespace, r.Name, PausedAnnotation, PausedReplicasAnnotation))
			}
			for _, cd := range Conditions(u) {
				switch {
				case cd.Type == "Ready" && cd.Status != "True":
					add(Failure, fmt.Sprintf("ScaledObject %s is not Ready (%s): %s", r, cd.Reason, cd.Message),
						"kubectl -n "+r.Namespace+" describe scaledobject "+r.Name+": fix the trigger it names (serverAddress, query)")
				case cd.Type == "Ready":
					add(Info, "ScaledObject "+r.String()+" is Ready", "")
				case cd.Type == "Fallback" && cd.Status == "True":
					add(Warning, fmt.Sprintf("ScaledObject %s is in fallback (%s): %s", r, cd.Reason, cd.Message), "its trigger fails: fix the query or Prometheus address")
				}
			}
		}
	}
	if r := t.HPA; r.Set() && !(paused && act) {
		h, err := c.Core.AutoscalingV2().HorizontalPodAutoscalers(r.Namespace).Get(ctx, r.Name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err) && paused:
			// the paused finding says why
		case apierrors.IsNotFound(err) && so != nil:
			add(Failure, "HPA "+r.String()+" does not exist though the ScaledObject is not paused: KEDA has not made it",
				"is the KEDA operator running? kubectl -n keda get pods; kubectl -n "+r.Namespace+" describe scaledobject "+t.ScaledObject.Name)
		case apierrors.IsNotFound(err):
			add(Failure, "HPA "+r.String()+" does not exist", "check observe.hpa (KEDA names it keda-hpa-<ScaledObject>)")
		case err != nil:
			fs = append(fs, cannotRead("HPA "+r.String(), err))
		default:
			fs = append(fs, hpaFindings(ctx, c, t, h, so)...)
		}
	}
	fs = append(fs, apiServiceFindings(ctx, c)...)
	if r := t.Deployment; r.Set() {
		d, err := c.Core.AppsV1().Deployments(r.Namespace).Get(ctx, r.Name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			add(Failure, "Deployment "+r.String()+" does not exist: the ScaledObject has nothing to scale", "fix scaleTargetRef (or observe.deployment), or deploy it")
		case err != nil:
			fs = append(fs, cannotRead("Deployment "+r.String(), err))
		default:
			add(Info, fmt.Sprintf("Deployment %s: %d replicas, %d ready", r, d.Status.Replicas, d.Status.ReadyReplicas), "")
			if d.Spec.Selector != nil {
				sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
				if err == nil {
					fs = append(fs, podFindings(ctx, c, r.Namespace, sel.String())...)
				}
			}
		}
	}
	return fs
}

// hpaFindings reads the HPA's conditions: ScalingActive False with
// FailedGetExternalMetric is the `<unknown>/5` of kubectl get hpa; KEDA's
// own word on the failing trigger is its latest warning on the
// ScaledObject, else its Ready condition.
func hpaFindings(ctx context.Context, c *Client, t Targets, h *autoscalingv2.HorizontalPodAutoscaler, so *unstructured.Unstructured) []Finding {
	var fs []Finding
	r := t.HPA
	ok := true
	for _, cd := range h.Status.Conditions {
		// Only AbleToScale and ScalingActive False mean the HPA cannot do
		// its work. Others are states, not faults: ScalingLimited (at min
		// or max), ScaledToZero False (the workload is not at zero, which
		// is the normal case), and any type a later release adds.
		if cd.Status == corev1.ConditionTrue || (cd.Type != autoscalingv2.AbleToScale && cd.Type != autoscalingv2.ScalingActive) {
			continue
		}
		ok = false
		msg := fmt.Sprintf("HPA %s %s=False (%s): %s", r, cd.Type, cd.Reason, cd.Message)
		fix := "kubectl -n " + r.Namespace + " describe hpa " + r.Name
		if cd.Reason == "FailedGetExternalMetric" {
			if k := kedaMessage(ctx, c, t.ScaledObject, so); k != "" {
				msg += "; KEDA says: " + k
			}
			fix = "KEDA cannot read the trigger's metric: check the trigger's serverAddress (kubectl -n monitoring get svc | grep prometheus) and that its query returns one series"
		}
		fs = append(fs, Finding{Failure, msg, fix})
	}
	if ok {
		fs = append(fs, Finding{Info, fmt.Sprintf("HPA %s: desired %d, current %d (min %d, max %d), able to scale", r, h.Status.DesiredReplicas, h.Status.CurrentReplicas, ptrOr(h.Spec.MinReplicas, 1), h.Spec.MaxReplicas), ""})
	}
	return fs
}

// cannotRead is the finding for an object the API would not give.
func cannotRead(what string, err error) Finding {
	return Finding{Failure, "cannot read " + what + ": " + short(err), "check access: kubectl apply -f deploy/rbac.yaml"}
}

func ptrOr(p *int32, def int32) int32 {
	if p == nil {
		return def
	}
	return *p
}

// kedaMessage is KEDA's latest warning event on the ScaledObject, else
// its Ready condition's message when not Ready.
func kedaMessage(ctx context.Context, c *Client, r Ref, so *unstructured.Unstructured) string {
	if !r.Set() {
		return ""
	}
	evs, err := c.Core.CoreV1().Events(r.Namespace).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.kind=ScaledObject,involvedObject.name=" + r.Name})
	if err == nil {
		var warn []corev1.Event
		for _, e := range evs.Items {
			if e.Type == corev1.EventTypeWarning && e.InvolvedObject.Kind == "ScaledObject" && e.InvolvedObject.Name == r.Name {
				warn = append(warn, e)
			}
		}
		sort.Slice(warn, func(i, j int) bool { return eventTime(&warn[i]).Before(eventTime(&warn[j])) })
		if n := len(warn); n > 0 {
			return warn[n-1].Reason + ": " + warn[n-1].Message
		}
	}
	if so != nil {
		for _, cd := range Conditions(so) {
			if cd.Type == "Ready" && cd.Status != "True" {
				return cd.Reason + ": " + cd.Message
			}
		}
	}
	return ""
}

// apiServiceFindings checks that the external metrics API (KEDA's
// adapter) is available. Not being allowed to read APIServices (a
// cluster-scoped kind) is a warning: the check is then the HPA's.
func apiServiceFindings(ctx context.Context, c *Client) []Finding {
	u, err := c.Dyn.Resource(APIServices).Get(ctx, ExternalMetricsAPIService, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return []Finding{{Failure, "APIService " + ExternalMetricsAPIService + " does not exist: no external metrics API, so no HPA can read KEDA's metric",
			"install KEDA's metrics adapter (kubectl -n keda get deploy keda-operator-metrics-apiserver)"}}
	case apierrors.IsForbidden(err):
		return []Finding{{Warning, "cannot read APIService " + ExternalMetricsAPIService + " (forbidden): its availability is not checked",
			"grant get on apiservices (deploy/rbac.yaml's ClusterRole scaleout-check)"}}
	case err != nil:
		return []Finding{{Warning, "cannot read APIService " + ExternalMetricsAPIService + ": " + short(err), ""}}
	}
	for _, cd := range Conditions(u) {
		if cd.Type == "Available" && cd.Status != "True" {
			return []Finding{{Failure, fmt.Sprintf("APIService %s unavailable (%s): %s", ExternalMetricsAPIService, cd.Reason, cd.Message),
				"KEDA's metrics adapter is down or unreachable: kubectl -n keda get pods; kubectl -n keda logs deploy/keda-operator-metrics-apiserver"}}
		}
	}
	return []Finding{{Info, "APIService " + ExternalMetricsAPIService + " is available", ""}}
}

// podFindings lists the pods that cannot be scheduled, with the
// scheduler's reason (e.g. 0/1 nodes are available: 1 Insufficient
// nvidia.com/gpu).
func podFindings(ctx context.Context, c *Client, ns, selector string) []Finding {
	pods, err := c.Core.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		return []Finding{cannotRead("the Deployment's pods", err)}
	}
	var fs []Finding
	for _, p := range pods.Items {
		for _, cd := range p.Status.Conditions {
			if cd.Type == corev1.PodScheduled && cd.Status == corev1.ConditionFalse {
				fix := "free or add capacity for the pod's requests, or lower maxReplicaCount"
				if platform.ShortOfGPUs(cd.Message) {
					fix = "no GPU is free: add a GPU node (or accept it: on the one-GPU tier a second replica stays Pending by design)"
				}
				fs = append(fs, Finding{Warning, fmt.Sprintf("pod %s cannot be scheduled (%s): %s", p.Name, cd.Reason, cd.Message), fix})
			}
		}
	}
	return fs
}
