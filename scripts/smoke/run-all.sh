#!/usr/bin/env bash
# Set up the machine (packages, daemons, images) and run every smoke test in turn
# (one TCG guest at a time). Ends with a "N passed, N failed" line; exit 1 if any failed.
#
# Usage: scripts/smoke/run-all.sh [--no-vagrant]
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
with_vagrant=1
[ "${1:-}" = --no-vagrant ] && with_vagrant=0

if [ "$with_vagrant" = 1 ]; then "$ROOT/scripts/setup/packages.sh" || exit 1
else "$ROOT/scripts/setup/packages.sh" --no-vagrant || exit 1; fi
"$ROOT/scripts/setup/daemons.sh" || exit 1
"$ROOT/scripts/images/build-tiny-guest.sh" || exit 1

tests=("kvm-tiny.sh" "kvm-tiny.sh --boot kernel" "kvm-iscsi.sh")
[ "$with_vagrant" = 1 ] && tests+=("vagrant-tiny.sh")
pass=0 fail=0
for t in "${tests[@]}"; do
  # shellcheck disable=SC2086  # word splitting of the arguments is intended
  if timeout 600 "$HERE"/$t; then pass=$((pass+1)); else fail=$((fail+1)); echo "FAILED: $t" >&2; fi
done
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
