// Package job runs a scenario in the cluster as the pods of one Indexed
// Kubernetes Job, each pod one shard of the run: it renders the manifests
// (a ConfigMap with the scenario and the files it names, the pods'
// ServiceAccount, Role and RoleBinding, and the Job), applies them with
// server-side apply, follows the Job, and brings each shard's run directory
// back from its pod's log (archive.go), a path that needs no more than
// `get` on pods/log.
package job

import (
	"bufio"
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	yaml "go.yaml.in/yaml/v4"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/scaleout/scaleout/deploy"
	"github.com/scaleout/scaleout/scenario"
)

// Where things stand in a Job pod, and the names scaleout gives them.
const (
	// ConfigMapLimit is the most data one ConfigMap holds: the API server
	// refuses a ConfigMap whose values add up to more than 1 MiB.
	ConfigMapLimit = 1 << 20

	ConfigDir   = "/config"       // the ConfigMap's mount: the scenario and the files it names
	ScenarioKey = "scenario.yaml" // the scenario's key and file name
	RunDir      = "/work/run"     // each pod's run directory (an emptyDir)
	Container   = "scaleout"      // the pods' one container

	// MaxNameLen keeps an Indexed Job's pod host names (NAME-INDEX) and
	// its job-name label within 63 characters.
	MaxNameLen = 52

	labelName      = "app.kubernetes.io/name"
	labelInstance  = "app.kubernetes.io/instance"
	labelManagedBy = "app.kubernetes.io/managed-by"
	AnnStartAt     = "scaleout/start-at" // on the Job: the shards' common start, RFC 3339
	AnnShards      = "scaleout/shards"   // on the Job: N
	AnnScenario    = "scaleout/scenario" // on the Job: the scenario's name
	// IndexAnnotation is where the Job controller writes a pod's
	// completion index (0-based).
	IndexAnnotation = "batch.kubernetes.io/job-completion-index"
	indexEnv        = "JOB_COMPLETION_INDEX"
)

// LauncherRBAC is the Role a person needs to apply, follow and collect a
// Job (launcher.yaml); scaleout job does not render it.
//
//go:embed launcher.yaml
var LauncherRBAC []byte

// File is one entry of the ConfigMap: Key in the ConfigMap, Path under
// ConfigDir in the pod (where the scenario names it).
type File struct {
	Key, Path string
	Data      []byte
}

// Bundle is a scenario and the files it names, as the pods will see them.
type Bundle struct {
	Scenario string // the scenario's name
	Files    []File // the scenario first
}

// Size is the bytes the ConfigMap's data adds up to.
func (b Bundle) Size() int {
	n := 0
	for _, f := range b.Files {
		n += len(f.Data)
	}
	return n
}

// LoadBundle reads the scenario at path and the files it names (the
// ScaledObject manifest, the prompts file), and checks the scenario.
// ${NAME} references left unset here stand for values the pods get from
// their environment (--secret), so the check does not need them; set
// ones are checked as they are. The named files must lie under the
// scenario's directory, named relatively: in the pod they are mounted
// beside /config/scenario.yaml at the same relative paths, so the scenario
// goes into the ConfigMap byte for byte.
func LoadBundle(file string, lookup func(string) (string, bool)) (Bundle, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return Bundle{}, err
	}
	stand := func(name string) (string, bool) {
		if v, ok := lookup(name); ok {
			return v, true
		}
		return "http://unset-" + strings.ToLower(name) + ".invalid", true
	}
	s, err := scenario.Parse(file, data, stand)
	if err != nil {
		return Bundle{}, err
	}
	if len(s.Load) == 0 {
		return Bundle{}, &scenario.Error{File: file, Msg: "the scenario sends no load: nothing to run in a Job"}
	}
	var raw struct {
		Request struct {
			Prompts string `yaml:"prompts"`
		} `yaml:"request"`
		Observe struct {
			ScaledObject string `yaml:"scaledobject"`
		} `yaml:"observe"`
		Sim any `yaml:"sim"`
	}
	if err := yaml.Unmarshal(data, &raw); err != nil {
		return Bundle{}, fmt.Errorf("%s: %w", file, err)
	}
	if raw.Sim != nil {
		return Bundle{}, &scenario.Error{File: file, Field: "sim", Msg: "the scenario runs on the embedded simulator: in a Job it would load only its own pod (give target.url and observe instead)"}
	}
	b := Bundle{Scenario: s.Name, Files: []File{{Key: ScenarioKey, Path: ScenarioKey, Data: data}}}
	add := func(field, written, resolved, key string) error {
		if written == "" {
			return nil
		}
		rel := filepath.ToSlash(filepath.Clean(written))
		if !filepath.IsLocal(written) || strings.Contains(written, "$") || rel == ScenarioKey {
			return &scenario.Error{File: file, Field: field, Msg: fmt.Sprintf(
				"%q: in the Job the scenario is %s/%s and its files stand beside it, so name the file relative to the scenario, under its directory (copy it there)",
				written, ConfigDir, ScenarioKey)}
		}
		d, err := os.ReadFile(resolved)
		if err != nil {
			return err
		}
		b.Files = append(b.Files, File{Key: key, Path: rel, Data: d})
		return nil
	}
	if err := add("observe.scaledobject", raw.Observe.ScaledObject, s.Observe.ScaledObject, "scaledobject.yaml"); err != nil {
		return Bundle{}, err
	}
	if err := add("request.prompts", raw.Request.Prompts, s.Request.Prompts, "prompts"+path.Ext(raw.Request.Prompts)); err != nil {
		return Bundle{}, err
	}
	if n := b.Size(); n > ConfigMapLimit {
		var sizes []string
		for _, f := range b.Files {
			sizes = append(sizes, fmt.Sprintf("%s %s", f.Path, mib(len(f.Data))))
		}
		return Bundle{}, fmt.Errorf("%s: the scenario and its files come to %s (%s), over the 1 MiB a ConfigMap holds: use a smaller prompts file (e.g. a sample of it)",
			file, mib(n), strings.Join(sizes, ", "))
	}
	return b, nil
}

