"""After training: the weights a run is scored with (the last, the best by validation BLEU, or the average of the
last epochs' checkpoints), beam search's length penalty tuned on the validation split, and the scoring of the test
splits by beam and greedy search with every hypothesis kept."""
from __future__ import annotations

import time
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch import Tensor

from zoo import average
from zoo.data.datamodule import TranslationDataModule
from zoo.decoding import length_limits
from zoo.metrics import corpus_scores, decoding_scores, percent
from zoo.module import Seq2SeqModule
from zoo.results import encode_weights
from zoo.resume import BestCheckpoint, EpochCheckpoints, all_processes


def translate_split(module: Seq2SeqModule, dm: TranslationDataModule, trainer: L.Trainer, split: str,
                    beam: bool, oracle: bool = False) -> tuple[list[str], float, list[bool]]:
    """Translations of `split` in its original order; generated tokens per second (every output token, and the EOS
    of each hypothesis that ended by itself); and for each translation whether it stopped at its length limit
    without EOS. With `oracle`, each translation has as many tokens as its reference (`zoo.decoding`; a special
    token such as BOS, which a trained model does not write, would be dropped from the text), so every one "stops
    at its limit". Under DDP each process translates its share of the batches and every process gets
    them all."""
    ids: dict[int, list[int]] = {}
    hit: dict[int, bool] = {}
    module.eval()
    start = time.perf_counter()
    with trainer.precision_plugin.forward_context():
        for batch in dm.loader(split, distributed=True):
            src, src_mask = batch["src"].to(module.device), batch["src_mask"].to(module.device)
            lengths = (batch["tgt_out"] != module.tokenizer.pad_id).sum(1).to(module.device) - 1 if oracle else None
            out = module.generate(src, src_mask, beam=beam, oracle_lengths=lengths)
            limits = length_limits(src_mask, module.search["max_len_a"], module.search["max_len_b"], lengths).tolist()
            for i, h, limit in zip(batch["index"].tolist(), out, limits):
                ids[i], hit[i] = h, len(h) >= limit  # (an EOS within the limit is cut off, so len(h) < limit)
    shares = all_processes((ids, hit, time.perf_counter() - start))
    ids = {i: h for share, _, _ in shares for i, h in share.items()}
    hit = {i: flag for _, share, _ in shares for i, flag in share.items()}
    generated = sum(len(h) + (not hit[i]) for i, h in ids.items())
    tokens_per_s = generated / max(seconds for _, _, seconds in shares)
    order = range(len(dm.split_ids(split)))
    return [module.tokenizer.decode(ids[i]) for i in order], tokens_per_s, [hit[i] for i in order]


def exposure(module: Seq2SeqModule, dm: TranslationDataModule, trainer: L.Trainer, split: str) -> dict:
    """Exposure bias on `split`: at each target position t (from 1; the reference's EOS included), the share of
    sentences whose most probable token there is the reference's, given the reference's prefix (teacher forcing, as
    the model trained) and given the model's own greedy prefix (as it decodes: position by position against the
    reference, so one token dropped or added misaligns the rest, as it would in its translation)."""
    width = int(dm.split_ids(split).lengths[1].max()) + 1  # the longest reference, and its EOS
    counts = torch.zeros(3, width, dtype=torch.long)  # sentences reaching position t, right forced, right free
    pad = module.tokenizer.pad_id
    module.eval()
    with torch.no_grad(), trainer.precision_plugin.forward_context():
        for batch in dm.loader(split, distributed=True):
            src, src_mask = batch["src"].to(module.device), batch["src_mask"].to(module.device)
            tgt_out = batch["tgt_out"].to(module.device)  # (B, T)
            real = tgt_out != pad  # (B, T)
            forced = module.net(src, src_mask, batch["tgt_in"].to(module.device)).argmax(-1)  # (B, T)
            own = torch.full_like(tgt_out, -1)  # (B, T) the greedy output and its EOS, cut at the batch's width
            for row, hyp in enumerate(module.generate(src, src_mask)):
                out = [*hyp, module.tokenizer.eos_id][: own.size(1)]
                own[row, : len(out)] = torch.tensor(out, device=own.device)
            right = torch.stack([real, real & (forced == tgt_out), real & (own == tgt_out)])  # (3, B, T)
            counts[:, : right.size(2)] += right.sum(1).cpu()
    n, forced, free = sum(all_processes(counts)).tolist()  # summed over the DDP processes' shares
    return {"teacher_forced": 100.0 * sum(forced) / sum(n), "free_running": 100.0 * sum(free) / sum(n),
            "positions": [{"t": t + 1, "n": n[t], "teacher_forced": 100.0 * forced[t] / n[t],
                           "free_running": 100.0 * free[t] / n[t]} for t in range(width) if n[t]]}


