#!/usr/bin/env bash
# Distributed training through torchrun (mmengine's "pytorch" launcher), as mmdet's dist_train.sh.
# Without CUDA, tools/train.py runs the processes over the gloo backend on CPU.
set -euo pipefail

usage() {
    cat <<'USAGE'
usage: bash tools/dist_train.sh CONFIG GPUS [train.py options...]

Start GPUS training processes on this node with torchrun; each runs
tools/train.py CONFIG --launcher pytorch [options]. On a machine without a GPU,
GPUS CPU processes train over the gloo backend.

environment: NNODES (1), NODE_RANK (0), PORT (29500), MASTER_ADDR (127.0.0.1),
             PYTHON (.venv/bin/python of the repo when present, else python)

example:
  bash tools/dist_train.sh configs/epsd_voc_frcnn.py 2 --work-dir work_dirs/voc
USAGE
}

if [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ]; then usage; exit 0; fi
if [ $# -lt 2 ]; then usage >&2; exit 2; fi

CONFIG=$1
GPUS=$2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
if [ -z "${PYTHON:-}" ]; then
    if [ -x "$ROOT/.venv/bin/python" ]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON=python; fi
fi

# shellcheck source=misc/launch_ranks.sh
source "$ROOT/tools/misc/launch_ranks.sh"
launch_ranks "$ROOT/tools/train.py" "$CONFIG" --launcher pytorch "${@:3}"
