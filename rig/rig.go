// Package rig starts a real Kubernetes control plane on loopback for
// scaleout's end-to-end tests: etcd, kube-apiserver (RBAC, a static admin
// token, service-account signing, the aggregation layer), kube-controller-
// manager (deployment, replicaset, HPA, serviceaccount, garbage-collector and
// namespace controllers), kube-scheduler, kwok with one fake GPU node, KEDA's
// operator and metrics adapter (the external metrics API), a stand-in for
// kube-state-metrics, Debian's Prometheus, and the embedded simulator in
// external mode as the backends of the fake pods.
//
// Every port is a free loopback port and every file lives in the rig's own
// directory, so two rigs on one machine do not collide. Down stops what Up
// started (SIGTERM, a deadline, then SIGKILL), whatever state Up reached.
package rig

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// Options configure a rig. The zero value is usable: every field has a
// default suited to a fast test.
type Options struct {
	// BinDir holds the binaries rig/build.sh built; "" finds them with
	// BinDir(SrcDir).
	BinDir string
	// SrcDir is the rig module's directory (for the cache key and the
	// manifests on disk); "" is the working directory.
	SrcDir string
	// Dir is where the rig keeps its data, certificates, logs and
	// kubeconfig; "" makes a temporary directory that Down removes.
	Dir string
	// KeepDir keeps a temporary Dir after Down (its logs, for a post-mortem).
	KeepDir bool

	// HPASync is kube-controller-manager's
	// --horizontal-pod-autoscaler-sync-period (default 5s; Kubernetes' own
	// default is 15s).
	HPASync time.Duration
	// DownscaleWindow is --horizontal-pod-autoscaler-downscale-stabilization
	// (default 60s; Kubernetes' own default is 5m): long enough that a
	// queue-depth trigger does not flap while the load holds, short enough
	// for a test.
	DownscaleWindow time.Duration
	// ColdStart is the fake pods' readiness delay: the time from a pod's
	// start to Ready (default 5s).
	ColdStart time.Duration
	// GPUs is the fake node's nvidia.com/gpu capacity (default 1).
	GPUs int
	// ScrapeInterval is Prometheus' scrape and evaluation interval (default 2s).
	ScrapeInterval time.Duration

	// ControlPlaneOnly starts etcd, the API server, the controller manager,
	// the scheduler and kwok with its node, and nothing of KEDA, Prometheus
	// or the backends: for tests of the API alone.
	ControlPlaneOnly bool
	// NoTiers skips the runbook's two tiers (the manifests and their
	// backends); KEDA and Prometheus still start.
	NoTiers bool

	// Log receives one line per step of Up and Down; nil discards them.
	Log io.Writer
}

func (o *Options) defaults() {
	if o.HPASync == 0 {
		o.HPASync = 5 * time.Second
	}
	if o.DownscaleWindow == 0 {
		o.DownscaleWindow = 60 * time.Second
	}
	if o.ColdStart == 0 {
		o.ColdStart = 5 * time.Second
	}
	if o.GPUs == 0 {
		o.GPUs = 1
	}
	if o.ScrapeInterval == 0 {
		o.ScrapeInterval = 2 * time.Second
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
}

// Rig is a running control plane. Its exported fields are set by Up and
// read-only afterwards.
type Rig struct {
	Dir        string // the rig's directory: data, certificates, logs/, kubeconfig
	Kubeconfig string // path of a kubeconfig for the admin (context "rig")
	APIURL     string // https://127.0.0.1:<port>
	AdminToken string // a static token in group system:masters
	CAFile     string // the CA the API server's certificate chains to
	// PrometheusURL is Prometheus' base URL ("" with ControlPlaneOnly).
	PrometheusURL string
	// Gateways maps each tier's namespace ("serving", "inference") to the URL
	// of the simulator serving its ready pods (empty without the tiers).
	Gateways map[string]string
	// Config is a client configuration for the admin; Client and Dynamic
	// are built on it.
	Config  *rest.Config
	Client  kubernetes.Interface
	Dynamic dynamic.Interface

	opts    Options
	binDir  string
	tempDir bool
	started time.Time

	mu    sync.Mutex
	procs []*proc // in start order; Down stops them in reverse
	api   *proc
	args  map[string][]string // each component's command line, for restarts

	stopFns []func() // in-process parts (exporter, backends), stopped first
}

// Up starts a rig and returns once every component answers: the API is
// ready, the node is Ready, and (unless ControlPlaneOnly) KEDA's external
// metrics API is available and Prometheus is up. On any error it stops what
// it had started before returning. ctx bounds the start-up only.
func Up(ctx context.Context, opts Options) (_ *Rig, err error) {
	opts.defaults()
	r := &Rig{opts: opts, started: time.Now(), args: map[string][]string{}, Gateways: map[string]string{}}
	if opts.SrcDir == "" {
		opts.SrcDir, _ = os.Getwd()
		r.opts.SrcDir = opts.SrcDir
	}
	r.binDir = opts.BinDir
	if r.binDir == "" {
		if r.binDir, err = BinDir(opts.SrcDir); err != nil {
			return nil, err
		}
	}
	r.Dir = opts.Dir
	if r.Dir == "" {
		if r.Dir, err = os.MkdirTemp("", "scaleout-rig-"); err != nil {
			return nil, err
		}
		r.tempDir = true
	} else if err := os.MkdirAll(r.Dir, 0o700); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			r.logf("start-up failed: %v", err)
			_ = r.Down()
		}
	}()
	r.logf("rig directory %s, binaries %s", r.Dir, r.binDir)
	if err := r.startControlPlane(ctx); err != nil {
		return nil, err
	}
	if opts.ControlPlaneOnly {
		r.logf("control plane up in %s", time.Since(r.started).Round(time.Millisecond))
		return r, nil
	}
	if err := r.startAddons(ctx); err != nil {
		return nil, err
	}
	r.logf("rig up in %s", time.Since(r.started).Round(time.Millisecond))
	return r, nil
}