func mib(n int) string { return fmt.Sprintf("%.2f MiB", float64(n)/(1<<20)) }

// Options are the Job's knobs (scaleout job's flags).
type Options struct {
	Name         string // the Job, and the ConfigMap; DefaultName when empty
	Namespace    string
	Image        string
	Parallelism  int    // shards: completions = parallelism = N
	CPU, Memory  string // each pod's request and limit (Guaranteed QoS)
	NodeSelector map[string]string
	StartAt      time.Time     // the shards' common start
	Secrets      []string      // Secrets whose keys become the pods' environment (${NAME} in the scenario)
	RunArgs      []string      // more `scaleout run` flags
	TTL          time.Duration // the Job's ttlSecondsAfterFinished; 0: kept until deleted
	PullPolicy   string        // "" (the cluster's default), Always, IfNotPresent or Never
}

// DefaultName is scaleout-SCENARIO-YYYYMMDD-HHMMSS (the start, UTC), cut
// to MaxNameLen: one name per run, the same for the same inputs.
func DefaultName(scenarioName string, startAt time.Time) string {
	stamp := startAt.UTC().Format("20060102-150405")
	base := dnsLabel(scenarioName)
	if room := MaxNameLen - len("scaleout--") - len(stamp); len(base) > room {
		base = strings.TrimRight(base[:room], "-")
	}
	if base == "" {
		return "scaleout-" + stamp
	}
	return "scaleout-" + base + "-" + stamp
}

// dnsLabel lowercases s and keeps [a-z0-9-], runs of anything else one -.
func dnsLabel(s string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(s) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
			dash = false
		} else if !dash && b.Len() > 0 {
			b.WriteByte('-')
			dash = true
		}
	}
	return strings.Trim(b.String(), "-")
}

// Check reports the first option a Job cannot be made with, naming its flag.
func (o Options) Check() error {
	switch {
	case o.Image == "":
		return errors.New("--image is required (push bin/image/oci first: see docs/incluster.md)")
	case o.Parallelism < 1:
		return fmt.Errorf("--parallelism %d: want 1 or more shards", o.Parallelism)
	case o.StartAt.IsZero():
		return errors.New("--start-at: no start instant")
	}
	if errs := validation.IsDNS1123Label(o.Name); len(errs) > 0 || len(o.Name) > MaxNameLen {
		return fmt.Errorf("--name %q: want a DNS label (a-z, 0-9, -) of at most %d characters", o.Name, MaxNameLen)
	}
	if errs := validation.IsDNS1123Label(o.Namespace); len(errs) > 0 {
		return fmt.Errorf("--namespace %q: %s", o.Namespace, strings.Join(errs, "; "))
	}
	for flag, q := range map[string]string{"--cpu": o.CPU, "--memory": o.Memory} {
		if v, err := resource.ParseQuantity(q); err != nil || v.Sign() <= 0 {
			return fmt.Errorf("%s %q: want a positive Kubernetes quantity (e.g. --cpu 2, --memory 1Gi)", flag, q)
		}
	}
	for k, v := range o.NodeSelector {
		if errs := validation.IsQualifiedName(k); len(errs) > 0 {
			return fmt.Errorf("--node-selector %s=%s: the key %s", k, v, strings.Join(errs, "; "))
		}
		if errs := validation.IsValidLabelValue(v); len(errs) > 0 {
			return fmt.Errorf("--node-selector %s=%s: the value %s", k, v, strings.Join(errs, "; "))
		}
	}
	for _, s := range o.Secrets {
		if errs := validation.IsDNS1123Subdomain(s); len(errs) > 0 {
			return fmt.Errorf("--secret %q: %s", s, strings.Join(errs, "; "))
		}
	}
	for _, a := range o.RunArgs {
		for _, own := range []string{"--out", "--shard", "--start-at"} {
			if a == own || strings.HasPrefix(a, own+"=") {
				return fmt.Errorf("%s after --: the Job sets it for each pod", own)
			}
		}
	}
	switch o.PullPolicy {
	case "", "Always", "IfNotPresent", "Never":
	default:
		return fmt.Errorf("--pull-policy %q: Always, IfNotPresent or Never", o.PullPolicy)
	}
	return nil
}

