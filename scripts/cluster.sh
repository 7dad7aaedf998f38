#!/usr/bin/env bash
# The node half of `scripts/localenv.sh up --cluster`: a real one-node
# Kubernetes cluster beside the control plane localenv starts.
#
# Sourced by localenv.sh (it uses its DIR, TOOLS, log, start, wait_for and
# free_port); not run on its own. What it adds:
#   - a node network: a network namespace `sluice-N` joined to the host by a
#     veth pair (host 10.241.N.1, node 10.241.N.2). The node's processes and
#     its pods live there, so kube-proxy's and the CNI plugins' iptables
#     rules, the bridge and the kubelet's ports never touch the host's, two
#     clusters can run side by side, and removing the namespace removes them
#     all. The node has no default route: pods reach the host address (the
#     API server and the AWS emulator listen there) and nothing else;
#   - kube-controller-manager (service-account token key, root CA publisher)
#     and kube-scheduler, on 127.0.0.1;
#   - containerd (Debian's, with runc and the CNI plugins in /usr/lib/cni)
#     with its own root, state and socket under DIR; the pause image built
#     from Kubernetes' own pause.c and imported, so nothing is pulled;
#   - kubelet, registered as node `sluice-node`, and kube-proxy (iptables);
#   - the CNI configuration: bridge + host-local on 10.242.N.0/24.
# The kubelet, containerd and kube-proxy enter the node network with
# `nsenter --net` only, so they share the host's mounts (the kubelet's volume
# mounts must be visible to containerd).
#
# Facts about the machines this runs on: no systemd (cgroupfs, not the
# systemd cgroup driver), cgroup v1, no CAP_SYS_RESOURCE (containerd's
# restrict_oom_score_adj, and oom_score_adj 0 for the kubelet and
# kube-proxy: lowering a score is refused).

CACHE_DIR="${SLUICE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sluice}"
NODE_NAME=sluice-node
SERVICE_CIDR=10.0.0.0/24
SERVICE_API_IP=10.0.0.1
PAUSE_IMAGE=sluice.local/pause:3.10

# Picks the first free N (creating the veth pair is the atomic claim), makes
# the node namespace and addresses. Sets NODE_N, NETNS, HOST_IP, NODE_IP,
# POD_CIDR and records them in DIR/cluster.vars for `down`.
cluster_network_up() {
  local n
  for n in $(seq 1 250); do
    ip link add "sluice${n}h" type veth peer name "sluice${n}n" 2>/dev/null && break
    if ((n == 250)); then log "no free node network (sluice1h..sluice250h all exist)"; return 1; fi
  done
  NODE_N=$n NETNS="sluice-$n" HOST_IP="10.241.$n.1" NODE_IP="10.241.$n.2" POD_CIDR="10.242.$n.0/24"
  cat >"$DIR/cluster.vars" <<VARS
NODE_N=$NODE_N
NETNS=$NETNS
HOST_IP=$HOST_IP
NODE_IP=$NODE_IP
POD_CIDR=$POD_CIDR
VARS
  # A namespace of that name left by a run that was killed: its veth is gone
  # (we just created ours), so nothing uses it.
  ip netns del "$NETNS" 2>/dev/null || true
  ip netns add "$NETNS"
  ip link set "sluice${n}n" netns "$NETNS"
  ip addr add "$HOST_IP/24" dev "sluice${n}h"
  ip link set "sluice${n}h" up
  ip -n "$NETNS" link set lo up
  ip -n "$NETNS" addr add "$NODE_IP/24" dev "sluice${n}n"
  ip -n "$NETNS" link set "sluice${n}n" up
  ip netns exec "$NETNS" sysctl -qw net.ipv4.ip_forward=1
  # The host reaches pods (the API server's proxy, the tests' metrics reads).
  ip route add "$POD_CIDR" via "$NODE_IP"
  # The prefix that runs a command in the node network (nsenter execs it,
  # so `start` records the command's own pid).
  IN_NODE=(nsenter --net="/run/netns/$NETNS")
}

