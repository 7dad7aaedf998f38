#!/usr/bin/env bash
# A real local control plane and AWS emulator, on 127.0.0.1 and free ports:
#   etcd + kube-apiserver (TLS, RBAC, service-account issuer and signing key,
#   an admin client certificate in a kubeconfig) and moto server, with a
#   gateway in front of it for SDKs speaking CBOR (CloudWatch's).
#
# With --cluster, also a one-node cluster (scripts/cluster.sh): controller-
# manager, scheduler, containerd, kubelet, kube-proxy and CNI in a network
# namespace of its own; the API server and moto then listen on the host's
# address in that network instead of 127.0.0.1 (pods reach them there).
#
#   scripts/localenv.sh up [DIR] [--cluster]   start; writes DIR/env (source it) and DIR/kubeconfig
#   scripts/localenv.sh down [DIR]             stop everything started in DIR and remove DIR
#   scripts/localenv.sh restart-apiserver DIR SECONDS
#                                              kill the API server (SIGKILL), wait SECONDS,
#                                              start it again as before and wait until it is
#                                              ready (what a control-plane upgrade does to
#                                              clients; e2e/tests/apiserver_restart.rs)
#
# DIR defaults to $SLUICE_ENV_DIR or /tmp/sluice-env. Tools come from
# scripts/tools.sh (built once, cached outside the repository).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CMD="${1:-up}"
shift || true
CLUSTER=0 DIR="" RESTART_AFTER=""
if [[ "$CMD" == restart-apiserver ]]; then
  DIR="${1:-}" RESTART_AFTER="${2:-}"
else
  for arg in "$@"; do
    case "$arg" in
      --cluster) CLUSTER=1 ;;
      *) DIR="$arg" ;;
    esac
  done
fi
DIR="${DIR:-${SLUICE_ENV_DIR:-/tmp/sluice-env}}"
TOOLS="$ROOT/scripts/tools.sh"
# shellcheck source=scripts/cluster.sh
source "$ROOT/scripts/cluster.sh"

