"""Tables of the real-data runs in DIR (written by experiments/real_data_runs.sh): test scores, and validation BLEU
against training time. Usage: python experiments/real_data_summary.py experiments/results/real-data"""
import csv
import json
import re
import sys
from pathlib import Path

out = Path(sys.argv[1])
runs = sorted(out.glob("*.json"), key=lambda p: (p.stem.split("-")[0], p.stem))
print("| run | params | steps | training (s) | run (s) | train tok/s | split | BLEU beam / greedy | lowercased BLEU "
      "| chrF | exact match % |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for path in runs:
    r = json.loads(path.read_text())
    wall = re.search(r"^wall_s: (\d+)", (out / f"{path.stem}.log").read_text(), re.M).group(1)
    for split in r["test_splits"]:
        t = r[split]
        print(f"| {path.stem} | {r['params']:,} | {r['train']['steps']} | {r['train']['wall_s']:.0f} | {wall} "
              f"| {r['train']['tokens_per_s']:,.0f} | {split} ({t['n']}) | {t['bleu']:.1f} / {t['greedy']['bleu'] if 'greedy' in t else t['greedy_bleu']:.1f} "
              f"| {t['bleu_lc']:.1f} | {t['chrf']:.1f} | {t['exact_match']:.1f} |")
print("\nsacreBLEU signature:", r["test"]["signature"], "(lowercased: the same with case:lc)")
print("\nValidation BLEU (greedy) by training time, minutes:BLEU")
for path in runs:
    rows = [row for row in csv.DictReader(open(out / f"{path.stem}.metrics.csv")) if row.get("val/bleu")]
    curve = "  ".join(f"{float(row['val/train_seconds']) / 60:.0f}:{float(row['val/bleu']):.1f}" for row in rows
                      if float(row["val/train_seconds"]) > 0)
    print(f"- {path.stem}: {curve}")
