#!/usr/bin/env bash
# Builds the rig's binaries into a cache outside the repository:
#   ${SCALEOUT_RIG_CACHE:-$HOME/.cache/scaleout-rig}/bin-<key>
# where <key> hashes rig/bins/go.sum, this script and the versions below. A
# present cache directory is complete by construction (built in a temporary
# directory, renamed at the end), so a warm run only checks that it exists.
# Prints the cache directory on stdout as its last line; progress on stderr.
set -euo pipefail

K8S_VERSION=v1.37.2
KWOK_VERSION=v0.8.0
KEDA_VERSION=v2.21.0

here=$(cd "$(dirname "$0")" && pwd)
go=${GO:-go}
cache_root=${SCALEOUT_RIG_CACHE:-$HOME/.cache/scaleout-rig}
key=$({ cat "$here/bins/go.sum" "$here/build.sh"; echo "$K8S_VERSION $KWOK_VERSION $KEDA_VERSION $($go env GOVERSION)"; } | sha256sum | cut -c1-16)
out="$cache_root/bin-$key"

if [ -x "$out/kube-apiserver" ] && [ -f "$out/.complete" ]; then
	echo "rig-build: cache present: $out" >&2
	echo "$out"
	exit 0
fi

mkdir -p "$cache_root"
tmp=$(mktemp -d "$cache_root/.tmp-bin-$key.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
start=$(date +%s)
step() { # step NAME CMD...: run CMD, report elapsed time for NAME
	local name=$1 t0
	shift
	t0=$(date +%s)
	echo "rig-build: $name ..." >&2
	"$@"
	echo "rig-build: $name done in $(($(date +%s) - t0))s (total $(($(date +%s) - start))s)" >&2
}

flags=(-trimpath)
kver="-X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=37 -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION"
kbuild() { (cd "$here/bins" && $go build "${flags[@]}" -ldflags "-s -w $kver" -o "$tmp/$1" "./cmd/$1"); }

step etcd kbuild etcd
step kube-apiserver kbuild kube-apiserver
step kube-controller-manager kbuild kube-controller-manager
step kube-scheduler kbuild kube-scheduler

kwok_dir=$($go mod download -json "sigs.k8s.io/kwok@$KWOK_VERSION" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
step kwok env GOBIN="$tmp" $go install "${flags[@]}" -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
mkdir -p "$tmp/kwok-stages"
cp "$kwok_dir"/kustomize/stage/node/fast/node-initialize.yaml "$kwok_dir"/kustomize/stage/node/heartbeat/node-heartbeat.yaml "$kwok_dir"/kustomize/stage/pod/general/*.yaml "$tmp/kwok-stages/"

keda_src=$($go mod download -json "github.com/kedacore/keda/v2@$KEDA_VERSION" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
keda_dir="$cache_root/src-keda-$KEDA_VERSION"
if [ ! -f "$keda_dir/go.mod" ]; then
	rm -rf "$keda_dir.tmp"
	cp -r "$keda_src" "$keda_dir.tmp"
	chmod -R u+w "$keda_dir.tmp"
	mv "$keda_dir.tmp" "$keda_dir"
fi
kedaver="-X github.com/kedacore/keda/v2/version.Version=$KEDA_VERSION -X github.com/kedacore/keda/v2/version.GitCommit=module"
step keda-operator sh -c "cd '$keda_dir' && $go build ${flags[*]} -ldflags '-s -w $kedaver' -o '$tmp/keda-operator' ./cmd/operator"
step keda-adapter sh -c "cd '$keda_dir' && $go build ${flags[*]} -ldflags '-s -w $kedaver' -o '$tmp/keda-adapter' ./cmd/adapter"
mkdir -p "$tmp/keda-crds"
cp "$keda_dir"/config/crd/bases/*.yaml "$tmp/keda-crds/"

echo "k8s=$K8S_VERSION kwok=$KWOK_VERSION keda=$KEDA_VERSION" >"$tmp/VERSIONS"
touch "$tmp/.complete"
rm -rf "$out"
mv "$tmp" "$out"
trap - EXIT
echo "rig-build: all binaries in $out after $(($(date +%s) - start))s" >&2
echo "$out"
