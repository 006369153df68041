#!/usr/bin/env bash
# The main job on the shipped sample data, from a fresh machine:
#
#   bash scripts/run_sample.sh [OUTPUT_FOLDER]      (default: results/)
#
# Sets up .venv (idempotent), segments the 2D nuclei image and the 3D stack in
# sample_data/ with the shipped default model, writes the labels as TIFF into
# OUTPUT_FOLDER (replacing this script's own earlier outputs there), and scores
# the 2D result against its ground truth.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
OUT="${1:-results}"

bash "$ROOT/scripts/setup.sh"
CLI="$ROOT/.venv/bin/napari-unet"

"$CLI" segment sample_data/nuclei2d.tif sample_data/nuclei3d.tif -o "$OUT" --overwrite
echo "2D sample vs its ground truth:"
"$CLI" evaluate "$OUT/nuclei2d_labels.tif" sample_data/nuclei2d_labels.tif
echo "Open the results in napari:  .venv/bin/napari sample_data/nuclei2d.tif $OUT/nuclei2d_labels.tif"
