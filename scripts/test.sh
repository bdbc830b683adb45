#!/usr/bin/env bash
# Set up (if needed) and run the whole test suite, doctests included.
#
#   bash scripts/test.sh               # the newest stack (./.venv): ruff, tests, doctests and
#                                      # the benchmarks' smoke run
#   STACK=oldest bash scripts/test.sh  # the oldest supported versions (./.venv-oldest):
#                                      # tests and doctests
#
# CI runs both (.ci/run). Extra arguments go to pytest (and skip the benchmarks).
set -euo pipefail
cd "$(dirname "$0")/.."
STACK=${STACK:-newest}
case "$STACK" in
    newest) VENV=${VENV:-.venv} ;;
    oldest) VENV=${VENV:-.venv-oldest} ;;
    *) echo "test.sh: STACK must be 'newest' or 'oldest', not '$STACK'" >&2; exit 2 ;;
esac
STACK=$STACK VENV=$VENV bash scripts/setup.sh
# shellcheck disable=SC1091
. "$VENV/bin/activate"
export SKISAL_MODAL_041_PATH="$PWD/.cache/modal-0.4.1"
python -c "import numpy, pandas, sklearn, skorch, torch
print('$STACK stack: torch', torch.__version__, '| scikit-learn', sklearn.__version__,
      '| pandas', pandas.__version__, '| numpy', numpy.__version__, '| skorch', skorch.__version__)"

# Lint once (the result does not depend on the installed versions).
if [ "$STACK" = newest ]; then
    ruff check --no-cache skisal tests examples benchmarks research
    ruff format --no-cache --check skisal tests examples benchmarks research
fi

# Without scikit-activeml (the oldest stack: it needs scikit-learn >= 1.6) its test modules
# skip themselves (pytest.importorskip), and modules whose doctests import it are not
# collected for doctests.
ignore=()
skipped_note=""
if ! python -c "import skactiveml" 2>/dev/null; then
    mapfile -t tests_skipped < <(grep -rlE --include='*.py' \
        "^pytest\.importorskip\(\s*[\"']skactiveml[\"']" tests | sort)
    mapfile -t doctests_skipped < <(grep -rlE --include='*.py' \
        "^\s*(>>> )?(from|import) skactiveml\b" skisal | sort)
    skipped_note="scikit-activeml is not installed in the $STACK stack (it needs scikit-learn >= 1.6):"
    for f in "${tests_skipped[@]}"; do
        skipped_note+=$'\n'"  skipped test module (importorskip): $f"
    done
    for f in "${doctests_skipped[@]}"; do
        skipped_note+=$'\n'"  doctests not collected:             $f"
        ignore+=("--ignore=$f")
    done
    echo "$skipped_note"
fi

# The doctests that start a torch.distributed group run in a process of their own: with
# torch 2.1 (the oldest stack), destroy_process_group can hang after the rest of the suite
# has run in the same process (seen on 2026-12-03, also at 2ee4ace; alone they pass).
distributed_doctests=skisal/engine/distributed.py
status=0
python -m pytest --doctest-modules "${ignore[@]}" --ignore="$distributed_doctests" \
    skisal tests "$@" || status=$?
python -m pytest --doctest-modules "$distributed_doctests" -q || status=$?
[ -z "$skipped_note" ] || echo "$skipped_note"
[ "$status" -eq 0 ] || exit "$status"

# Benchmarks in their smoke mode: they must keep running (timings are not asserted).
if [ "$STACK" = newest ] && [ "$#" -eq 0 ]; then
    OMP_NUM_THREADS=1 python benchmarks/run.py --quick
fi
