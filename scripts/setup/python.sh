#!/usr/bin/env bash
# Python tools the tests use, in one venv reused across runs:
#   jinja2 + PyYAML  reference renderer for Nepho 1.x compatibility (tests/tools/nepho1_render.py)
#   moto[server]     CloudFormation/S3/EC2 mock for the aws provider tests (moto_server on 127.0.0.1)
#   awscli           the tool users would otherwise run, for the benchmark
# Usage: scripts/setup/python.sh   (prints the venv path on stdout)
set -euo pipefail
VENV="${NEPHO_TEST_VENV:-/var/cache/nepho-test/venv}"
STAMP="$VENV/.nepho-requirements"
REQUIREMENTS="jinja2==3.1.6 PyYAML==6.0.2 moto[server,cloudformation,s3,ec2]==5.1.22 awscli==1.42.25"

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$REQUIREMENTS" ] && "$VENV/bin/python3" -c 'import jinja2, yaml, moto' 2>/dev/null; then
  echo "$VENV"
  exit 0
fi
echo "setting up $VENV ($REQUIREMENTS)" >&2
mkdir -p "$(dirname "$VENV")"
python3 -m venv "$VENV" >&2
"$VENV/bin/pip" install --quiet --disable-pip-version-check $REQUIREMENTS >&2
echo "$REQUIREMENTS" > "$STAMP"
echo "$VENV"
