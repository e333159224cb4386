"""What a run measures. Scores on detokenized text with the `sacrebleu` package, the reference implementation:
BLEU with its signature, chrF, exact match, and BLEU by source-length bucket; and BLEU the way the Multi30k papers
report it, on Moses-tokenized lowercased text (`bleu_tok`). (Validation logs torchmetrics'
SacreBLEUScore, which does not smooth zero n-gram counts; the test figures here do, with sacrebleu's default 'exp'
smoothing.) Training throughput in real tokens per second, model FLOPs utilisation against the device's measured
matrix-multiply peak, validation BLEU against training time, and peak memory."""
from __future__ import annotations

import platform
import resource
import time
from difflib import SequenceMatcher

import torch
from lightning.pytorch.callbacks import Callback
from sacrebleu.metrics import BLEU, CHRF
from sacrebleu.metrics.bleu import BLEUScore
from sacremoses import MosesPunctNormalizer, MosesTokenizer

from zoo.resume import every_process, this_process


def moses_tokenized(texts: list[str], lang: str) -> list[str]:
    """Lowercased, punctuation-normalised and Moses-tokenized text, as the Multi30k data's own preprocessing
    (lowercase.perl, normalize-punctuation.perl, tokenizer.perl; Elliott et al. 2016) and the papers' BLEU see it.
    `escape` writes & < > ' " as XML entities, as tokenizer.perl does by default."""
    normalizer, tokenizer = MosesPunctNormalizer(lang=lang), MosesTokenizer(lang=lang)
    return [tokenizer.tokenize(normalizer.normalize(t.lower()), escape=True, return_str=True) for t in texts]


def tok_bleu() -> BLEU:
    """sacreBLEU scoring text that is already tokenized (`moses_tokenized`): no tokenization of its own."""
    return BLEU(tokenize="none", force=True)


def bleu_tok(hyps: list[str], refs: list[str], lang: str) -> BLEUScore:
    """BLEU on Moses-tokenized lowercased text (`moses_tokenized`), scored by sacreBLEU with no tokenization of its
    own: the figure of multi-bleu.perl -lc, and of fairseq's and nmtpytorch's BLEU on tokenized text, which the
    Multi30k literature quotes. Not comparable with detokenized sacreBLEU (`bleu`)."""
    return tok_bleu().corpus_score(moses_tokenized(hyps, lang), [moses_tokenized(refs, lang)])


def corpus_scores(hyps: list[str], refs: list[str], *, lang: str, lowercase: bool = False) -> dict:
    """Corpus BLEU and chrF (0-100), exact match (% of hypotheses equal to their reference up to whitespace),
    BLEU's signature, and the hypothesis/reference length ratio as BLEU's brevity penalty sees it (`len_ratio`,
    `sys_len`, `ref_len`, in sacreBLEU's tokens).
    `bleu` is sacreBLEU on detokenized cased text, the comparable figure; `bleu_lc` lowercases first but keeps
    sacreBLEU's 13a tokenization; `bleu_tok` is BLEU on Moses-tokenized lowercased text of language `lang`, the
    figure the Multi30k papers report (see `bleu_tok`). With `lowercase` (a model that writes lowercase:
    data.preprocess.lowercase), BLEU, chrF and exact match fold case too, and the signature says case:lc."""
    if len(hyps) != len(refs):
        raise ValueError(f"{len(hyps)} hypotheses but {len(refs)} references")
    metric = BLEU(lowercase=lowercase)
    bleu = metric.corpus_score(hyps, [refs])
    return {
        "bleu": bleu.score,
        "bleu_lc": BLEU(lowercase=True).corpus_score(hyps, [refs]).score,
        "bleu_tok": bleu_tok(hyps, refs, lang).score,
        "chrf": CHRF(lowercase=lowercase).corpus_score(hyps, [refs]).score,
        "exact_match": percent([same_text(h, r, lowercase) for h, r in zip(hyps, refs)]),
        "len_ratio": bleu.sys_len / max(bleu.ref_len, 1), "sys_len": bleu.sys_len, "ref_len": bleu.ref_len,
        "signature": str(metric.get_signature()),
        "n": len(refs),
    }


def decoding_scores(hyps: list[str], refs: list[str], hit_limit: list[bool], src_lens: list[int],
                    width: int, *, lang: str, lowercase: bool = False) -> dict:
    """`corpus_scores` of one decoding of a split, the share of hypotheses (%) that reached their length limit
    without EOS, and both again by source-length bucket: whether a model failed on content or on stopping."""
    return {**corpus_scores(hyps, refs, lang=lang, lowercase=lowercase), "hit_limit": percent(hit_limit),
            "by_src_len": bleu_by_length(src_lens, hyps, refs, width, hit_limit, lowercase=lowercase)}


