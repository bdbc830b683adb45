#!/usr/bin/env bash
# Build the documentation (Sphinx) into docs/_build/html, warnings as errors.
# Sets up ./.venv if there is none (scripts/setup.sh) and installs the docs extra
# when it is missing.
# Runs the quickstart snippet first (docs/snippets/quickstart.py), then the build,
# which executes every example of the gallery in its --quick mode (a few minutes
# on 2 CPU cores from scratch; unchanged examples are not re-run).
# Extra arguments go to sphinx-build (e.g. -E to re-read every page).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || bash scripts/setup.sh
# shellcheck disable=SC1091
. .venv/bin/activate
export OMP_NUM_THREADS=1
if ! python -c "import sphinx, numpydoc, sphinx_gallery, pydata_sphinx_theme, myst_parser" \
    2>/dev/null; then
    python -m pip install -q -e ".[docs]"
fi
python docs/snippets/quickstart.py
python -m sphinx -W --keep-going -b html docs docs/_build/html "$@"
echo "docs: file://$PWD/docs/_build/html/index.html"
