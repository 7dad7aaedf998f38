#!/usr/bin/env bash
# Fails when a handler binary needs a newer glibc than Lambda's
# provided.al2023 runtime has (2.34): such a binary would build here and
# then fail to start in Lambda with "GLIBC_2.xx not found".
#
#   scripts/check-glibc.sh BIN_DIR NAME...
set -euo pipefail
MAX="${SLUICE_MAX_GLIBC:-2.34}"
dir="$1"; shift
status=0
for name in "$@"; do
  need=$(objdump -T "$dir/$name" | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -1)
  if [[ "$(printf '%s\n%s\n' "$need" "$MAX" | sort -V | tail -1)" != "$MAX" ]]; then
    echo "check-glibc: $name needs glibc $need, above the limit $MAX (provided.al2023 has 2.34)" >&2
    status=1
  else
    echo "check-glibc: $name needs glibc $need (<= $MAX)"
  fi
done
exit $status
