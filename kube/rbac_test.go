package kube

import (
	"bytes"
	"errors"
	"io"
	"os"
	"sort"
	"strings"
	"testing"

	yaml "go.yaml.in/yaml/v4"
)

// deploy/rbac.yaml grants exactly the verbs a run uses (Needs): the read
// Role all of them but patch, the guard Role patch on scaledobjects alone.
func TestRBACManifestGrantsExactlyTheNeeds(t *testing.T) {
	roles := roleRules(t, "../deploy/rbac.yaml")
	want := func(act bool, keep func(Need) bool) []string {
		var out []string
		for _, n := range Needs(gpu, act) {
			if keep(n) {
				out = append(out, n.Verb+" "+n.Resource+"."+n.Group)
			}
		}
		return out
	}
	same := func(name string, got, want []string) {
		sort.Strings(got)
		sort.Strings(want)
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("Role %s grants\n  %v\nthe run uses\n  %v", name, got, want)
		}
	}
	same("scaleout-read", roles["scaleout-read"], want(false, func(Need) bool { return true }))
	same("scaleout-guard", roles["scaleout-guard"], want(true, func(n Need) bool { return n.Verb == "patch" }))
}

// roleRules reads the Roles of a manifest: name → "verb resource.group".
func roleRules(t *testing.T, path string) map[string][]string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	type rule struct {
		APIGroups []string `yaml:"apiGroups"`
		Resources []string `yaml:"resources"`
		Verbs     []string `yaml:"verbs"`
	}
	roles := map[string][]string{}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var doc struct {
			Kind     string
			Metadata struct{ Name string }
			Rules    []rule
		}
		if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if doc.Kind != "Role" {
			continue
		}
		for _, r := range doc.Rules {
			for _, g := range r.APIGroups {
				for _, res := range r.Resources {
					for _, v := range r.Verbs {
						roles[doc.Metadata.Name] = append(roles[doc.Metadata.Name], v+" "+res+"."+g)
					}
				}
			}
		}
	}
	return roles
}
