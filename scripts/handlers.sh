#!/usr/bin/env bash
# The built-in handlers for Lambda: one size-optimised `bootstrap` that
# serves every handler, its zip and manifest, kept in a cache directory
# named by the content it was built from.
#
#   scripts/handlers.sh dir     print that directory for the current sources
#   scripts/handlers.sh build   build into it, unless it is already complete
#
# The key hashes what the executable is made of: the handlers crate's
# sources, manifest and requirements table, the packages it links (resolved
# by cargo, with versions and features), the workspace's build profiles,
# the toolchain (`rustc -vV`), the target and these scripts. So a
# fresh clone, another checkout or a switch back to an earlier commit finds
# its build without asking cargo, whose freshness check follows file times
# (new in every clone) rather than content. HANDLERS_TARGET picks another
# target (e.g. aarch64-unknown-linux-gnu, on a machine with that toolchain).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${SLUICE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sluice}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/target}"
TARGET_DIR="$CARGO_TARGET_DIR"
TARGET="${HANDLERS_TARGET:-}"
KEEP=4 # builds kept in the cache; older ones are removed

log() { echo "handlers: $*" >&2; }

names() {
  local f
  for f in "$ROOT"/handlers/src/entry/*.rs; do
    f="$(basename "$f" .rs)"
    [[ "$f" == mod ]] || echo "$f"
  done
}

# What the handlers' build depends on, outside their own sources: every
# package it links with its version, source and features (as cargo resolves
# them for this crate only, so a dependency the operator gains does not
# force a rebuild), and the build profiles of the workspace manifest.
dependencies() {
  { cargo tree -p sluice-handlers -e normal,build --prefix none --format '{p} {f}' --locked --offline 2>/dev/null \
    || cargo tree -p sluice-handlers -e normal,build --prefix none --format '{p} {f}' --locked; } \
    | sed 's| ([^)]*/[^)]*)||' # a path package's location is not what it is
  sed -n '/^\[profile/,$p' Cargo.toml
}

key() {
  (
    cd "$ROOT"
    printf 'target=%s\n' "$TARGET"
    rustc -vV
    dependencies | LC_ALL=C sort -u
    find handlers/src handlers/Cargo.toml handlers/requirements.json rust-toolchain.toml \
      scripts/handlers.sh scripts/package-handlers.py scripts/check-glibc.sh -type f -print0 \
      | LC_ALL=C sort -z | xargs -0 sha256sum
  ) | sha256sum | cut -c1-16
}

dist_dir() { echo "$CACHE/handlers/$(key)"; }

architecture() { if [[ "$TARGET" == aarch64* ]]; then echo arm64; else echo x86_64; fi; }

build() {
  local key dir
  key="$(key)"
  dir="$CACHE/handlers/$key"
  if [[ -f "$dir/manifest.json" ]]; then
    touch "$dir" # most recently used: the last to be pruned
    log "up to date ($dir)"
    return
  fi
  log "building the size-optimised Lambda executable (fat LTO, one codegen unit): about 4 minutes on 2 cores with no cargo cache (its last 90 s on one core), 2 with one"
  local start=$SECONDS
  cargo build --profile lambda -p sluice-handlers --bin bootstrap ${TARGET:+--target "$TARGET"}
  local bin_dir="$TARGET_DIR/${TARGET:+$TARGET/}lambda"
  "$ROOT/scripts/check-glibc.sh" "$bin_dir" bootstrap
  if [[ "$(key)" != "$key" ]]; then
    log "the sources changed during the build; run it again"
    exit 1
  fi
  local tmp="$dir.tmp.$$"
  rm -rf "$tmp"
  # shellcheck disable=SC2046
  python3 "$ROOT/scripts/package-handlers.py" --architecture "$(architecture)" "$bin_dir/bootstrap" "$tmp" $(names)
  rm -rf "$dir"; mv "$tmp" "$dir"
  log "built in $((SECONDS - start)) s: $dir"
  # Keep the newest few builds.
  find "$CACHE/handlers" -mindepth 1 -maxdepth 1 -type d -printf '%T@ %p\n' | sort -rn \
    | tail -n +$((KEEP + 1)) | cut -d' ' -f2- | xargs -r rm -rf
}

case "${1:-build}" in
  dir) dist_dir ;;
  build) build ;;
  names) names ;;
  *) echo "usage: $0 dir|build|names" >&2; exit 2 ;;
esac
