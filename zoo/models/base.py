"""The encoder-decoder interface that every architecture implements.

After d2l's ``Encoder`` / ``Decoder.init_state`` / ``EncoderDecoder`` (Zhang et al., Dive into Deep Learning, ch. 10):

    encoder(src, src_mask)           -> enc_out                 whatever the decoder needs from the source
    decoder.init_state(enc_out, src_mask) -> State
    decoder(tgt_in, state)           -> logits (B, T, V)        teacher forcing: the whole target at once
    decoder.step(token, state)       -> logits (B, V), State    one position, for greedy and beam search
    state.select(index)              -> State                   reorders (or repeats) batch rows, for beam search

and, for looking at and measuring a model:

    model.attention_maps(src, src_mask, tgt_in) -> (B, L, H, T, S) or None   every layer's and head's weights over
                                                                            the source, if the model has them
    model.alignment(src, src_mask, tgt_in)  -> (B, T, S) or None   one picture of them (the last layer's mean over
                                                                    heads, unless the model draws it otherwise)
    model.forward_flops(src_len, tgt_len)   -> matrix-multiply FLOPs of one forward pass of one sentence pair
    model.decode_flops(src_len, tgt_len)    -> the same for decoding tgt_len tokens one `step` at a time
    model.max_positions                     -> the most tokens a source, or a target with its BOS, may have (None: any)

Conventions, everywhere in the zoo: tensors are batch-first; masks are boolean with True = real token, shape (B, S);
the pad id comes from the vocabulary and is handed to the model's constructor.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch
from torch import Tensor, nn


@dataclass
class State:
    """Decoding state; dim 0 of every tensor (or of each tensor in a per-layer list, or of each cache: see
    zoo/models/cache.py) is the batch row.

    `source` holds what depends only on the source sentence (encoder memory and its projections, the mask);
    `step` what changes as tokens are generated (hidden states, key/value caches)."""

    source: dict[str, Tensor | list[Tensor]]
    step: dict[str, Tensor | list]  # tensors, or per-layer lists of tensors or of caches

    def select(self, index: Tensor, *, same_sources: bool = False) -> State:
        """Rows `index`: greedy search drops finished rows with it, beam search reorders hypotheses. With
        `same_sources`, every row is replaced by a row of the same sentence (as when beam search reorders the
        hypotheses of each sentence), so the source tensors are kept as they are instead of copied."""
        source = self.source if same_sources else {k: _select(v, index) for k, v in self.source.items()}
        return State(source, {k: _select(v, index) for k, v in self.step.items()})

    def __getitem__(self, name: str) -> Tensor | list:
        return self.step[name] if name in self.step else self.source[name]

    def updated(self, **step: Tensor | list) -> State:
        """The same source, with the named step tensors replaced."""
        return State(self.source, {**self.step, **step})


def _select(value: Tensor | list, index: Tensor) -> Tensor | list:
    """Rows `index` of a tensor, of each tensor of a list, or of anything with `index_select` (a key/value cache)."""
    if isinstance(value, list):
        return [v.index_select(0, index) for v in value]
    return value.index_select(0, index)


class Encoder(nn.Module, ABC):
    @abstractmethod
    def forward(self, src: Tensor, src_mask: Tensor):
        """src (B, S) token ids, src_mask (B, S) -> whatever `Decoder.init_state` takes."""


class Decoder(nn.Module, ABC):
    @abstractmethod
    def init_state(self, enc_out, src_mask: Tensor) -> State:
        """The state before the first target token (BOS) is read."""

    @abstractmethod
    def forward(self, tgt_in: Tensor, state: State) -> Tensor:
        """Teacher forcing: tgt_in (B, T) starts with BOS -> logits (B, T, V) predicting the next tokens."""

    @abstractmethod
    def step(self, token: Tensor, state: State) -> tuple[Tensor, State]:
        """One decoding step: token (B,) -> logits (B, V) for the next token, and the state after it."""


class IncrementalDecoder(Decoder):
    """A decoder whose pass over T new positions continues its state (`run`): teacher forcing is one run from the
    initial state, a decoding step a run of one position (the Transformers' key/value caches, ConvS2S's inputs)."""

    @abstractmethod
    def run(self, tgt: Tensor, state: State) -> tuple[Tensor, State]:
        """tgt (B, T) after the positions already in `state` -> logits (B, T, V), and the state after them."""

    def forward(self, tgt_in: Tensor, state: State) -> Tensor:
        return self.run(tgt_in, state)[0]  # (B, T, V)

    def step(self, token: Tensor, state: State) -> tuple[Tensor, State]:
        logits, state = self.run(token.unsqueeze(1), state)[:2]  # (B, 1, V)
        return logits.squeeze(1), state  # (B, V)


class EncoderDecoder(nn.Module, ABC):
    """An encoder and a decoder behind one interface; decoding, loss and metrics see only this class."""

    max_positions: int | None = None  # no limit here: a recurrent network reads and writes any length

    def __init__(self, encoder: Encoder, decoder: Decoder):
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder

    def init_state(self, src: Tensor, src_mask: Tensor) -> State:
        return self.decoder.init_state(self.encoder(src, src_mask), src_mask)

    def forward(self, src: Tensor, src_mask: Tensor, tgt_in: Tensor) -> Tensor:
        return self.decoder(tgt_in, self.init_state(src, src_mask))  # (B, T, V)

    def attention_maps(self, src: Tensor, src_mask: Tensor, tgt_in: Tensor) -> Tensor | None:
        """Weights (B, L, H, T, S) over the source positions for each target position of a teacher-forced pass, for
        each of the decoder's L attention layers and H heads (1 and 1 for a single attention), each row a
        distribution over the real source tokens; None here: no attention over the source, the decoder sees only
        the fixed-length context vector."""
        return None

    def alignment(self, src: Tensor, src_mask: Tensor, tgt_in: Tensor) -> Tensor | None:
        """The weights (B, T, S) to draw as one picture: the last attention layer's, averaged over its heads."""
        maps = self.attention_maps(src, src_mask, tgt_in)  # (B, L, H, T, S) or None
        return None if maps is None else maps[:, -1].mean(1)  # (B, T, S)

    @abstractmethod
    def forward_flops(self, src_len: int | Tensor, tgt_len: int | Tensor) -> int | Tensor:
        """Matrix-multiply FLOPs (2 per multiply-add) of the teacher-forced `forward` for one sentence pair of
        src_len source and tgt_len target-input tokens: every linear layer and recurrent matrix, the output
        projection over the whole vocabulary, attention scores and weighted sums; not embedding lookups,
        element-wise ops, norms, softmax or biases. Plain arithmetic, so integer tensors (B,) give one count per
        pair."""

    @classmethod
    def at_width(cls, width: int, *, max_len: int, **common) -> EncoderDecoder:
        """For the scaling study (experiments/scaling.py): the architecture with every size `width` and one layer
        each way, taking sequences of up to max_len tokens; `common` holds the vocabulary sizes, pad id, dropout."""
        raise NotImplementedError(f"{cls.__name__} has no at_width: the scaling study leaves it out")

    @classmethod
    def cost(cls, phase: str, explicit_attention: bool) -> tuple[int, int] | None:
        """Theory for the scaling study: the exponents in the sequence length n of (time per sequence, peak memory)
        at fixed width and batch, for `phase` ("train", "decode", or "decode, no cache": recomputing the prefix);
        `explicit_attention`: attention computed as written, its n x n weights stored. None: no such phase."""
        return None

    def decode_flops(self, src_len: int | Tensor, tgt_len: int | Tensor) -> int | Tensor:
        """FLOPs, counted as `forward_flops` counts them, of `init_state` and tgt_len decoder steps: the products
        of the teacher-forced pass, one position at a time, unless a decoder's steps do less than its parallel pass."""
        return self.forward_flops(src_len, tgt_len)


