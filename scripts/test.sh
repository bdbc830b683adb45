#!/usr/bin/env bash
# Set up (if needed) and run the whole test suite, doctests included.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# shellcheck disable=SC1091
. .venv/bin/activate
export SKISAL_MODAL_041_PATH="$PWD/.cache/modal-0.4.1"
ruff check skisal tests examples
python -m pytest --doctest-modules skisal tests "$@"
