#!/usr/bin/env bash
# Runs one of the documented sweeps, then records it with experiments/record_sweep.sh under
# experiments/results/NAME/. The full sweep (translations, checkpoints, wandb offline runs) stays in
# multirun/experiments/NAME-DATE.
# Usage, from the project root with the project installed:
#   bash experiments/sweep.sh compare
#   bash experiments/sweep.sh long_sequence seed=0          (extra overrides go to run.py)
#   WITH=multirun/experiments/compare-... bash experiments/sweep.sh long_sequence model=transformer_rotary
#       also reports the runs of an earlier sweep (their results.json), e.g. to reuse identical runs
set -euo pipefail
name=$1; shift
sweep=multirun/experiments/$name-$(date -u +%Y%m%d-%H%M%S)
mkdir -p multirun/experiments
command="python run.py -m experiment=$name $* hydra.sweep.dir=$sweep"
# the commit the runs ran at, not the one checked out when the sweep ends (results are committed while it runs)
export SWEEP_COMMIT=${SWEEP_COMMIT:-$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- zoo conf run.py || echo "+uncommitted changes")}
SECONDS=0
$command 2>&1 | tee "$sweep.log" || status=$?
if [ -n "${WITH:-}" ]; then
  find "$WITH" -name results.json | while read -r results; do
    rel=${results#"$WITH"/}; rel=${rel%/results.json}
    job=$sweep/with-$(basename "$WITH")-${rel//\//_}
    mkdir -p "$job" && cp "$results" "$job/"
  done
  python -m zoo.report "$sweep"
  command="$command; then, with the runs of $WITH: python -m zoo.report $sweep"
fi
bash experiments/record_sweep.sh "$sweep" "$name" "$command" "$SECONDS"
exit ${status:-0}
