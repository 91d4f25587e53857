package kube

import (
	"context"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/scaleout/scaleout/measure"
	"github.com/scaleout/scaleout/timeline"
)

// Ref names a namespaced object.
type Ref struct{ Namespace, Name string }

// ParseRef reads NAMESPACE/NAME; the zero Ref for "".
func ParseRef(s string) Ref {
	ns, name, _ := strings.Cut(s, "/")
	return Ref{ns, name}
}

func (r Ref) String() string { return r.Namespace + "/" + r.Name }

// Set reports whether r names an object.
func (r Ref) Set() bool { return r.Name != "" }

// Targets are the objects a run is about; any may be unset.
type Targets struct {
	HPA, Deployment, ScaledObject Ref
}

// Event is one thing the API told, at the API's own time.
type Event struct {
	At       time.Time // the API's timestamp (to the second for most fields)
	Kind     timeline.EventKind
	Series   string   // the replica series it bears on ("" for none)
	From, To *float64 // the values it moved between, when it is a count
	Text     string
}

// Watch names, used in gaps and k8s_watch events.
const (
	watchHPA    = "hpa"
	watchDeploy = "deployment"
	watchPods   = "pods"
	watchEvents = "events"
	watchSO     = "scaledobject"
)

// Source follows the targets through list-and-watch with resume: a watch
// that ends is opened again from the last resource version, one the
// server has expired (410 Gone) is listed again, and while a watch cannot
// be opened its values are gaps (a k8s_watch event marks the gap and the
// resume). Events carry the API's timestamps; values are what the last
// object said.
type Source struct {
	c       *Client
	t       Targets
	queries map[string]string // Query(t, name) → name, for the values t gives
	now     func() time.Time
	// Backoff bounds the pause between attempts while the API is down.
	Backoff time.Duration

	mu      sync.Mutex
	started time.Time
	listed  map[string]bool
	down    map[string]string    // watch → why it is down
	downAt  map[string]time.Time // watch → since when
	hpa     *autoscalingv2.HorizontalPodAutoscaler
	dep     *appsv1.Deployment
	so      *unstructured.Unstructured
	pods    map[string]*corev1.Pod
	conds   map[string]string // object/condition → status+reason last seen
	seen    map[string]int32  // event UID → count last seen
	events  []Event
	podsOn  bool
	changed chan struct{} // closed and replaced on every change
	wg      sync.WaitGroup
	// Panic receives a panic recovered in one of the source's goroutines
	// (nil: it is re-raised there).
	Panic func(v any)
}

// NewSource returns a source for t; Run starts it.
func NewSource(c *Client, t Targets) *Source {
	queries := map[string]string{}
	for _, name := range []string{Desired, Current, Ready, Min} {
		if q := Query(t, name); q != "" {
			queries[q] = name
		}
	}
	return &Source{c: c, t: t, queries: queries, now: time.Now, Backoff: 2 * time.Second,
		listed: map[string]bool{}, down: map[string]string{}, downAt: map[string]time.Time{},
		pods: map[string]*corev1.Pod{}, conds: map[string]string{}, seen: map[string]int32{},
		changed: make(chan struct{})}
}

// Start begins following every target on its own goroutine until ctx
// ends; Wait waits for them to end.
func (s *Source) Start(ctx context.Context) {
	s.mu.Lock()
	s.started = s.now()
	s.mu.Unlock()
	if r := s.t.HPA; r.Set() {
		hpas := s.c.Core.AutoscalingV2().HorizontalPodAutoscalers(r.Namespace)
		s.follow(ctx, &lister{name: watchHPA, opts: byName(r.Name),
			list:  func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) { return hpas.List(ctx, o) },
			watch: hpas.Watch, match: named(r.Name), apply: s.applyHPA})
		evs := s.c.Core.CoreV1().Events(r.Namespace)
		s.follow(ctx, &lister{name: watchEvents,
			opts:  metav1.ListOptions{FieldSelector: "involvedObject.kind=HorizontalPodAutoscaler,involvedObject.name=" + r.Name},
			list:  func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) { return evs.List(ctx, o) },
			watch: evs.Watch, match: s.hpaEvent, apply: s.applyEvent})
	}
	if r := s.t.Deployment; r.Set() {
		deps := s.c.Core.AppsV1().Deployments(r.Namespace)
		s.follow(ctx, &lister{name: watchDeploy, opts: byName(r.Name),
			list:  func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) { return deps.List(ctx, o) },
			watch: deps.Watch, match: named(r.Name), apply: func(typ watch.EventType, o runtime.Object) { s.applyDeployment(ctx, typ, o) }})
	}
	if r := s.t.ScaledObject; r.Set() {
		sos := s.c.Dyn.Resource(ScaledObjects).Namespace(r.Namespace)
		s.follow(ctx, &lister{name: watchSO, opts: byName(r.Name),
			list:  func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) { return sos.List(ctx, o) },
			watch: sos.Watch, match: named(r.Name), apply: s.applySO})
	}
}

