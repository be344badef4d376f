#!/usr/bin/env bash
# Installs the whole stack into .venv (Python 3.11); called by `make install`.
# Idempotent: each step checks what is already there, so a second run takes seconds.
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV=.venv
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3

step() { printf '\n[install] %s\n' "$*"; }

if [ ! -x "$VENV/bin/python" ]; then
    step "creating $VENV with $($PY --version)"
    "$PY" -m venv "$VENV"
fi
ROOT=$(pwd)
VPY="$ROOT/$VENV/bin/python"
PIP="$VPY -m pip --disable-pip-version-check"

have() {  # have MODULE VERSION: true when MODULE imports with exactly VERSION
    "$VPY" - "$1" "$2" <<'PYEOF' 2>/dev/null
import importlib.metadata as md, sys
name, want = sys.argv[1], sys.argv[2]
try:
    got = md.version(name)
except md.PackageNotFoundError:
    sys.exit(1)
sys.exit(0 if got.split('+')[0] == want else 1)
PYEOF
}

if ! have torch 2.13.0 || ! have torchvision 0.28.0 \
   || ! "$VPY" -c "import torchvision" >/dev/null 2>&1; then
    step "torch 2.13.0 + torchvision 0.28.0 (about 2 minutes, 4.8 GB)"
    $PIP install -q -r requirements/torch.txt
fi

# after torch: torch's own requirements may have pulled a newer setuptools
if ! "$VPY" -c "import setuptools, wheel, sys; import pkg_resources" >/dev/null 2>&1 \
   || ! "$VPY" -c "import setuptools, sys; sys.exit(int(setuptools.__version__.split('.')[0]) >= 80)"; then
    step "build tools (setuptools<80, wheel, ninja)"
    $PIP install -q -r requirements/build.txt
fi

if ! have mmcv 2.1.0 || ! "$VPY" -c "from mmcv.ops import nms, RoIAlign" >/dev/null 2>&1; then
    # With a GPU and nvcc, build the CUDA ops too; a CPU-only machine that merely has nvcc
    # installed gets the CPU build (the CUDA build would take far longer and is unusable there).
    if command -v nvcc >/dev/null 2>&1 && command -v nvidia-smi >/dev/null 2>&1 \
       && nvidia-smi -L >/dev/null 2>&1; then
        export FORCE_CUDA=1
        step "mmcv 2.1.0 with CPU and CUDA ops (nvcc found, GPU present)"
    else
        export FORCE_CUDA=0
        step "mmcv 2.1.0 with CPU ops (first build about 16 minutes on 2 cores; pip caches the wheel)"
    fi
    MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-$(nproc)} \
        $PIP install --no-build-isolation -r requirements/mminstall.txt
fi

if ! have mmengine 0.10.7 || ! have mmdet 3.3.0 || ! have mmpretrain 1.2.0 \
   || ! "$VPY" -c "import sklearn, matplotlib, pytest, ruff" >/dev/null 2>&1; then
    step "mmengine, mmdet, mmpretrain and test tools"
    $PIP install -q -r requirements/runtime.txt -r requirements/tests.txt
fi

# checked from / so that the current directory on sys.path cannot fake an installed package
if ! (cd / && "$VPY" -c "import epsd_mm, os, sys; sys.exit(0 if os.path.samefile(os.path.dirname(epsd_mm.__file__), sys.argv[1]) else 1)" "$ROOT/epsd_mm") >/dev/null 2>&1; then
    step "epsd_mm (editable)"
    $PIP install -q --no-build-isolation --no-deps -e .
fi

(cd / && "$VPY" - <<'PYEOF'
import torch, torchvision, mmcv, mmengine, mmdet, mmpretrain
from mmcv.ops import nms, RoIAlign  # noqa: F401  compiled ops present
import epsd_mm
print(f'[install] ready: torch {torch.__version__}, torchvision {torchvision.__version__}, '
      f'mmcv {mmcv.__version__}, mmengine {mmengine.__version__}, mmdet {mmdet.__version__}, '
      f'mmpretrain {mmpretrain.__version__}, epsd_mm {epsd_mm.__version__}')
PYEOF
)
