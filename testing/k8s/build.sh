#!/usr/bin/env bash
# Build the Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler), kubectl and helm from their Go modules, once per (Kubernetes, Go)
# version pair, into a cache outside the repo. Prints the cache directory.
#
# The wrapper modules here (go.mod/go.sum beside this script, ../helm) pin every version;
# `--regen` re-derives this module's replace block from k8s.io/kubernetes' own go.mod
# (its staging modules are required at v0.0.0 and replaced by local paths, which a
# dependent module cannot see, so each needs a `replace k8s.io/X => k8s.io/X v0.MINOR.PATCH`).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
GO=${GO:-$(command -v go || echo /usr/local/go/bin/go)}
K8S=$(sed -nE 's#^(require)?[[:space:]]*k8s\.io/kubernetes v([0-9.]+).*#\2#p' "$HERE/go.mod" | head -1)
HELM=$(sed -nE 's#^[[:space:]]*helm\.sh/helm/v[0-9]+ v([0-9.]+).*#\1#p' "$HERE/../helm/go.mod" | head -1)
GOV=$("$GO" env GOVERSION)
OUT=${PLAIT_K8S_BIN:-${XDG_CACHE_HOME:-$HOME/.cache}/plait/k8s/$K8S-$GOV}
ALL=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl helm)

if [[ ${1:-} == --print-dir ]]; then echo "$OUT"; exit 0; fi
if [[ ${1:-} == --regen ]]; then
  # Re-derive the replace block from upstream's go.mod (used once per Kubernetes bump).
  K8S=${2:?usage: build.sh --regen 1.37.2}; STAGING=v0.${K8S#1.}
  GOMOD=$(cd /tmp && "$GO" mod download -json "k8s.io/kubernetes@v$K8S" |
    python3 -c 'import json,sys;print(json.load(sys.stdin)["GoMod"])')
  cd "$HERE"
  { echo 'module plait.test/k8s-testbins'; echo; grep -E '^(go |godebug)' "$GOMOD"; echo; echo 'replace ('
    sed -nE 's#^[[:space:]]*(k8s\.io/[A-Za-z0-9._-]+)[[:space:]]+=>[[:space:]]+\./staging/.*#\t\1 => \1 '"$STAGING"'#p' "$GOMOD"
    echo ')'; } > go.mod
  rm -f go.sum
  "$GO" get -tool "k8s.io/kubernetes/cmd/kube-apiserver@v$K8S" "k8s.io/kubernetes/cmd/kube-controller-manager@v$K8S" \
    "k8s.io/kubernetes/cmd/kube-scheduler@v$K8S" "k8s.io/kubernetes/cmd/kubectl@v$K8S"
  "$GO" get -tool "go.etcd.io/etcd/server/v3@$("$GO" list -m -f '{{.Version}}' go.etcd.io/etcd/server/v3)"
  "$GO" mod tidy
  exit 0
fi

# Arguments: the binaries wanted (default: all of them).
BINS=("$@"); [[ ${#BINS[@]} -gt 0 ]] || BINS=("${ALL[@]}")
[[ $(cat "$OUT/helm.version" 2>/dev/null) == "$HELM" ]] || rm -f "$OUT/helm"
missing=()
for b in "${BINS[@]}"; do [[ -x $OUT/$b ]] || missing+=("$b"); done
if [[ ${#missing[@]} == 0 ]]; then echo "$OUT"; exit 0; fi

mkdir -p "$OUT"
export CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS="${GOFLAGS:-} -modcacherw -mod=readonly"
# Heavy compile: lowest priority, and one package at a time on a shared machine (CI, which
# has the machine to itself, uses every core) unless PLAIT_K8S_BUILD_P says otherwise.
NICE=(nice -n 19)
if [[ -n ${CI:-} ]]; then PAR=${PLAIT_K8S_BUILD_P:-$(nproc)}; else PAR=${PLAIT_K8S_BUILD_P:-1}; fi
start=$(date +%s)
MINOR=$(echo "$K8S" | cut -d. -f2)
# Version stamps as kubernetes' hack/lib/version.sh sets them; without them /version says
# v0.0.0-master+$Format:%H$ and helm's kubeVersion checks fail.
LDF="-s -w"
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  LDF+=" -X $p.gitVersion=v$K8S -X $p.gitMajor=1 -X $p.gitMinor=$MINOR -X $p.gitTreeState=clean"
  LDF+=" -X $p.buildDate=1970-01-01T00:00:00Z"
done
cd "$HERE"
for c in "${missing[@]}"; do
  [[ $c == etcd || $c == helm ]] && continue
  echo "building $c v$K8S with $GOV" >&2
  "${NICE[@]}" "$GO" build -p "$PAR" -trimpath -tags=selinux,notest -ldflags="$LDF" -o "$OUT/$c.tmp" "k8s.io/kubernetes/cmd/$c"
  mv "$OUT/$c.tmp" "$OUT/$c"
done
if [[ " ${missing[*]} " == *" etcd "* ]]; then
  echo "building etcd with $GOV" >&2
  "${NICE[@]}" "$GO" build -p "$PAR" -trimpath -ldflags="-s -w" -o "$OUT/etcd.tmp" go.etcd.io/etcd/server/v3
  mv "$OUT/etcd.tmp" "$OUT/etcd"
fi
if [[ " ${missing[*]} " == *" helm "* ]]; then
  echo "building helm v$HELM with $GOV" >&2
  cd "$HERE/../helm"
  HV=helm.sh/helm/v${HELM%%.*}/internal/version
  "${NICE[@]}" "$GO" build -p "$PAR" -trimpath -ldflags="-s -w -X $HV.version=v$HELM" \
    -o "$OUT/helm.tmp" "helm.sh/helm/v${HELM%%.*}/cmd/helm"
  mv "$OUT/helm.tmp" "$OUT/helm"
  echo "$HELM" > "$OUT/helm.version"
fi
echo "built in $(( $(date +%s) - start )) s" >&2
echo "$OUT"