def percent(flags: list[bool]) -> float:
    return 100.0 * sum(flags) / max(len(flags), 1)


def same_text(hyp: str, ref: str, lowercase: bool = False) -> bool:
    """Exact match: equal up to whitespace (and case, with `lowercase`)."""
    return (hyp.lower() if lowercase else hyp).split() == (ref.lower() if lowercase else ref).split()


def after_first_error(hyps: list[str], refs: list[str]) -> float | None:
    """Whether outputs recover from their first mistake: over the outputs that are wrong, the percentage of the
    reference's words from the first difference on that the output still writes, in order after that point (difflib's
    matching blocks, a near-longest common subsequence). One slipped word and the rest right scores near 100; an
    output that goes off course after its first error scores near 0. None where no wrong output leaves reference words
    to write (none is wrong, or each only adds words after the whole reference)."""
    rest = written = 0
    for hyp, ref in zip(hyps, refs):
        hyp_words, ref_words = hyp.split(), ref.split()
        if hyp_words == ref_words:
            continue
        same = [h == r for h, r in zip(hyp_words, ref_words)]
        k = same.index(False) if False in same else len(same)  # the first difference (or where the shorter ends)
        blocks = SequenceMatcher(None, hyp_words[k:], ref_words[k:], autojunk=False).get_matching_blocks()
        rest, written = rest + len(ref_words) - k, written + sum(b.size for b in blocks)
    return 100.0 * written / rest if rest else None


