"""The Transformer's building blocks (Vaswani et al. 2017, section 3.2-3.3), shared by the encoder-decoder
(transformer.py) and the decoder-only model (decoder_only.py):

    Attention(Q, K, V) = softmax(Q Kᵀ / √d_k) V       scaled dot-product attention (eq. 1)
    MultiHead(Q, K, V) = Concat(head_1..head_H) W_O,  head_i = Attention(Q W_Q_i, K W_K_i, V W_V_i)   (3.2.2)
    FFN(x) = max(0, x W_1 + b_1) W_2 + b_2            position-wise feed-forward (eq. 2)
    LayerNorm(x + Dropout(Sublayer(x)))               residual + LayerNorm, post-LN as in the paper (5.4);
    x + Dropout(Sublayer(LayerNorm(x)))               pre-LN as an option (Xiong et al. 2020)
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from zoo.models.positions import ALiBi, RelativeBias, Rotary

# Not cuDNN's attention, which PyTorch 2.11 tries first for masked calls on an H200: it builds an execution plan for
# every new shape, 0.13 s forward and backward against 0.5 ms for the call itself (experiments/sdpa_first_calls.py),
# and token-budget batches bring new shapes step after step.
FUSED_KERNELS = [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]


def scaled_dot_product(q: Tensor, k: Tensor, v: Tensor, attn_mask: Tensor | None = None, *, causal: bool = False,
                       dropout: float = 0.0, fused: bool | None = None) -> Tensor:
    """softmax(q kᵀ / √d_k + mask) v (eq. 1) for queries q (B, H, T, d_k) and keys, values k, v (B, H, S, d_k).
    attn_mask broadcasts to (B, H, T, S): boolean, True = may attend, or additive (with any causality folded in).
    `causal`: the T queries are the last T of the S positions, and each sees the keys up to its own.

    `fused` (the default off the CPU): PyTorch's fused kernels, flash or memory-efficient, which never store the
    T×S weights (its plain formula where neither applies). Otherwise the formula as written, in bf16 products with
    an fp32 softmax: on CPU it runs 2-5x faster than those kernels at sentence lengths, forward and backward, and 5x
    faster for a decoding step's one query against the cache (experiments/bench.py)."""
    T, S = q.size(2), k.size(2)
    causal = causal and T > 1  # one new query may see the whole cache
    if fused if fused is not None else q.device.type != "cpu":
        if causal and (attn_mask is not None or T != S):  # is_causal aligns top-left and excludes a mask
            attn_mask, causal = _causal(T, S, q.device, attn_mask), False
        with sdpa_kernel(FUSED_KERNELS):
            return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, is_causal=causal,
                                                  dropout_p=dropout)  # (B, H, T, d_k)
    if causal:
        attn_mask = _causal(T, S, q.device, attn_mask)  # (B|1, H|1, T, S)
    weights = F.dropout(attention_weights(q, k, attn_mask), dropout).to(v.dtype)  # (B, H, T, S)
    return weights @ v  # (B, H, T, d_k)


def attention_weights(q: Tensor, k: Tensor, attn_mask: Tensor | None = None) -> Tensor:
    """softmax(q kᵀ / √d_k + mask) (B, H, T, S), the products in q's dtype, the softmax in fp32."""
    scores = (q @ k.transpose(-2, -1)).float() / math.sqrt(q.size(-1))  # (B, H, T, S)
    if attn_mask is not None:
        scores = scores.masked_fill(~attn_mask, float("-inf")) if attn_mask.dtype == torch.bool else scores + attn_mask
    return scores.softmax(-1)  # (B, H, T, S)


def _causal(T: int, S: int, device: torch.device, attn_mask: Tensor | None) -> Tensor:
    """The boolean mask of `causal` (T, S), and `attn_mask` if given (boolean; additive ones carry their own)."""
    allowed = torch.ones(T, S, dtype=torch.bool, device=device).tril(S - T)  # query i sees keys j <= i + S - T
    return allowed if attn_mask is None else attn_mask & allowed


