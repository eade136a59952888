#!/usr/bin/env bash
# Lint and type gate, as CI runs it: ruff (rules and format) and mypy on the package.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/ruff check daemon tests scripts
.venv/bin/ruff format --check daemon tests scripts
.venv/bin/mypy