// PodArgs are the container's arguments: the pod wrapper (scaleout job
// pod), which runs `scaleout run /config/scenario.yaml --shard K/N
// --start-at T --out /work/run …` and then prints the run directory to
// the log. K is the pod's completion index (0-based).
func PodArgs(o Options) []string {
	args := []string{"job", "pod", "--dir", RunDir, "--",
		"run", ConfigDir + "/" + ScenarioKey,
		"--shard", "$(" + indexEnv + ")/" + strconv.Itoa(o.Parallelism),
		"--start-at", o.StartAt.UTC().Format(time.RFC3339)}
	return append(args, o.RunArgs...)
}

// Manifests renders everything `scaleout job` applies, in the order it is
// applied: the pods' ServiceAccount, Roles and RoleBindings (the namespaced
// objects of deploy/rbac.yaml, moved to the Job's namespace), the
// ConfigMap, the Job. The same bundle and options give the same objects.
func Manifests(b Bundle, o Options) ([]*unstructured.Unstructured, error) {
	if err := o.Check(); err != nil {
		return nil, err
	}
	rbac, err := RBAC()
	if err != nil {
		return nil, err
	}
	var out []*unstructured.Unstructured
	for _, u := range rbac {
		if _, ok := kinds[u.GetKind()]; !ok {
			continue // cluster-scoped (a ClusterRole): not the Job's to create
		}
		u.SetNamespace(o.Namespace)
		u.SetLabels(map[string]string{labelName: "scaleout", labelManagedBy: "scaleout"})
		if u.GetKind() == "RoleBinding" {
			// The ServiceAccount is the one in the Job's namespace.
			subjects, _, _ := unstructured.NestedSlice(u.Object, "subjects")
			for _, s := range subjects {
				if m, ok := s.(map[string]any); ok && m["kind"] == "ServiceAccount" {
					m["namespace"] = o.Namespace
				}
			}
			if err := unstructured.SetNestedSlice(u.Object, subjects, "subjects"); err != nil {
				return nil, err
			}
		}
		out = append(out, u)
	}
	var sa string
	for _, u := range rbac {
		if u.GetKind() == "ServiceAccount" {
			sa = u.GetName()
		}
	}
	cm, err := toUnstructured(configMap(b, o))
	if err != nil {
		return nil, err
	}
	j, err := toUnstructured(jobOf(b, o, sa))
	if err != nil {
		return nil, err
	}
	return append(out, cm, j), nil
}

func labels(o Options) map[string]string {
	return map[string]string{labelName: "scaleout", labelInstance: o.Name, labelManagedBy: "scaleout"}
}

func configMap(b Bundle, o Options) *corev1.ConfigMap {
	cm := &corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: metav1.ObjectMeta{Name: o.Name, Namespace: o.Namespace, Labels: labels(o)},
	}
	for _, f := range b.Files {
		if utf8.Valid(f.Data) {
			if cm.Data == nil {
				cm.Data = map[string]string{}
			}
			cm.Data[f.Key] = string(f.Data)
		} else {
			if cm.BinaryData == nil {
				cm.BinaryData = map[string][]byte{}
			}
			cm.BinaryData[f.Key] = f.Data
		}
	}
	return cm
}

