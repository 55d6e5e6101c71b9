#!/usr/bin/env bash
# The README's test command: set up .venv from the project's files, then run the plugin's own
# test suite. pytest's exit code 5 (nothing collected) is turned into a loud failure.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh || exit 1
# In CI on Linux the real stack (mlx[cpu], vllm-mlx, LiteLLM) is installed by the bootstrap, so
# a test skipped for a missing stack is a broken environment: tests/conftest.py fails it.
if [[ "${CI:-}" == "true" && "$(uname -s)" == "Linux" ]]; then
    export MLXSTACK_REQUIRE_STACK="${MLXSTACK_REQUIRE_STACK:-1}"
fi
# Two workers: most of the suite waits on real servers, so this halves its time (the suite is
# xdist-safe: shared pools, locks and one honesty main job); `-n 0` after it runs it serially.
.venv/bin/python -m pytest -n 2 "$@"
rc=$?
if [[ $rc -eq 5 ]]; then
    echo "run-tests: pytest collected no tests; treating that as a failure" >&2
    exit 1
fi
exit $rc