// Wait waits for the source's goroutines to end (after ctx ended).
func (s *Source) Wait() { s.wg.Wait() }

func byName(name string) metav1.ListOptions {
	return metav1.ListOptions{FieldSelector: "metadata.name=" + name}
}

func named(name string) func(runtime.Object) bool {
	return func(o runtime.Object) bool {
		m, err := meta.Accessor(o)
		return err == nil && m.GetName() == name
	}
}

// lister is one list-and-watch.
type lister struct {
	name  string
	opts  metav1.ListOptions
	list  func(context.Context, metav1.ListOptions) (runtime.Object, error)
	watch func(context.Context, metav1.ListOptions) (watch.Interface, error)
	match func(runtime.Object) bool // the server's selectors are not trusted alone
	// apply takes one change; Sync stands for "the list says it is so"
	// and Deleted for "gone" (also for an object a relist no longer has).
	apply func(watch.EventType, runtime.Object)
}

// syncEvent is what a list reports of each object it holds.
const syncEvent watch.EventType = "SYNC"

func (s *Source) follow(ctx context.Context, l *lister) {
	s.wg.Go(func() {
		defer s.recover()
		s.run(ctx, l)
	})
}

// recover routes a panic of the source's goroutines to Panic.
func (s *Source) recover() {
	if v := recover(); v != nil {
		if s.Panic == nil {
			panic(v)
		}
		s.Panic(v)
	}
}

func (s *Source) run(ctx context.Context, l *lister) {
	have := map[string]runtime.Object{} // key → object, to tell deletions on a relist
	for ctx.Err() == nil {
		lst, err := l.list(ctx, l.opts)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			s.setDown(l.name, "list: "+short(err))
			s.sleep(ctx)
			continue
		}
		items, _ := meta.ExtractList(lst)
		now := map[string]runtime.Object{}
		for _, o := range items {
			if l.match(o) {
				now[key(o)] = o
			}
		}
		for k, o := range have {
			if _, ok := now[k]; !ok {
				l.apply(watch.Deleted, o)
			}
		}
		keys := make([]string, 0, len(now))
		for k := range now {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			l.apply(syncEvent, now[k])
		}
		have = now
		s.setUp(l.name, "listed again")
		s.mu.Lock()
		s.listed[l.name] = true
		s.mu.Unlock()
		s.notify()
		rv := ""
		if m, err := meta.ListAccessor(lst); err == nil {
			rv = m.GetResourceVersion()
		}
		s.watchFrom(ctx, l, rv, have)
	}
}

// watchFrom watches from rv until the server expires it (then the caller
// lists again) or ctx ends. A watch the server closes is opened again from
// the last version seen; one that cannot be opened is a gap.
func (s *Source) watchFrom(ctx context.Context, l *lister, rv string, have map[string]runtime.Object) {
	for ctx.Err() == nil {
		o := l.opts
		o.ResourceVersion, o.AllowWatchBookmarks = rv, true
		w, err := l.watch(ctx, o)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if expired(err) {
				s.add(Event{At: s.now(), Kind: timeline.K8sWatch, Text: l.name + ": watch expired (410 Gone): listing again"})
				return
			}
			s.setDown(l.name, "watch: "+short(err))
			s.sleep(ctx)
			continue
		}
		s.setUp(l.name, "watch open again")
		relist := false
	events:
		for {
			select {
			case <-ctx.Done():
				w.Stop()
				return
			case ev, ok := <-w.ResultChan():
				if !ok {
					break events
				}
				switch ev.Type {
				case watch.Error:
					err := apierrors.FromObject(ev.Object)
					if expired(err) {
						s.add(Event{At: s.now(), Kind: timeline.K8sWatch, Text: l.name + ": watch expired (410 Gone): listing again"})
						relist = true
					} else {
						s.setDown(l.name, "watch: "+short(err))
					}
					break events
				case watch.Bookmark:
					if m, err := meta.Accessor(ev.Object); err == nil {
						rv = m.GetResourceVersion()
					}
				default:
					if m, err := meta.Accessor(ev.Object); err == nil && m.GetResourceVersion() != "" {
						rv = m.GetResourceVersion()
					}
					if !l.match(ev.Object) {
						continue
					}
					if ev.Type == watch.Deleted {
						delete(have, key(ev.Object))
					} else {
						have[key(ev.Object)] = ev.Object
					}
					l.apply(ev.Type, ev.Object)
					s.notify()
				}
			}
		}
		w.Stop()
		if relist {
			return
		}
	}
}

