// Package kube reads the Kubernetes API itself: the HPA, the scaled
// Deployment, its pods, their events and the ScaledObject (through the
// dynamic client: KEDA's module is not imported). It gives the run exact
// replica counts and events with the API's own timestamps (Source), the
// runbook's troubleshooting checks (Diagnose), the access the tool needs
// (Access) and the guard that un-pauses a ScaledObject and restores its
// pause afterwards (Pauser).
package kube

import (
	"context"
	"errors"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Config says which cluster to talk to: a kubeconfig file and a context in
// it. Empty fields take client-go's default loading rules ($KUBECONFIG,
// then ~/.kube/config, then the in-cluster config inside a pod).
type Config struct {
	Kubeconfig string
	Context    string
}

// Given reports whether the user named a kubeconfig or a context.
func (c Config) Given() bool { return c.Kubeconfig != "" || c.Context != "" }

// Client is a connection to one cluster: the typed clientset for the
// built-in kinds, the dynamic client for KEDA's ScaledObject.
type Client struct {
	Core kubernetes.Interface
	Dyn  dynamic.Interface
	// Where names the cluster for messages: the context and the server.
	Where string
}

// ErrNoConfig is returned by Connect when no kubeconfig was found and the
// process does not run in a pod: there is no cluster to read.
var ErrNoConfig = errors.New("no kubeconfig found (KUBECONFIG, ~/.kube/config) and not running in a pod")

// ScaledObjects is KEDA's ScaledObject resource.
var ScaledObjects = schema.GroupVersionResource{Group: "keda.sh", Version: "v1alpha1", Resource: "scaledobjects"}

// APIServices is the aggregation layer's APIService resource (read through
// the dynamic client: the aggregator's clientset is not imported).
var APIServices = schema.GroupVersionResource{Group: "apiregistration.k8s.io", Version: "v1", Resource: "apiservices"}

// ExternalMetricsAPIService is the APIService KEDA's metrics adapter serves.
const ExternalMetricsAPIService = "v1beta1.external.metrics.k8s.io"

// Loader is the client configuration c names, not loaded yet: client-go's
// default loading rules with the file and the context c gives.
func (c Config) Loader() clientcmd.ClientConfig {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if c.Kubeconfig != "" {
		rules.ExplicitPath = c.Kubeconfig
	}
	return clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: c.Context})
}

// Connect loads the client configuration. It does not talk to the cluster:
// Reachable does.
func Connect(c Config) (*Client, error) {
	cc := c.Loader()
	rc, err := cc.ClientConfig()
	if err != nil {
		if clientcmd.IsEmptyConfig(err) {
			return nil, ErrNoConfig
		}
		return nil, err
	}
	where := rc.Host
	if raw, err := cc.RawConfig(); err == nil {
		ctx := raw.CurrentContext
		if c.Context != "" {
			ctx = c.Context
		}
		if ctx != "" {
			where = "context " + ctx + " (" + rc.Host + ")"
		}
	}
	return NewClient(rc, where)
}

// NewClient builds the clients from a rest config. Client-side throttling
// is raised from client-go's 5 requests per second: a run asks little, but
// the preflight's access reviews come in a burst.
func NewClient(rc *rest.Config, where string) (*Client, error) {
	rc = rest.CopyConfig(rc)
	if rc.QPS == 0 {
		rc.QPS, rc.Burst = 20, 40
	}
	rc.UserAgent = "scaleout"
	core, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, err
	}
	dyn, err := dynamic.NewForConfig(rc)
	if err != nil {
		return nil, err
	}
	return &Client{Core: core, Dyn: dyn, Where: where}, nil
}

// Reachable asks the API server for its version within timeout.
func (c *Client) Reachable(ctx context.Context, timeout time.Duration) error {
	done := make(chan error, 1)
	go func() {
		_, err := c.Core.Discovery().ServerVersion()
		done <- err
	}()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("the Kubernetes API at %s does not answer: %w", c.Where, err)
		}
		return nil
	case <-t.C:
		return fmt.Errorf("the Kubernetes API at %s does not answer within %s", c.Where, timeout)
	case <-ctx.Done():
		return ctx.Err()
	}
}
