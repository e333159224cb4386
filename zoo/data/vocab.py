"""A word-level vocabulary for whitespace-tokenized text (the embedded task needs no subwords)."""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

SPECIALS = ("<pad>", "<bos>", "<eos>", "<unk>")


class Vocab:
    """Token <-> id. The special tokens come first, so pad, bos, eos and unk have the same ids in every Vocab."""

    def __init__(self, tokens: Iterable[str]):
        self.itos = [*SPECIALS, *(t for t in tokens if t not in SPECIALS)]
        self.stoi = {t: i for i, t in enumerate(self.itos)}
        self.pad_id, self.bos_id, self.eos_id, self.unk_id = (self.stoi[t] for t in SPECIALS)

    @classmethod
    def build(cls, lines: Iterable[str], min_count: int = 1) -> Vocab:
        """Tokens of `lines` seen at least `min_count` times, most frequent first."""
        counts = Counter(tok for line in lines for tok in line.split())
        return cls(t for t, n in counts.most_common() if n >= min_count)

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, line: str) -> list[int]:
        return [self.stoi.get(tok, self.unk_id) for tok in line.split()]

    def decode(self, ids: Iterable[int]) -> str:
        """Detokenized text: special tokens dropped, words joined by spaces."""
        return " ".join(self.itos[i] for i in ids if i >= len(SPECIALS) or i == self.unk_id)