func (r *Rig) logf(format string, args ...any) {
	fmt.Fprintf(r.opts.Log, "rig %6.1fs: %s\n", time.Since(r.started).Seconds(), fmt.Sprintf(format, args...))
}

// Down stops every component (in-process parts first, then the processes
// in reverse start order, each SIGTERM then SIGKILL after StopGrace) and
// removes a temporary directory. It is safe to call more than once.
func (r *Rig) Down() error {
	r.mu.Lock()
	stops, procs := r.stopFns, r.procs
	r.stopFns, r.procs = nil, nil
	r.mu.Unlock()
	for i := len(stops) - 1; i >= 0; i-- {
		stops[i]()
	}
	var errs []error
	// The processes stop concurrently: each has its own grace, and the
	// total stays one grace period, not one per component.
	var wg sync.WaitGroup
	var emu sync.Mutex
	for _, p := range procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := p.stop(StopGrace); err != nil {
				emu.Lock()
				errs = append(errs, err)
				emu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(procs) > 0 {
		r.logf("stopped %d processes", len(procs))
	}
	if r.tempDir && !r.opts.KeepDir && len(errs) == 0 {
		if err := os.RemoveAll(r.Dir); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// run starts one component and remembers it for Down.
func (r *Rig) run(name string, args []string, env ...string) (*proc, error) {
	bin := filepath.Join(r.binDir, name)
	if filepath.IsAbs(name) {
		bin = name
		name = filepath.Base(name)
	}
	p, err := start(r.Dir, name, bin, args, env)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.procs = append(r.procs, p)
	r.args[name] = args
	r.mu.Unlock()
	return p, nil
}

// onDown registers an in-process part's stop function.
func (r *Rig) onDown(f func()) {
	r.mu.Lock()
	r.stopFns = append(r.stopFns, f)
	r.mu.Unlock()
}

// freePort is a loopback TCP port nobody listens on now.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func freePorts(n int) ([]int, error) {
	// Held open together, so the n ports differ.
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	out := make([]int, n)
	for i := range out {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		lns = append(lns, ln)
		out[i] = ln.Addr().(*net.TCPAddr).Port
	}
	return out, nil
}

// waitFor polls check every interval until it returns nil, p (when not nil)
// exits, or ctx ends; the error names what was awaited and the last failure.
func waitFor(ctx context.Context, what string, p *proc, interval time.Duration, check func(context.Context) error) error {
	var last error
	for {
		if p != nil {
			if done, _ := p.exited(); done {
				return p.errExited()
			}
		}
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		last = check(cctx)
		cancel()
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("rig: waiting for %s: %w (last: %v)", what, ctx.Err(), last)
		case <-time.After(interval):
		}
	}
}

// httpOK is a check that GET url answers 200, over TLS trusting ca (nil:
// plain HTTP or no verification), with a bearer token when given.
func httpOK(url string, ca *x509.CertPool, token string) func(context.Context) error {
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca}}
	c := &http.Client{Transport: tr}
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := c.Do(req)
		if err != nil {
			return err
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %s: %s", url, resp.Status, strings.TrimSpace(string(b)))
		}
		return nil
	}
}
