#!/usr/bin/env bash
# Measures a newcomer's first hour: `make demo` and `make test` on a clean
# clone with every cache empty, then `make test` in a second clone that
# shares the (now warm) caches, as another checkout on the same machine
# would. Prints each step's time (from the "<== step: N s" lines that
# scripts/step.sh writes) and the totals. Not part of `make test`: it takes
# as long as it measures.
#
#   scripts/cold-start.sh [PHASE...]    PHASE: demo, test, warm-clone (default: all three)
#
# Each cold phase gets its own empty caches (cargo registry and target, Go
# module and build caches, pip, the Sluice tool cache) under a temporary
# directory, so `make test` is not warmed by `make demo`; `warm-clone`
# reuses the caches `test` filled. The rustup toolchain itself is shared:
# it is part of the machine, like Go and Python. The clone is of HEAD.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="${COLD_START_DIR:-$(mktemp -d /tmp/sluice-cold-start.XXXXXX)}"
PHASES=("$@")
((${#PHASES[@]})) || PHASES=(demo test warm-clone)

log() { echo "cold-start: $*" >&2; }

# run_phase NAME CACHE_NAME CLONE_NAME TARGET: runs `make TARGET` in a clone
# with the caches under WORK/CACHE_NAME; the log goes to WORK/NAME.log.
run_phase() {
  local name="$1" caches="$WORK/$2" clone="$WORK/$3" target="$4"
  [[ -d "$clone" ]] || git clone --quiet "$ROOT" "$clone"
  mkdir -p "$caches"
  log "$name: make $target in $clone (log: $WORK/$name.log)"
  local start=$SECONDS rc=0
  (
    cd "$clone"
    export SLUICE_CACHE="$caches/sluice" CARGO_HOME="$caches/cargo-home" \
      GOMODCACHE="$caches/go/mod" GOCACHE="$caches/go/build" GOPATH="$caches/go/path" \
      PIP_CACHE_DIR="$caches/pip" XDG_CACHE_HOME="$caches/xdg"
    unset CARGO_TARGET_DIR
    make "$target"
  ) >"$WORK/$name.log" 2>&1 || rc=$?
  echo "$name $((SECONDS - start)) $rc" >>"$WORK/totals"
}

for phase in "${PHASES[@]}"; do
  case "$phase" in
    demo) run_phase demo caches-demo clone-demo demo ;;
    test) run_phase test caches-test clone-test test ;;
    warm-clone) run_phase warm-clone caches-test clone-second test ;;
    *) echo "unknown phase: $phase (demo, test, warm-clone)" >&2; exit 2 ;;
  esac
done

echo
echo "cold start of $(git -C "$ROOT" rev-parse --short HEAD) on $(nproc) cores, $(date -u +%Y-%m-%d)"
for phase in "${PHASES[@]}"; do
  read -r _ seconds rc < <(grep "^$phase " "$WORK/totals" | tail -1)
  printf '\n%-12s %5d s  (%d min %02d s)%s\n' "make $phase" "$seconds" $((seconds / 60)) $((seconds % 60)) \
    "$([[ $rc == 0 ]] || echo "  FAILED, exit $rc")"
  grep -E '^<== ' "$WORK/$phase.log" | sed 's/^<== /    /' || true
  grep -E '^make test: [0-9]+ passed' "$WORK/$phase.log" | sed 's/^/    /' || true
done
echo
echo "logs and caches: $WORK (remove when done)"
