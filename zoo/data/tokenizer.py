"""Subword (BPE) and word-level tokenizers, trained with Hugging Face `tokenizers` on the training split only.

Text is normalized (Unicode NFC, optionally lowercased, runs of whitespace to one space, stripped), split into
words at spaces, each word marked with a leading "▁" as in SentencePiece, and punctuation split off; decoding joins
the pieces and turns "▁" back into spaces, so translations come back as detokenized text that sacreBLEU can score.
The special tokens come first, so pad, bos, eos and unk have ids 0-3 in every vocabulary.

Encoding a corpus goes word by word through a memo of each distinct word's pieces: since words are encoded
independently of each other, this gives the library's own output (a test checks it) while the library runs once per
distinct word rather than once per sentence, which is what lets preprocessing keep pace with a large corpus.
"""
from __future__ import annotations

from collections.abc import Iterable
from itertools import chain
from pathlib import Path

import numpy as np
from tokenizers import Regex, decoders, models, normalizers, pre_tokenizers, trainers
from tokenizers import Tokenizer as HFTokenizer

SPECIALS = ("<pad>", "<bos>", "<eos>", "<unk>")
KINDS = ("bpe", "word")
MEMO_LIMIT = 2_000_000  # distinct words remembered while encoding; the memo restarts beyond this


def new_tokenizer(kind: str, lowercase: bool = False) -> HFTokenizer:
    if kind not in KINDS:
        raise ValueError(f"tokenizer kind {kind!r} is not one of {list(KINDS)}")
    tok = HFTokenizer(models.BPE(unk_token="<unk>") if kind == "bpe" else models.WordLevel(unk_token="<unk>"))
    # whitespace as Python's str.split sees it (\s and the separators \x1c-\x1f), so encode_lines can split words
    tok.normalizer = normalizers.Sequence([normalizers.NFC(), *([normalizers.Lowercase()] if lowercase else []),
                                           normalizers.Replace(Regex(r"[\s\x1c-\x1f]+"), " "), normalizers.Strip()])
    if kind == "bpe":
        tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Metaspace(), pre_tokenizers.Punctuation()])
        tok.decoder = decoders.Metaspace()
    else:  # whole words; decoding joins them with spaces
        tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return tok


class Tokenizer:
    """Text <-> ids with the special ids as attributes, around a trained `tokenizers.Tokenizer`."""

    def __init__(self, tok: HFTokenizer):
        self.tok = tok
        self.pad_id, self.bos_id, self.eos_id, self.unk_id = (tok.token_to_id(t) for t in SPECIALS)
        if None in (self.pad_id, self.bos_id, self.eos_id, self.unk_id):
            raise ValueError(f"a tokenizer needs the special tokens {list(SPECIALS)}")
        self._forget_words()

    def _forget_words(self) -> None:
        """The memo of encode_lines: word -> row r; row r's pieces are piece_ids[piece_start[r]:][:piece_count[r]]."""
        self._memo: dict[str, int] = {}
        self._piece_ids = np.zeros(0, np.int64)
        self._piece_start = np.zeros(0, np.int64)
        self._piece_count = np.zeros(0, np.int64)

    def _learn_words(self, words: list[str]) -> None:
        pieces = [enc.ids for enc in self.tok.encode_batch_fast(words, add_special_tokens=False)]  # all cores
        count = np.fromiter(map(len, pieces), np.int64, len(pieces))
        self._memo.update(zip(words, range(len(self._memo), len(self._memo) + len(words))))
        self._piece_start = np.concatenate([self._piece_start, len(self._piece_ids) + np.cumsum(count) - count])
        self._piece_count = np.concatenate([self._piece_count, count])
        self._piece_ids = np.concatenate([self._piece_ids, np.fromiter(chain.from_iterable(pieces), np.int64)])

    @classmethod
    def train(cls, lines: Iterable[str], *, kind: str = "bpe", vocab_size: int = 8000,
              min_frequency: int = 2, lowercase: bool = False) -> Tokenizer:
        """A tokenizer learned from `lines` (streamed; the library counts words, it does not keep lines).
        Word-level vocabularies keep every word seen `min_frequency` times, up to `vocab_size`. With `lowercase`,
        it folds case before everything else, in training and in every later encoding."""
        tok = new_tokenizer(kind, lowercase)
        make_trainer = trainers.BpeTrainer if kind == "bpe" else trainers.WordLevelTrainer
        tok.train_from_iterator(lines, make_trainer(vocab_size=vocab_size, min_frequency=min_frequency,
                                                    special_tokens=list(SPECIALS), show_progress=False))
        return cls(tok)

    @classmethod
    def from_str(cls, json: str) -> Tokenizer:
        return cls(HFTokenizer.from_str(json))

    @classmethod
    def load(cls, path: Path) -> Tokenizer:
        return cls(HFTokenizer.from_file(str(path)))

    def save(self, path: Path) -> None:
        self.tok.save(str(path))

    def __len__(self) -> int:
        return self.tok.get_vocab_size()

    def encode(self, line: str) -> list[int]:
        return self.tok.encode(line, add_special_tokens=False).ids

    def encode_lines(self, lines: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """All ids of `lines` end to end, and each line's length in tokens: (N,) int64."""
        words = " ".join(lines).split()  # (W,) at the normalizer's whitespace; one call is faster than one a line
        words_per_line = np.fromiter(map(len, map(str.split, lines)), np.int64, len(lines))  # (N,)
        if len(self._memo) > MEMO_LIMIT:
            self._forget_words()
        new = set(words).difference(self._memo)
        if new:
            self._learn_words(sorted(new))
        rows = np.fromiter(map(self._memo.__getitem__, words), np.int64, len(words))  # (W,) for W words
        count = self._piece_count[rows]  # (W,) pieces of each word
        ends = np.cumsum(count)  # (W,)
        # the k-th piece of word w sits at piece_start[w] + k; lay all pieces out end to end:
        ids = self._piece_ids[np.repeat(self._piece_start[rows] - (ends - count), count)
                              + np.arange(int(ends[-1]) if len(ends) else 0)]  # (tokens,)
        words_so_far = np.cumsum(words_per_line)  # (N,)
        tokens_so_far = np.concatenate([[0], ends])[np.concatenate([[0], words_so_far])]  # (N + 1,)
        return ids, np.diff(tokens_so_far)

    def pieces(self, ids: Iterable[int]) -> list[str]:
        """The vocabulary entry of each id, specials included: labels for plots."""
        return [self.tok.id_to_token(i) for i in ids]

    def ids(self, pieces: Iterable[str]) -> list[int]:
        """The id of each vocabulary entry (the inverse of `pieces`); an entry not in the vocabulary is unk."""
        return [self.tok.token_to_id(p) if self.tok.token_to_id(p) is not None else self.unk_id for p in pieces]

    def decode(self, ids: Iterable[int]) -> str:
        """Detokenized text; special tokens are dropped (unk is kept, as "<unk>")."""
        return self.tok.decode([i for i in ids if i >= len(SPECIALS) or i == self.unk_id], skip_special_tokens=False)
