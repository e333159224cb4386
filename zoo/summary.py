"""What a run prints when it ends, from its results.json (zoo/results.py): the figures a person wants at a glance,
with sample translations; the report (zoo/report.py) is the place for more."""
from zoo.results import Results


def print_summary(results: Results, n_samples: int) -> None:
    """What a run prints when it ends: speed, data, every test split's figures, the fit, and sample translations."""
    corpus, train = results["corpus"], results["train"]
    print(f"\n{results['model']} on {results['data']}: {results['params']:,} parameters, "
          f"{train['steps']} steps in {train['wall_s']:.0f} s, {train['tokens_per_s']:,.0f} train tokens/s "
          f"({train['tgt_tokens_per_s']:,.0f} target), {train['flops_per_token'] / 1e6:.1f} MFLOPs/token, "
          f"MFU {100 * train['mfu']:.1f}% of {results['device']['matmul_peak_gflops']:,.0f} GFLOP/s, "
          f"peak memory {results['memory']['peak_mb']:.0f} MB")
    print(f"data: {corpus['splits']['train']['pairs']:,} training pairs, vocabularies {corpus['src_vocab']:,} / "
          f"{corpus['tgt_vocab']:,}, padding efficiency {100 * corpus['padding_efficiency']:.1f}%")
    print(f"{'split':<10} {'n':>5} {'BLEU':>6} {'greedy':>7} {'tok BLEU':>8} {'chrF':>6} {'exact':>6} {'len':>5} "
          f"{'limit%':>6}   BLEU by source length  (tok BLEU: Moses-tokenized lowercased, as the papers report)")
    for split in results["test_splits"]:
        r = results[split]
        by_len = "  ".join(f"{b['lo']}-{b['hi']}:{b['bleu']:.0f}" for b in r["by_src_len"])
        print(f"{split:<10} {r['n']:>5} {r['bleu']:>6.1f} {r['greedy']['bleu']:>7.1f} {r['bleu_tok']:>8.1f} "
              f"{r['chrf']:>6.1f} {r['exact_match']:>6.1f} {r['len_ratio']:>5.2f} {r['hit_limit']:>6.1f}   {by_len}")
    if "fit" in results:
        fit, val = results["fit"], train["val_curve"]
        print(f"fit: greedy BLEU {fit['bleu']:.1f} on {fit['n']} training pairs, validation BLEU "
              + (f"{train['best_val_bleu']:.1f} at best (step {train['best_step']}), "
                 f"{'plateaued' if train['val_plateaued'] else 'still rising'}" if val else "not measured")
              + f"; test figures from the {train['evaluated']} weights")
    print(f"decoding: greedy {results['decode']['greedy_tokens_per_s']:,.0f} tokens/s, "
          f"beam {results['decode']['beam_tokens_per_s']:,.0f} tokens/s   ({results['test']['signature']})")
    samples = sorted(results["test"]["samples"], key=lambda s: len(s["source"].split()))
    for s in samples[:: max(1, len(samples) // n_samples)][:n_samples]:
        print(f"\n  source:     {s['source']}\n  reference:  {s['reference']}\n  hypothesis: {s['hypothesis']}")
    print()