func expired(err error) bool {
	return apierrors.IsGone(err) || apierrors.IsResourceExpired(err)
}

func key(o runtime.Object) string {
	m, err := meta.Accessor(o)
	if err != nil {
		return ""
	}
	return m.GetNamespace() + "/" + m.GetName()
}

func (s *Source) sleep(ctx context.Context) {
	t := time.NewTimer(s.Backoff)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// setDown marks a watch down (a gap in its values) and tells it once.
func (s *Source) setDown(name, why string) {
	s.mu.Lock()
	_, was := s.down[name]
	s.down[name] = why
	if !was {
		s.downAt[name] = s.now()
	}
	s.mu.Unlock()
	if !was {
		s.add(Event{At: s.now(), Kind: timeline.K8sWatch, Text: fmt.Sprintf("%s: gap: %s (its values are gaps until it resumes)", name, why)})
	}
}

// setUp marks a watch up again and tells the resume with the gap's length.
func (s *Source) setUp(name, how string) {
	s.mu.Lock()
	_, was := s.down[name]
	since := s.downAt[name]
	delete(s.down, name)
	delete(s.downAt, name)
	s.mu.Unlock()
	if was {
		s.add(Event{At: s.now(), Kind: timeline.K8sWatch, Text: fmt.Sprintf("%s: resumed (%s) after a %s gap", name, how, s.now().Sub(since).Round(time.Second))})
	}
}

func short(err error) string {
	msg := err.Error()
	if i := strings.LastIndex(msg, ": "); len(msg) > 160 && i > 0 {
		msg = msg[i+2:]
	}
	if len(msg) > 160 {
		msg = msg[:160] + "…"
	}
	return msg
}

// add records an event (the API's time) and wakes the waiters.
func (s *Source) add(e Event) {
	s.mu.Lock()
	s.events = append(s.events, e)
	s.mu.Unlock()
	s.notify()
}

func (s *Source) notify() {
	s.mu.Lock()
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
}

// Changed returns a channel closed at the next change the source sees.
func (s *Source) Changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

// Events returns the events seen so far, in the order they were seen.
func (s *Source) Events() []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Event(nil), s.events...)
}

// Listed reports whether every watch has listed its objects once.
func (s *Source) Listed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, n := range s.watches() {
		if !s.listed[n] {
			return false
		}
	}
	return true
}

// WaitListed waits until every watch has listed once, or ctx ends.
func (s *Source) WaitListed(ctx context.Context) error {
	for {
		ch := s.Changed()
		if s.Listed() {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the Kubernetes API did not list %s: %w", strings.Join(s.unlisted(), ", "), context.Cause(ctx))
		case <-ch:
		}
	}
}

func (s *Source) unlisted() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, n := range s.watches() {
		if !s.listed[n] {
			w := n
			if why, ok := s.down[n]; ok {
				w += " (" + why + ")"
			}
			out = append(out, w)
		}
	}
	return out
}

func (s *Source) watches() []string {
	var out []string
	if s.t.HPA.Set() {
		out = append(out, watchHPA, watchEvents)
	}
	if s.t.Deployment.Set() {
		out = append(out, watchDeploy)
		if s.podsOn {
			out = append(out, watchPods)
		}
	}
	if s.t.ScaledObject.Set() {
		out = append(out, watchSO)
	}
	return out
}

// fresh reports whether an API time is news: from after the source
// started (less a second: the API's times are whole seconds).
func (s *Source) fresh(at time.Time) bool {
	return !at.IsZero() && !at.Before(s.started.Add(-time.Second))
}