# Client certificates of the node's components and of the API server's
# calls to the kubelet, with the identities the default RBAC and the Node
# authorizer expect.
cluster_certs() {
  local c="$DIR/pki" name subject
  for name in kubelet kube-proxy controller-manager scheduler apiserver-kubelet-client; do
    case "$name" in
      kubelet) subject="/O=system:nodes/CN=system:node:$NODE_NAME" ;;
      kube-proxy) subject="/CN=system:kube-proxy" ;;
      controller-manager) subject="/CN=system:kube-controller-manager" ;;
      scheduler) subject="/CN=system:kube-scheduler" ;;
      apiserver-kubelet-client) subject="/O=system:masters/CN=kube-apiserver-kubelet-client" ;;
    esac
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "$subject" \
      -keyout "$c/$name.key" -out "$c/$name.csr" 2>/dev/null
    openssl x509 -req -in "$c/$name.csr" -CA "$c/ca.crt" -CAkey "$c/ca.key" -CAcreateserial \
      -days 2 -extfile "$c/admin.ext" -out "$c/$name.crt" 2>/dev/null
  done
}

# The API server flags that differ from the control-plane-only mode.
cluster_apiserver_flags() {
  local c="$DIR/pki"
  CLUSTER_APISERVER_FLAGS=(
    --authorization-mode Node,RBAC
    --enable-admission-plugins NodeRestriction
    --kubelet-client-certificate "$c/apiserver-kubelet-client.crt"
    --kubelet-client-key "$c/apiserver-kubelet-client.key"
    --kubelet-preferred-address-types InternalIP
  )
}

# component_kubeconfig NAME: a kubeconfig for one component's certificate.
component_kubeconfig() {
  local name="$1" c="$DIR/pki"
  cat >"$DIR/$name.kubeconfig" <<KUBECONFIG
apiVersion: v1
kind: Config
clusters:
- name: sluice-local
  cluster: {server: "$API_URL", certificate-authority: $c/ca.crt}
users:
- name: $name
  user: {client-certificate: $c/$name.crt, client-key: $c/$name.key}
contexts:
- name: $name
  context: {cluster: sluice-local, user: $name}
current-context: $name
KUBECONFIG
}

# The pause image every pod's sandbox runs, from the pause.c of the pinned
# Kubernetes module, as a docker-archive tar cached by version.
pause_image() {
  local version; version="$("$TOOLS" k8s-version)"
  local tar="$CACHE_DIR/images/pause-$version.tar"
  if [[ ! -f "$tar" ]]; then
    local src work
    src="$(cd "$ROOT/e2e/tools/controlplane" && go list -m -f '{{.Dir}}' k8s.io/kubernetes)/build/pause/linux/pause.c"
    work="$(mktemp -d)"
    mkdir -p "$work/context" "$(dirname "$tar")"
    gcc -Os -static -DVERSION="$version" -o "$work/context/pause" "$src"
    strip "$work/context/pause"
    printf 'FROM scratch\nCOPY pause /pause\nUSER 65535:65535\nENTRYPOINT ["/pause"]\n' >"$work/context/Dockerfile"
    "$ROOT/scripts/image.sh" archive "$work/context" "$PAUSE_IMAGE" "$tar.tmp.$$"
    mv "$tar.tmp.$$" "$tar"
    rm -rf "$work"
  fi
  echo "$tar"
}

