#!/usr/bin/env bash
# The Pattern 1 demo: a real one-node cluster (scripts/localenv.sh --cluster),
# moto (whose harness runs the deployed handler code), the operator's image
# built here and installed with `helm install` of charts/sluice (two
# replicas, one leading; least-privilege ClusterRole, Pod Security
# "restricted", probes on /livez and /readyz), and the event-triggered
# sample applied with kubectl; then an order goes in and the processed
# order comes out.
#
#   scripts/demo.sh run  [DIR]   up, apply, wait for Ready, show, delete, tear down
#   scripts/demo.sh up   [DIR]   up, apply, wait for Ready, show, leave running
#   scripts/demo.sh down [DIR]   stop what `up` started
#   scripts/demo.sh drop DIR FILE  put FILE into the running sample's input
#                                bucket and print the processed object
#
# Expects `make tools tools-helm handlers build` to have run (the Makefile
# does that);
# builds the image (scripts/image.sh) if it is not cached.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CMD="${1:-run}"
DIR="${2:-/tmp/sluice-demo}"
SAMPLE="$ROOT/config/samples/event-triggered.yaml"

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

show_aws() {
  "$("$ROOT/scripts/tools.sh" path python)" "$ROOT/scripts/show-aws.py"
}

# The operator's AWS keys, as an env file: where the emulator enforces IAM,
# those of a user holding exactly config/iam/operator-policy*.json, as on AWS
# (never the administrator's keys the rest of the demo acts with).
operator_credentials() {
  if [[ "${SLUICE_HARNESS_IAM:-}" == enforce ]]; then
    curl -sf -X POST "$AWS_ENDPOINT_URL/_sluice/iam/operator?prefix=sluice" | python3 -c '
import json, sys
u = json.load(sys.stdin)
print("AWS_ACCESS_KEY_ID=%s\nAWS_SECRET_ACCESS_KEY=%s" % (u["accessKeyId"], u["secretAccessKey"]))'
  else
    printf 'AWS_ACCESS_KEY_ID=%s\nAWS_SECRET_ACCESS_KEY=%s\n' "$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY"
  fi
}

# The permissions boundary every role the operator creates carries
# (config/iam/pipeline-boundary.json): the managed policy the harness makes
# for the prefix (whether or not it enforces IAM: the emulator, as AWS,
# refuses a role whose boundary names no policy).
permissions_boundary() {
  curl -sf -X POST "$AWS_ENDPOINT_URL/_sluice/iam/operator?prefix=sluice" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["permissionsBoundaryArn"])'
}

# The installation's secret: random, kept in DIR for the demo's lifetime.
installation_id() {
  [[ -s "$DIR/installation-id" ]] || (umask 077 && openssl rand -hex 16 >"$DIR/installation-id")
  cat "$DIR/installation-id"
}

# The chart's values for this machine: its image, the emulator's endpoint,
# the operator's keys (a Secret), the boundary and the installation's id.
values() {
  local image="$1"
  python3 - "$image" "$(permissions_boundary)" "$(installation_id)" <<'PY'
import json, os, sys
image, boundary, installation = sys.argv[1:]
repository, tag = image.rsplit(":", 1)
aws = {"region": os.environ["AWS_REGION"], "endpointUrl": os.environ["AWS_ENDPOINT_URL"],
       "permissionsBoundary": boundary, "credentialsSecret": "sluice-operator-aws"}
if os.environ.get("AWS_ENDPOINT_URL_CLOUDWATCH"):
    aws["serviceEndpointUrls"] = {"CLOUDWATCH": os.environ["AWS_ENDPOINT_URL_CLOUDWATCH"]}
print(json.dumps({"image": {"repository": repository, "tag": tag}, "aws": aws,
                  "installation": {"id": installation}, "reconcile": {"resyncSeconds": 60}}))
PY
}

