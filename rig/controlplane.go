package rig

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	authv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/scaleout/scaleout/platform"
)

// The fake node kwok manages: its annotation selects it for kwok.
const (
	NodeName       = "rig-gpu-node"
	kwokAnnotation = "kwok.x-k8s.io/node"
	// GPUResource is the extended resource the fake node offers (a vLLM
	// pod's GPU request).
	GPUResource = platform.GPUResource
)

// startControlPlane writes the certificates and starts etcd, the API
// server, the controller manager, the scheduler and kwok, then creates the
// node and waits for it to be Ready.
func (r *Rig) startControlPlane(ctx context.Context) error {
	certs := filepath.Join(r.Dir, "pki")
	ca, err := newAuthority("scaleout-rig-ca")
	if err != nil {
		return err
	}
	fp, err := newAuthority("scaleout-rig-front-proxy-ca")
	if err != nil {
		return err
	}
	r.CAFile = filepath.Join(certs, "ca.crt")
	files := map[string][]byte{"ca.crt": ca.pem, "front-proxy-ca.crt": fp.pem}
	if files["apiserver.crt"], files["apiserver.key"], err = ca.issue("kube-apiserver", "kubernetes", "kubernetes.default", "kubernetes.default.svc"); err != nil {
		return err
	}
	if files["front-proxy-client.crt"], files["front-proxy-client.key"], err = fp.issue("front-proxy-client"); err != nil {
		return err
	}
	// KEDA's operator and adapter talk gRPC over mutual TLS with one pair
	// from one CA (cert dir: ca.crt, tls.crt, tls.key); the CA alone is its
	// --ca-dir (a key there breaks it).
	if files["keda/tls.crt"], files["keda/tls.key"], err = ca.issue("keda", "keda-operator", "keda-metrics-apiserver"); err != nil {
		return err
	}
	files["keda/ca.crt"] = ca.pem
	files["keda-ca/ca.crt"] = ca.pem
	for name, b := range files {
		if err := writeFile(filepath.Join(certs, name), b); err != nil {
			return err
		}
	}
	if err := saKeyPair(filepath.Join(certs, "sa.key"), filepath.Join(certs, "sa.pub")); err != nil {
		return err
	}
	tok := make([]byte, 24)
	if _, err := rand.Read(tok); err != nil {
		return err
	}
	r.AdminToken = hex.EncodeToString(tok)
	if err := writeFile(filepath.Join(certs, "tokens.csv"), []byte(r.AdminToken+`,rig-admin,rig-admin,"system:masters"`+"\n")); err != nil {
		return err
	}

	ports, err := freePorts(5)
	if err != nil {
		return err
	}
	etcdClient, etcdPeer, apiPort, kcmPort, schedPort := ports[0], ports[1], ports[2], ports[3], ports[4]
	etcdURL := fmt.Sprintf("http://127.0.0.1:%d", etcdClient)
	etcd, err := r.run("etcd", []string{
		"--data-dir=" + filepath.Join(r.Dir, "etcd"),
		"--listen-client-url=" + etcdURL,
		fmt.Sprintf("--listen-peer-url=http://127.0.0.1:%d", etcdPeer),
	})
	if err != nil {
		return err
	}
	if err := waitFor(ctx, "etcd", etcd, 100*time.Millisecond, httpOK(etcdURL+"/health", nil, "")); err != nil {
		return err
	}
	r.logf("etcd ready on %s", etcdURL)

	r.APIURL = fmt.Sprintf("https://127.0.0.1:%d", apiPort)
	api, err := r.run("kube-apiserver", []string{
		"--etcd-servers=" + etcdURL,
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(apiPort),
		"--endpoint-reconciler-type=none",
		"--tls-cert-file=" + filepath.Join(certs, "apiserver.crt"),
		"--tls-private-key-file=" + filepath.Join(certs, "apiserver.key"),
		"--cert-dir=" + filepath.Join(r.Dir, "apiserver"),
		"--token-auth-file=" + filepath.Join(certs, "tokens.csv"),
		"--client-ca-file=" + filepath.Join(certs, "ca.crt"),
		"--authorization-mode=RBAC",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + filepath.Join(certs, "sa.pub"),
		"--service-account-signing-key-file=" + filepath.Join(certs, "sa.key"),
		"--api-audiences=https://kubernetes.default.svc.cluster.local",
		"--service-cluster-ip-range=10.96.0.0/16",
		"--disable-admission-plugins=TaintNodesByCondition",
		"--enable-priority-and-fairness=false",
		"--requestheader-client-ca-file=" + filepath.Join(certs, "front-proxy-ca.crt"),
		"--requestheader-allowed-names=front-proxy-client",
		"--requestheader-username-headers=X-Remote-User",
		"--requestheader-group-headers=X-Remote-Group",
		"--requestheader-extra-headers-prefix=X-Remote-Extra-",
		"--proxy-client-cert-file=" + filepath.Join(certs, "front-proxy-client.crt"),
		"--proxy-client-key-file=" + filepath.Join(certs, "front-proxy-client.key"),
		"--profiling=false",
	})
	if err != nil {
		return err
	}
	r.api = api
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.pem)
	if err := waitFor(ctx, "kube-apiserver", api, 200*time.Millisecond, httpOK(r.APIURL+"/readyz", pool, r.AdminToken)); err != nil {
		return err
	}
	r.logf("kube-apiserver ready on %s", r.APIURL)

	r.Kubeconfig = filepath.Join(r.Dir, "kubeconfig")
	if err := writeFile(r.Kubeconfig, []byte(kubeconfig(r.APIURL, ca.pem, "rig-admin", r.AdminToken))); err != nil {
		return err
	}
	r.Config = &rest.Config{Host: r.APIURL, BearerToken: r.AdminToken, TLSClientConfig: rest.TLSClientConfig{CAData: ca.pem}, QPS: 50, Burst: 100}
	if r.Client, err = kubernetes.NewForConfig(r.Config); err != nil {
		return err
	}
	if r.Dynamic, err = dynamic.NewForConfig(r.Config); err != nil {
		return err
	}

	// What the controller manager and the scheduler share: the admin
	// kubeconfig for the API and for their own serving port's auth, on
	// loopback, no leader election.
	component := func(port int, more ...string) []string {
		return append([]string{
			"--kubeconfig=" + r.Kubeconfig,
			"--authentication-kubeconfig=" + r.Kubeconfig,
			"--authorization-kubeconfig=" + r.Kubeconfig,
			"--bind-address=127.0.0.1",
			"--secure-port=" + strconv.Itoa(port),
			"--leader-elect=false",
		}, more...)
	}
	kcm, err := r.run("kube-controller-manager", component(kcmPort,
		"--cert-dir="+filepath.Join(r.Dir, "kube-controller-manager"),
		"--controllers=deployment-controller,replicaset-controller,horizontal-pod-autoscaler-controller,"+
			"serviceaccount-controller,garbage-collector-controller,namespace-controller",
		"--horizontal-pod-autoscaler-sync-period="+r.opts.HPASync.String(),
		"--horizontal-pod-autoscaler-downscale-stabilization="+r.opts.DownscaleWindow.String(),
	))
	if err != nil {
		return err
	}
	sched, err := r.run("kube-scheduler", component(schedPort))
	if err != nil {
		return err
	}
	if err := r.startKwok(); err != nil {
		return err
	}
	if err := r.createNode(ctx); err != nil {
		return err
	}
	// The default service account is the controller manager's first sign
	// of life; the node's Ready condition is kwok's.
	if err := waitFor(ctx, "kube-controller-manager (the default service account)", kcm, 200*time.Millisecond, func(ctx context.Context) error {
		_, err := r.Client.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
		return err
	}); err != nil {
		return err
	}
	if err := waitFor(ctx, "kwok (node "+NodeName+" Ready)", nil, 200*time.Millisecond, r.nodeReady); err != nil {
		return err
	}
	if done, _ := sched.exited(); done {
		return sched.errExited()
	}
	r.logf("controller manager, scheduler and kwok running; node %s Ready with %d %s", NodeName, r.opts.GPUs, GPUResource)
	return nil
}

