#!/usr/bin/env bash
# Distributed testing through torchrun (mmengine's "pytorch" launcher), as mmdet's dist_test.sh.
# Without CUDA, tools/test.py runs the processes over the gloo backend on CPU.
set -euo pipefail

usage() {
    cat <<'USAGE'
usage: bash tools/dist_test.sh CONFIG CHECKPOINT GPUS [test.py options...]

Start GPUS test processes on this node with torchrun; each runs
tools/test.py CONFIG CHECKPOINT --launcher pytorch [options]. On a machine
without a GPU, GPUS CPU processes run over the gloo backend.

environment: NNODES (1), NODE_RANK (0), PORT (29500), MASTER_ADDR (127.0.0.1),
             PYTHON (.venv/bin/python of the repo when present, else python)

example:
  bash tools/dist_test.sh configs/epsd_voc_frcnn.py work_dirs/voc/epoch_4.pth 2 --out r.pkl
USAGE
}

if [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ]; then usage; exit 0; fi
if [ $# -lt 3 ]; then usage >&2; exit 2; fi

CONFIG=$1
CHECKPOINT=$2
GPUS=$3
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
launch_ranks "$ROOT/tools/test.py" "$CONFIG" "$CHECKPOINT" --launcher pytorch "${@:4}"
