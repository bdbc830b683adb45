#!/usr/bin/env bash
# Set up (if needed) and run the main job: an active-learning comparison of
# ISAL against modAL's uncertainty strategies and random sampling on
# scikit-learn's digits, writing results and a plot to results/digits/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# shellcheck disable=SC1091
. .venv/bin/activate
python examples/digits_active_learning.py "$@"
