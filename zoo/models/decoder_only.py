"""A decoder-only Transformer for translation: one stack of self-attention layers over the source followed by the
target, [x_1 .. x_S ; BOS y_1 .. y_T], trained on the target positions only (Liu et al. 2018 and the GPT line;
compared with the encoder-decoder by Raffel et al. 2020, section 3.2, and Wang et al. 2022, "What Language Model
Architecture and Pretraining Objective Work Best for Zero-Shot Generalization?").

    causal      every position sees those before it only: a language model over the pair (GPT)
    prefix      the source positions see each other both ways, the target positions all the source and the target
                before them: a prefix language model (Raffel et al.'s "prefix LM")

There is no cross-attention: the target reads the source through the same self-attention that reads the target. In
the zoo's interface the "encoder" is the stack's pass over the source, whose keys and values of every layer become the
start of the decoding state; the decoder runs the same layers (the same weights) over the target, each layer
attending to those cached source keys and values and to the target's own so far, so a step costs one position. BOS
separates source from target. Positions are absolute and count on from the source's own length in each row (target
token t of a row with S real source tokens is at S + t), so padding never shifts them; sinusoidal or learned.
Layers as the encoder-decoder Transformer's (post-LN by default; zoo.models.transformer).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from zoo.models.base import (Encoder, EncoderDecoder, IncrementalDecoder, State, check_dropout, check_positive,
                             normal_embedding)
from zoo.models.cache import GrowingCache
from zoo.models.positions import sinusoidal_table
from zoo.models.registry import register
from zoo.models.layers import FeedForward, MultiHeadAttention, Residual

MASKS = ("causal", "prefix")


class Embedding(nn.Module):
    """√D · E[token] + PE[position] for positions given per row (B, T), then dropout."""

    def __init__(self, *, vocab_size: int, d_model: int, pad_id: int, table: nn.Parameter | Tensor, dropout: float):
        super().__init__()
        self.tokens = normal_embedding(vocab_size, d_model, pad_id)
        if isinstance(table, nn.Parameter):
            self.table = table  # learned: one table, shared by source and target
        else:
            self.register_buffer("table", table, persistent=False)  # sinusoidal: computed again, not saved
        self.scale, self.dropout = math.sqrt(d_model), nn.Dropout(dropout)

    def forward(self, tokens: Tensor, positions: Tensor) -> Tensor:
        if int(positions.max()) >= self.table.size(0):
            raise ValueError(f"position {int(positions.max())} exceeds max_positions ({self.table.size(0)})")
        return self.dropout(self.tokens(tokens) * self.scale + self.table[positions])  # (B, T, D)


class Layer(nn.Module):
    def __init__(self, *, d_model: int, n_heads: int, d_ff: int, dropout: float, pre_norm: bool):
        super().__init__()
        self.attn = MultiHeadAttention(d_model=d_model, n_heads=n_heads, dropout=0.0)
        self.ffn = FeedForward(d_model=d_model, d_ff=d_ff, activation_dropout=0.0)
        self.res_attn, self.res_ffn = (Residual(d_model=d_model, dropout=dropout, pre_norm=pre_norm) for _ in range(2))

    def forward(self, x: Tensor, cache: GrowingCache, key_mask: Tensor, causal: bool):
        """x (B, T, D) follows the positions in `cache`, which it attends to, as it does to its own positions
        (causally, or both ways); key_mask (B, t+T) True = a real key. Returns x and the cache extended by these T
        positions."""
        y = self.res_attn.input(x)  # (B, T, D) what attention reads
        k, v, _, cache = cache.extend(*self.attn.keys_values(y))  # (B, H, t+T, D/H) each, in the autocast dtype
        x = self.res_attn.output(x, self.attn(y, k, v, key_mask, causal=causal))  # (B, T, D)
        return self.res_ffn(x, self.ffn), cache


class PrefixPass(Encoder):
    """The stack over the source: every layer's keys and values of it, for the target to attend to."""

    def __init__(self, embed: Embedding, layers: nn.ModuleList, mask: str):
        super().__init__()
        self.embed, self.layers, self.causal = embed, layers, mask == "causal"

    def forward(self, src: Tensor, src_mask: Tensor) -> list[GrowingCache]:
        positions = torch.arange(src.size(1), device=src.device).expand_as(src)  # (B, S)
        x = self.embed(src, positions)  # (B, S, D)
        B, H = src.size(0), self.layers[0].attn.h
        empty = GrowingCache.empty(x.new_zeros(B, H, 0, x.size(-1) // H))  # (B, H, 0, D/H)
        caches = []
        for layer in self.layers:
            x, cache = layer(x, empty, src_mask, causal=self.causal)  # (B, S, D)
            caches.append(cache)
        return caches  # per layer, the source's keys and values (B, H, S, D/H)


class TargetPass(IncrementalDecoder):
    def __init__(self, embed: Embedding, layers: nn.ModuleList, final_norm: nn.Module, out: nn.Linear):
        super().__init__()
        self.embed, self.layers, self.final_norm, self.out = embed, layers, final_norm, out

    def init_state(self, caches: list[GrowingCache], src_mask: Tensor) -> State:
        """The source's keys and values start every layer's cache; the target starts after the source's own
        length in each row."""
        return State(source={}, step={"caches": caches, "key_mask": src_mask, "next": src_mask.sum(1)})

    def run(self, tgt: Tensor, state: State) -> tuple[Tensor, State]:
        positions = state["next"].unsqueeze(1) + torch.arange(tgt.size(1), device=tgt.device)  # (B, T)
        x = self.embed(tgt, positions)  # (B, T, D)
        key_mask = torch.cat([state["key_mask"], torch.ones_like(tgt, dtype=torch.bool)], 1)  # (B, t+T)
        caches = []
        for cache, layer in zip(state["caches"], self.layers):
            x, cache = layer(x, cache, key_mask, causal=True)  # (B, T, D)
            caches.append(cache)
        logits = self.out(self.final_norm(x))  # (B, T, V)
        return logits, state.updated(caches=caches, key_mask=key_mask, next=positions[:, -1] + 1)


@register("decoder_only", colour="tab:brown", order=4,
          small={"d_model": 16, "n_heads": 4, "d_ff": 32, "n_layers": 3})
class DecoderOnly(EncoderDecoder):
    """One stack, `mask` causal or prefix; sizes as the Transformer's (`n_layers` in all, no cross-attention, so
    the same parameter count buys more layers). `positions`: sinusoidal or learned; `max_positions` bounds source and
    target together. Source and target keep their own token tables unless `share_all_embeddings` (a joint
    vocabulary); `tie_embeddings` ties the target's to the output projection."""

    def __init__(self, *, src_vocab_size: int, tgt_vocab_size: int, pad_id: int, d_model: int = 128,
                 n_heads: int = 4, d_ff: int = 512, n_layers: int = 4, dropout: float = 0.1, pre_norm: bool = False,
                 mask: str = "prefix", positions: str = "sinusoidal", max_positions: int = 1024,
                 tie_embeddings: bool = False, share_all_embeddings: bool = False):
        check_positive(src_vocab_size=src_vocab_size, tgt_vocab_size=tgt_vocab_size, d_model=d_model,
                       n_heads=n_heads, d_ff=d_ff, n_layers=n_layers, max_positions=max_positions)
        check_dropout(dropout=dropout)
        if mask not in MASKS:
            raise ValueError(f"mask ({mask!r}) must be one of {', '.join(map(repr, MASKS))}")
        if positions not in ("sinusoidal", "learned"):
            raise ValueError(f"positions ({positions!r}) must be 'sinusoidal' or 'learned'")
        if d_model % n_heads or d_model % 2:
            raise ValueError(f"d_model ({d_model}) must be even and divisible by n_heads ({n_heads})")
        if share_all_embeddings and src_vocab_size != tgt_vocab_size:
            raise ValueError(f"share_all_embeddings needs one vocabulary for both languages, not {src_vocab_size} "
                             f"source and {tgt_vocab_size} target tokens (data.preprocess.joint=true)")
        table = (nn.Parameter(torch.randn(max_positions, d_model) * d_model**-0.5) if positions == "learned"
                 else sinusoidal_table(max_positions, d_model))  # (P, D), one for source and target
        layers = nn.ModuleList(Layer(d_model=d_model, n_heads=n_heads, d_ff=d_ff, dropout=dropout,
                                     pre_norm=pre_norm) for _ in range(n_layers))
        source, target = (Embedding(vocab_size=v, d_model=d_model, pad_id=pad_id, table=table, dropout=dropout)
                          for v in (src_vocab_size, tgt_vocab_size))
        out = nn.Linear(d_model, tgt_vocab_size)
        if tie_embeddings or share_all_embeddings:
            out.weight = target.tokens.weight
        if share_all_embeddings:
            source.tokens = target.tokens
        super().__init__(PrefixPass(source, layers, mask),
                         TargetPass(target, layers, nn.LayerNorm(d_model) if pre_norm else nn.Identity(), out))
        self.max_positions = max_positions // 2  # source and target share the positions: each may have half

    def attention_maps(self, src: Tensor, src_mask: Tensor, tgt_in: Tensor) -> Tensor:
        """Where in the source each layer's target positions look (B, L, H, T, S): their attention over the source
        keys, renormalised over the real source tokens (whatever share goes to the target itself), recomputed from
        the queries that pre-hooks catch on their way into each layer's attention."""
        caches, queries = self.encoder(src, src_mask), []
        hooks = [layer.attn.register_forward_pre_hook(lambda module, args: queries.append(args[0]))
                 for layer in self.decoder.layers]  # y (B, T, D) of each layer, in order
        try:
            self.decoder(tgt_in, self.decoder.init_state(caches, src_mask))
        finally:
            for hook in hooks:
                hook.remove()
        return torch.stack([layer.attn.weights(q, cache.k, src_mask)  # (B, H, T, S) each
                            for layer, q, cache in zip(self.decoder.layers, queries, caches)], 1)

    def forward_flops(self, src_len: int | Tensor, tgt_len: int | Tensor) -> int | Tensor:
        """S = src_len, T = tgt_len, width D, feed-forward F, L layers, V target words:

            per layer       (S + T)·(4·2D² + 2·2DF)          Q K V O and FFN for every position
                            + 2·2S²D + 2·2T(S + T)D          QKᵀ and AV: the source over itself (the full S×S, as
                                                             SDPA computes it), the target over source and target
            output          T·2DV"""
        S, T = src_len, tgt_len
        D, V = self.decoder.out.in_features, self.decoder.out.out_features
        d_ff, L = self.decoder.layers[0].ffn[0].out_features, len(self.decoder.layers)
        layer = (S + T) * (8 * D * D + 4 * D * d_ff) + 4 * S * S * D + 4 * T * (S + T) * D
        return L * layer + 2 * T * D * V

    def decode_flops(self, src_len: int | Tensor, tgt_len: int | Tensor) -> int | Tensor:
        """Step t attends to S + t keys, not the teacher-forced pass's S + T: 2·T·(T-1)·D fewer a layer."""
        T, D = tgt_len, self.decoder.out.in_features
        return self.forward_flops(src_len, tgt_len) - len(self.decoder.layers) * 2 * T * (T - 1) * D