def check_positive(**values: int | float) -> None:
    """Raise a ValueError naming every argument that is not > 0."""
    bad = [f"{name} ({value})" for name, value in values.items() if not value > 0]
    if bad:
        raise ValueError(f"{', '.join(bad)} must be > 0")


def check_dropout(**rates: float) -> None:
    """Raise a ValueError naming every dropout rate outside [0, 1)."""
    bad = [f"{name} ({rate})" for name, rate in rates.items() if not 0.0 <= rate < 1.0]
    if bad:
        raise ValueError(f"{', '.join(bad)} must be in [0, 1)")


def maxout(x: Tensor, pool: int = 2) -> Tensor:
    """Maxout units (Goodfellow et al. 2013), the deep output of Cho et al. 2014 and Bahdanau et al. 2015."""
    return x.unflatten(-1, (-1, pool)).amax(-1)  # (..., D / pool)


def packed_rnn(rnn: nn.GRU, x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """Run `rnn` over the real tokens only, so padding never reaches a state (and the backward direction of a
    bidirectional GRU starts at each row's last real token). x (B, S, E) -> outputs (B, S, dirs*H), h_n."""
    lengths = mask.sum(1).cpu()  # (B,)
    packed = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    out, h_n = rnn(packed)
    out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=x.size(1))
    return out, h_n  # (B, S, dirs*H), (layers*dirs, B, H)


def normal_embedding(num: int, dim: int, pad_id: int) -> nn.Embedding:
    emb = nn.Embedding(num, dim, padding_idx=pad_id)
    nn.init.normal_(emb.weight, std=dim**-0.5)
    with torch.no_grad():
        emb.weight[pad_id].zero_()
    return emb
