#!/usr/bin/env bash
# The three default runs on the embedded task, one after the other, as a new user would start them. Keeps each
# run's results.json and printed summary under experiments/results/default-runs/ (the full Hydra output directories,
# with checkpoints and CSV logs, stay under outputs/).
# Usage, from the project root with the project installed:  bash experiments/default_runs.sh
set -euo pipefail
out=experiments/results/default-runs
mkdir -p "$out"
{
  echo "date: $(date -u +%Y-%m-%dT%H:%MZ)"
  echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(free -g | awk '/Mem:/{print $2}') GiB"
  echo "python: $(python --version 2>&1), torch $(python -c 'import torch; print(torch.__version__)')"
} > "$out/machine.txt"
for m in transformer attention gru; do
  SECONDS=0
  python run.py model=$m > "$out/$m.log" 2>&1
  echo "wall_s: $SECONDS" >> "$out/$m.log"
  cp "$(grep -E '^results: ' "$out/$m.log" | tail -n 1 | sed 's/^results: //')" "$out/$m.json"
done
python - "$out" > "$out/summary.md" <<'PY'
import json, re, sys
out = sys.argv[1]
print("| model | params | steps | run (s) | training (s) | train tok/s | test BLEU beam / greedy | chrF | exact % "
      "| BLEU by source length 1-10 / 11-20 / 21-30 / 31-40 / 41-50 | test_long BLEU beam / greedy |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for m in ("transformer", "attention", "gru"):
    r = json.load(open(f"{out}/{m}.json"))
    run_s = re.search(r"^wall_s: (\d+)", open(f"{out}/{m}.log").read(), re.M).group(1)
    t, long = r["test"], r["test_long"]
    by_len = " / ".join(f"{b['bleu']:.0f}" for b in t["by_src_len"])
    print(f"| {m} | {r['params']:,} | {r['train']['steps']} | {run_s} | {r['train']['wall_s']:.0f} "
          f"| {r['train']['tokens_per_s']:,.0f} | {t['bleu']:.1f} / {t['greedy_bleu']:.1f} | {t['chrf']:.1f} "
          f"| {t['exact_match']:.1f} | {by_len} | {long['bleu']:.1f} / {long['greedy_bleu']:.1f} |")
PY
cat "$out/summary.md"
