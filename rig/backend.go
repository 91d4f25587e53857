package rig

import (
	"context"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/scaleout/scaleout/sim"
)

// PodPoll is how often a backend reads its Deployment's pods.
const PodPoll = 250 * time.Millisecond

// startBackend serves the embedded simulator in external mode for tier t:
// its replicas are the tier's ready pods, read from the API every PodPoll
// (what an Endpoints controller would give a Service). It returns the
// gateway's address.
func (r *Rig) startBackend(ctx context.Context, t Tier) (string, error) {
	cfg := sim.DefaultConfig()
	cfg.Namespace, cfg.Deployment, cfg.ScaledObject = t.Namespace, t.Deployment, t.ScaledObject
	f, err := sim.NewExternal(cfg, nil)
	if err != nil {
		return "", err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	srv := &http.Server{Handler: f.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	wctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		r.followPods(wctx, t, f)
	}()
	r.onDown(func() {
		cancel()
		wg.Wait()
		_ = srv.Close()
	})
	return ln.Addr().String(), nil
}

// followPods hands f the names of t's ready pods until ctx ends. A failed
// read leaves f as it was (an API outage does not empty the gateway).
func (r *Rig) followPods(ctx context.Context, t Tier, f *sim.Fleet) {
	var last []string
	tick := time.NewTicker(PodPoll)
	defer tick.Stop()
	for {
		lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		pods, err := r.Client.CoreV1().Pods(t.Namespace).List(lctx, metav1.ListOptions{LabelSelector: "app=" + t.Deployment})
		cancel()
		if err == nil {
			ready := ReadyPods(pods.Items)
			if !slices.Equal(ready, last) {
				if f.SetReadyPods(ready) == nil {
					last = ready
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// ReadyPods is the sorted names of the pods that are Ready and not being
// deleted: the ones a Service would route to.
func ReadyPods(pods []corev1.Pod) []string {
	var out []string
	for _, p := range pods {
		if p.DeletionTimestamp != nil {
			continue
		}
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
				out = append(out, p.Name)
				break
			}
		}
	}
	slices.Sort(out)
	return out
}
