#!/usr/bin/env bash
# Every runtime dependency must install on the stations: arm64, CPython 3.11.
set -euo pipefail
cd "$(dirname "$0")/.."
deps=$(.venv/bin/python - <<'PY'
import tomllib
print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))
PY
)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
mapfile -t reqs <<<"$deps"
.venv/bin/python -m pip download -q --only-binary=:all: --platform manylinux2014_aarch64 \
  --platform manylinux_2_17_aarch64 --platform manylinux_2_28_aarch64 \
  --python-version 3.11 --implementation cp --abi cp311 -d "$out" "${reqs[@]}"
echo "arm64 wheels for CPython 3.11: $(ls "$out" | wc -l) files, all runtime dependencies resolved"
