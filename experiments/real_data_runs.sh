#!/usr/bin/env bash
# The three architectures on real data, one run after another: Multi30k en->de (test2016 and test2017; each run
# trains for its experiment's trainer.max_time) and SCAN's simple and length splits. Keeps each run's printed
# summary, results.json and validation log under experiments/results/real-data/, then writes summary.md.
# Usage, from the project root with the project installed:
#   bash experiments/real_data_runs.sh [MULTI30K_DIR]    (default ../shared/data/multi30k)
#   RUNS="scan-simple-gru" bash experiments/real_data_runs.sh   (a subset, by run name)
set -euo pipefail
multi30k=${1:-../shared/data/multi30k}
out=experiments/results/real-data
mkdir -p "$out"
{
  echo "date: $(date -u +%Y-%m-%dT%H:%MZ)"
  echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(free -g | awk '/Mem:/{print $2}') GiB"
  echo "python: $(python --version 2>&1), torch $(python -c 'import torch; print(torch.__version__)')"
} > "$out/machine.txt"
declare -A args
for m in transformer attention gru; do
  args[multi30k-$m]="experiment=multi30k/$m data.root=$multi30k"
  for split in simple length; do args[scan-$split-$m]="experiment=scan/$m data.split=$split"; done
done
order="multi30k-transformer multi30k-attention multi30k-gru scan-simple-transformer scan-simple-attention
       scan-simple-gru scan-length-transformer scan-length-attention scan-length-gru"
for name in ${RUNS:-$order}; do
  SECONDS=0
  echo "command: python run.py ${args[$name]} logger=csv" > "$out/$name.log"
  python run.py ${args[$name]} logger=csv >> "$out/$name.log" 2>&1   # the CSV logger's metrics.csv is kept below
  echo "wall_s: $SECONDS" >> "$out/$name.log"
  results=$(grep -E '^results: ' "$out/$name.log" | tail -n 1 | sed 's/^results: //')
  cp "$results" "$out/$name.json"
  cp "$(dirname "$results")/csv/version_0/metrics.csv" "$out/$name.metrics.csv"
done
python experiments/real_data_summary.py "$out" > "$out/summary.md"
cat "$out/summary.md"
