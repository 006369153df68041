#!/usr/bin/env bash
# Runs the test suite: set-up first (idempotent), then pytest in separate
# sessions, on a virtual screen when there is no display:
#
#   0. ruff (lint and import order);
#   1. the core session   (-m "not gui"): the headless core, TensorFlow allowed;
#   2. the GUI session    (-m gui) with PyQt6, then again with PyQt5: napari
#      viewers and the docks. It fails if napari's (the test) process imports
#      TensorFlow: the docks leave the network to their worker process.
#
#   bash scripts/test.sh                 # whole suite
#   bash scripts/test.sh tests/test_writer.py -k atomic -x
#
# Extra arguments go to every session. A session that collects nothing
# (pytest's exit status 5, e.g. GUI tests filtered out) counts as passed; the
# exit status is non-zero if any session failed.
# Environment: NAPARI_UNET_QT_APIS lists the GUI sessions' bindings (default
# "pyqt6 pyqt5"); NAPARI_UNET_SKIP_SETUP=1 skips scripts/setup.sh and
# NAPARI_UNET_PYTHON picks the interpreter (default .venv/bin/python).
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

if [ "${NAPARI_UNET_SKIP_SETUP:-0}" != 1 ]; then
    bash "$ROOT/scripts/setup.sh" || { echo "[test] set-up failed" >&2; exit 1; }
fi
PYTHON="${NAPARI_UNET_PYTHON:-$ROOT/.venv/bin/python}"
QT_APIS="${NAPARI_UNET_QT_APIS:-pyqt6 pyqt5}"

# Lint and import order first: a style error fails CI like a test does.
"$PYTHON" -m ruff check src tests benchmarks scripts || {
    echo "[test] ruff found problems (fix them, or run: .venv/bin/ruff check --fix)" >&2
    exit 1
}

SCREEN=()
if [ -z "${DISPLAY:-}" ]; then
    if command -v xvfb-run >/dev/null 2>&1; then
        # -a: pick a free display number, so parallel runs don't collide.
        SCREEN=(xvfb-run -a -s "-screen 0 1280x1024x24")
    else
        echo "[test] WARNING: no DISPLAY and no xvfb-run: using Qt's offscreen platform;" \
            "tests that need OpenGL may fail" >&2
        export QT_QPA_PLATFORM=offscreen
    fi
fi

failed=()
session() {  # session NAME PYTEST-ARGS...
    local name="$1" status
    shift
    echo "[test] session: $name" >&2
    "${SCREEN[@]}" "$PYTHON" -m pytest "$@"
    status=$?
    if [ "$status" -ne 0 ] && [ "$status" -ne 5 ]; then
        failed+=("$name (exit $status)")
    fi
}

session "core" -m "not gui" "$@"
for api in $QT_APIS; do
    # qtpy (napari) reads QT_API, pytest-qt reads PYTEST_QT_API: set both.
    QT_API="$api" PYTEST_QT_API="$api" session "gui, $api" -m gui "$@"
done

if [ "${#failed[@]}" -ne 0 ]; then
    echo "[test] FAILED: ${failed[*]}" >&2
    exit 1
fi
echo "[test] all sessions passed" >&2
