package run

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/scaleout/scaleout/kube"
	"github.com/scaleout/scaleout/measure"
	"github.com/scaleout/scaleout/platform"
	"github.com/scaleout/scaleout/promwatch"
	"github.com/scaleout/scaleout/scenario"
	"github.com/scaleout/scaleout/timeline"
)

// kubeConnect builds the Kubernetes client (tests give a fake one).
var kubeConnect = kube.Connect

// kubeReachWait bounds the question whether the cluster answers.
const kubeReachWait = 5 * time.Second

// kubeSide is the run's view of the Kubernetes API: the client, the
// objects the scenario is about, and (once started) the source following
// them.
type kubeSide struct {
	client  *kube.Client
	targets kube.Targets
	src     *kube.Source
	stop    context.CancelFunc
	// denied is the access review's answer by act (the permissions this
	// identity lacks): asked once, whoever asks first (planKube, the
	// acting guard, the preflight).
	denied map[bool][]string
}

// SourceAPI is the Source of the series read from the Kubernetes API.
const SourceAPI = "kubernetes API"

// planKube decides whether the run reads the Kubernetes API: when the
// scenario names an HPA, a Deployment or a ScaledObject, the embedded
// simulator does not serve the run, a client configuration is found and
// the cluster answers. Named explicitly (observe.kubernetes, --kubeconfig,
// --context) or needed by guard: act, a cluster that cannot be read is an
// error (and a missing permission fails the preflight); otherwise the run
// goes on with Prometheus alone and a note says why, also when the identity
// found may not read the objects.
func (p *Plan) planKube(ctx context.Context) (note string, err error) {
	s := p.Scenario
	k := s.Observe.Kubernetes
	must := k.Given || s.Guard == "act"
	if p.Sim.Embedded() {
		if s.Guard == "act" {
			return "", usagef("%s: guard: act un-pauses a ScaledObject through the Kubernetes API, but the embedded simulator serves this run (give --target, or leave guard: act out)", s.File)
		}
		return "", nil
	}
	t := kube.Targets{HPA: kube.ParseRef(s.Observe.HPA), Deployment: kube.ParseRef(s.Observe.Deployment)}
	if so := p.ScaledObject; so != nil {
		t.ScaledObject = kube.Ref{Namespace: so.Namespace, Name: so.Name}
	} else if ns, name, ok := scaledObjectOf(s); ok {
		t.ScaledObject = kube.Ref{Namespace: ns, Name: name}
	}
	switch {
	case s.Guard == "act" && !t.ScaledObject.Set():
		return "", usagef("%s: guard: act needs the ScaledObject: observe.scaledobject (its manifest) or observe.hpa NAMESPACE/keda-hpa-NAME", s.File)
	case !t.HPA.Set() && !t.Deployment.Set() && !t.ScaledObject.Set():
		if k.Given {
			return "", usagef("%s: observe.kubernetes: nothing to read: give observe.hpa, observe.deployment or observe.scaledobject", s.File)
		}
		return "", nil
	}
	c, err := kubeConnect(kube.Config{Kubeconfig: k.Kubeconfig, Context: k.Context})
	if err != nil {
		if must {
			return "", cannotRun(fmt.Errorf("the Kubernetes API cannot be used: %w", err))
		}
		return "", nil // no cluster configured: Prometheus alone, as before
	}
	if err := c.Reachable(ctx, kubeReachWait); err != nil {
		if must {
			return "", cannotRun(err)
		}
		return err.Error() + ": desired, current and ready come from Prometheus alone", nil
	}
	k8s := &kubeSide{client: c, targets: t}
	if !must {
		// Found by the default loading rules, not asked for: an identity
		// that may not read the objects (a Job's service account without
		// deploy/rbac.yaml, a narrow context) keeps the run as it was.
		missing, err := k8s.missing(ctx, false)
		switch {
		case err != nil:
			return err.Error() + ": desired, current and ready come from Prometheus alone", nil
		case len(missing) > 0:
			return fmt.Sprintf("the Kubernetes API at %s is not read: not allowed to %s (kubectl apply -f deploy/rbac.yaml, or name the cluster with --kubeconfig/--context to make this an error); desired, current and ready come from Prometheus alone",
				c.Where, strings.Join(missing, "; ")), nil
		}
	}
	p.Kube = k8s
	p.Scenario.Observe.Series = apiSeries(s.Observe.Series, t, s.Observe.Source())
	if !s.Observe.Source() && !s.AfterSet() {
		p.Scenario.Observe.After = scenario.DefaultAfter
	}
	return "", nil
}