// kubeconfig is a kubeconfig with one cluster, user and context ("rig").
func kubeconfig(server string, caPEM []byte, user, token string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: rig
  cluster:
    server: %s
    certificate-authority-data: %s
users:
- name: %s
  user:
    token: %s
contexts:
- name: rig
  context: {cluster: rig, user: %s}
current-context: rig
`, server, b64(caPEM), user, token, user)
}

func (r *Rig) startKwok() error {
	stages, err := filepath.Glob(filepath.Join(r.binDir, "kwok-stages", "*.yaml"))
	if err != nil || len(stages) == 0 {
		return fmt.Errorf("rig: no kwok stages in %s (rebuild with make rig-build)", filepath.Join(r.binDir, "kwok-stages"))
	}
	port, err := freePort()
	if err != nil {
		return err
	}
	_, err = r.run("kwok", []string{
		"--kubeconfig=" + r.Kubeconfig,
		"--manage-all-nodes=false",
		"--manage-nodes-with-annotation-selector=" + kwokAnnotation + "=fake",
		"--server-address=127.0.0.1:" + strconv.Itoa(port),
		"--config=" + strings.Join(stages, ","),
	})
	return err
}

// createNode registers the fake node with its GPU and CPU capacity.
func (r *Rig) createNode(ctx context.Context) error {
	capacity := corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse("32"),
		corev1.ResourceMemory: resource.MustParse("128Gi"),
		corev1.ResourcePods:   resource.MustParse("110"),
		GPUResource:           *resource.NewQuantity(int64(r.opts.GPUs), resource.DecimalSI),
	}
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name:        NodeName,
			Annotations: map[string]string{kwokAnnotation: "fake"},
			Labels:      map[string]string{"kubernetes.io/hostname": NodeName, "type": "kwok"},
		},
		Status: corev1.NodeStatus{Capacity: capacity, Allocatable: capacity},
	}
	return waitFor(ctx, "node creation", nil, 200*time.Millisecond, func(ctx context.Context) error {
		_, err := r.Client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			return nil
		}
		return err
	})
}

func (r *Rig) nodeReady(ctx context.Context) error {
	n, err := r.Client.CoreV1().Nodes().Get(ctx, NodeName, metav1.GetOptions{})
	if err != nil {
		return err
	}
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
			if q := n.Status.Allocatable[GPUResource]; q.Value() != int64(r.opts.GPUs) {
				return fmt.Errorf("node %s allocatable %s = %s, want %d", NodeName, GPUResource, q.String(), r.opts.GPUs)
			}
			return nil
		}
	}
	return fmt.Errorf("node %s not Ready yet", NodeName)
}

// RestartAPIServer stops kube-apiserver (SIGTERM, then SIGKILL after
// StopGrace) and starts it again with the same flags on the same port and
// etcd, returning once it is ready again: for tests of how clients ride
// out an API outage. Everything stored survives (etcd keeps running).
func (r *Rig) RestartAPIServer(ctx context.Context) error {
	r.mu.Lock()
	old, args := r.api, r.args["kube-apiserver"]
	r.mu.Unlock()
	if old == nil {
		return fmt.Errorf("rig: no kube-apiserver to restart")
	}
	if err := old.stop(StopGrace); err != nil {
		return err
	}
	r.mu.Lock()
	for i, p := range r.procs {
		if p == old {
			r.procs = append(r.procs[:i], r.procs[i+1:]...)
			break
		}
	}
	r.mu.Unlock()
	api, err := r.run("kube-apiserver", args)
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.api = api
	r.mu.Unlock()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(r.Config.CAData)
	if err := waitFor(ctx, "kube-apiserver after the restart", api, 200*time.Millisecond, httpOK(r.APIURL+"/readyz", pool, r.AdminToken)); err != nil {
		return err
	}
	r.logf("kube-apiserver restarted")
	return nil
}

// StopAPIServer stops kube-apiserver without starting it again (an outage
// that lasts until StartAPIServer).
func (r *Rig) StopAPIServer() error {
	r.mu.Lock()
	old := r.api
	r.mu.Unlock()
	if old == nil {
		return fmt.Errorf("rig: no kube-apiserver to stop")
	}
	return old.stop(StopGrace)
}

// StartAPIServer starts a stopped kube-apiserver again (see StopAPIServer);
// on a running one it is RestartAPIServer.
func (r *Rig) StartAPIServer(ctx context.Context) error { return r.RestartAPIServer(ctx) }

// TokenForRole returns a bearer token whose identity is bound to the Role
// role in namespace and to nothing else: a service account
// <role>-sa in namespace, a RoleBinding to it, and a token for it (valid for
// an hour). The Role itself is the caller's to create. For RBAC tests.
func (r *Rig) TokenForRole(ctx context.Context, namespace, role string) (string, error) {
	return r.boundToken(ctx, namespace, rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role})
}

// TokenForClusterRole is TokenForRole for a ClusterRole, bound cluster-wide
// (a ClusterRoleBinding) to a service account <clusterRole>-sa in namespace.
func (r *Rig) TokenForClusterRole(ctx context.Context, namespace, clusterRole string) (string, error) {
	return r.boundToken(ctx, namespace, rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: clusterRole})
}

func (r *Rig) boundToken(ctx context.Context, namespace string, ref rbacv1.RoleRef) (string, error) {
	sa := ref.Name + "-sa"
	if _, err := r.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return "", err
	}
	if _, err := r.Client.CoreV1().ServiceAccounts(namespace).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return "", err
	}
	subject := []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: sa, Namespace: namespace}}
	var err error
	if ref.Kind == "Role" {
		_, err = r.Client.RbacV1().RoleBindings(namespace).Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: sa}, Subjects: subject, RoleRef: ref}, metav1.CreateOptions{})
	} else {
		_, err = r.Client.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: namespace + "-" + sa}, Subjects: subject, RoleRef: ref}, metav1.CreateOptions{})
	}
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return "", err
	}
	hour := int64(3600)
	tr, err := r.Client.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, sa, &authv1.TokenRequest{Spec: authv1.TokenRequestSpec{ExpirationSeconds: &hour}}, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("rig: token for %s/%s: %w", namespace, sa, err)
	}
	return tr.Status.Token, nil
}

// KubeconfigFor writes a kubeconfig for token (e.g. from TokenForRole) next
// to the admin's and returns its path.
func (r *Rig) KubeconfigFor(name, token string) (string, error) {
	p := filepath.Join(r.Dir, "kubeconfig-"+name)
	return p, writeFile(p, []byte(kubeconfig(r.APIURL, r.Config.CAData, name, token)))
}

// Logs is the directory of the components' logs (one <name>.log each).
func (r *Rig) Logs() string { return filepath.Join(r.Dir, "logs") }
