"""One run: data, model, module and trainer from the config; training; evaluation of the test splits by greedy and
beam search; `results.json`, a summary table and sample translations."""
from __future__ import annotations

import json
import time
from pathlib import Path

import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from zoo.data.datamodule import TranslationDataModule
from zoo.decoding import length_limits
from zoo.metrics import TrainClock, bleu_by_length, corpus_scores, device_name, matmul_peak_flops, peak_memory
from zoo.resolvers import run_label
from zoo.tracking import finish, log_results, wandb_identity
from zoo.module import Seq2SeqModule

def translate_split(module: Seq2SeqModule, dm: TranslationDataModule, trainer: L.Trainer, split: str,
                    beam: bool) -> tuple[list[str], float]:
    """Translations of `split` in its original order, and generated tokens per second: every output token, and
    the EOS of each hypothesis that ended by itself rather than at its length limit."""
    ids: list[list[int]] = [[] for _ in range(len(dm.corpus.ids[split]))]
    generated = 0
    module.eval()
    start = time.perf_counter()
    with trainer.precision_plugin.forward_context():
        for batch in dm.loader(split):
            src, src_mask = batch["src"].to(module.device), batch["src_mask"].to(module.device)
            out = module.generate(src, src_mask, beam=beam)
            limits = length_limits(src_mask, module.search["max_len_a"], module.search["max_len_b"]).tolist()
            for i, h, limit in zip(batch["index"].tolist(), out, limits):
                ids[i] = h
                generated += len(h) + (len(h) < limit)
    seconds = time.perf_counter() - start
    return [module.tokenizer.decode(h) for h in ids], generated / seconds


def evaluate(module: Seq2SeqModule, dm: TranslationDataModule, trainer: L.Trainer, bucket_width: int) -> dict:
    """Scores of every test split, and decoding speed on `test` (the first, in-range split)."""
    results = {}
    for split in dm.test_splits:
        srcs, refs = (list(side) for side in zip(*dm.texts[split]))
        greedy, greedy_tps = translate_split(module, dm, trainer, split, beam=False)
        beam, beam_tps = translate_split(module, dm, trainer, split, beam=True)
        if split == "test":
            results["decode"] = {"greedy_tokens_per_s": greedy_tps, "beam_tokens_per_s": beam_tps}
        results[split] = {
            **corpus_scores(beam, refs),
            "greedy_bleu": corpus_scores(greedy, refs)["bleu"],
            "by_src_len": bleu_by_length(dm.corpus.ids[split].lengths[0].tolist(), beam, refs, bucket_width),
            "samples": [{"source": s, "reference": r, "hypothesis": h} for s, r, h in zip(srcs, refs, beam)],
        }
    return results


def alignment_sample(module: Seq2SeqModule, dm: TranslationDataModule, length: int = 12) -> dict | None:
    """For the report's heatmaps: the alignment weights of the model's own greedy translation of one sentence of
    the first test split (the first with `length` source tokens, or the nearest length, so every run picks the same
    one). Rows are the output tokens (then EOS), columns the source tokens; None for a model without attention."""
    split = dm.corpus.ids[dm.test_splits[0]]  # already encoded: the cache's ids, not the tokenizer again
    nearest = int(abs(split.lengths[0] - length).argmin())  # the first of the nearest length
    ids = split[nearest][1].tolist()
    src = torch.tensor([ids], device=module.device)  # (1, S)
    src_mask = torch.ones_like(src, dtype=torch.bool)  # (1, S)
    module.eval()
    with torch.no_grad():
        hyp = module.generate(src, src_mask)[0]
        tgt_in = torch.tensor([[module.tokenizer.bos_id, *hyp]], device=module.device)  # (1, T)
        weights = module.net.alignment(src, src_mask, tgt_in)  # (1, T, S) or None
    if weights is None:
        return None
    return {"source": dm.src_tokenizer.pieces(ids), "target": module.tokenizer.pieces([*hyp, module.tokenizer.eos_id]),
            "weights": weights[0].float().tolist()}