up() {
  "$ROOT/scripts/localenv.sh" up "$DIR" --cluster
  # shellcheck disable=SC1091
  source "$DIR/env"
  local k="$SLUICE_KUBECTL"
  say "the node"
  "$k" get nodes -o wide
  say "the operator's image, imported into the node's containerd (no registry)"
  local image; image="$("$ROOT/scripts/image.sh" load)"
  echo "$image"
  say "helm install sluice charts/sluice: CRDs, admission policies, default SluicePolicy, two operator pods"
  if [[ "${SLUICE_HARNESS_IAM:-}" == enforce ]]; then
    echo "its AWS keys (Secret sluice-system/sluice-operator-aws): IAM user operator-sluice, policies config/iam/operator-policy*.json, roles bounded by config/iam/pipeline-boundary.json"
  fi
  "$k" create namespace sluice-system --dry-run=client -o yaml | "$k" apply -f -
  "$k" label namespace sluice-system --overwrite pod-security.kubernetes.io/enforce=restricted
  (umask 077 && operator_credentials >"$DIR/aws-credentials.env")
  "$k" create secret generic sluice-operator-aws -n sluice-system --from-env-file="$DIR/aws-credentials.env" \
    --dry-run=client -o yaml | "$k" apply -f -
  values "$image" >"$DIR/values.json"
  "$("$ROOT/scripts/tools.sh" path helm)" upgrade --install sluice "$ROOT/charts/sluice" \
    --namespace sluice-system --values "$DIR/values.json" --wait --timeout 180s
  say "kubectl get pods -n sluice-system; the leader (kubectl get lease)"
  "$k" get pods -n sluice-system -o wide
  "$k" get lease -n sluice-system sluice-operator -o custom-columns=LEASE:.metadata.name,HOLDER:.spec.holderIdentity,RENEWED:.spec.renewTime

  say "apply the Pattern 1 sample (config/samples/event-triggered.yaml)"
  local start=$SECONDS
  "$k" apply -f "$SAMPLE"
  "$k" wait --for=condition=Ready dp/event-triggered --timeout=180s
  echo "Ready after $((SECONDS - start)) s"

  say "kubectl get pods -A; kubectl get dp"
  "$k" get pods -A
  "$k" get dp
  say "status inventory"
  "$k" get dp event-triggered -o jsonpath='{range .status.inventory[*]}{.kind}{"\t"}{.id}{"\t"}{.state}{"\n"}{end}'
  say "AWS resources (as moto reports them)"
  show_aws
  say "the operator pod's memory, as the kubelet reports it"
  "$k" get --raw /api/v1/nodes/sluice-node/proxy/stats/summary | python3 -c '
import json, sys
for pod in json.load(sys.stdin)["pods"]:
    for c in pod.get("containers", []):
        ref, m = pod["podRef"], c["memory"]
        print("%s/%s %s: working set %.1f MiB, RSS %.1f MiB" % (ref["namespace"], ref["name"], c["name"],
              m["workingSetBytes"] / 2**20, m["rssBytes"] / 2**20))'

  say "data flows: an order into the input bucket, the processed order out"
  drop "$ROOT/config/samples/data/order.json"
}

drop() { # drop FILE: put FILE into the sample's input bucket, print what comes out
  "$("$ROOT/scripts/tools.sh" path python)" "$ROOT/scripts/drop-object.py" event-triggered "$1"
}

down() {
  "$ROOT/scripts/localenv.sh" down "$DIR"
}

case "$CMD" in
  run)
    trap down EXIT
    up
    # shellcheck disable=SC1091
    source "$DIR/env"
    say "empty the buckets (Sluice refuses to delete a bucket holding data unless it sets emptyOnDelete)"
    "$("$ROOT/scripts/tools.sh" path python)" "$ROOT/scripts/drop-object.py" event-triggered --empty
    say "delete the pipeline (the finalizer removes its AWS resources)"
    "$SLUICE_KUBECTL" delete -f "$SAMPLE" --wait --timeout=120s
    say "AWS resources after delete"
    show_aws
    say "next: your own code"
    echo "config/samples/own-code.yaml runs a team's Rust function (examples/rust-function) and Python"
    echo "function (examples/python-function), each pinned by digest or object version; build and"
    echo "upload with scripts/own-code.sh; e2e/tests/own_code.rs runs it end to end locally"
    ;;
  up)
    up
    cat <<EOF_HELP

Sluice is running. Try:
  source $DIR/env
  kubectl get dp -o wide          # \$SLUICE_KUBECTL is the kubectl built for this environment
  kubectl describe dp event-triggered
  kubectl get pods -A
  scripts/demo.sh drop $DIR config/samples/data/order.json  # a file in, the processed one printed
  kubectl logs -n sluice-system deploy/sluice-operator -f
  less config/samples/own-code.yaml  # your own code: a Rust and a Python function (scripts/own-code.sh)
  tail -f $DIR/harness/lambda-*.log  # what the function printed (also in CloudWatch Logs)
  make demo-down                  # stop everything
EOF_HELP
    ;;
  down) down ;;
  drop)
    # shellcheck disable=SC1091
    source "$DIR/env"
    drop "${3:?usage: $0 drop DIR FILE}"
    ;;
  *) echo "usage: $0 run|up|down [DIR]" >&2; exit 2 ;;
esac
