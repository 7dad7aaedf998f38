#!/usr/bin/env bash
# The Pattern 1 demo: a real kube-apiserver + etcd, moto (whose harness runs
# the deployed handler code), the operator as a local process, and the
# event-triggered sample applied with kubectl; then an order goes in and
# the processed order comes out.
#
#   scripts/demo.sh run  [DIR]   up, apply, wait for Ready, show, delete, tear down
#   scripts/demo.sh up   [DIR]   up, apply, wait for Ready, show, leave running
#   scripts/demo.sh down [DIR]   stop what `up` started
#   scripts/demo.sh drop DIR FILE  put FILE into the running sample's input
#                                bucket and print the processed object
#
# Expects `make tools handlers build` to have run (the Makefile does that).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CMD="${1:-run}"
DIR="${2:-/tmp/sluice-demo}"
CACHE="${SLUICE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sluice}"
TARGET="${CARGO_TARGET_DIR:-$CACHE/target}"
SAMPLE="$ROOT/config/samples/event-triggered.yaml"

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

show_aws() {
  "$("$ROOT/scripts/tools.sh" path python)" "$ROOT/scripts/show-aws.py"
}

stop_operator() {
  if [[ -f "$DIR/operator.pid" ]]; then
    local pid; pid=$(cat "$DIR/operator.pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    rm -f "$DIR/operator.pid"
  fi
}

up() {
  "$ROOT/scripts/localenv.sh" up "$DIR"
  # shellcheck disable=SC1091
  source "$DIR/env"
  local k="$SLUICE_KUBECTL"
  say "install the CRD"
  "$k" apply -f "$ROOT/crds/"
  "$k" wait --for=condition=Established crd/datapipelines.sluice.dev --timeout=60s

  say "start the operator (log: $DIR/operator.log)"
  local key="$AWS_ACCESS_KEY_ID" secret="$AWS_SECRET_ACCESS_KEY"
  if [[ "${SLUICE_HARNESS_IAM:-}" == enforce ]]; then
    # The emulator enforces IAM: the operator acts as a user holding exactly
    # config/iam/operator-policy.json, as it would on AWS.
    read -r key secret < <(curl -sf -X POST "$AWS_ENDPOINT_URL/_sluice/iam/operator?prefix=sluice" |
      python3 -c 'import json,sys; u=json.load(sys.stdin); print(u["accessKeyId"], u["secretAccessKey"])')
    echo "acting as IAM user operator-sluice ($key), policy config/iam/operator-policy.json"
  fi
  AWS_ACCESS_KEY_ID="$key" AWS_SECRET_ACCESS_KEY="$secret" \
    SLUICE_HANDLERS_DIR="$("$ROOT/scripts/handlers.sh" dir)" SLUICE_ADMIN_ADDR=127.0.0.1:0 SLUICE_RESYNC_SECONDS=60 \
    "$TARGET/debug/sluice-operator" >"$DIR/operator.log" 2>&1 &
  echo $! >"$DIR/operator.pid"

  say "apply the Pattern 1 sample (config/samples/event-triggered.yaml)"
  local start=$SECONDS
  "$k" apply -f "$SAMPLE"
  "$k" wait --for=condition=Ready dp/event-triggered --timeout=180s
  echo "Ready after $((SECONDS - start)) s"

  say "kubectl get dp"
  "$k" get dp
  say "status inventory"
  "$k" get dp event-triggered -o jsonpath='{range .status.inventory[*]}{.kind}{"\t"}{.id}{"\t"}{.state}{"\n"}{end}'
  say "AWS resources (as moto reports them)"
  show_aws

  say "data flows: an order into the input bucket, the processed order out"
  drop "$ROOT/config/samples/data/order.json"
}

drop() { # drop FILE: put FILE into the sample's input bucket, print what comes out
  "$("$ROOT/scripts/tools.sh" path python)" "$ROOT/scripts/drop-object.py" event-triggered "$1"
}

down() {
  stop_operator
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
    ;;
  up)
    up
    cat <<EOF_HELP

Sluice is running. Try:
  source $DIR/env
  kubectl get dp -o wide          # \$SLUICE_KUBECTL is the kubectl built for this environment
  kubectl describe dp event-triggered
  scripts/demo.sh drop $DIR config/samples/data/order.json  # a file in, the processed one printed
  tail -f $DIR/operator.log
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
