#!/usr/bin/env bash
# Runs one named step of a make target and says how long it took, so a
# first run shows where its time goes and scripts/cold-start.sh can tabulate
# it from the log:
#
#   scripts/step.sh NAME COMMAND...
#
# prints "==> NAME" before and "<== NAME: N s" after (or "<== NAME: failed
# after N s"), and exits with the command's status.
set -uo pipefail
name="$1"; shift
echo "==> $name" >&2
start=$SECONDS
"$@"
rc=$?
if ((rc == 0)); then
  echo "<== $name: $((SECONDS - start)) s" >&2
else
  echo "<== $name: failed after $((SECONDS - start)) s" >&2
fi
exit $rc