// keep stores a copy of the object a watch reported in *dst, or nil once
// it is deleted.
func keep[T interface {
	comparable
	DeepCopy() T
}](mu *sync.Mutex, dst *T, typ watch.EventType, o T) {
	mu.Lock()
	defer mu.Unlock()
	var none T
	if typ == watch.Deleted {
		*dst = none
	} else {
		*dst = o.DeepCopy()
	}
}

// applyHPA keeps the HPA and tells its condition changes.
func (s *Source) applyHPA(typ watch.EventType, o runtime.Object) {
	h, ok := o.(*autoscalingv2.HorizontalPodAutoscaler)
	if !ok {
		return
	}
	keep(&s.mu, &s.hpa, typ, h)
	conds := make([]Condition, len(h.Status.Conditions))
	for i, c := range h.Status.Conditions {
		conds[i] = Condition{Type: string(c.Type), Status: string(c.Status), Reason: c.Reason, Message: c.Message, LastTransitionTime: c.LastTransitionTime.Time}
	}
	s.applyConditions(typ, "hpa/", conds, timeline.K8sCondition, "HPA",
		fmt.Sprintf("HPA %s deleted (KEDA deletes it when the ScaledObject is paused or deleted)", s.t.HPA))
}

// applyConditions tells the condition changes of an object a watch
// reported (who names its kind in the text), or its deletion.
func (s *Source) applyConditions(typ watch.EventType, obj string, conds []Condition, kind timeline.EventKind, who, deleted string) {
	if typ == watch.Deleted {
		s.add(Event{At: s.now(), Kind: kind, Text: deleted})
		s.forget(obj)
		return
	}
	for _, c := range conds {
		s.condition(obj, c, kind, who)
	}
}

// forget drops the remembered conditions of an object that went away.
func (s *Source) forget(prefix string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k := range s.conds {
		if strings.HasPrefix(k, prefix) {
			delete(s.conds, k)
		}
	}
}

// condition tells a condition whose status or reason changed.
func (s *Source) condition(obj string, c Condition, kind timeline.EventKind, who string) {
	at, news := s.transition(obj+c.Type, c.Status+"/"+c.Reason, c.LastTransitionTime)
	if !news {
		return
	}
	text := fmt.Sprintf("%s %s=%s", who, c.Type, c.Status)
	if c.Reason != "" {
		text += " (" + c.Reason + ")"
	}
	if c.Message != "" {
		text += ": " + c.Message
	}
	s.add(Event{At: at, Kind: kind, Text: text})
}

// transition keeps state (STATUS/…) as the condition k's and says whether
// it is news, and its time: the transition time at, or the time it was
// seen when only what follows the status changed (the API keeps the
// transition time of the status). The state first seen is the starting
// point, news only when its transition came after the source started.
func (s *Source) transition(k, state string, at time.Time) (time.Time, bool) {
	s.mu.Lock()
	prev, known := s.conds[k]
	s.conds[k] = state
	s.mu.Unlock()
	if known && prev == state || !known && !s.fresh(at) {
		return at, false
	}
	status, _, _ := strings.Cut(state, "/")
	if prevStatus, _, _ := strings.Cut(prev, "/"); at.IsZero() || known && prevStatus == status {
		at = s.now()
	}
	return at, true
}

var newSize = regexp.MustCompile(`New size: (\d+)`)

// hpaEvent keeps the events about the HPA.
func (s *Source) hpaEvent(o runtime.Object) bool {
	e, ok := o.(*corev1.Event)
	return ok && e.InvolvedObject.Kind == "HorizontalPodAutoscaler" && e.InvolvedObject.Name == s.t.HPA.Name
}

// applyEvent tells each rescale of the HPA (its SuccessfulRescale event)
// with the HPA's own message, at the event's time. An event the API
// updates (a repeat) is told again only when its count rose.
func (s *Source) applyEvent(typ watch.EventType, o runtime.Object) {
	e, ok := o.(*corev1.Event)
	if !ok || typ == watch.Deleted || e.Reason != "SuccessfulRescale" {
		return
	}
	count := max(e.Count, 1)
	if e.Series != nil {
		count = max(count, e.Series.Count)
	}
	s.mu.Lock()
	last, known := s.seen[string(e.UID)]
	s.seen[string(e.UID)] = count
	s.mu.Unlock()
	at := eventTime(e)
	if known && count <= last || !s.fresh(at) {
		return
	}
	ev := Event{At: at, Kind: timeline.K8sRescale, Series: Desired,
		Text: fmt.Sprintf("HPA %s: %s", s.t.HPA.Name, e.Message)}
	if m := newSize.FindStringSubmatch(e.Message); m != nil {
		if n, err := strconv.Atoi(m[1]); err == nil {
			v := float64(n)
			ev.To = &v
		}
	}
	s.add(ev)
}

