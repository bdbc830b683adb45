#!/usr/bin/env bash
# Create a virtual environment and install skisal with everything its tests, examples and
# both supported modAL protocols need. Idempotent: re-running is fast.
#
#   bash scripts/setup.sh               # the newest stack, in ./.venv (the default)
#   STACK=oldest bash scripts/setup.sh  # the oldest supported versions, in ./.venv-oldest
#
# CI tests both (.ci/run). VENV=DIR puts the environment elsewhere.
set -euo pipefail
cd "$(dirname "$0")/.."

STACK=${STACK:-newest}
case "$STACK" in
    newest) VENV=${VENV:-.venv} ;;
    oldest) VENV=${VENV:-.venv-oldest} ;;
    *) echo "setup.sh: STACK must be 'newest' or 'oldest', not '$STACK'" >&2; exit 2 ;;
esac
PYTHON=${PYTHON:-python3}
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
# shellcheck disable=SC1091
. "$VENV/bin/activate"

# pip install, quiet: errors and real warnings only. Dropped: the notes that a local index
# mirror configured on this project's machines lacks a package (pip then uses PyPI), and
# setuptools' "Editable installation" box.
pip_install() {
    local out status=0
    out=$(PYTHONWARNINGS="ignore:Editable installation" python -m pip install -q "$@" 2>&1) \
        || status=$?
    if [ -n "$out" ]; then
        grep -v "is ignored: it is neither a file nor a directory" <<<"$out" || true
    fi
    return "$status"
}

pip_install --upgrade pip

if [ "$STACK" = newest ]; then
    # PyTorch first and pinned: on this project's machines pip takes it from a local
    # wheel cache; elsewhere it comes from PyPI (any torch >= 2.1 works).
    # torchvision (ResNet-18 in the benchmarks, detectors later) must match torch's build.
    pip_install "torch==2.14.1" "torchvision==0.29.1" \
        || pip_install "torch>=2.1" torchvision
    # The newest releases, named so that CI notices when they stop resolving. The docs extra
    # too: tests/test_docs.py checks the docs build's own numpydoc rules with Sphinx.
    pip_install -e ".[modal,test,examples,detection,skactiveml,docs]" \
        "scikit-learn==1.9.1" "pandas==3.1.1" "scikit-activeml==1.0.1"
else
    # The floors of scripts/constraints-oldest.txt: torch 2.1.2 (a CUDA build from PyPI, with
    # its nvidia-* wheels: a few GB, a minute or two), scikit-learn 1.3.2, pandas 2.0.3,
    # numpy 1.26.4, skorch 1.0.0. No scikit-activeml: it needs scikit-learn >= 1.6.
    pip_install -c scripts/constraints-oldest.txt torch torchvision
    pip_install -c scripts/constraints-oldest.txt \
        -e ".[modal,test,examples,detection]"
fi

# pip resolves skisal[modal] to modAL-python 0.4.1 (0.4.2.1 pins skorch==0.9.0).
# The environment gets 0.4.2.1 without its pin (the newer (indices, scores) protocol);
# 0.4.1 goes beside it (shared by both stacks) so the tests exercise both protocols.
pip_install --no-deps "modAL-python==0.4.2.1"
if [ ! -d .cache/modal-0.4.1/modAL ]; then
    pip_install --no-deps --target .cache/modal-0.4.1 "modAL-python==0.4.1"
fi