def evaluate(module: Seq2SeqModule, dm: TranslationDataModule, trainer: L.Trainer, bucket_width: int,
             oracle_length: bool = False, exposure_bias: bool = False) -> dict:
    """Every test split translated by beam search (the configured decoding: its scores at the split's top level)
    and by greedy search (under "greedy"), and with `oracle_length` by greedy search at each reference's length
    (under "oracle": what the model writes when the decision to stop is taken from it), every hypothesis kept; with
    `exposure_bias`, next-token accuracy by position on the reference's prefix and on its own (under "exposure");
    the "fit" sample of training pairs by greedy search; decoding speed on the first test split."""
    results, scoring = {}, {"lang": dm.tgt_lang, "lowercase": dm.settings.lowercase}
    for split in dm.test_splits:
        srcs, refs = (list(side) for side in zip(*dm.texts[split]))
        src_lens = dm.split_ids(split).lengths[0].tolist()
        beam, beam_tps, beam_hit = translate_split(module, dm, trainer, split, beam=True)
        greedy, greedy_tps, greedy_hit = translate_split(module, dm, trainer, split, beam=False)
        if split == dm.test_splits[0]:
            results["decode"] = {"greedy_tokens_per_s": greedy_tps, "beam_tokens_per_s": beam_tps}
        greedy_scores = decoding_scores(greedy, refs, greedy_hit, src_lens, bucket_width, **scoring)
        results[split] = {
            **decoding_scores(beam, refs, beam_hit, src_lens, bucket_width, **scoring),
            "greedy": {k: v for k, v in greedy_scores.items() if k not in ("signature", "n")},
            "samples": [{"source": s, "reference": r, "hypothesis": b, "greedy": g}
                        for s, r, b, g in zip(srcs, refs, beam, greedy)],
        }
        if oracle_length:
            oracle, _, _ = translate_split(module, dm, trainer, split, beam=False, oracle=True)
            results[split]["oracle"] = {k: v for k, v in corpus_scores(oracle, refs, **scoring).items()
                                        if k not in ("signature", "n")}
            for sample, hyp in zip(results[split]["samples"], oracle):
                sample["oracle"] = hyp
        if exposure_bias:
            results[split]["exposure"] = exposure(module, dm, trainer, split)
    if dm.fit_sample is not None:
        srcs, refs = (list(side) for side in zip(*dm.texts["fit"]))
        greedy, _, hit = translate_split(module, dm, trainer, "fit", beam=False)
        results["fit"] = {**corpus_scores(greedy, refs, **scoring), "hit_limit": percent(hit),
                          "samples": [{"source": s, "reference": r, "hypothesis": h}
                                      for s, r, h in zip(srcs, refs, greedy)]}
    return results


def own_translation(module: Seq2SeqModule, ids: list[int]) -> tuple[Tensor, Tensor, Tensor, list[str]]:
    """One source sentence's ids, its mask, and the teacher-forced input that replays the model's own greedy
    translation of it (BOS, then its output), for the attention over the source at each step; and the names of the
    rows that input gives: each output token, then EOS, or where the output ran to its length limit without EOS,
    its output alone (the input then leaves out the last token, whose next step never ran)."""
    src = torch.tensor([ids], device=module.device)  # (1, S)
    src_mask = torch.ones_like(src, dtype=torch.bool)  # (1, S)
    hyp = module.generate(src, src_mask)[0]
    limit = int(length_limits(src_mask, module.search["max_len_a"], module.search["max_len_b"])[0])
    rows = hyp if len(hyp) >= limit else [*hyp, module.tokenizer.eos_id]
    tgt_in = torch.tensor([[module.tokenizer.bos_id, *rows[:-1]]], device=module.device)  # (1, T)
    return src, src_mask, tgt_in, module.tokenizer.pieces(rows)


def alignment_sample(module: Seq2SeqModule, dm: TranslationDataModule, length: int = 12) -> dict | None:
    """For the report's heatmaps: the alignment weights of the model's own greedy translation of one sentence of
    the first test split (the first with `length` source tokens, or the nearest length, so every run picks the same
    one). Rows are the output tokens (then EOS), columns the source tokens; None for a model without attention."""
    split = dm.split_ids(dm.test_splits[0])  # already encoded: the cache's ids, not the tokenizer again
    nearest = int(abs(split.lengths[0] - length).argmin())  # the first of the nearest length
    ids = split[nearest][1].tolist()
    module.eval()
    with torch.no_grad():
        src, src_mask, tgt_in, rows = own_translation(module, ids)
        weights = module.net.alignment(src, src_mask, tgt_in)  # (1, T, S) or None
    if weights is None:
        return None
    return {"source": dm.src_tokenizer.pieces(ids), "target": rows, "weights": weights[0].float().tolist()}


