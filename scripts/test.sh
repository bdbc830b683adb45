#!/usr/bin/env bash
# Set up (if needed) and run the whole test suite, doctests included.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# shellcheck disable=SC1091
. .venv/bin/activate
export SKISAL_MODAL_041_PATH="$PWD/.cache/modal-0.4.1"
ruff check skisal tests examples benchmarks
python -m pytest --doctest-modules skisal tests "$@"
# Benchmarks in their smoke mode: they must keep running (timings are not asserted).
if [ "$#" -eq 0 ]; then
    OMP_NUM_THREADS=1 python benchmarks/run.py --quick
fi