// eventTime is when an event last happened, by the most precise field set.
func eventTime(e *corev1.Event) time.Time {
	switch {
	case e.Series != nil && !e.Series.LastObservedTime.IsZero():
		return e.Series.LastObservedTime.Time
	case !e.LastTimestamp.IsZero():
		return e.LastTimestamp.Time
	case !e.EventTime.IsZero():
		return e.EventTime.Time
	case !e.FirstTimestamp.IsZero():
		return e.FirstTimestamp.Time
	}
	return e.CreationTimestamp.Time
}

// applyDeployment keeps the Deployment and, once its selector is known,
// follows its pods.
func (s *Source) applyDeployment(ctx context.Context, typ watch.EventType, o runtime.Object) {
	d, ok := o.(*appsv1.Deployment)
	if !ok {
		return
	}
	keep(&s.mu, &s.dep, typ, d)
	s.mu.Lock()
	start := !s.podsOn && typ != watch.Deleted && d.Spec.Selector != nil
	if start {
		s.podsOn = true
	}
	s.mu.Unlock()
	if typ == watch.Deleted {
		s.add(Event{At: s.now(), Kind: timeline.K8sCondition, Text: "Deployment " + s.t.Deployment.String() + " deleted"})
	}
	if !start {
		return
	}
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil {
		return
	}
	pods := s.c.Core.CoreV1().Pods(s.t.Deployment.Namespace)
	s.follow(ctx, &lister{name: watchPods, opts: metav1.ListOptions{LabelSelector: sel.String()},
		list:  func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) { return pods.List(ctx, o) },
		watch: pods.Watch,
		match: func(o runtime.Object) bool {
			m, err := meta.Accessor(o)
			return err == nil && sel.Matches(labelSet(m.GetLabels()))
		},
		apply: s.applyPod})
}

type labelSet map[string]string

func (l labelSet) Has(k string) bool   { _, ok := l[k]; return ok }
func (l labelSet) Get(k string) string { return l[k] }
func (l labelSet) Lookup(k string) (string, bool) {
	v, ok := l[k]
	return v, ok
}

// applyPod tells a pod scheduled, Pending for a reason the scheduler gave,
// and Ready, each at the condition's transition time.
func (s *Source) applyPod(typ watch.EventType, o runtime.Object) {
	p, ok := o.(*corev1.Pod)
	if !ok {
		return
	}
	s.mu.Lock()
	if typ == watch.Deleted {
		delete(s.pods, p.Name)
	} else {
		s.pods[p.Name] = p.DeepCopy()
	}
	ready := s.readyPods()
	s.mu.Unlock()
	obj := "pod/" + p.Name + "/"
	if typ == watch.Deleted {
		s.forget(obj)
		return
	}
	for _, c := range p.Status.Conditions {
		at, news := s.transition(obj+string(c.Type), string(c.Status)+"/"+c.Reason+"/"+c.Message, c.LastTransitionTime.Time)
		if !news {
			continue // no change, or the state it had before the source started
		}
		switch {
		case c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse:
			s.add(Event{At: at, Kind: timeline.PodPending, Text: fmt.Sprintf("pod %s Pending (%s): %s", p.Name, c.Reason, c.Message)})
		case c.Type == corev1.PodScheduled && c.Status == corev1.ConditionTrue:
			s.add(Event{At: at, Kind: timeline.PodScheduled, Text: fmt.Sprintf("pod %s scheduled on %s", p.Name, orNone(p.Spec.NodeName))})
		case c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue:
			r := float64(ready)
			s.add(Event{At: at, Kind: timeline.PodReady, Series: Ready, To: &r, Text: fmt.Sprintf("pod %s Ready (%d of the Deployment's pods ready)", p.Name, ready)})
		}
	}
}

