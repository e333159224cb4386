#!/usr/bin/env bash
# Runs one of the documented sweeps and records it under experiments/results/NAME/: the report and its plots as the
# sweep wrote them, each job's results.json without its translations (runs/), and the command, date and machine.
# The full sweep (translations, checkpoints, wandb offline runs) stays in multirun/experiments/NAME.
# Usage, from the project root with the project installed:
#   bash experiments/sweep.sh compare
#   bash experiments/sweep.sh long_sequence seed=0          (extra overrides go to run.py)
set -euo pipefail
name=$1; shift
sweep=multirun/experiments/$name-$(date -u +%Y%m%d-%H%M%S)
out=experiments/results/$name
mkdir -p multirun/experiments
command="python run.py -m experiment=$name $* hydra.sweep.dir=$sweep"
SECONDS=0
$command 2>&1 | tee "$sweep.log" || status=$?
rm -rf "$out" && mkdir -p "$out/runs"
cp "$sweep"/report.md "$sweep"/*.png "$out"/
for results in "$sweep"/*/results.json; do
  python - "$results" "$out/runs/$(basename "$(dirname "$results")").json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
for split in r["test_splits"]:
    r[split].pop("samples")  # 1000s of translations: in the sweep directory, not in git
json.dump(r, open(sys.argv[2], "w"), indent=1)
PY
done
{
  echo "command: $command"
  echo "date: $(date -u +%Y-%m-%dT%H:%MZ), $SECONDS s for the whole sweep"
  echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(free -g | awk '/Mem:/{print $2}') GiB"
  echo "python: $(python --version 2>&1), torch $(python -c 'import torch; print(torch.__version__)'), commit $(git rev-parse --short HEAD)"
} > "$out/machine.txt"
cat "$out/machine.txt"
exit ${status:-0}
