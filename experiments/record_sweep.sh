#!/usr/bin/env bash
# Records a finished sweep under experiments/results/NAME/: the report, its plots and its explorer page as the
# sweep wrote them, each job's results.json whole, every translation included, gzipped (runs/JOB/results.json.gz),
# and the command, date and machine. `python -m zoo.report experiments/results/NAME` then re-creates every table and p-value from these.
# Usage: bash experiments/record_sweep.sh SWEEP_DIR NAME "COMMAND" [SECONDS]
# The commit recorded is $SWEEP_COMMIT (sweep.sh sets it when the sweep starts) or else the current HEAD.
set -euo pipefail
sweep=$1 name=$2 command=$3 seconds=${4:-?}
out=experiments/results/$name
if [ -e "$out" ]; then echo "error: $out exists; remove it first or choose another NAME" >&2; exit 1; fi
mkdir -p "$out/runs"
cp "$sweep"/report.md "$sweep"/*.png "$out"/
if [ -f "$sweep"/explorer.html ]; then cp "$sweep"/explorer.html "$out"/; fi
find "$sweep" -name results.json | while read -r results; do
  rel=${results#"$sweep"/}; rel=${rel%/results.json}   # the job's directory, perhaps nested (model=multi30k/gru)
  mkdir -p "$out/runs/${rel//\//_}"
  gzip -9 -n -c "$results" > "$out/runs/${rel//\//_}/results.json.gz"
done
{
  echo "command: $command"
  echo "date: $(date -u +%Y-%m-%dT%H:%MZ), $seconds s for the whole sweep"
  echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(free -g | awk '/Mem:/{print $2}') GiB, $(grep -qw avx512_bf16 /proc/cpuinfo && echo 'bf16 hardware (avx512_bf16)' || echo 'no bf16 hardware')$(grep -qw amx_bf16 /proc/cpuinfo && echo ' and AMX'), trainer=cpu precision $(python -c 'from zoo.resolvers import cpu_precision; print(cpu_precision())')"
  echo "python: $(python --version 2>&1), torch $(python -c 'import torch; print(torch.__version__)'), commit ${SWEEP_COMMIT:-$(git rev-parse --short HEAD)}"
} > "$out/machine.txt"
cat "$out/machine.txt"
