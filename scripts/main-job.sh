#!/usr/bin/env bash
# The README's main job: set up .venv, bring up the real stack on the bundled fixture model,
# run the four tiers and write the matrix (JSON and HTML) under matrices/.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh || exit 1
exec .venv/bin/python -m pytest_mlxstack.mainjob "$@"
