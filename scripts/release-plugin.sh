#!/usr/bin/env bash
# The kubectl plugin as a release artifact: kubectl-sluice built with the
# operator's release profile (size-optimised, LTO), packed with the
# licence into dist/kubectl-sluice-v<version>-<target>.tar.gz, and its
# SHA-256 beside it (krew and a download page both want one).
#
#   scripts/release-plugin.sh     prints the archive's path
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
: "${CARGO_TARGET_DIR:=$ROOT/target}"
log() { echo "release-plugin: $*" >&2; }

version="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)"
target="$(rustc -vV | sed -n 's/^host: //p')"
cargo build --quiet --profile operator -p sluice-operator --bin kubectl-sluice
bin="$CARGO_TARGET_DIR/operator/kubectl-sluice"
name="kubectl-sluice-v$version-$target"
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/$name" dist
cp "$bin" LICENSE "$stage/$name/"
tar -C "$stage" -czf "dist/$name.tar.gz" "$name"
(cd dist && sha256sum "$name.tar.gz" > "$name.tar.gz.sha256")
log "$(stat -c %s "$bin") bytes unpacked, $(stat -c %s "dist/$name.tar.gz") packed"
echo "dist/$name.tar.gz"
