#!/usr/bin/env bash
# Records a finished sweep under experiments/results/NAME/: the report and its plots as the sweep wrote them, each
# job's results.json without its translations (runs/), and the command, date and machine.
# Usage: bash experiments/record_sweep.sh SWEEP_DIR NAME "COMMAND" [SECONDS]
set -euo pipefail
sweep=$1 name=$2 command=$3 seconds=${4:-?}
out=experiments/results/$name
rm -rf "$out" && mkdir -p "$out/runs"
cp "$sweep"/report.md "$sweep"/*.png "$out"/
find "$sweep" -name results.json | while read -r results; do
  rel=${results#"$sweep"/}; rel=${rel%/results.json}   # the job's directory, perhaps nested (model=multi30k/gru)
  python - "$results" "$out/runs/${rel//\//_}.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
for split in r["test_splits"]:
    r[split].pop("samples")  # 1000s of translations: in the sweep directory, not in git
json.dump(r, open(sys.argv[2], "w"), indent=1)
PY
done
{
  echo "command: $command"
  echo "date: $(date -u +%Y-%m-%dT%H:%MZ), $seconds s for the whole sweep"
  echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(free -g | awk '/Mem:/{print $2}') GiB"
  echo "python: $(python --version 2>&1), torch $(python -c 'import torch; print(torch.__version__)'), commit $(git rev-parse --short HEAD)"
} > "$out/machine.txt"
cat "$out/machine.txt"