func orNone(s string) string {
	if s == "" {
		return "(no node)"
	}
	return s
}

// readyPods counts the followed pods that are Ready and not going away.
// Called with mu held.
func (s *Source) readyPods() int {
	n := 0
	for _, p := range s.pods {
		if p.DeletionTimestamp != nil {
			continue
		}
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
				n++
			}
		}
	}
	return n
}

// applySO keeps the ScaledObject and tells its condition changes (Ready,
// Active, Fallback, Paused).
func (s *Source) applySO(typ watch.EventType, o runtime.Object) {
	u, ok := o.(*unstructured.Unstructured)
	if !ok {
		return
	}
	keep(&s.mu, &s.so, typ, u)
	s.applyConditions(typ, "so/", Conditions(u), timeline.SOCondition, "ScaledObject",
		"ScaledObject "+s.t.ScaledObject.String()+" deleted: KEDA no longer scales the Deployment")
}

// Condition is one status condition of an object read without its Go type.
type Condition struct {
	Type, Status, Reason, Message string
	LastTransitionTime            time.Time
}

// Conditions reads the status.conditions of an object read without its Go type.
func Conditions(u *unstructured.Unstructured) []Condition {
	raw, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	var out []Condition
	for _, r := range raw {
		m, ok := r.(map[string]any)
		if !ok {
			continue
		}
		str := func(k string) string { v, _ := m[k].(string); return v }
		c := Condition{Type: str("type"), Status: str("status"), Reason: str("reason"), Message: str("message")}
		if t, err := time.Parse(time.RFC3339, str("lastTransitionTime")); err == nil {
			c.LastTransitionTime = t
		}
		out = append(out, c)
	}
	return out
}

// The values the source answers for.
const (
	Desired = "desired"
	Current = "current"
	Ready   = "ready"
)

// Min names the HPA's minimum among the values (Query(t, Min)).
const Min = "min"

// QueryPrefix starts every query the source answers.
const QueryPrefix = "kubernetes: "

// Query is the text a series read from the API shows as its query (it
// names the object and the field read); "" for a value t cannot give.
func Query(t Targets, name string) string {
	switch {
	case name == Desired && t.HPA.Set():
		return QueryPrefix + "HorizontalPodAutoscaler " + t.HPA.String() + " .status.desiredReplicas"
	case name == Current && t.HPA.Set():
		return QueryPrefix + "HorizontalPodAutoscaler " + t.HPA.String() + " .status.currentReplicas"
	case name == Min && t.HPA.Set():
		return QueryPrefix + "HorizontalPodAutoscaler " + t.HPA.String() + " .spec.minReplicas"
	case name == Ready && t.Deployment.Set():
		return QueryPrefix + "Deployment " + t.Deployment.String() + " .status.readyReplicas"
	}
	return ""
}

// Value answers a query made by Query: the last object's field, or a gap
// while its watch is down, before it has listed, or when the object does
// not exist. It asks the API nothing: the watches keep the objects.
func (s *Source) Value(query string) (measure.Value, bool) {
	name, ok := s.queries[query]
	if !ok {
		return measure.Value{}, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	gap := func(w string) (string, bool) {
		if why, ok := s.down[w]; ok {
			return "kubernetes watch down: " + why, true
		}
		if !s.listed[w] {
			return "kubernetes: not listed yet", true
		}
		return "", false
	}
	if name == Ready {
		if g, ok := gap(watchDeploy); ok {
			return measure.Value{Gap: g}, true
		}
		if s.dep == nil {
			return measure.Value{Gap: "no Deployment " + s.t.Deployment.String()}, true
		}
		return measure.Value{V: float64(s.dep.Status.ReadyReplicas)}, true
	}
	if g, ok := gap(watchHPA); ok {
		return measure.Value{Gap: g}, true
	}
	if s.hpa == nil {
		return measure.Value{Gap: "no HPA " + s.t.HPA.String() + " (KEDA deletes it while the ScaledObject is paused)"}, true
	}
	switch name {
	case Desired:
		return measure.Value{V: float64(s.hpa.Status.DesiredReplicas)}, true
	case Current:
		return measure.Value{V: float64(s.hpa.Status.CurrentReplicas)}, true
	}
	return measure.Value{V: float64(ptrOr(s.hpa.Spec.MinReplicas, 1))}, true
}
