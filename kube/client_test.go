package kube

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// The one loader of the tool (a run's Connect, scaleout job's namespace):
// the file and the context named win over the current context.
func TestConfigLoadsTheNamedContext(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config")
	if err := os.WriteFile(path, []byte(`apiVersion: v1
kind: Config
current-context: a
clusters:
- {name: one, cluster: {server: "https://127.0.0.1:6443"}}
- {name: two, cluster: {server: "https://127.0.0.1:7443"}}
users:
- {name: u, user: {token: t}}
contexts:
- {name: a, context: {cluster: one, user: u, namespace: ns-a}}
- {name: b, context: {cluster: two, user: u, namespace: ns-b}}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ context, ns, where string }{
		{"", "ns-a", "context a (https://127.0.0.1:6443)"},
		{"b", "ns-b", "context b (https://127.0.0.1:7443)"},
	} {
		cfg := Config{Kubeconfig: path, Context: tc.context}
		if ns, _, err := cfg.Loader().Namespace(); err != nil || ns != tc.ns {
			t.Errorf("context %q: namespace %q (%v), want %q", tc.context, ns, err, tc.ns)
		}
		c, err := Connect(cfg)
		if err != nil {
			t.Fatalf("context %q: %v", tc.context, err)
		}
		if c.Where != tc.where {
			t.Errorf("context %q: where %q, want %q", tc.context, c.Where, tc.where)
		}
	}
}

// No kubeconfig anywhere and no pod: ErrNoConfig, not client-go's hint
// about KUBERNETES_MASTER.
func TestConnectWithoutConfig(t *testing.T) {
	t.Setenv("KUBECONFIG", "")
	t.Setenv("HOME", t.TempDir())
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	t.Setenv("KUBERNETES_SERVICE_PORT", "")
	if _, err := Connect(Config{}); !errors.Is(err, ErrNoConfig) {
		t.Errorf("err %v, want ErrNoConfig", err)
	}
}
