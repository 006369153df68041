#!/usr/bin/env bash
# Runs the test suite: set-up first (idempotent), then pytest on a virtual
# screen when there is no display, so the napari/Qt tests render for real.
#
#   bash scripts/test.sh                 # whole suite
#   bash scripts/test.sh tests/test_writer.py -k atomic -x
#
# Extra arguments go to pytest; the exit code is pytest's.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

bash "$ROOT/scripts/setup.sh" || { echo "[test] set-up failed" >&2; exit 1; }

# Lint and import order first: a style error fails CI like a test does.
"$ROOT/.venv/bin/python" -m ruff check src tests benchmarks scripts || {
    echo "[test] ruff found problems (fix them, or run: .venv/bin/ruff check --fix)" >&2
    exit 1
}

PYTEST=("$ROOT/.venv/bin/python" -m pytest "$@")

if [ -n "${DISPLAY:-}" ]; then
    exec "${PYTEST[@]}"
elif command -v xvfb-run >/dev/null 2>&1; then
    # -a: pick a free display number, so parallel runs don't collide.
    exec xvfb-run -a -s "-screen 0 1280x1024x24" "${PYTEST[@]}"
else
    echo "[test] WARNING: no DISPLAY and no xvfb-run: using Qt's offscreen platform;" \
        "tests that need OpenGL may fail" >&2
    export QT_QPA_PLATFORM=offscreen
    exec "${PYTEST[@]}"
fi
