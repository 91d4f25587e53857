// Package deploy holds the manifests a cluster administrator applies for
// scaleout, embedded so that the tool renders from the same bytes: rbac.yaml
// is the RBAC a run needs (kubectl apply -f deploy/rbac.yaml), and the
// ServiceAccount and Roles `scaleout job` gives its pods.
package deploy

import _ "embed"

// RBAC is rbac.yaml: the ServiceAccount scaleout, the Roles scaleout-read
// and scaleout-guard and their RoleBindings in the namespace "serving", and
// the cluster-scoped scaleout-check.
//
//go:embed rbac.yaml
var RBAC []byte
