#!/usr/bin/env bash
# Review a pull request's DataPipelines before merge: the job of
# github-actions.yaml (and of any other CI; it only needs bash and the
# kubectl-sluice binary).
#
#   review.sh REPORT.md FILE|DIR...
#
# For every DataPipeline manifest given: `kubectl sluice validate` (with
# the namespace's SluicePolicy when SLUICE_POLICY names its file), and for
# the valid ones `plan` and `cost` (at the volumes of volumes/<file> beside
# the manifest when there is one, else cost's documented defaults).
# Writes a Markdown report to REPORT.md for the pull request's comment;
# exits 1 when a pipeline is refused, so the check fails and the report
# says which field is wrong.
#
# Environment: KUBECTL_SLUICE (the plugin; default kubectl-sluice on the
# PATH), SLUICE_POLICY (a SluicePolicy file), SLUICE_NAMESPACE (the
# namespace the pipelines are applied to, when the manifests do not say;
# names depend on it), plus the operator's own variables
# (SLUICE_NAME_PREFIX, SLUICE_INSTALLATION_ID, ...) when the plan should
# show the installation's exact names.
set -euo pipefail

[[ $# -ge 2 ]] || { echo "usage: $0 REPORT.md FILE|DIR..." >&2; exit 2; }
report="$1"; shift
plugin="${KUBECTL_SLUICE:-kubectl-sluice}"
common=()
[[ -n "${SLUICE_POLICY:-}" ]] && common+=(--policy "$SLUICE_POLICY")
[[ -n "${SLUICE_NAMESPACE:-}" ]] && common+=(-n "$SLUICE_NAMESPACE")

files=()
for arg in "$@"; do
  if [[ -d "$arg" ]]; then
    while IFS= read -r f; do files+=("$f"); done \
      < <(find "$arg" -maxdepth 1 -type f \( -name '*.yaml' -o -name '*.yml' \) | sort)
  else
    files+=("$arg")
  fi
done

refused=0
{
  echo "## kubectl sluice: review of ${#files[@]} manifest file(s)"
  echo
  for f in "${files[@]}"; do
    # Only DataPipelines are reviewed; other objects pass through.
    grep -q '^kind: *DataPipeline' "$f" || continue
    echo "### \`$f\`"
    echo
    if out="$("$plugin" validate -f "$f" "${common[@]}" 2>&1)"; then
      echo "Valid."
    else
      refused=1
      echo "**Refused** — it would not converge:"
      echo
      echo '```text'
      echo "$out"
      echo '```'
      echo
      continue
    fi
    echo
    echo "<details><summary>Plan: every AWS resource and IAM statement</summary>"
    echo
    echo '```text'
    "$plugin" plan -f "$f" "${common[@]}" 2>&1 || true
    echo '```'
    echo "</details>"
    echo
    volumes="$(dirname "$f")/volumes/$(basename "$f")"
    cost_args=()
    if [[ -f "$volumes" ]]; then
      cost_args+=(--assume-volume "$volumes")
      echo "<details><summary>Monthly cost at the volumes of \`$volumes\`</summary>"
    else
      echo "<details><summary>Monthly cost at the default volumes (add \`$volumes\` to state yours)</summary>"
    fi
    echo
    echo '```text'
    "$plugin" cost -f "$f" "${cost_args[@]}" "${common[@]}" 2>&1 || true
    echo '```'
    echo "</details>"
    echo
  done
} > "$report"

exit "$refused"