containerd_config() {
  local d="$DIR/containerd"
  mkdir -p "$d" "$DIR/cni/net.d"
  cat >"$d/config.toml" <<TOML
version = 2
root = "$d/root"
state = "$d/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]
[grpc]
  address = "$d/containerd.sock"
[ttrpc]
  address = "$d/containerd.sock.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "$d/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  # Without CAP_SYS_RESOURCE, runc cannot lower oom_score_adj below its own;
  # clamp instead of failing every pod.
  restrict_oom_score_adj = true
  # Pod network namespaces are mounted under DIR, so teardown finds them.
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$DIR/cni/net.d"
TOML
  cat >"$DIR/cni/net.d/10-sluice.conflist" <<JSON
{
  "cniVersion": "1.0.0",
  "name": "sluice",
  "plugins": [
    {
      "type": "bridge", "bridge": "sluice0", "isGateway": true, "ipMasq": true, "hairpinMode": true,
      "ipam": {"type": "host-local", "ranges": [[{"subnet": "$POD_CIDR"}]],
               "routes": [{"dst": "0.0.0.0/0"}], "dataDir": "$DIR/cni/ipam"}
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
JSON
}

kubelet_config() {
  cat >"$DIR/kubelet.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
containerRuntimeEndpoint: unix://$DIR/containerd/containerd.sock
cgroupDriver: cgroupfs
# Pod cgroups under a root of this cluster's own: another kubelet on the
# machine never sees them as orphans (and removes them).
cgroupRoot: /$CGROUP_ROOT
failSwapOn: false
oomScoreAdj: 0
address: $NODE_IP
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $DIR/pki/ca.crt}
authorization: {mode: Webhook}
registerNode: true
resolvConf: /etc/resolv.conf
# Container logs under DIR: a kubelet removes the log directories of pods it
# does not know, so two clusters must not share /var/log/pods.
podLogsDir: $DIR/pod-logs
# Never act on disk pressure ("0%" turns a signal off): under it the kubelet
# deletes every image no container uses, the pause image included, and they
# cannot be pulled back; and the disk of a machine shared with other builds
# fills and empties by itself. Never collect images either.
evictionHard: {memory.available: 100Mi, nodefs.available: "0%", nodefs.inodesFree: "0%", imagefs.available: "0%", imagefs.inodesFree: "0%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
YAML
}

kube_proxy_config() {
  cat >"$DIR/kube-proxy.yaml" <<YAML
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $DIR/kube-proxy.kubeconfig}
mode: iptables
hostnameOverride: $NODE_NAME
clusterCIDR: $POD_CIDR
metricsBindAddress: 127.0.0.1:10249
healthzBindAddress: 127.0.0.1:10256
oomScoreAdj: 0
# Leave the machine-wide conntrack settings alone.
conntrack: {maxPerCore: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
YAML
}

# A cgroup of this cluster's own in every v1 hierarchy: the kubelet's root.
cgroups_up() {
  local h
  for h in /sys/fs/cgroup/*/; do
    [[ "$h" == */unified/ ]] && continue
    mkdir -p "$h$CGROUP_ROOT"
  done
}

# Starts everything after the API server answers; waits for a Ready node.
cluster_up() {
  local start=$SECONDS kubectl
  kubectl="$("$TOOLS" path kubectl)"
  CGROUP_ROOT="sluice-$NODE_N"
  echo "CGROUP_ROOT=$CGROUP_ROOT" >>"$DIR/cluster.vars"
  local name
  for name in kubelet kube-proxy controller-manager scheduler; do component_kubeconfig "$name"; done

  local cm_port sched_port
  cm_port=$(free_port); sched_port=$(free_port)
  start kube-controller-manager "$("$TOOLS" path kube-controller-manager)" \
    --kubeconfig "$DIR/controller-manager.kubeconfig" \
    --authentication-kubeconfig "$DIR/controller-manager.kubeconfig" \
    --authorization-kubeconfig "$DIR/controller-manager.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port "$cm_port" --cert-dir "$DIR/controller-manager" \
    --service-account-private-key-file "$DIR/pki/sa.key" --root-ca-file "$DIR/pki/ca.crt" \
    --use-service-account-credentials --service-cluster-ip-range "$SERVICE_CIDR" \
    --leader-elect=false --v=0
  start kube-scheduler "$("$TOOLS" path kube-scheduler)" \
    --kubeconfig "$DIR/scheduler.kubeconfig" \
    --authentication-kubeconfig "$DIR/scheduler.kubeconfig" \
    --authorization-kubeconfig "$DIR/scheduler.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port "$sched_port" --cert-dir "$DIR/scheduler" \
    --leader-elect=false --v=0

  containerd_config
  cgroups_up
  start containerd "${IN_NODE[@]}" containerd --config "$DIR/containerd/config.toml"
  local ctr=(ctr --address "$DIR/containerd/containerd.sock" --namespace k8s.io)
  wait_for containerd 60 "${ctr[@]}" version
  "${ctr[@]}" images import "$(pause_image)" >/dev/null

  kubelet_config
  start kubelet "${IN_NODE[@]}" "$("$TOOLS" path kubelet)" --config "$DIR/kubelet.yaml" \
    --kubeconfig "$DIR/kubelet.kubeconfig" --root-dir "$DIR/kubelet" --cert-dir "$DIR/kubelet/pki" \
    --hostname-override "$NODE_NAME" --node-ip "$NODE_IP" --v=0
  kube_proxy_config
  start kube-proxy "${IN_NODE[@]}" "$("$TOOLS" path kube-proxy)" --config "$DIR/kube-proxy.yaml" --v=0

  wait_for kube-controller-manager 60 curl -skf "https://127.0.0.1:$cm_port/healthz"
  wait_for kube-scheduler 60 curl -skf "https://127.0.0.1:$sched_port/healthz"
  wait_for "node $NODE_NAME" 120 "$kubectl" --kubeconfig "$DIR/kubeconfig" wait --for=condition=Ready \
    "node/$NODE_NAME" --timeout=1s
  # Pods get a token only once their namespace's default ServiceAccount
  # exists (the controller-manager creates it).
  wait_for "default ServiceAccount" 60 "$kubectl" --kubeconfig "$DIR/kubeconfig" get serviceaccount default
  log "node $NODE_NAME Ready $((SECONDS - start)) s after the API server"
}

# pids_of_cluster: every process of this cluster's containers (their cgroups)
# and its containerd shims (their command line names our socket).
pids_of_cluster() {
  if [[ -n "${CGROUP_ROOT:-}" && -d "/sys/fs/cgroup/pids/$CGROUP_ROOT" ]]; then
    find "/sys/fs/cgroup/pids/$CGROUP_ROOT" -name cgroup.procs -exec cat {} + 2>/dev/null
  fi
  pgrep -f -- "containerd-shim.* -address $DIR/containerd/containerd.sock" || true
}

# Stops the node: kubelet and kube-proxy first (nothing restarts a
# container), then every container process and shim, then containerd; then
# unmounts what they mounted under DIR and removes the cgroups and the node
# network. Safe to run on a partly started cluster.
cluster_down() {
  [[ -f "$DIR/cluster.vars" ]] || return 0
  # shellcheck disable=SC1091
  source "$DIR/cluster.vars"
  stop_named kubelet kube-proxy kube-scheduler kube-controller-manager
  local pid
  for pid in $(pids_of_cluster); do kill -9 "$pid" 2>/dev/null || true; done
  stop_named containerd
  for pid in $(pids_of_cluster); do kill -9 "$pid" 2>/dev/null || true; done
  local mount
  # Deepest first; lazily, should a dying process still hold one.
  awk -v dir="$DIR/" 'index($5, dir) == 1 {print $5}' /proc/self/mountinfo | sort -r | while read -r mount; do
    umount -l "$mount" 2>/dev/null || true
  done
  if [[ -n "${CGROUP_ROOT:-}" ]]; then
    local h
    for h in /sys/fs/cgroup/*/; do
      [[ -d "$h$CGROUP_ROOT" ]] || continue
      find "$h$CGROUP_ROOT" -depth -type d -exec rmdir {} + 2>/dev/null || true
    done
  fi
  if [[ -n "${NODE_N:-}" ]]; then
    ip route del "$POD_CIDR" 2>/dev/null || true
    ip link del "sluice${NODE_N}h" 2>/dev/null || true
    ip netns del "$NETNS" 2>/dev/null || true
  fi
}
