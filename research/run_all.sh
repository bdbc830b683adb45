#!/usr/bin/env bash
# Reproduce every number in research/influence_modes.md (about 45 min on one CPU core).
# Runs are cached in research/results/<task>/<strategy>__seed<k>.json; delete them to recompute.
set -euo pipefail
cd "$(dirname "$0")"
# shellcheck disable=SC1091
. ../.venv/bin/activate
export OMP_NUM_THREADS=1

DIGITS1="random uncertainty margin entropy isal isal+gradsim isal+spec0.01 isal+spec0.1 isal+spec1
 isal+top2 isal+top3 isal+refbig isal+refstrat isal+refbig+refstrat isal+div_feat_m3
 isal+div_feat_m10 isal+div_badge_m3 isal+div_badge_m10 isal+hybrank isal+uncf_m2 isal+uncf_m4
 marginscore+div_feat_m3"
DIGITS2="isal+eai isal+eai+div_feat_m3 isal+eai+uncdiv_feat_m3 isal+uncdiv_feat_m3
 isal+hybrank+div_feat_m3 isal+gradsim+eai"
BC="random uncertainty margin entropy isal isal+gradsim isal+spec0.01 isal+spec0.1 isal+spec1
 isal+top2 isal+refbig isal+refstrat isal+div_feat_m3 isal+div_feat_m10 isal+div_badge_m3
 isal+hybrank isal+uncf_m2 isal+eai isal+eai+div_feat_m3 isal+eai+uncdiv_feat_m3
 isal+uncdiv_feat_m3 marginscore+div_feat_m3 isal+gradsim+eai"
DIGITS_EXTRA="margin isal isal+eai isal+eai+div_feat_m3 isal+eai+uncdiv_feat_m3
 marginscore+div_feat_m3 random"
BC_EXTRA="random margin isal isal+gradsim isal+spec0.1 isal+eai isal+eai+div_feat_m3
 isal+eai+uncdiv_feat_m3 marginscore+div_feat_m3 isal+div_feat_m3 isal+uncf_m2 isal+hybrank"

# shellcheck disable=SC2086
{
python run.py --task digits --seeds 10 --strategies $DIGITS1
python run.py --task digits --seeds 10 --strategies $DIGITS2
python spectrum.py --task digits --seeds 0 1 2 --rounds 0 3 10
python run.py --task breast_cancer --seeds 10 --strategies $BC
python run.py --task digits --first-seed 10 --seeds 10 --strategies $DIGITS_EXTRA
python run.py --task breast_cancer --first-seed 10 --seeds 10 --strategies $BC_EXTRA
}
python report.py --min-seeds 10   # all variants, seeds 0..9 -> results/table_<task>_min10seeds.md
python report.py --task digits --min-seeds 20 --curves random margin isal isal+eai \
    isal+eai+div_feat_m3 isal+eai+uncdiv_feat_m3 marginscore+div_feat_m3
python report.py --task breast_cancer --min-seeds 20 --curves random margin isal isal+eai \
    isal+eai+div_feat_m3 isal+eai+uncdiv_feat_m3 marginscore+div_feat_m3