func jobOf(b Bundle, o Options, serviceAccount string) *batchv1.Job {
	n := int32(o.Parallelism)
	zero := int32(0)
	indexed := batchv1.IndexedCompletion
	yes, no := true, false
	uid := int64(65532)
	ro := int32(0o444)
	var items []corev1.KeyToPath
	for _, f := range b.Files {
		items = append(items, corev1.KeyToPath{Key: f.Key, Path: f.Path})
	}
	qty := corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse(o.CPU),
		corev1.ResourceMemory: resource.MustParse(o.Memory),
	}
	var envFrom []corev1.EnvFromSource
	for _, s := range o.Secrets {
		envFrom = append(envFrom, corev1.EnvFromSource{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: s}}})
	}
	j := &batchv1.Job{
		TypeMeta: metav1.TypeMeta{APIVersion: "batch/v1", Kind: "Job"},
		ObjectMeta: metav1.ObjectMeta{
			Name: o.Name, Namespace: o.Namespace, Labels: labels(o),
			Annotations: map[string]string{
				AnnStartAt:  o.StartAt.UTC().Format(time.RFC3339),
				AnnShards:   strconv.Itoa(o.Parallelism),
				AnnScenario: b.Scenario,
			},
		},
		Spec: batchv1.JobSpec{
			CompletionMode: &indexed,
			Completions:    &n,
			Parallelism:    &n,
			// A shard that cannot run (exit 2 or 3) fails the run: the
			// others' load is not the scenario's. A shard whose
			// expectations failed still exits 0 (the wrapper): the verdict
			// is the merged run's.
			BackoffLimit: &zero,
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels(o)},
				Spec: corev1.PodSpec{
					RestartPolicy:                 corev1.RestartPolicyNever,
					ServiceAccountName:            serviceAccount,
					NodeSelector:                  o.NodeSelector,
					TerminationGracePeriodSeconds: ptr(int64(60)),
					SecurityContext: &corev1.PodSecurityContext{
						RunAsNonRoot:   &yes,
						RunAsUser:      &uid,
						RunAsGroup:     &uid,
						SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
					},
					Containers: []corev1.Container{{
						Name:            Container,
						Image:           o.Image,
						ImagePullPolicy: corev1.PullPolicy(o.PullPolicy),
						Args:            PodArgs(o),
						Env: []corev1.EnvVar{{Name: indexEnv, ValueFrom: &corev1.EnvVarSource{
							FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.annotations['" + IndexAnnotation + "']"}}}},
						EnvFrom:    envFrom,
						WorkingDir: "/work",
						Resources:  corev1.ResourceRequirements{Requests: qty, Limits: qty},
						SecurityContext: &corev1.SecurityContext{
							AllowPrivilegeEscalation: &no,
							ReadOnlyRootFilesystem:   &yes,
							Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
						},
						VolumeMounts: []corev1.VolumeMount{
							{Name: "config", MountPath: ConfigDir, ReadOnly: true},
							{Name: "work", MountPath: "/work"},
							{Name: "tmp", MountPath: "/tmp"},
						},
					}},
					Volumes: []corev1.Volume{
						{Name: "config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
							LocalObjectReference: corev1.LocalObjectReference{Name: o.Name}, Items: items, DefaultMode: &ro}}},
						{Name: "work", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
						{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
					},
				},
			},
		},
	}
	if o.TTL > 0 {
		j.Spec.TTLSecondsAfterFinished = ptr(int32(o.TTL / time.Second))
	}
	return j
}

func ptr[T any](v T) *T { return &v }

// toUnstructured converts a typed object, leaving out what the API server
// fills (creationTimestamp, status).
func toUnstructured(obj runtime.Object) (*unstructured.Unstructured, error) {
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return nil, err
	}
	u := &unstructured.Unstructured{Object: m}
	unstructured.RemoveNestedField(u.Object, "metadata", "creationTimestamp")
	unstructured.RemoveNestedField(u.Object, "spec", "template", "metadata", "creationTimestamp")
	unstructured.RemoveNestedField(u.Object, "status")
	return u, nil
}

// RBAC is deploy/rbac.yaml's objects, as written (namespace serving, the
// cluster-scoped ones too).
func RBAC() ([]*unstructured.Unstructured, error) {
	return decodeAll(deploy.RBAC)
}

func decodeAll(data []byte) ([]*unstructured.Unstructured, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var out []*unstructured.Unstructured
	for {
		doc, err := r.Read()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		m := map[string]any{}
		if err := sigsyaml.Unmarshal(doc, &m); err != nil {
			return nil, err
		}
		if len(m) == 0 {
			continue
		}
		out = append(out, &unstructured.Unstructured{Object: m})
	}
}

// YAML writes objects as one multi-document YAML stream, keys sorted.
func YAML(objs []*unstructured.Unstructured) ([]byte, error) {
	var buf bytes.Buffer
	for i, u := range objs {
		if i > 0 {
			buf.WriteString("---\n")
		}
		b, err := sigsyaml.Marshal(u.Object)
		if err != nil {
			return nil, err
		}
		buf.Write(b)
	}
	return buf.Bytes(), nil
}

// kinds maps the kinds Manifests renders to their resources.
var kinds = map[string]string{
	"ServiceAccount": "serviceaccounts", "Role": "roles", "RoleBinding": "rolebindings",
	"ConfigMap": "configmaps", "Job": "jobs",
}

// Kinds are the kinds Manifests renders, sorted.
func Kinds() []string {
	var k []string
	for n := range kinds {
		k = append(k, n)
	}
	slices.Sort(k)
	return k
}
