#!/usr/bin/env bash
# The test suite, as CI runs it. `scripts/test.sh --stress` runs it with two
# CPU-bound processes beside it, as on a loaded board: a test that passes
# alone and fails like that is a race to find.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--stress" ]; then
  shift
  burners=()
  for _ in 1 2; do
    .venv/bin/python -c "while True: pass" &
    burners+=($!)
  done
  trap 'kill "${burners[@]}" 2>/dev/null || true' EXIT
  .venv/bin/python -m pytest -q "$@"
  exit $?
fi
exec .venv/bin/python -m pytest -q "$@"