// apiSeries puts the API's desired, current and ready in the place of the
// series of those names; the Prometheus ones stay beside them as a
// cross-check (desired_prom, …) when there is a Prometheus or pages to read.
func apiSeries(in []measure.Series, t kube.Targets, prom bool) []measure.Series {
	var out, cross []measure.Series
	have := map[string]bool{}
	for _, ser := range in {
		q := kube.Query(t, ser.Name)
		if q == "" {
			out = append(out, ser)
			continue
		}
		have[ser.Name] = true
		out = append(out, measure.Series{Name: ser.Name, Query: q, Source: SourceAPI})
		if prom {
			cross = append(cross, measure.Series{Name: ser.Name + platform.CrossCheckSuffix, Query: ser.Query})
		}
	}
	for _, name := range []string{kube.Desired, kube.Current, kube.Ready} {
		if q := kube.Query(t, name); q != "" && !have[name] {
			out = append(out, measure.Series{Name: name, Query: q, Source: SourceAPI})
		}
	}
	return append(out, cross...)
}

// kubeEval answers the API's queries from the source and passes the rest
// to Prometheus (or the pages), all at one instant.
type kubeEval struct {
	inner promwatch.Evaluator // nil: the API alone
	k     *kubeSide
}

func (e *kubeEval) String() string {
	s := "kubernetes API at " + e.k.client.Where
	if e.inner != nil {
		s += " and " + e.inner.String()
	}
	return s
}

// ScrapeInterval is the inner source's, for the preflight's waits.
func (e *kubeEval) ScrapeInterval() time.Duration {
	if iv, ok := e.inner.(interface{ ScrapeInterval() time.Duration }); ok {
		return iv.ScrapeInterval()
	}
	return 0
}

func (e *kubeEval) Eval(ctx context.Context, at time.Time, qs []string) []promwatch.Result {
	out := make([]promwatch.Result, len(qs))
	var rest []string
	var idx []int
	for i, q := range qs {
		if !strings.HasPrefix(q, kube.QueryPrefix) {
			rest, idx = append(rest, q), append(idx, i)
			continue
		}
		if e.k.src == nil {
			out[i].Err = errors.New("kubernetes: not started")
			continue
		}
		v, ok := e.k.src.Value(q)
		switch {
		case !ok:
			out[i].Err = errors.New("kubernetes: no such value")
		case !v.OK():
			out[i].Err = errors.New(v.Gap)
		default:
			out[i].Vector = []promwatch.Element{{V: v.V}}
		}
	}
	if len(rest) > 0 {
		if e.inner == nil {
			for _, i := range idx {
				out[i].Err = errors.New("no Prometheus or /metrics page to read (observe.prometheus, observe.scrape)")
			}
			return out
		}
		res := e.inner.Eval(ctx, at, rest)
		for j, i := range idx {
			if j < len(res) {
				out[i] = res[j]
			}
		}
	}
	return out
}

// start follows the targets until stop; panics in its goroutines go to
// onPanic. It waits (bounded) until every object has been listed once.
func (k *kubeSide) start(ctx context.Context, onPanic func(any)) error {
	if k == nil || k.src != nil {
		return nil
	}
	ctx, k.stop = context.WithCancel(ctx)
	k.src = kube.NewSource(k.client, k.targets)
	k.src.Panic = onPanic
	k.src.Start(ctx)
	wait, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := k.src.WaitListed(wait); err != nil {
		return cannotRun(err)
	}
	return nil
}

// close stops the source and waits for its goroutines.
func (k *kubeSide) close() {
	if k == nil || k.stop == nil {
		return
	}
	k.stop()
	k.src.Wait()
}

// accessFindings asks the API server whether this identity may do what the
// run will (deploy/rbac.yaml grants exactly that): a missing verb fails
// before anything is changed or sent.
func (k *kubeSide) accessFindings(ctx context.Context, act bool) []Finding {
	missing, err := k.missing(ctx, act)
	if err != nil {
		return []Finding{{Fail, err.Error(), "is the cluster reachable with these credentials? (--kubeconfig, --context)"}}
	}
	if len(missing) > 0 {
		fix := "kubectl apply -f deploy/rbac.yaml (and bind its Role scaleout-read to this identity"
		if act {
			fix += "; guard: act also needs the Role scaleout-guard"
		}
		return []Finding{{Fail, "not allowed to " + strings.Join(missing, "; "), fix + ")"}}
	}
	what := "watch the HPA, the Deployment, its pods, their events and the ScaledObject"
	if act {
		what += ", and patch the ScaledObject (guard: act)"
	}
	return []Finding{{OK, fmt.Sprintf("kubernetes API at %s: allowed to %s (%d permissions checked)", k.client.Where, what, len(kube.Needs(k.targets, act))), ""}}
}

