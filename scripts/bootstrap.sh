#!/usr/bin/env bash
# Create or refresh .venv from the project's own files: the package with its stack, harness
# and dev extras. Idempotent: a stamp of pyproject.toml and this script skips a second install.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
# vllm-mlx pulls torchvision and through it torch. Pinning a CPU build first keeps ~3 GB of CUDA
# packages out on Linux; the pin is constraints/linux-cpu.txt (the README's Linux install uses
# the same file). TORCH_SPEC="" lets pip choose.
TORCH_SPEC=${TORCH_SPEC-$(grep -E '^torch==' constraints/linux-cpu.txt)}

# Headless Chromium for the matrix page's browser tests: installed on a Debian-like machine as
# root, a loud warning elsewhere (checked on every run; quick when it is there).
bash scripts/install-chromium.sh

stamp="$VENV/.mlxstack-installed"
want=$(cat pyproject.toml scripts/bootstrap.sh constraints/linux-cpu.txt | sha256sum | cut -c1-16)
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    exit 0
fi

[[ -x "$VENV/bin/python" ]] || "$PYTHON" -m venv "$VENV"
pin=()
if [[ "$(uname -s)" == "Linux" && -n "$TORCH_SPEC" ]]; then
    "$VENV/bin/python" -m pip install --quiet "$TORCH_SPEC"
    pin=("$TORCH_SPEC")
fi
"$VENV/bin/python" -m pip install --quiet -e ".[stack,harness,dev]" "${pin[@]}"
echo "$want" > "$stamp"
echo "bootstrap: $VENV ready"
