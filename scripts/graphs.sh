#!/usr/bin/env bash
# The pictures of the samples in docs/graphs/, drawn by `kubectl sluice
# graph` (operator/src/cli/graph.rs):
#
#   scripts/graphs.sh draw BIN    write <sample>.mmd, <sample>.dot and
#                                 <sample>.svg for every config/samples/*.yaml,
#                                 and fan-out.png (the README's picture)
#   scripts/graphs.sh check BIN   draw the .mmd and .dot into a temporary
#                                 directory and diff them with docs/graphs/
#
# BIN is the built kubectl-sluice. SVG and PNG need Graphviz's dot
# (SLUICE_DOT, else on the PATH: make tools-graphviz); they depend on its
# version and fonts, so check compares only the Mermaid and dot text.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$ROOT/docs/graphs"
# The picture the README shows (Pattern 2).
README_SAMPLE=fan-out

usage() { echo "usage: $0 draw|check KUBECTL_SLUICE_BIN" >&2; exit 2; }
[[ $# -eq 2 ]] || usage
bin="$2"
[[ -x "$bin" ]] || { echo "$bin: not an executable (cargo build -p sluice-operator --bin kubectl-sluice)" >&2; exit 1; }

# The text forms of every sample into directory $1.
draw_text() {
  local dir="$1" sample name
  for sample in "$ROOT"/config/samples/*.yaml; do
    name="$(basename "$sample" .yaml)"
    "$bin" graph -f "$sample" -o mermaid > "$dir/$name.mmd"
    "$bin" graph -f "$sample" -o dot > "$dir/$name.dot"
  done
}

case "$1" in
  draw)
    mkdir -p "$OUT"
    rm -f "$OUT"/*.mmd "$OUT"/*.dot "$OUT"/*.svg "$OUT"/*.png
    draw_text "$OUT"
    for sample in "$ROOT"/config/samples/*.yaml; do
      name="$(basename "$sample" .yaml)"
      "$bin" graph -f "$sample" -o svg > "$OUT/$name.svg"
    done
    "${SLUICE_DOT:-dot}" -Tpng "$OUT/$README_SAMPLE.dot" -o "$OUT/$README_SAMPLE.png"
    echo "graphs: drew $(ls "$OUT"/*.mmd | wc -l) samples into docs/graphs/" >&2
    ;;
  check)
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' EXIT
    draw_text "$tmp"
    # Every drawing is current, and docs/graphs/ holds no drawing of a
    # sample that is gone.
    diff -ru --exclude='*.svg' --exclude='*.png' "$OUT" "$tmp" || {
      echo "docs/graphs/ is stale: run make graphs and commit" >&2
      exit 1
    }
    ;;
  *) usage ;;
esac
