#!/usr/bin/env bash
# GPU benchmark of LandSeg in one go: sets up what it needs from this repository, then
# measures U-Net inference (model only and end to end from a GeoTIFF, bf16), U-Net
# training images/s and DFC/ISB seconds per iteration at 1024^2 (see bench/gpu.py).
#
# Usage: bench/gpu.sh [--dry-run] [--out DIR]
#   --dry-run  the same steps on the CPU at tiny sizes (checks the script; under a minute)
#   --out DIR  where the rasters, gpu.json and gpu.md go (default: bench-gpu-out)
#
# The engine Python is $LANDSEG_ENGINE_PYTHON, else the engine venv
# (~/.local/share/landseg/engine-venv), else a new venv in .venv-gpu-bench built from
# requirements/engine.txt (PyPI's Linux torch wheels carry CUDA). The data are
# synthetic rasters written by the benchmark (no download). The measurements take
# about 5 minutes on a recent GPU.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DRY=""
OUT="$ROOT/bench-gpu-out"
while [[ $# -gt 0 ]]; do
    case "$1" in
        --dry-run) DRY="--dry-run"; shift ;;
        --out) OUT="$2"; shift 2 ;;
        -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "Unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done

say() { echo "[gpu.sh $(date -u +%H:%M:%S)] $*" >&2; }

PY="${LANDSEG_ENGINE_PYTHON:-}"
if [[ -z "$PY" && -x "$HOME/.local/share/landseg/engine-venv/bin/python" ]]; then
    PY="$HOME/.local/share/landseg/engine-venv/bin/python"
fi
if [[ -z "$PY" ]]; then
    VENV="$ROOT/.venv-gpu-bench"
    if [[ ! -x "$VENV/bin/python" ]]; then
        say "creating $VENV from requirements/engine.txt (torch with CUDA: a few minutes)"
        python3 -m venv "$VENV"
        "$VENV/bin/pip" install --quiet --upgrade pip
        "$VENV/bin/pip" install --quiet -r "$ROOT/requirements/engine.txt"
    fi
    PY="$VENV/bin/python"
fi
say "engine Python: $PY"

if [[ -z "$DRY" ]]; then
    command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version \
        --format=csv,noheader >&2 || true
    if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
        say "torch sees no CUDA GPU with $PY; run with --dry-run to check the script on a CPU"
        exit 1
    fi
fi

cd "$ROOT"
exec "$PY" "$ROOT/bench/gpu.py" $DRY --out "$OUT" --python "$PY"