def print_summary(results: dict, n_samples: int) -> None:
    corpus, train = results["corpus"], results["train"]
    print(f"\n{results['model']} on {results['data']}: {results['params']:,} parameters, "
          f"{train['steps']} steps in {train['wall_s']:.0f} s, {train['tokens_per_s']:,.0f} train tokens/s "
          f"({train['tgt_tokens_per_s']:,.0f} target), {train['flops_per_token'] / 1e6:.1f} MFLOPs/token, "
          f"MFU {100 * train['mfu']:.1f}% of {results['device']['matmul_peak_gflops']:,.0f} GFLOP/s, "
          f"peak memory {results['memory']['peak_mb']:.0f} MB")
    print(f"data: {corpus['splits']['train']['pairs']:,} training pairs, vocabularies {corpus['src_vocab']:,} / "
          f"{corpus['tgt_vocab']:,}, padding efficiency {100 * corpus['padding_efficiency']:.1f}%")
    print(f"{'split':<10} {'n':>5} {'BLEU':>6} {'greedy':>7} {'lc BLEU':>7} {'chrF':>6} {'exact':>6}   "
          f"BLEU by source length")
    for split in results["test_splits"]:
        r = results[split]
        by_len = "  ".join(f"{b['lo']}-{b['hi']}:{b['bleu']:.0f}" for b in r["by_src_len"])
        print(f"{split:<10} {r['n']:>5} {r['bleu']:>6.1f} {r['greedy_bleu']:>7.1f} {r['bleu_lc']:>7.1f} "
              f"{r['chrf']:>6.1f} {r['exact_match']:>6.1f}   {by_len}")
    print(f"decoding: greedy {results['decode']['greedy_tokens_per_s']:,.0f} tokens/s, "
          f"beam {results['decode']['beam_tokens_per_s']:,.0f} tokens/s   ({results['test']['signature']})")
    samples = sorted(results["test"]["samples"], key=lambda s: len(s["source"].split()))
    for s in samples[:: max(1, len(samples) // n_samples)][:n_samples]:
        print(f"\n  source:     {s['source']}\n  reference:  {s['reference']}\n  hypothesis: {s['hypothesis']}")
    print()


MATMUL_DTYPES = {"bf16-mixed": torch.bfloat16, "bf16-true": torch.bfloat16, "16-mixed": torch.float16,
                 "16-true": torch.float16}


def train(cfg: DictConfig) -> Path:
    out_dir = Path(HydraConfig.get().runtime.output_dir)
    results_path = out_dir / "results.json"
    if results_path.exists():
        raise FileExistsError(f"{results_path} already exists; choose another hydra.run.dir")
    L.seed_everything(cfg.seed, workers=True)
    label = run_label()

    logger = instantiate(cfg.logger)
    try:
        results = fit_and_evaluate(cfg, label, logger)
    except Exception:  # (Ctrl-C is left to wandb's own exit hook)
        finish(logger, failed=True)  # a failed job still closes its wandb run, so the sweep's next job gets its own
        raise
    print_summary(results, cfg.n_samples)
    with open(results_path, "x") as f:  # "x": never overwrite
        json.dump(results, f, indent=1)
    log_results(logger, results)
    finish(logger, failed=False)
    return results_path


def fit_and_evaluate(cfg: DictConfig, label: str, logger) -> dict:
    dm: TranslationDataModule = instantiate(cfg.data)
    dm.setup()
    net = instantiate(cfg.model.net)(src_vocab_size=len(dm.src_tokenizer), tgt_vocab_size=len(dm.tgt_tokenizer),
                                     pad_id=dm.tgt_tokenizer.pad_id)  # the same in both: specials come first
    module = Seq2SeqModule(net, optimizer=instantiate(cfg.model.optimizer),
                           scheduler=instantiate(cfg.model.scheduler), tokenizer=dm.tgt_tokenizer,
                           label_smoothing=cfg.model.label_smoothing, **cfg.decode)
    params = sum(p.numel() for p in net.parameters() if p.requires_grad)
    print(f"{label}: {params:,} parameters")
    if cfg.speed.compile:  # in place, so checkpoints keep their keys; decoding's `step` stays eager
        net.compile(dynamic=True)  # one graph for every batch shape, not a recompile per shape
    logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))  # the whole config, to filter runs by
    clock = TrainClock()
    trainer: L.Trainer = instantiate(cfg.trainer, logger=logger, callbacks=[clock])
    device = trainer.strategy.root_device
    peak = matmul_peak_flops(device, MATMUL_DTYPES.get(str(trainer.precision), torch.float32))

    start = time.perf_counter()
    trainer.fit(module, datamodule=dm)
    wall_s = time.perf_counter() - start
    module.to(device)  # Lightning moves the module back to the CPU after fit
    evaluation = evaluate(module, dm, trainer, cfg.bucket_width)

    val_bleu = trainer.callback_metrics.get("val/bleu")  # None when no validation ran: JSON has no NaN
    return {
        "model": label, "data": HydraConfig.get().runtime.choices["data"], "params": params, "seed": cfg.seed,
        "overrides": list(HydraConfig.get().overrides.task),  # what the command line set: the report groups by it
        "device": {"name": device_name(device), "type": device.type, "precision": str(trainer.precision),
                   "matmul_peak_gflops": peak / 1e9},
        "corpus": {**dm.summary(), "train_max_src_len": int(dm.corpus.ids["train"].lengths[0].max())},
        "test_splits": dm.test_splits,
        **{split: evaluation[split] for split in dm.test_splits},
        "train": {"wall_s": wall_s, "steps": trainer.global_step, **clock.summary(peak),
                  "val_bleu": None if val_bleu is None else float(val_bleu)},
        "decode": evaluation["decode"], "decoding": dict(cfg.decode),
        "memory": peak_memory(device), "speed": dict(cfg.speed),
        "alignment": alignment_sample(module, dm),
        "wandb": wandb_identity(logger),
    }
