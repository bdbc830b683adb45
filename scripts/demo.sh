#!/usr/bin/env bash
# Set up (if needed) and run the main job: a quick active-learning comparison
# on scikit-learn's digits (small CNN, 3 seeds, 10 queries of 50 labels) of
# ISAL, gradient similarity, k-center coreset, modAL's uncertainty, margin and
# entropy sampling, and random. A few minutes on 2 CPU cores. It ends by
# printing a table (best strategy first, what each column means) and writes
# results/demo/{records.jsonl,results.csv,summary.json,summary.md,learning_curves.png}:
# the plot shows the learning curves and each strategy's difference to random.
# Extra arguments go to skisal-experiment (see --help); e.g. --seeds 5 for
# the full comparison, --quick for a smoke run. Re-running resumes.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# shellcheck disable=SC1091
. .venv/bin/activate
export OMP_NUM_THREADS=1
skisal-experiment --dataset digits --seeds 3 --out results/demo "$@"
