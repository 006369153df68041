#!/usr/bin/env bash
# The bioimage.io model zoo's own check of an exported model: `bioimageio test`
# (format validation, then each weight format reproducing the package's test
# outputs from its test inputs, at several input sizes and batch sizes).
#
#   bash scripts/bioimageio_check.sh                 # the shipped default model
#   bash scripts/bioimageio_check.sh my.keras out.zip
#
# The zoo's tools run in their own environment, .venv-bio, made by
# scripts/setup.sh: bioimageio.core 0.11 (the current release) pins bioimageio.spec
# 0.5.12.0, which fails on pydantic >= 2.14, the version napari installs, so
# they cannot share the project's environment. TensorFlow and Keras there are
# pinned to the project's versions. tests/test_bioimageio.py uses the same
# environment (or $NAPARI_UNET_BIOIMAGEIO_PYTHON) and is skipped without it.
#
# Environment: PROJECT_PYTHON (default .venv/bin/python) exports the model;
# NAPARI_UNET_BIOIMAGEIO_VENV (default .venv-bio) holds the zoo's tools;
# BIOIMAGEIO_TF_PACKAGE (default tensorflow-cpu) is the TensorFlow wheel there.
# Exit code: bioimageio's (0 when the package passes).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV_BIO="${NAPARI_UNET_BIOIMAGEIO_VENV:-$ROOT/.venv-bio}"
PROJECT_PYTHON="${PROJECT_PYTHON:-$ROOT/.venv/bin/python}"
MODEL="${1:-default}"
OUT="${2:-$ROOT/scratch/bioimageio/$(basename "${MODEL%.keras}").zip}"

log() { printf '[bioimageio] %s\n' "$*" >&2; }

if [ ! -x "$PROJECT_PYTHON" ]; then
    log "no project environment at $PROJECT_PYTHON: run scripts/setup.sh or set PROJECT_PYTHON"
    exit 2
fi

if [ ! -x "$VENV_BIO/bin/bioimageio" ]; then
    log "no bioimage.io environment at $VENV_BIO: run scripts/setup.sh (it makes one)"
    exit 2
fi

mkdir -p "$(dirname "$OUT")"
log "exporting $MODEL to $OUT"
(cd "$ROOT" && "$PROJECT_PYTHON" -m napari_unet.cli export-bioimageio "$MODEL" -o "$OUT" --overwrite)

# bioimageio.core unpacks TensorFlow weights into the working directory.
cd "$(dirname "$OUT")"
export KERAS_BACKEND=tensorflow TF_CPP_MIN_LOG_LEVEL=2
exec "$VENV_BIO/bin/bioimageio" test "$OUT"
