package job

import (
	"bytes"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/scaleout/scaleout/scenario"
)

func write(t *testing.T, dir, name, text string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

const scaledObject = `apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {name: vllm, namespace: inference}
spec:
  scaleTargetRef: {name: vllm}
  minReplicaCount: 1
  maxReplicaCount: 4
  triggers:
    - type: prometheus
      metadata:
        serverAddress: http://prometheus:9090
        query: sum(vllm:num_requests_waiting)
        threshold: "5"
`

// a scenario naming a ScaledObject and a prompts file in subdirectories,
// with a ${NAME} left unset here.
func testScenario(t *testing.T) string {
	dir := t.TempDir()
	write(t, dir, "keda/so.yaml", scaledObject)
	write(t, dir, "data/prompts.jsonl", `{"prompt": "hello"}`+"\n"+`{"prompt": "world"}`+"\n")
	return write(t, dir, "s.yaml", `name: In Cluster
target: {url: "${GATEWAY_URL}", model: m}
request: {prompts: data/prompts.jsonl, max_tokens: 8}
load:
  - {name: a, rate: 4/s, duration: 10s}
observe:
  prometheus: http://prometheus.monitoring:9090
  scaledobject: keda/so.yaml
`)
}

func testOptions() Options {
	start := time.Date(2026, 12, 3, 8, 0, 0, 0, time.UTC)
	return Options{
		Name: DefaultName("In Cluster", start), Namespace: "load", Image: "registry.example/scaleout:abc",
		Parallelism: 4, CPU: "2", Memory: "1536Mi", NodeSelector: map[string]string{"pool": "cpu"},
		StartAt: start, Secrets: []string{"gateway"}, RunArgs: []string{"--rest-wait", "0"}, TTL: time.Hour,
	}
}

// rendered is a rendered stream decoded strictly into the API's types: a
// field the types do not have is an error.
type rendered struct {
	sa    corev1.ServiceAccount
	roles []rbacv1.Role
	rbs   []rbacv1.RoleBinding
	cm    corev1.ConfigMap
	job   batchv1.Job
	kinds []string // in stream order
}

func decode(t *testing.T, y []byte) rendered {
	t.Helper()
	var r rendered
	for i, doc := range strings.Split(string(y), "\n---\n") {
		var meta struct{ Kind string }
		if err := sigsyaml.Unmarshal([]byte(doc), &meta); err != nil {
			t.Fatal(err)
		}
		r.kinds = append(r.kinds, meta.Kind)
		var into any
		switch meta.Kind {
		case "ServiceAccount":
			into = &r.sa
		case "Role":
			r.roles = append(r.roles, rbacv1.Role{})
			into = &r.roles[len(r.roles)-1]
		case "RoleBinding":
			r.rbs = append(r.rbs, rbacv1.RoleBinding{})
			into = &r.rbs[len(r.rbs)-1]
		case "ConfigMap":
			into = &r.cm
		case "Job":
			into = &r.job
		default:
			t.Fatalf("document %d: kind %q", i, meta.Kind)
		}
		if err := sigsyaml.UnmarshalStrict([]byte(doc), into); err != nil {
			t.Fatalf("document %d: %v\n%s", i, err, doc)
		}
	}
	return r
}

func TestManifestsParseBack(t *testing.T) {
	b, err := LoadBundle(testScenario(t), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	o := testOptions()
	objs, err := Manifests(b, o)
	if err != nil {
		t.Fatal(err)
	}
	y, err := YAML(objs)
	if err != nil {
		t.Fatal(err)
	}
	// Deterministic: the same inputs give the same bytes.
	objs2, _ := Manifests(b, o)
	if y2, _ := YAML(objs2); !bytes.Equal(y, y2) {
		t.Fatal("two renderings differ")
	}
	r := decode(t, y)
	sa, cm, j := r.sa, r.cm, r.job
	if want := "ServiceAccount Role RoleBinding Role RoleBinding ConfigMap Job"; strings.Join(r.kinds, " ") != want {
		t.Fatalf("kinds %v, want %s (the pods' identity first, the Job last)", r.kinds, want)
	}
	ns := []string{sa.Namespace, cm.Namespace, j.Namespace}
	for _, x := range r.roles {
		ns = append(ns, x.Namespace)
	}
	for _, x := range r.rbs {
		ns = append(ns, x.Namespace)
	}
	for _, m := range ns {
		if m != "load" {
			t.Errorf("namespace %q, want load", m)
		}
	}
	// The pods' Roles are deploy/rbac.yaml's, rule for rule: an in-cluster
	// run may do what the tool needs, no more.
	tool := toolRoles(t)
	if len(r.roles) != len(tool) {
		t.Errorf("%d Roles rendered, deploy/rbac.yaml has %d", len(r.roles), len(tool))
	}
	for _, x := range r.roles {
		if want, ok := tool[x.Name]; !ok || !reflect.DeepEqual(x.Rules, want) {
			t.Errorf("Role %s grants %+v; deploy/rbac.yaml's %+v", x.Name, x.Rules, want)
		}
	}
	// Each binding binds the pods' ServiceAccount, in the Job's namespace,
	// to a Role rendered beside it.
	for _, rb := range r.rbs {
		if !slices.ContainsFunc(r.roles, func(x rbacv1.Role) bool { return x.Name == rb.RoleRef.Name }) || len(rb.Subjects) != 1 ||
			rb.Subjects[0].Name != sa.Name || rb.Subjects[0].Kind != "ServiceAccount" || rb.Subjects[0].Namespace != "load" {
			t.Errorf("RoleBinding %s binds %+v to %+v", rb.Name, rb.Subjects, rb.RoleRef)
		}
	}

	// The Job: Indexed, N shards at once, no retry, the pods' identity.
	s := j.Spec
	if j.Name != o.Name || *s.CompletionMode != batchv1.IndexedCompletion || *s.Completions != 4 || *s.Parallelism != 4 || *s.BackoffLimit != 0 {
		t.Fatalf("job spec %+v", s)
	}
	if *s.TTLSecondsAfterFinished != 3600 || j.Annotations[AnnStartAt] != "2026-12-03T08:00:00Z" || j.Annotations[AnnShards] != "4" || j.Annotations[AnnScenario] != "In Cluster" {
		t.Errorf("ttl %d, annotations %v", *s.TTLSecondsAfterFinished, j.Annotations)
	}
	ps := s.Template.Spec
	if ps.RestartPolicy != corev1.RestartPolicyNever || ps.ServiceAccountName != sa.Name || ps.NodeSelector["pool"] != "cpu" {
		t.Errorf("pod spec: restart %s, service account %q, node selector %v", ps.RestartPolicy, ps.ServiceAccountName, ps.NodeSelector)
	}
	if sc := ps.SecurityContext; !*sc.RunAsNonRoot || *sc.RunAsUser != 65532 {
		t.Errorf("pod security context %+v", sc)
	}
	if len(ps.Containers) != 1 {
		t.Fatalf("%d containers", len(ps.Containers))
	}
	c := ps.Containers[0]
	if c.Image != o.Image || !*c.SecurityContext.ReadOnlyRootFilesystem || *c.SecurityContext.AllowPrivilegeEscalation {
		t.Errorf("container %s, security %+v", c.Image, c.SecurityContext)
	}
	wantArgs := []string{"job", "pod", "--dir", "/work/run", "--", "run", "/config/scenario.yaml",
		"--shard", "$(JOB_COMPLETION_INDEX)/4", "--start-at", "2026-12-03T08:00:00Z", "--rest-wait", "0"}
	if !slices.Equal(c.Args, wantArgs) {
		t.Errorf("args %q\nwant %q", c.Args, wantArgs)
	}
	if len(c.Env) != 1 || c.Env[0].Name != "JOB_COMPLETION_INDEX" || c.Env[0].ValueFrom.FieldRef.FieldPath != "metadata.annotations['batch.kubernetes.io/job-completion-index']" {
		t.Errorf("env %+v: the completion index must be defined for $(JOB_COMPLETION_INDEX)", c.Env)
	}
	if len(c.EnvFrom) != 1 || c.EnvFrom[0].SecretRef.Name != "gateway" {
		t.Errorf("envFrom %+v", c.EnvFrom)
	}
	for _, rl := range []corev1.ResourceList{c.Resources.Requests, c.Resources.Limits} {
		if !rl.Cpu().Equal(resource.MustParse("2")) || !rl.Memory().Equal(resource.MustParse("1536Mi")) {
			t.Errorf("resources %v, want cpu 2 memory 1536Mi as request and limit", rl)
		}
	}

	// The ConfigMap holds the files byte for byte; the volume puts each at
	// the path the scenario names it by, relative to /config/scenario.yaml.
	mounts := map[string]string{}
	for _, m := range c.VolumeMounts {
		mounts[m.Name] = m.MountPath
	}
	if mounts["config"] != "/config" || mounts["work"] != "/work" || mounts["tmp"] != "/tmp" {
		t.Errorf("mounts %v", mounts)
	}
	var items []corev1.KeyToPath
	for _, v := range ps.Volumes {
		if v.Name == "config" {
			if v.ConfigMap.Name != cm.Name {
				t.Errorf("the volume mounts ConfigMap %s, rendered %s", v.ConfigMap.Name, cm.Name)
			}
			items = v.ConfigMap.Items
		}
	}
	want := map[string]string{"scenario.yaml": "scenario.yaml", "scaledobject.yaml": "keda/so.yaml", "prompts.jsonl": "data/prompts.jsonl"}
	if len(items) != len(want) || len(cm.Data) != len(want) {
		t.Fatalf("items %v, data keys %d, want %v", items, len(cm.Data), want)
	}
	for _, it := range items {
		if want[it.Key] != it.Path {
			t.Errorf("item %s → %s, want %s", it.Key, it.Path, want[it.Key])
		}
		var f File
		for _, bf := range b.Files {
			if bf.Key == it.Key {
				f = bf
			}
		}
		if cm.Data[it.Key] != string(f.Data) || len(f.Data) == 0 {
			t.Errorf("ConfigMap %s is not the file's bytes", it.Key)
		}
	}
	if !strings.Contains(cm.Data["scenario.yaml"], "${GATEWAY_URL}") {
		t.Error("the scenario in the ConfigMap is not the file as written (its ${NAME} is for the pods)")
	}
}

// toolRoles are deploy/rbac.yaml's Roles by name (read as RBAC reads
// them), which must include the read and guard Roles.
func toolRoles(t *testing.T) map[string][]rbacv1.PolicyRule {
	t.Helper()
	objs, err := RBAC()
	if err != nil {
		t.Fatal(err)
	}
	roles := map[string][]rbacv1.PolicyRule{}
	for _, u := range objs {
		if u.GetKind() != "Role" {
			continue
		}
		var role rbacv1.Role
		if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(u.Object, &role, true); err != nil {
			t.Fatalf("deploy/rbac.yaml: Role %s: %v", u.GetName(), err)
		}
		roles[role.Name] = role.Rules
	}
	if roles["scaleout-read"] == nil || roles["scaleout-guard"] == nil {
		t.Fatalf("deploy/rbac.yaml: Roles %v, want scaleout-read and scaleout-guard among them", slices.Collect(maps.Keys(roles)))
	}
	return roles
}

func TestLoadBundleRefuses(t *testing.T) {
	none := func(string) (string, bool) { return "", false }
	dir := t.TempDir()
	write(t, dir, "so.yaml", scaledObject)
	abs := filepath.Join(dir, "so.yaml")
	big := write(t, dir, "big.jsonl", strings.Repeat(`{"prompt": "`+strings.Repeat("x", 1000)+`"}`+"\n", 1100))
	for name, tc := range map[string]struct{ text, want string }{
		"absolute":   {"target: {url: http://gw}\nload: [{name: a, rate: 1/s, duration: 1s}]\nobserve: {scaledobject: " + abs + "}\n", "name the file relative"},
		"parent":     {"target: {url: http://gw}\nload: [{name: a, rate: 1/s, duration: 1s}]\nobserve: {scaledobject: ../" + filepath.Base(dir) + "/so.yaml}\n", "name the file relative"},
		"sim":        {"sim: {}\nload: [{name: a, rate: 1/s, duration: 1s}]\n", "embedded simulator"},
		"too big":    {"target: {url: http://gw}\nrequest: {prompts: " + filepath.Base(big) + "}\nload: [{name: a, rate: 1/s, duration: 1s}]\n", "over the 1 MiB a ConfigMap holds"},
		"bad field":  {"target: {url: http://gw}\nload: [{name: a, rat: 1/s, duration: 1s}]\n", "rat"},
		"no such so": {"target: {url: http://gw}\nload: [{name: a, rate: 1/s, duration: 1s}]\nobserve: {scaledobject: nope.yaml}\n", "nope.yaml"},
	} {
		p := write(t, dir, strings.ReplaceAll(name, " ", "-")+".yaml", tc.text)
		_, err := LoadBundle(p, none)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want %q", name, err, tc.want)
		}
	}
	// A scenario's own errors stay scenario errors (exit 2 upstream).
	_, err := LoadBundle(write(t, dir, "e.yaml", "load: [{name: a, rat: 1/s}]\n"), none)
	var se scenario.Errors
	var pe *scenario.Error
	if !errors.As(err, &se) && !errors.As(err, &pe) {
		t.Errorf("err %T %v, want a scenario error", err, err)
	}
}

func TestDefaultName(t *testing.T) {
	start := time.Date(2026, 12, 3, 8, 0, 5, 0, time.UTC)
	for _, sc := range []string{"demo", "In Cluster!", strings.Repeat("very-long-scenario-name-", 5), "ünïcode", "---"} {
		n := DefaultName(sc, start)
		if len(n) > MaxNameLen || len(validation.IsDNS1123Label(n)) > 0 || !strings.HasSuffix(n, "-20261203-080005") {
			t.Errorf("DefaultName(%q) = %q", sc, n)
		}
		if DefaultName(sc, start) != n {
			t.Errorf("DefaultName(%q) is not deterministic", sc)
		}
	}
	if n := DefaultName("In Cluster!", start); n != "scaleout-in-cluster-20261203-080005" {
		t.Errorf("got %q", n)
	}
}

// testManifests renders the test scenario with the test options.
func testManifests(t *testing.T) []*unstructured.Unstructured {
	t.Helper()
	b, err := LoadBundle(testScenario(t), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	objs, err := Manifests(b, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

func TestOptionsCheck(t *testing.T) {
	for name, mut := range map[string]func(*Options){
		"no image":      func(o *Options) { o.Image = "" },
		"0 shards":      func(o *Options) { o.Parallelism = 0 },
		"bad name":      func(o *Options) { o.Name = "Bad_Name" },
		"long name":     func(o *Options) { o.Name = strings.Repeat("a", MaxNameLen+1) },
		"bad cpu":       func(o *Options) { o.CPU = "two" },
		"zero memory":   func(o *Options) { o.Memory = "0" },
		"bad selector":  func(o *Options) { o.NodeSelector = map[string]string{"a b": "c"} },
		"bad secret":    func(o *Options) { o.Secrets = []string{"Not_A_Name"} },
		"own flag":      func(o *Options) { o.RunArgs = []string{"--shard=1/2"} },
		"pull policy":   func(o *Options) { o.PullPolicy = "Sometimes" },
		"bad namespace": func(o *Options) { o.Namespace = "NS" },
	} {
		o := testOptions()
		mut(&o)
		if err := o.Check(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if err := testOptions().Check(); err != nil {
		t.Fatal(err)
	}
}

// The launcher Role (launcher.yaml) lets a person apply every object
// Manifests renders (server-side apply: patch, and create when absent)
// and follow and collect the Job.
func TestLauncherRoleCoversTheTool(t *testing.T) {
	var role rbacv1.Role
	if err := sigsyaml.UnmarshalStrict(LauncherRBAC, &role); err != nil {
		t.Fatal(err)
	}
	allows := func(group, res, verb string) bool {
		for _, r := range role.Rules {
			if len(r.ResourceNames) == 0 && slices.Contains(r.APIGroups, group) && slices.Contains(r.Resources, res) && slices.Contains(r.Verbs, verb) {
				return true
			}
		}
		return false
	}
	objs := testManifests(t)
	for _, u := range objs {
		gvr, err := GVR(u)
		if err != nil {
			t.Fatal(err)
		}
		for _, verb := range []string{"create", "patch"} {
			if !allows(gvr.Group, gvr.Resource, verb) {
				t.Errorf("the launcher cannot %s %s", verb, gvr)
			}
		}
	}
	for _, need := range [][3]string{{"batch", "jobs", "get"}, {"", "pods", "list"}, {"", "pods/log", "get"}} {
		if !allows(need[0], need[1], need[2]) {
			t.Errorf("the launcher cannot %s %s", need[2], need[1])
		}
	}
}