def bleu_by_length(src_lens: list[int], hyps: list[str], refs: list[str], width: int,
                   hit_limit: list[bool] | None = None, *, lowercase: bool = False) -> list[dict]:
    """Corpus BLEU and length ratio of each source-length bucket [lo, hi] of `width` tokens (1-10, 11-20, ...),
    non-empty ones only; `n` says how many sentences each score rests on; with `hit_limit`, the share of the
    bucket's hypotheses that reached their length limit."""
    buckets: dict[int, list[int]] = {}
    for i, n in enumerate(src_lens):
        buckets.setdefault((n - 1) // width, []).append(i)
    out = []
    for k, idx in sorted(buckets.items()):
        bleu = BLEU(lowercase=lowercase).corpus_score([hyps[i] for i in idx], [[refs[i] for i in idx]])
        bucket = {"lo": k * width + 1, "hi": (k + 1) * width, "n": len(idx), "bleu": bleu.score,
                  "len_ratio": bleu.sys_len / max(bleu.ref_len, 1)}
        if hit_limit is not None:
            bucket["hit_limit"] = percent([hit_limit[i] for i in idx])
        out.append(bucket)
    return out


class TrainClock(Callback):
    """Training throughput in real (non-padding) tokens per second of training, where training time runs from the
    first batch to the last and excludes validation; data loading counts, as it should. Also the model FLOPs of
    those batches (3x the forward pass's matrix products: the backward pass costs about twice the forward), and
    validation BLEU and loss (and BLEU on the "fit" sample of training pairs) against training and wall-clock
    seconds.
    With `budget_s`, training stops after that many seconds of training (validation excluded), for comparisons
    at equal training time."""

    def __init__(self, budget_s: float | None = None):
        self.budget_s = budget_s
        self.src_tokens, self.tgt_tokens, self.flops, self.seconds, self.steps = 0, 0, 0, 0.0, 0
        self.val_curve: list[dict] = []
        self.wall_before = 0.0  # wall-clock seconds of training before a resume
        self._last = self._start = None

    def state_dict(self) -> dict:
        """The running totals of every process, saved with every checkpoint so that a resumed run reports the whole
        run."""
        return every_process({"src_tokens": self.src_tokens, "tgt_tokens": self.tgt_tokens, "flops": self.flops,
                              "seconds": self.seconds, "steps": self.steps, "val_curve": self.val_curve,
                              "wall_s": self.wall_s()})

    def load_state_dict(self, state: dict) -> None:
        state = this_process(state)
        self.src_tokens, self.tgt_tokens, self.flops = state["src_tokens"], state["tgt_tokens"], state["flops"]
        self.seconds, self.steps, self.val_curve = state["seconds"], state["steps"], list(state["val_curve"])
        self.wall_before = state["wall_s"]

    def wall_s(self) -> float:
        """Wall-clock seconds since training started, across resumes."""
        return self.wall_before + (time.perf_counter() - self._start if self._start is not None else 0.0)

    def on_train_start(self, trainer, pl_module) -> None:
        self._start = self._last = time.perf_counter()  # (a run resumed mid-epoch starts no epoch)

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._last = time.perf_counter()

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        pl_module.log("val/train_seconds", self.seconds, sync_dist=True)  # to plot validation BLEU against time

    def on_validation_end(self, trainer, pl_module) -> None:
        metrics = trainer.callback_metrics
        bleu, fit, loss = (metrics.get(name) for name in ("val/bleu", "fit/bleu", "val/loss"))
        if not trainer.sanity_checking and bleu is not None:
            self.val_curve.append({"step": trainer.global_step, "train_s": self.seconds, "wall_s": self.wall_s(),
                                   "bleu": float(bleu), "fit_bleu": None if fit is None else float(fit),
                                   "loss": None if loss is None else float(loss)})  # (what early stopping watches)
        self._last = time.perf_counter()  # validation time is not training time

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        now = time.perf_counter()
        self.seconds += now - self._last
        self._last = now
        src_len = batch["src_mask"].sum(1)  # (B,)
        tgt_len = (batch["tgt_out"] != pl_module.tokenizer.pad_id).sum(1)  # (B,)
        self.src_tokens += int(src_len.sum())
        self.tgt_tokens += int(tgt_len.sum())
        self.flops += 3 * int(pl_module.net.forward_flops(src_len.long(), tgt_len.long()).sum())
        self.steps += 1
        if self.budget_s is not None:
            self.stop_if_out_of_time(trainer)

    def stop_if_out_of_time(self, trainer) -> None:
        out_of_time = self.seconds >= self.budget_s
        if trainer.world_size > 1:  # every process stops at the same step
            out_of_time = trainer.strategy.reduce_boolean_decision(out_of_time, all=False)
        if out_of_time:  # as if the step budget ended here (`should_stop` would validate first)
            trainer.fit_loop.epoch_loop.max_steps = trainer.global_step

    def summary(self, peak_flops_per_s: float) -> dict:
        """Throughput over the whole run; `mfu` is the model FLOPs per second over the device's peak."""
        tokens = self.src_tokens + self.tgt_tokens
        per_s = 1 / self.seconds if self.seconds else 0.0
        return {"tokens_per_s": tokens * per_s, "tgt_tokens_per_s": self.tgt_tokens * per_s,
                "tokens": tokens, "tgt_tokens": self.tgt_tokens, "train_s": self.seconds,
                "flops_per_token": self.flops / tokens if tokens else 0.0,
                "mfu": self.flops * per_s / peak_flops_per_s if peak_flops_per_s else 0.0,
                "val_curve": self.val_curve}


def matmul_peak_flops(device: torch.device, dtype: torch.dtype, seconds: float = 2.0) -> float:
    """The device's measured matrix-multiply rate (FLOP/s): square products of the size a well-fed model layer
    sees, in the dtype training runs in, timed over 5 windows of `seconds` / 5; the best window counts, since a
    shared machine only ever slows a window down. MFU is measured against this, not against a datasheet figure, so
    that it says how close a model comes to what this machine can do."""
    n = 8192 if device.type == "cuda" else 2048
    a, b = (torch.randn(n, n, device=device).to(dtype) for _ in range(2))  # (n, n) each
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(3):  # warm-up: kernel selection, clocks, caches
        a @ b
    sync()
    best = 0.0
    for _ in range(5):
        reps, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds / 5:
            for _ in range(10 if device.type == "cuda" else 1):
                a @ b
                reps += 1
            sync()
        best = max(best, 2 * n**3 * reps / (time.perf_counter() - start))
    del a, b
    if device.type == "cuda":  # the run's peak memory is the model's, not this benchmark's
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    return best


def peak_memory(device: torch.device) -> dict:
    """CUDA: the most memory the caching allocator ever handed out; CPU: the process's peak resident set."""
    if device.type == "cuda":
        return {"peak_mb": torch.cuda.max_memory_allocated(device) / 2**20, "kind": "cuda max allocated"}
    return {"peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10,  # Linux reports KiB
            "kind": "peak RSS"}


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "CPU")
    except OSError:  # not Linux
        model = platform.processor() or "CPU"
    return f"{model}, {torch.get_num_threads()} threads"


def plateaued(curve: list[float], checks: int = 3, delta: float = 1.0) -> bool:
    """Whether validation had stopped improving: none of the last `checks` points lies more than `delta` above the
    best before them (a curve too short to tell has not plateaued)."""
    return len(curve) > checks and max(curve[-checks:]) <= max(curve[:-checks]) + delta
