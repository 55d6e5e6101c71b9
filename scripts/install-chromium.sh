#!/usr/bin/env bash
# Headless Chromium for the matrix page's browser tests (tests/matrix/test_html_browser.py).
# On a Debian-like Linux machine without Chromium or Chrome, run as root (or with password-less
# sudo), installs Debian's `chromium` package. Anywhere else it says so loudly and exits 0: the
# browser tests then skip, or fail when MLXSTACK_REQUIRE_STACK=1 (CI), never pass silently.
# MLXSTACK_CHROMIUM=/path/to/chrome uses another browser; MLXSTACK_SKIP_CHROMIUM=1 skips this.
set -euo pipefail

warn() { echo "install-chromium: WARNING: $*; the matrix page's browser tests will skip (or fail under MLXSTACK_REQUIRE_STACK=1)" >&2; }

if [[ "${MLXSTACK_SKIP_CHROMIUM:-}" == "1" ]]; then
    warn "MLXSTACK_SKIP_CHROMIUM=1"
    exit 0
fi
if [[ -n "${MLXSTACK_CHROMIUM:-}" ]]; then
    [[ -x "$MLXSTACK_CHROMIUM" ]] || { echo "install-chromium: MLXSTACK_CHROMIUM=$MLXSTACK_CHROMIUM is not an executable; fix the path" >&2; exit 1; }
    exit 0
fi
for name in chromium chromium-browser google-chrome chrome; do
    if command -v "$name" >/dev/null 2>&1; then
        exit 0
    fi
done
if [[ "$(uname -s)" != "Linux" ]] || ! command -v apt-get >/dev/null 2>&1; then
    warn "no Chromium found and this is not a Debian-like machine (install Chromium or Chrome, or set MLXSTACK_CHROMIUM)"
    exit 0
fi
sudo=()
if [[ "$(id -u)" != "0" ]]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        sudo=(sudo)
    else
        warn "no Chromium found and not root (run: sudo apt-get install -y chromium)"
        exit 0
    fi
fi
echo "install-chromium: installing Debian's chromium package for the browser tests"
"${sudo[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends chromium >/dev/null
command -v chromium >/dev/null 2>&1 || { echo "install-chromium: apt-get installed chromium but it is not on PATH" >&2; exit 1; }
echo "install-chromium: $(chromium --version 2>/dev/null | head -1)"
