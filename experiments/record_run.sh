#!/usr/bin/env bash
# Adds one finished run to experiments/results/NAME/, for results gathered a run at a time (across sessions) rather
# than by one sweep: its results.json whole, every translation included, gzipped (runs/LABEL/results.json.gz); a line
# in runs.txt with the command, date, machine and commit; then report.md and the plots re-created from every run
# recorded there, so `python -m zoo.report experiments/results/NAME` gives the same tables.
# Usage: bash experiments/record_run.sh RUN_DIR NAME LABEL "COMMAND" [COMMIT]
set -euo pipefail
run=$1 name=$2 label=$3 command=$4 commit=${5:-$(git rev-parse --short HEAD)}
out=experiments/results/$name
if [ ! -f "$run/results.json" ]; then echo "error: $run/results.json does not exist (has the run finished?)" >&2; exit 1; fi
if [ -e "$out/runs/$label" ]; then echo "error: $out/runs/$label exists; choose another LABEL" >&2; exit 1; fi
mkdir -p "$out/runs/$label"
gzip -9 -n -c "$run/results.json" > "$out/runs/$label/results.json.gz"
machine="$(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(free -g | awk '/Mem:/{print $2}') GiB, $(grep -qw avx512_bf16 /proc/cpuinfo && echo 'bf16 hardware (avx512_bf16)' || echo 'no bf16 hardware')"
echo "$label: $command | recorded $(date -u +%Y-%m-%dT%H:%MZ) | $machine | $(python --version 2>&1), torch $(python -c 'import torch; print(torch.__version__)') | commit $commit" >> "$out/runs.txt"
python -m zoo.report "$out"