class MultiHeadAttention(nn.Module):
    """Self-attention may carry `rotary` or a positional `bias` (ALiBi, T5's; positions.py); cross-attention
    carries neither."""

    def __init__(self, *, d_model: int, n_heads: int, dropout: float, rotary: Rotary | None = None,
                 bias: ALiBi | RelativeBias | None = None):
        super().__init__()
        self.h, self.dropout, self.rotary, self.bias = n_heads, dropout, rotary, bias
        self.W_Q, self.W_K, self.W_V, self.W_O = (nn.Linear(d_model, d_model) for _ in range(4))

    def split(self, x: Tensor) -> Tensor:
        return x.unflatten(-1, (self.h, -1)).transpose(1, 2)  # (B, T, D) -> (B, H, T, D/H)

    def keys_values(self, x: Tensor, start: int | Tensor = 0) -> tuple[Tensor, Tensor]:
        """Keys and values of x (B, S, D) at positions start .. start+S-1; rotary keys are rotated here, before any
        cache stores them."""
        k = self.split(self.W_K(x))  # (B, H, S, D/H)
        if self.rotary is not None:
            k = self.rotary(k, start)  # (B, H, S, D/H)
        return k, self.split(self.W_V(x))  # (B, H, S, D/H) each

    def forward(self, x: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None, *, causal: bool = False,
                start: int | Tensor = 0) -> Tensor:
        """Queries from x (B, T, D) at positions start .. start+T-1 attend to keys/values k, v (B, H, S, D/H) at
        0 .. S-1; mask (B, S), True = may attend; `causal`: the query at i sees keys at j <= i only."""
        q = self.split(self.W_Q(x))  # (B, H, T, D/H)
        if self.rotary is not None:
            q = self.rotary(q, start)  # (B, H, T, D/H) at its absolute positions
        if self.bias is not None:  # causality and padding become -inf in the bias
            attn_mask, causal = self.bias(q, k, start=start, causal=causal, mask=mask), False  # (B|1, H, T, S)
        else:
            attn_mask = None if mask is None else mask[:, None, None, :]  # (B, 1, 1, S) broadcast over heads, queries
        out = scaled_dot_product(q, k, v, attn_mask, causal=causal,
                                 dropout=self.dropout if self.training else 0.0)  # (B, H, T, D/H)
        return self.W_O(out.transpose(1, 2).flatten(2))  # (B, T, D)

    def weights(self, x: Tensor, k: Tensor, mask: Tensor) -> Tensor:
        """softmax(q kᵀ / √d_k) (B, H, T, S) as `forward` would use it, without positional terms (cross-attention)."""
        return attention_weights(self.split(self.W_Q(x)), k, mask[:, None, None, :])  # (B, H, T, S)


class FeedForward(nn.Sequential):
    def __init__(self, *, d_model: int, d_ff: int, activation_dropout: float):
        super().__init__(nn.Linear(d_model, d_ff), nn.ReLU(), nn.Dropout(activation_dropout), nn.Linear(d_ff, d_model))


class Residual(nn.Module):
    """LayerNorm(x + Dropout(f(x))) when post-LN (the paper), x + Dropout(f(LayerNorm(x))) when pre-LN."""

    def __init__(self, *, d_model: int, dropout: float, pre_norm: bool):
        super().__init__()
        self.norm, self.dropout, self.pre_norm = nn.LayerNorm(d_model), nn.Dropout(dropout), pre_norm

    def forward(self, x: Tensor, sublayer) -> Tensor:
        return self.output(x, sublayer(self.input(x)))

    def input(self, x: Tensor) -> Tensor:
        """What the sublayer reads: x, or LayerNorm(x) when pre-LN."""
        return self.norm(x) if self.pre_norm else x

    def output(self, x: Tensor, y: Tensor) -> Tensor:
        """x + Dropout(y), then LayerNorm when post-LN: the sublayer's output y added back to x."""
        return x + self.dropout(y) if self.pre_norm else self.norm(x + self.dropout(y))
