"""What a run measures. Scores on detokenized text with the `sacrebleu` package, the reference implementation:
BLEU with its signature, chrF, exact match, and BLEU by source-length bucket. (Validation logs torchmetrics'
SacreBLEUScore, which does not smooth zero n-gram counts; the test figures here do, with sacrebleu's default 'exp'
smoothing.) Training throughput in real tokens per second, and peak memory."""
from __future__ import annotations

import resource
import time

import torch
from lightning.pytorch.callbacks import Callback
from sacrebleu.metrics import BLEU, CHRF


def corpus_scores(hyps: list[str], refs: list[str]) -> dict:
    """Corpus BLEU and chrF (0-100), exact match (% of hypotheses equal to their reference up to whitespace), and
    BLEU's signature.
    `bleu` is sacreBLEU on detokenized cased text, the comparable figure; `bleu_lc` lowercases first, which comes
    closer to the tokenized lowercased BLEU most papers report (multi-bleu.perl on Moses-tokenized text)."""
    if len(hyps) != len(refs):
        raise ValueError(f"{len(hyps)} hypotheses but {len(refs)} references")
    bleu = BLEU()
    return {
        "bleu": bleu.corpus_score(hyps, [refs]).score,
        "bleu_lc": BLEU(lowercase=True).corpus_score(hyps, [refs]).score,
        "chrf": CHRF().corpus_score(hyps, [refs]).score,
        "exact_match": 100.0 * sum(h.split() == r.split() for h, r in zip(hyps, refs)) / max(len(refs), 1),
        "signature": str(bleu.get_signature()),
        "n": len(refs),
    }


def bleu_by_length(src_lens: list[int], hyps: list[str], refs: list[str], width: int) -> list[dict]:
    """Corpus BLEU of each source-length bucket [lo, hi] of `width` tokens (1-10, 11-20, ...), non-empty ones only;
    `n` says how many sentences each score rests on."""
    buckets: dict[int, list[int]] = {}
    for i, n in enumerate(src_lens):
        buckets.setdefault((n - 1) // width, []).append(i)
    return [{"lo": k * width + 1, "hi": (k + 1) * width, "n": len(idx),
             "bleu": BLEU().corpus_score([hyps[i] for i in idx], [[refs[i] for i in idx]]).score}
            for k, idx in sorted(buckets.items())]


class TrainClock(Callback):
    """Training throughput: real (non-padding) source + target tokens per second of training, where training
    time runs from the first batch to the last and excludes validation; data loading counts, as it should."""

    def __init__(self):
        self.tokens, self.seconds, self.steps, self._last = 0, 0.0, 0, None

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._last = time.perf_counter()

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        pl_module.log("val/train_seconds", self.seconds)  # to plot validation scores against training time

    def on_validation_end(self, trainer, pl_module) -> None:
        self._last = time.perf_counter()  # validation time is not training time

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        now = time.perf_counter()
        self.seconds += now - self._last
        self._last = now
        self.tokens += int(batch["src_mask"].sum()) + int((batch["tgt_out"] != pl_module.tokenizer.pad_id).sum())
        self.steps += 1

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0


def peak_memory_mb(device: torch.device) -> float:
    """CUDA: the most memory the caching allocator ever handed out; CPU: the process's peak resident set."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10  # Linux reports KiB