def attention_sample(module: Seq2SeqModule, dm: TranslationDataModule, per_split: int = 8) -> list[dict] | None:
    """For the explorer page: every decoder layer's and head's weights over the source (`AttentionMaps`) for the
    model's own greedy translation of `per_split` sentences of each test split, spread evenly over the split's
    source lengths from its shortest to its longest (so that every run on the same data picks the same ones); None
    for a model without attention."""
    sample = []
    module.eval()
    for name in dm.test_splits:
        split = dm.split_ids(name)  # already encoded: the cache's ids, not the tokenizer again
        by_length = split.lengths[0].argsort(kind="stable")  # (N,) shortest source first
        steps = np.linspace(0, len(split) - 1, per_split).round().astype(int)  # (per_split,) evenly along it
        for index in sorted({int(by_length[k]) for k in steps}):
            ids = split[index][1].tolist()
            with torch.no_grad():
                src, src_mask, tgt_in, rows = own_translation(module, ids)
                maps = module.net.attention_maps(src, src_mask, tgt_in)  # (1, L, H, T, S) or None
            if maps is None:
                return None
            sample.append({"split": name, "index": index, "source": dm.src_tokenizer.pieces(ids), "target": rows,
                           "layers": maps.size(1), "heads": maps.size(2),
                           "weights": encode_weights(maps[0].float().cpu().numpy())})
    return sample


def prepare(module: Seq2SeqModule, dm: TranslationDataModule, trainer: L.Trainer, *, evaluate: str,
            alphas: list[float] | None, best: BestCheckpoint | None, epochs: EpochCheckpoints | None) -> dict:
    """Everything between training and decoding the test splits: the weights to score (`final_weights`), the
    length penalty chosen on validation (`tune_alpha`, with `alphas`), and for an average, `average.ckpt` beside the
    epoch checkpoints holding those weights with that penalty, so that `python -m zoo.translate` reproduces the
    test translations. Returns what results.json records of it."""
    evaluated, averaged = final_weights(module, evaluate, best, epochs)
    module.to(trainer.strategy.root_device)  # Lightning moves the module back to the CPU after fit
    tuning = None if alphas is None else tune_alpha(module, dm, trainer, alphas)
    path = None
    if averaged is not None:
        path = Path(epochs.folder) / "average.ckpt"
        averaged["zoo"]["decode"] = {**averaged["zoo"]["decode"], "alpha": module.beam["alpha"]}
        if trainer.is_global_zero:
            average.save(averaged, path)
    return {"evaluated": evaluated, "averaged": None if averaged is None else averaged["zoo"]["averaged"],
            "alpha_tuning": tuning, "average_checkpoint": None if path is None else str(path)}


def final_weights(module: Seq2SeqModule, evaluate: str, best: BestCheckpoint | None,
                  epochs: EpochCheckpoints | None) -> tuple[str, dict | None]:
    """Loads the weights the test splits are scored with into `module`: `evaluate` is last (as trained), best (the
    best validation BLEU's checkpoint) or average (the mean of the epoch checkpoints the run kept). Returns which
    weights they are, and for an average the averaged checkpoint (`zoo.average.average`); falls back to the last
    weights, saying so, when there are none of the kind asked for."""
    if evaluate == "best" and best is not None and best.path:
        module.load_state_dict(torch.load(best.path, map_location="cpu", weights_only=True)["state_dict"])
        print(f"evaluating the best weights by validation BLEU (step {best.step}): {best.path}")
        return "best", None
    if evaluate == "average" and epochs is not None and epochs.kept:
        paths = [Path(p) for p in epochs.kept]
        averaged = average.average(paths)
        module.load_state_dict(averaged["state_dict"])
        print(f"evaluating the average of the last {len(paths)} epoch checkpoints ({paths[0].name} ... "
              f"{paths[-1].name})")
        return "average", averaged
    if evaluate != "last":
        print(f"evaluating the last weights: there are no {evaluate} ones (no validation ran, or no epoch ended)")
    return "last", None


def tune_alpha(module: Seq2SeqModule, dm: TranslationDataModule, trainer: L.Trainer, alphas: list[float]) -> dict:
    """Beam search's length penalty chosen on the validation split only (the test splits play no part): each
    alpha's validation BLEU (detokenized sacreBLEU; tokenized BLEU beside it), the best kept in `module` (the first
    of equal ones)."""
    refs = [ref for _, ref in dm.texts["val"]]
    scores = []
    for alpha in alphas:
        module.beam["alpha"] = float(alpha)
        hyps, _, _ = translate_split(module, dm, trainer, "val", beam=True)
        s = corpus_scores(hyps, refs, lang=dm.tgt_lang, lowercase=dm.settings.lowercase)
        scores.append({"alpha": float(alpha), "bleu": s["bleu"], "bleu_tok": s["bleu_tok"]})
    chosen = max(scores, key=lambda s: s["bleu"])  # max keeps the first of equal ones
    module.beam["alpha"] = chosen["alpha"]
    print("length penalty on validation: " + ", ".join(f"alpha {s['alpha']:g}: BLEU {s['bleu']:.2f}" for s in scores)
          + f"; chosen {chosen['alpha']:g}")
    return {"split": "val", "metric": "bleu", "scores": scores, "alpha": chosen["alpha"]}