// missing asks the API server, once per act, which of the run's needs
// this identity lacks (an error is not kept: the next caller asks again).
func (k *kubeSide) missing(ctx context.Context, act bool) ([]string, error) {
	if m, ok := k.denied[act]; ok {
		return m, nil
	}
	m, err := k.client.Missing(ctx, kube.Needs(k.targets, act))
	if err != nil {
		return nil, err
	}
	if k.denied == nil {
		k.denied = map[bool][]string{}
	}
	k.denied[act] = m
	return m, nil
}

// diagnoseFindings are the runbook's troubleshooting checks, as findings.
func (k *kubeSide) diagnoseFindings(ctx context.Context, act bool) []Finding {
	var fs []Finding
	for _, f := range kube.Diagnose(ctx, k.client, k.targets, act) {
		fs = append(fs, Finding{Level([]Level{OK, Warn, Fail}[f.Severity]), f.Msg, f.Fix})
	}
	return fs
}

// addEvents puts the API's events on the timeline, on the run's clock:
// the API's timestamp less the epoch. The API's times are whole seconds,
// so an event of the second the load started may read up to a second
// before it: it is put at 0. Older events (the wait for rest) are left out.
func (k *kubeSide) addEvents(tl *timeline.Timeline, epoch time.Time) []timeline.Event {
	if k == nil || k.src == nil {
		return nil
	}
	var out []timeline.Event
	for _, e := range k.src.Events() {
		t := e.At.Sub(epoch).Seconds()
		if t <= -1 {
			continue
		}
		ev := timeline.Event{T: timeline.Round3(max(t, 0)), Kind: e.Kind, Series: e.Series, From: e.From, To: e.To, Text: e.Text}
		tl.Add(ev)
		out = append(out, ev)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].T < out[j].T })
	return out
}

// apiKPIs replaces the KPIs the API times exactly: time to intent from
// the first rescale above the starting desired, time to ready from the
// first pod Ready transition above the starting ready, scale-in from the
// first rescale after the load back to the start. kpis.clock says which
// clock measured each.
func apiKPIs(rep *timeline.Report, evs []timeline.Event, loadEnd float64) {
	k := &rep.KPIs
	set := func(key string, field **float64, v float64) {
		if *field != nil && key == timeline.KPITimeToIntent && k.IntentLag != nil {
			k.IntentLag = fptr(timeline.Round3(*k.IntentLag + v - **field))
		}
		*field = fptr(timeline.Round3(v))
		delete(k.Earliest, key)
		if len(k.Earliest) == 0 {
			k.Earliest = nil
		}
		if k.Clock == nil {
			k.Clock = map[string]string{}
		}
		k.Clock[key] = "API time"
	}
	startD, okD := k.Start[platform.Desired]
	startR, okR := k.Start[platform.Ready]
	var intent, ready, in bool
	for _, e := range evs {
		switch {
		case e.Kind == timeline.K8sRescale && e.To != nil && okD && !intent && *e.To > startD:
			intent = true
			set(timeline.KPITimeToIntent, &k.TimeToIntent, e.T)
		case e.Kind == timeline.K8sRescale && e.To != nil && okD && intent && !in && e.T >= loadEnd && *e.To <= startD:
			in = true
			set(timeline.KPIScaleIn, &k.ScaleIn, e.T-loadEnd)
		case e.Kind == timeline.PodReady && e.To != nil && okR && !ready && *e.To > startR:
			ready = true
			set(timeline.KPITimeToReady, &k.TimeToReady, e.T)
		}
	}
	for key, v := range map[string]*float64{timeline.KPITimeToIntent: k.TimeToIntent, timeline.KPITimeToReady: k.TimeToReady, timeline.KPIScaleIn: k.ScaleIn} {
		if v != nil && (k.Clock == nil || k.Clock[key] == "") {
			if k.Clock == nil {
				k.Clock = map[string]string{}
			}
			k.Clock[key] = "sample"
		}
	}
}
