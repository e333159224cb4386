"""The Transformer (Vaswani et al. 2017, "Attention Is All You Need", arXiv:1706.03762, section 3).

    x = √D · E[token] + PE(position)                 embeddings scaled by √d_model (3.4), sinusoidal PE (3.5)
    Attention(Q, K, V) = softmax(Q Kᵀ / √d_k) V       scaled dot-product attention (eq. 1)
    MultiHead(Q, K, V) = Concat(head_1..head_H) W_O,  head_i = Attention(Q W_Q_i, K W_K_i, V W_V_i)   (3.2.2)
    FFN(x) = max(0, x W_1 + b_1) W_2 + b_2            position-wise feed-forward (eq. 2)
    LayerNorm(x + Dropout(Sublayer(x)))               residual + LayerNorm, post-LN as in the paper (5.4);
    x + Dropout(Sublayer(LayerNorm(x)))               pre-LN as an option (Xiong et al. 2020)

The decoder's self-attention is causal. Its decoding state caches every layer's keys and values, so `step` computes
one new position against the cache instead of re-running the whole prefix.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zoo.models.base import (Decoder, Encoder, EncoderDecoder, State, check_dropout, check_positive,
                             normal_embedding)


def sinusoidal_table(n_positions: int, d_model: int) -> Tensor:
    """PE(pos, 2i) = sin(pos / 10000^(2i/D)),  PE(pos, 2i+1) = cos(pos / 10000^(2i/D))."""
    pos = torch.arange(n_positions).unsqueeze(1)  # (P, 1)
    freq = torch.exp(torch.arange(0, d_model, 2) * (-math.log(10000.0) / d_model))  # (D/2,)
    table = torch.zeros(n_positions, d_model)  # (P, D)
    table[:, 0::2], table[:, 1::2] = torch.sin(pos * freq), torch.cos(pos * freq)
    return table


class Embedding(nn.Module):
    """√D · E[token] + PE[position], then dropout. Token embeddings start at std D^-0.5 (as fairseq does) so that,
    once scaled by √D, they have unit size and do not drown the positional signal."""

    def __init__(self, *, vocab_size: int, d_model: int, pad_id: int, max_positions: int, positions: str,
                 dropout: float):
        super().__init__()
        if positions not in ("sinusoidal", "learned"):
            raise ValueError(f"positions ({positions!r}) must be 'sinusoidal' or 'learned'")
        self.tokens = normal_embedding(vocab_size, d_model, pad_id)  # std D^-0.5, pad row zero
        if positions == "learned":
            self.positions = nn.Parameter(torch.randn(max_positions, d_model) * d_model**-0.5)  # (P, D)
        else:
            self.register_buffer("positions", sinusoidal_table(max_positions, d_model), persistent=False)
        self.scale, self.dropout = math.sqrt(d_model), nn.Dropout(dropout)

    def forward(self, tokens: Tensor, start: int = 0) -> Tensor:
        """tokens (B, T) at positions start .. start+T-1 -> (B, T, D)."""
        end = start + tokens.size(1)
        if end > self.positions.size(0):
            raise ValueError(f"sequence of length {end} exceeds max_positions ({self.positions.size(0)})")
        return self.dropout(self.tokens(tokens) * self.scale + self.positions[start:end])  # (B, T, D)


class MultiHeadAttention(nn.Module):
    def __init__(self, *, d_model: int, n_heads: int, dropout: float):
        super().__init__()
        self.h, self.dropout = n_heads, dropout
        self.W_Q, self.W_K, self.W_V, self.W_O = (nn.Linear(d_model, d_model) for _ in range(4))

    def split(self, x: Tensor) -> Tensor:
        return x.unflatten(-1, (self.h, -1)).transpose(1, 2)  # (B, T, D) -> (B, H, T, D/H)

    def keys_values(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.split(self.W_K(x)), self.split(self.W_V(x))  # (B, H, S, D/H) each

    def forward(self, x: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None, causal: bool = False) -> Tensor:
        """Queries from x (B, T, D) attend to keys/values k, v (B, H, S, D/H); mask (B, S), True = may attend."""
        q = self.split(self.W_Q(x))  # (B, H, T, D/H)
        attn_mask = None if mask is None else mask[:, None, None, :]  # (B, 1, 1, S) broadcast over heads, queries
        # softmax(q kᵀ / √d_k + mask) v, fused (flash / memory-efficient kernels where the device has them)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, is_causal=causal,
                                             dropout_p=self.dropout if self.training else 0.0)  # (B, H, T, D/H)
        return self.W_O(out.transpose(1, 2).flatten(2))  # (B, T, D)


class FeedForward(nn.Sequential):
    def __init__(self, *, d_model: int, d_ff: int, dropout: float):
        super().__init__(nn.Linear(d_model, d_ff), nn.ReLU(), nn.Dropout(dropout), nn.Linear(d_ff, d_model))


class Residual(nn.Module):
    """LayerNorm(x + Dropout(f(x))) when post-LN (the paper), x + Dropout(f(LayerNorm(x))) when pre-LN."""

    def __init__(self, *, d_model: int, dropout: float, pre_norm: bool):
        super().__init__()
        self.norm, self.dropout, self.pre_norm = nn.LayerNorm(d_model), nn.Dropout(dropout), pre_norm

    def forward(self, x: Tensor, sublayer) -> Tensor:
        if self.pre_norm:
            return x + self.dropout(sublayer(self.norm(x)))
        return self.norm(x + self.dropout(sublayer(x)))


class EncoderLayer(nn.Module):
    def __init__(self, *, d_model: int, n_heads: int, d_ff: int, dropout: float, pre_norm: bool):
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model=d_model, n_heads=n_heads, dropout=dropout)
        self.ffn = FeedForward(d_model=d_model, d_ff=d_ff, dropout=dropout)
        self.res_attn, self.res_ffn = (Residual(d_model=d_model, dropout=dropout, pre_norm=pre_norm) for _ in range(2))

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        x = self.res_attn(x, lambda y: self.self_attn(y, *self.self_attn.keys_values(y), mask))  # (B, S, D)
        return self.res_ffn(x, self.ffn)  # (B, S, D)


class DecoderLayer(nn.Module):
    def __init__(self, *, d_model: int, n_heads: int, d_ff: int, dropout: float, pre_norm: bool):
        super().__init__()
        self.self_attn, self.cross_attn = (MultiHeadAttention(d_model=d_model, n_heads=n_heads, dropout=dropout)
                                           for _ in range(2))
        self.ffn = FeedForward(d_model=d_model, d_ff=d_ff, dropout=dropout)
        self.res_self, self.res_cross, self.res_ffn = (Residual(d_model=d_model, dropout=dropout, pre_norm=pre_norm)
                                                       for _ in range(3))

    def forward(self, x: Tensor, cache: tuple[Tensor, Tensor], memory: tuple[Tensor, Tensor], src_mask: Tensor):
        """x (B, T, D) follows the positions already in `cache` (keys, values (B, H, t, D/H)); returns the new x and
        the cache extended by T positions. With an empty cache this is the teacher-forced pass, causally masked."""
        new_cache = cache

        def self_attention(y: Tensor) -> Tensor:
            nonlocal new_cache
            k, v = self.self_attn.keys_values(y)  # (B, H, T, D/H)
            new_cache = torch.cat([cache[0], k], 2), torch.cat([cache[1], v], 2)  # (B, H, t+T, D/H)
            # a single new position may see the whole cache; T > 1 new positions (from an empty cache) are causal
            return self.self_attn(y, *new_cache, causal=y.size(1) > 1)

        x = self.res_self(x, self_attention)  # (B, T, D)
        x = self.res_cross(x, lambda y: self.cross_attn(y, *memory, src_mask))  # (B, T, D)
        return self.res_ffn(x, self.ffn), new_cache


class TransformerEncoder(Encoder):
    def __init__(self, embed: Embedding, layers: list[EncoderLayer], final_norm: nn.Module):
        super().__init__()
        self.embed, self.layers, self.final_norm = embed, nn.ModuleList(layers), final_norm

    def forward(self, src: Tensor, src_mask: Tensor) -> Tensor:
        x = self.embed(src)  # (B, S, D)
        for layer in self.layers:
            x = layer(x, src_mask)  # (B, S, D)
        return self.final_norm(x)  # (B, S, D) the memory


class TransformerDecoder(Decoder):
    def __init__(self, embed: Embedding, layers: list[DecoderLayer], final_norm: nn.Module, out: nn.Linear):
        super().__init__()
        self.embed, self.layers, self.final_norm, self.out = embed, nn.ModuleList(layers), final_norm, out

    def init_state(self, memory: Tensor, src_mask: Tensor) -> State:
        """Cross-attention keys/values are projected from the memory once; self-attention caches start empty."""
        cross = [layer.cross_attn.keys_values(memory) for layer in self.layers]  # each (B, H, S, D/H) twice
        B, H = memory.size(0), self.layers[0].self_attn.h
        empty = memory.new_zeros(B, H, 0, memory.size(-1) // H)  # (B, H, 0, D/H)
        return State(source={"mem_k": [k for k, _ in cross], "mem_v": [v for _, v in cross], "src_mask": src_mask},
                     step={"self_k": [empty] * len(self.layers), "self_v": [empty] * len(self.layers)})

    def run(self, tgt: Tensor, state: State) -> tuple[Tensor, State]:
        x = self.embed(tgt, start=state["self_k"][0].size(2))  # (B, T, D)
        self_k, self_v = [], []
        for i, layer in enumerate(self.layers):
            x, (k, v) = layer(x, (state["self_k"][i], state["self_v"][i]),
                              (state["mem_k"][i], state["mem_v"][i]), state["src_mask"])  # (B, T, D)
            self_k.append(k)
            self_v.append(v)
        return self.out(self.final_norm(x)), state.updated(self_k=self_k, self_v=self_v)  # (B, T, V)

    def forward(self, tgt_in: Tensor, state: State) -> Tensor:
        return self.run(tgt_in, state)[0]  # (B, T, V)

    def step(self, token: Tensor, state: State) -> tuple[Tensor, State]:
        logits, state = self.run(token.unsqueeze(1), state)  # (B, 1, V)
        return logits.squeeze(1), state  # (B, V)


class Transformer(EncoderDecoder):
    """Defaults are a small model for the embedded task; the paper's base model is d_model=512, n_heads=8,
    d_ff=2048, 6+6 layers, dropout 0.1."""

    def __init__(self, *, src_vocab_size: int, tgt_vocab_size: int, pad_id: int, d_model: int = 128,
                 n_heads: int = 4, d_ff: int = 512, n_encoder_layers: int = 2, n_decoder_layers: int = 2,
                 dropout: float = 0.1, pre_norm: bool = False, positions: str = "sinusoidal",
                 max_positions: int = 1024, tie_embeddings: bool = False):
        check_positive(src_vocab_size=src_vocab_size, tgt_vocab_size=tgt_vocab_size, d_model=d_model,
                       n_heads=n_heads, d_ff=d_ff, n_encoder_layers=n_encoder_layers,
                       n_decoder_layers=n_decoder_layers, max_positions=max_positions)
        check_dropout(dropout)
        if d_model % n_heads:
            raise ValueError(f"d_model ({d_model}) must be divisible by n_heads ({n_heads})")
        if d_model % 2 and positions == "sinusoidal":
            raise ValueError(f"d_model ({d_model}) must be even for sinusoidal positions")

        def embedding(vocab_size: int) -> Embedding:
            return Embedding(vocab_size=vocab_size, d_model=d_model, pad_id=pad_id, max_positions=max_positions,
                             positions=positions, dropout=dropout)

        def final_norm() -> nn.Module:  # pre-LN leaves the last residual stream un-normalised
            return nn.LayerNorm(d_model) if pre_norm else nn.Identity()

        layer = {"d_model": d_model, "n_heads": n_heads, "d_ff": d_ff, "dropout": dropout, "pre_norm": pre_norm}
        decoder_embed, out = embedding(tgt_vocab_size), nn.Linear(d_model, tgt_vocab_size)
        if tie_embeddings:  # Press & Wolf 2017; the paper ties both embeddings and the output projection (3.4)
            out.weight = decoder_embed.tokens.weight
        super().__init__(
            TransformerEncoder(embedding(src_vocab_size), [EncoderLayer(**layer) for _ in range(n_encoder_layers)],
                               final_norm()),
            TransformerDecoder(decoder_embed, [DecoderLayer(**layer) for _ in range(n_decoder_layers)],
                               final_norm(), out),
        )
