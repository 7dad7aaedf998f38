#!/usr/bin/env bash
# Sums the `test result:` lines of cargo's output in LOG into one closing
# line, "N passed, N failed, N ignored", so a run of many test binaries
# ends on the total rather than on the last (often empty) doc-test binary.
set -euo pipefail
awk '/^test result:/ {
  for (i = 1; i <= NF; i++) {
    if ($(i+1) ~ /^passed/) p += $i
    if ($(i+1) ~ /^failed/) f += $i
    if ($(i+1) ~ /^ignored/) g += $i
  }
} END { printf "make test: %d passed, %d failed, %d skipped\n", p, f, g }' "$1"
