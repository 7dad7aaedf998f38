#!/usr/bin/env bash
# The Pattern 1 demo: a real one-node cluster (scripts/localenv.sh --cluster),
# moto (whose harness runs the deployed handler code), the operator's image
# built here and run as a Deployment under its ServiceAccount (config/deploy:
# least-privilege ClusterRole, Pod Security "restricted", probes on /livez
# and /readyz), and the event-triggered sample applied with kubectl; then an
# order goes in and the processed order comes out.
#
#   scripts/demo.sh run  [DIR]   up, apply, wait for Ready, show, delete, tear down
#   scripts/demo.sh up   [DIR]   up, apply, wait for Ready, show, leave running
#   scripts/demo.sh down [DIR]   stop what `up` started
#   scripts/demo.sh drop DIR FILE  put FILE into the running sample's input
#                                bucket and print the processed object
#
# Expects `make tools handlers build` to have run (the Makefile does that);
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

# The install of config/deploy with this machine's image, the emulator's
# endpoint and the operator's keys: a kustomize overlay in DIR/deploy.
deploy_overlay() {
  local image="$1" overlay="$DIR/deploy" base
  mkdir -p "$overlay"
  base="$(python3 -c 'import os, sys; print(os.path.relpath(sys.argv[1], sys.argv[2]))' "$ROOT/config/deploy" "$overlay")"
  local env="" name
  for name in AWS_ENDPOINT_URL AWS_ENDPOINT_URL_CLOUDWATCH AWS_REGION; do
    env+="
      - {op: add, path: /spec/template/spec/containers/0/env/-, value: {name: $name, value: \"${!name}\"}}"
  done
  (umask 077 && operator_credentials >"$overlay/aws-credentials.env")
  cat >"$overlay/kustomization.yaml" <<YAML
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources: [$base]
images: [{name: sluice-operator, newName: ${image%:*}, newTag: ${image##*:}}]
# The operator's AWS keys, in a Secret its pod's environment refers to.
secretGenerator:
  - {name: sluice-operator-aws, namespace: sluice-system, envs: [aws-credentials.env]}
  # The installation's secret (bucket names derive from it), made once per demo.
  - {name: sluice-installation, namespace: sluice-system, literals: [id=$(installation_id)]}
generatorOptions: {disableNameSuffixHash: true}
patches:
  - target: {kind: Deployment, name: sluice-operator}
    patch: |-$env
      - {op: add, path: /spec/template/spec/containers/0/env/-, value: {name: SLUICE_RESYNC_SECONDS, value: "60"}}
      - {op: add, path: /spec/template/spec/containers/0/env/-, value: {name: SLUICE_PERMISSIONS_BOUNDARY, value: "$(permissions_boundary)"}}
      - {op: add, path: /spec/template/spec/containers/0/envFrom, value: [{secretRef: {name: sluice-operator-aws}}]}
YAML
}

up() {
  "$ROOT/scripts/localenv.sh" up "$DIR" --cluster
  # shellcheck disable=SC1091
  source "$DIR/env"
  local k="$SLUICE_KUBECTL"
  say "the node"
  "$k" get nodes -o wide
  say "install the CRDs, the admission policy and the default SluicePolicy"
  "$k" apply --server-side -f "$ROOT/crds/"
  "$k" wait --for=condition=Established crd/datapipelines.sluice.dev crd/sluicepolicies.sluice.dev --timeout=60s
  "$k" apply --server-side -f "$ROOT/config/deploy/admission/" -f "$ROOT/config/deploy/policy/"

  say "the operator's image, imported into the node's containerd (no registry)"
  local image; image="$("$ROOT/scripts/image.sh" load)"
  echo "$image"
  say "install the operator (config/deploy): namespace sluice-system, ServiceAccount, ClusterRole, Deployment"
  if [[ "${SLUICE_HARNESS_IAM:-}" == enforce ]]; then
    echo "its AWS keys (Secret sluice-system/sluice-operator-aws): IAM user operator-sluice, policies config/iam/operator-policy*.json, roles bounded by config/iam/pipeline-boundary.json"
  fi
  deploy_overlay "$image"
  "$k" apply -k "$DIR/deploy"
  "$k" apply -f "$ROOT/config/deploy/status-writer-binding.yaml"
  "$k" rollout status -n sluice-system deployment/sluice-operator --timeout=120s
  say "kubectl get pods -n sluice-system"
  "$k" get pods -n sluice-system -o wide

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