log() { echo "localenv: $*" >&2; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

# wait_for DESCRIPTION SECONDS COMMAND...: polls until COMMAND succeeds.
wait_for() {
  local what="$1" limit="$2"; shift 2
  local deadline=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      log "$what did not come up within ${limit}s; last log lines:"
      tail -n 30 "$DIR"/*.log >&2 || true
      return 1
    fi
    sleep 0.2
  done
}

start() { # start NAME COMMAND...: runs in the background, logs to DIR/NAME.log
  local name="$1"; shift
  "$@" >>"$DIR/$name.log" 2>&1 &
  echo "$!" >"$DIR/$name.pid"
  # The command, to start it again (restart-apiserver).
  printf '%q ' "$@" >"$DIR/$name.cmd"
}

restart_apiserver() {
  local seconds="${1:?usage: $0 restart-apiserver DIR SECONDS}"
  [[ -f "$DIR/kube-apiserver.pid" && -f "$DIR/kube-apiserver.cmd" ]] || { log "no API server in $DIR"; return 1; }
  local pid; pid="$(cat "$DIR/kube-apiserver.pid")"
  kill -9 "$pid"
  while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
  log "kube-apiserver killed; starting it again in ${seconds}s"
  sleep "$seconds"
  local cmd; cmd="$(cat "$DIR/kube-apiserver.cmd")"
  eval "start kube-apiserver $cmd"
  wait_for kube-apiserver 120 "$("$TOOLS" path kubectl)" --kubeconfig "$DIR/kubeconfig" get --raw /readyz
  log "kube-apiserver ready again"
}

make_certs() {
  local c="$DIR/pki"
  mkdir -p "$c"
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=sluice-local-ca" \
    -keyout "$c/ca.key" -out "$c/ca.crt" 2>/dev/null
  # Serving certificate for 127.0.0.1 and localhost.
  openssl req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" \
    -keyout "$c/apiserver.key" -out "$c/apiserver.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes.default.svc%s\nextendedKeyUsage=serverAuth\n' \
    "${EXTRA_SANS:-}" >"$c/apiserver.ext"
  openssl x509 -req -in "$c/apiserver.csr" -CA "$c/ca.crt" -CAkey "$c/ca.key" -CAcreateserial \
    -days 2 -extfile "$c/apiserver.ext" -out "$c/apiserver.crt" 2>/dev/null
  # Admin client certificate: group system:masters.
  openssl req -newkey rsa:2048 -nodes -subj "/O=system:masters/CN=sluice-admin" \
    -keyout "$c/admin.key" -out "$c/admin.csr" 2>/dev/null
  printf 'extendedKeyUsage=clientAuth\n' >"$c/admin.ext"
  openssl x509 -req -in "$c/admin.csr" -CA "$c/ca.crt" -CAkey "$c/ca.key" -CAcreateserial \
    -days 2 -extfile "$c/admin.ext" -out "$c/admin.crt" 2>/dev/null
  # Service-account token signing key.
  openssl genrsa -out "$c/sa.key" 2048 2>/dev/null
  openssl rsa -in "$c/sa.key" -pubout -out "$c/sa.pub" 2>/dev/null
}

up() {
  if [[ -f "$DIR/env" ]]; then
    log "already up in $DIR (run: $0 down $DIR)"
    return 0
  fi
  "$TOOLS" install
  mkdir -p "$DIR"
  local etcd_port etcd_peer api_port moto_port iam="${SLUICE_HARNESS_IAM:-enforce}"
  local access_key=testing secret_key=testing
  if [[ "$iam" == enforce ]]; then
    # The administrator the harness creates (e2e/moto/sluice_harness/iam.py).
    access_key=AKIASLUICEHARNESS000 secret_key=sluice-harness-admin-secret
  fi
  etcd_port=$(free_port); etcd_peer=$(free_port); api_port=$(free_port); moto_port=$(free_port)
  # Where the API server and moto listen: loopback, or in cluster mode the
  # host's end of the node network, which pods can reach.
  local listen=127.0.0.1 mode_flags=(--authorization-mode RBAC --disable-admission-plugins ServiceAccount)
  if ((CLUSTER)); then
    if ((EUID != 0)); then
      log "--cluster needs root (a network namespace, cgroups, mounts, apt-get)"
      return 1
    fi
    "$TOOLS" install-cluster
    cluster_network_up
    listen="$HOST_IP"
    EXTRA_SANS=",IP:$HOST_IP,IP:$SERVICE_API_IP,DNS:kubernetes,DNS:kubernetes.default"
    cluster_apiserver_flags
    mode_flags=("${CLUSTER_APISERVER_FLAGS[@]}")
  fi
  make_certs
  ((CLUSTER == 0)) || cluster_certs

  start etcd "$("$TOOLS" path etcd)" --data-dir "$DIR/etcd-data" \
    --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$etcd_peer" --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer" \
    --initial-cluster "default=http://127.0.0.1:$etcd_peer" --unsafe-no-fsync --quota-backend-bytes 1073741824 \
    --log-level warn
  # moto with the places where it answers unlike AWS mended, running the
  # deployed handler code and making AWS's deliveries (e2e/moto/launcher.py).
  # SLUICE_HARNESS_DELAY_FACTOR (default 1) scales AWS's documented waits.
  # IAM is enforced on every request unless SLUICE_HARNESS_IAM=off: clients
  # act as the harness's administrator (the keys in DIR/env), the operator
  # as a user holding config/iam/operator-policy*.json (roles it makes carry
  # config/iam/pipeline-boundary.json), handlers as their roles.
  # SLUICE_MOTO_LAUNCHER picks another launcher (make bench-fleet:
  # e2e/moto/fleet_launcher.py, without deliveries).
  # Python and Node functions run with AWS's runtime interface clients
  # (scripts/tools.sh install-runtimes); until they are installed, invoking
  # such a function fails saying so.
  SLUICE_HARNESS_DIR="$DIR/harness" SLUICE_HARNESS_IAM="$iam" \
    SLUICE_HARNESS_PYTHON_RUNTIME="$("$TOOLS" path runtime-python)" SLUICE_HARNESS_NODE_RIC="$("$TOOLS" path node-ric)" \
    start moto "$("$TOOLS" path python)" "${SLUICE_MOTO_LAUNCHER:-$ROOT/e2e/moto/launcher.py}" -H "$listen" -p "$moto_port"
  wait_for etcd 60 curl -sf "http://127.0.0.1:$etcd_port/health"

  local c="$DIR/pki"
  # An audit log of what ServiceAccounts do (the operators' pods): the
  # RBAC coverage test (e2e/tests/coverage.rs) checks every rule the chart
  # grants was used, and nothing was refused.
  cat >"$DIR/audit-policy.yaml" <<'AUDIT'
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Metadata
    userGroups: ["system:serviceaccounts"]
  - level: None
AUDIT
  start kube-apiserver "$("$TOOLS" path kube-apiserver)" \
    --audit-policy-file "$DIR/audit-policy.yaml" --audit-log-path "$DIR/audit.log" \
    --audit-log-format json --audit-log-maxsize 200 \
    --etcd-servers "http://127.0.0.1:$etcd_port" \
    --bind-address "$listen" --advertise-address "$listen" --secure-port "$api_port" \
    --tls-cert-file "$c/apiserver.crt" --tls-private-key-file "$c/apiserver.key" \
    --client-ca-file "$c/ca.crt" \
    "${mode_flags[@]}" \
    --service-account-issuer https://kubernetes.default.svc \
    --service-account-key-file "$c/sa.pub" --service-account-signing-key-file "$c/sa.key" \
    --service-cluster-ip-range "$SERVICE_CIDR" \
    --allow-privileged=true --v=0

  local kubectl; kubectl="$("$TOOLS" path kubectl)"
  cat >"$DIR/kubeconfig" <<KUBECONFIG
apiVersion: v1
kind: Config
clusters:
- name: sluice-local
  cluster:
    server: https://$listen:$api_port
    certificate-authority: $c/ca.crt
users:
- name: sluice-admin
  user:
    client-certificate: $c/admin.crt
    client-key: $c/admin.key
contexts:
- name: sluice-local
  context: {cluster: sluice-local, user: sluice-admin, namespace: default}
current-context: sluice-local
KUBECONFIG
  wait_for kube-apiserver 120 "$kubectl" --kubeconfig "$DIR/kubeconfig" get --raw /readyz
  wait_for "moto server" 60 curl -sf "http://$listen:$moto_port/moto-api/"
  # The Rust SDK speaks CBOR to CloudWatch, moto does not: a gateway
  # translates (e2e/moto/cbor_gateway.py); only CloudWatch clients use it.
  local cbor_port; cbor_port=$(free_port)
  start cbor-gateway "$("$TOOLS" path python)" "$ROOT/e2e/moto/cbor_gateway.py" \
    --upstream "http://$listen:$moto_port" -H "$listen" -p "$cbor_port"
  wait_for "CBOR gateway" 30 curl -s -o /dev/null "http://$listen:$cbor_port/"
  # Let moto's Step Functions interpreter run executions (Pass, Choice,
  # Task, Retry, Catch, Fail...). It keeps state machines in a store of its
  # own, so this comes before any is created.
  curl -sf -X POST -H 'Content-Type: application/json' \
    --data '{"stepfunctions": {"execute_state_machine": true}}' \
    "http://$listen:$moto_port/moto-api/config" >/dev/null
  # Wait until the default namespace exists (created by the apiserver's bootstrap controller).
  wait_for "default namespace" 60 "$kubectl" --kubeconfig "$DIR/kubeconfig" get namespace default
  if ((CLUSTER)); then
    API_URL="https://$listen:$api_port" cluster_up
  fi

  cat >"$DIR/env" <<ENV
export KUBECONFIG=$DIR/kubeconfig
export SLUICE_KUBECTL=$kubectl
export AWS_ENDPOINT_URL=http://$listen:$moto_port
export AWS_ENDPOINT_URL_CLOUDWATCH=http://$listen:$cbor_port
export AWS_ACCESS_KEY_ID=$access_key
export AWS_SECRET_ACCESS_KEY=$secret_key
export SLUICE_HARNESS_IAM=$iam
export AWS_REGION=us-east-1
export AWS_DEFAULT_REGION=us-east-1
export SLUICE_ENV_DIR=$DIR
ENV
  if ((CLUSTER)); then
    cat >>"$DIR/env" <<ENV
export SLUICE_CONTAINERD_ADDRESS=$DIR/containerd/containerd.sock
ENV
  fi
  log "up: kube-apiserver https://$listen:$api_port, moto http://$listen:$moto_port$( ((CLUSTER)) && echo ", node $NODE_NAME") (source $DIR/env)"
}

# stop_named NAME...: stops what `start NAME` started, all at once: SIGTERM,
# then SIGKILL to whatever is left after 5 s.
stop_named() {
  local name pids=() pid
  for name in "$@"; do
    [[ -f "$DIR/$name.pid" ]] || continue
    pids+=("$(cat "$DIR/$name.pid")")
    rm -f "$DIR/$name.pid"
  done
  ((${#pids[@]})) || return 0
  kill "${pids[@]}" 2>/dev/null || true
  local alive
  for _ in $(seq 1 50); do
    # `kill -0` of several pids fails as soon as one is gone: ask each.
    alive=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    ((alive)) || break
    sleep 0.1
  done
  for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
}

down() {
  [[ -d "$DIR" ]] || return 0
  cluster_down
  # Its state goes with DIR: no need to wait for a graceful shutdown, which
  # takes the API server seconds.
  if [[ -f "$DIR/kube-apiserver.pid" ]]; then kill -9 "$(cat "$DIR/kube-apiserver.pid")" 2>/dev/null || true; fi
  stop_named kube-apiserver cbor-gateway moto etcd
  rm -rf "$DIR"
  log "down"
}

case "$CMD" in
  up) up ;;
  down) down ;;
  restart-apiserver) restart_apiserver "$RESTART_AFTER" ;;
  *) echo "usage: $0 up|down [DIR] [--cluster] | restart-apiserver DIR SECONDS" >&2; exit 2 ;;
esac
