#!/usr/bin/env bash
# Create ./.venv and install skisal with everything its tests, examples and
# both supported modAL protocols need. Idempotent: re-running is fast.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
# shellcheck disable=SC1091
. .venv/bin/activate
python -m pip install -q --upgrade pip

# PyTorch first and pinned: on this project's machines pip takes it from a local
# wheel cache; elsewhere it comes from PyPI (any torch >= 2.1 works).
# torchvision (ResNet-18 in the benchmarks, detectors later) must match torch's build.
python -m pip install -q "torch==2.14.1" "torchvision==0.29.1" \
    || python -m pip install -q "torch>=2.1" torchvision
python -m pip install -q -e ".[modal,test,examples,detection]"

# pip resolves skisal[modal] to modAL-python 0.4.1 (0.4.2.1 pins skorch==0.9.0).
# The main environment gets 0.4.2.1 without its pin (the newer (indices, scores)
# protocol); 0.4.1 goes beside it so the tests exercise both protocols.
python -m pip install -q --no-deps "modAL-python==0.4.2.1"
if [ ! -d .cache/modal-0.4.1/modAL ]; then
    python -m pip install -q --no-deps --target .cache/modal-0.4.1 "modAL-python==0.4.1"
fi
