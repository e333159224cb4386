"""Ways to tell the Transformer where each token is.

Absolute: a vector per position, added to the token embeddings once, at the bottom of each stack.

    sinusoidal   PE(pos, 2i) = sin(pos / 10000^(2i/D)),  PE(pos, 2i+1) = cos(pos / 10000^(2i/D))
                 Vaswani et al. 2017, "Attention Is All You Need", arXiv:1706.03762, section 3.5
    learned      PE = a trained table, one row per position (Gehring et al. 2017, "Convolutional Sequence to
                 Sequence Learning", arXiv:1705.03122, which Vaswani et al. 3.5 compare against)

Relative: nothing is added to the embeddings; every self-attention sees how far apart query and key are.
Cross-attention gets no positional term (a target position and a source position are not on one axis).

    rotary       RoPE (Su et al. 2021, "RoFormer", arXiv:2104.09864, section 3.2, eqs. 14-16): the pairs
                 (x_2i, x_2i+1) of a query or key head vector at position m are rotated by the angle m·θ_i,
                 θ_i = 10000^(-2i/d_head), so that ⟨R_m q, R_n k⟩ = ⟨q, R_(n-m) k⟩ depends on n - m only
    alibi        ALiBi (Press, Smith & Lewis 2022, "Train Short, Test Long", arXiv:2108.12409, section 3):
                 head h adds -m_h·(i - j) to the score of query i for key j, slopes m_h = 2^(-8h/H), h = 1..H.
                 The paper's models are causal; the encoder's bidirectional self-attention uses -m_h·|i - j|,
                 which is symmetric, so it cannot tell a key on the left from one on the right
    alibi_directional  this zoo's variant, from no paper: the same in the decoder; in the encoder half of the
                 heads look left only (j <= i) and half right only (j >= i), each half with the slopes of H/2
                 heads, so that direction is seen
    t5           a learned bias per head for each bucket of i - j (Raffel et al. 2020, "Exploring the Limits of
                 Transfer Learning", arXiv:1910.10683, section 2.1): the nearest distances exact, longer ones in
                 log-spaced buckets up to max_distance, all beyond it in the last; left and right apart in the
                 encoder; one table per stack, shared by its layers

In the decoder alone, positions may also be none (Kazemnejad et al. 2023, "The Impact of Positional Encoding on
Length Generalization in Transformers", NoPE): the causal mask lets a decoder infer position by itself.

The tables hold max_positions rows; rotary angles and alibi biases are computed for any length, on the fly, in
fp32 (fp64 for fp64 inputs) and only then cast to the attention's dtype, so bf16 autocast does not round positions.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

POSITIONS = ("sinusoidal", "learned", "rotary", "alibi", "alibi_directional", "t5")
TABLES = ("sinusoidal", "learned")  # added to the embeddings, and bounded by max_positions


def sinusoidal_table(n_positions: int, d_model: int) -> Tensor:
    """PE(pos, 2i) = sin(pos / 10000^(2i/D)),  PE(pos, 2i+1) = cos(pos / 10000^(2i/D))."""
    pos = torch.arange(n_positions).unsqueeze(1)  # (P, 1)
    freq = torch.exp(torch.arange(0, d_model, 2) * (-math.log(10000.0) / d_model))  # (D/2,)
    table = torch.zeros(n_positions, d_model)  # (P, D)
    table[:, 0::2], table[:, 1::2] = torch.sin(pos * freq), torch.cos(pos * freq)
    return table


class TablePositions(nn.Module):
    """x + PE[start : start+T], from a table of max_positions rows: sinusoidal and fixed, or learned (initialised at
    std D^-0.5, the size of the unscaled token embeddings)."""

    def __init__(self, *, max_positions: int, d_model: int, learned: bool):
        super().__init__()
        if learned:
            self.table = nn.Parameter(torch.randn(max_positions, d_model) * d_model**-0.5)  # (P, D)
        else:
            self.register_buffer("table", sinusoidal_table(max_positions, d_model), persistent=False)  # (P, D)

    def forward(self, x: Tensor, start: int | Tensor = 0) -> Tensor:
        """x (B, T, D) at positions start .. start+T-1 -> (B, T, D). A `start` held in a tensor (a static cache's
        position: one new position, in range by construction) is looked up without asking the host for it."""
        if isinstance(start, Tensor):
            if x.size(1) != 1:
                raise ValueError(f"a position held in a tensor places one token, not {x.size(1)}")
            return x + self.table.index_select(0, start.view(1))  # (B, 1, D)
        end = start + x.size(1)
        if end > self.table.size(0):
            raise ValueError(f"sequence of length {end} exceeds max_positions ({self.table.size(0)})")
        return x + self.table[start:end]  # (B, T, D)


def _exact(dtype: torch.dtype) -> torch.dtype:
    """fp32, or fp64 for fp64 inputs: the precision in which positions are turned into angles and biases."""
    return torch.promote_types(dtype, torch.float32)


class Rotary(nn.Module):
    """Rotates head vectors x (B, H, T, d_head) sitting at positions start .. start+T-1. The element-wise form of
    RoFormer section 3.4.2: R_m x = x ⊙ cos(mθ) + x̃ ⊙ sin(mθ), with x̃ = (-x_1, x_0, -x_3, x_2, ...)."""

    def __init__(self, *, d_head: int, base: float = 10000.0):
        super().__init__()
        if d_head % 2:
            raise ValueError(f"d_head = d_model / n_heads ({d_head}) must be even for rotary positions")
        self.d_head, self.base = d_head, base

    def extra_repr(self) -> str:
        return f"d_head={self.d_head}, base={self.base}"

    def forward(self, x: Tensor, start: int = 0) -> Tensor:
        dtype = _exact(x.dtype)
        pos = torch.arange(start, start + x.size(-2), device=x.device, dtype=dtype)  # (T,)
        theta = self.base ** (-torch.arange(0, self.d_head, 2, device=x.device, dtype=dtype) / self.d_head)  # (d/2,)
        angle = pos[:, None] * theta  # (T, d/2) the angle m·θ_i
        cos, sin = angle.cos(), angle.sin()  # (T, d/2) each
        x0, x1 = x.to(dtype).unflatten(-1, (-1, 2)).unbind(-1)  # (B, H, T, d/2) each: the pairs (x_2i, x_2i+1)
        rotated = torch.stack([x0 * cos - x1 * sin, x0 * sin + x1 * cos], -1)  # (B, H, T, d/2, 2)
        return rotated.flatten(-2).to(x.dtype)  # (B, H, T, d_head)


def alibi_slopes(n_heads: int) -> Tensor:
    """m_h = 2^(-8h/H) for h = 1..H: 1/2, 1/4, ..., 1/256 for 8 heads. (For H not a power of two the paper's code
    interleaves two such sequences; this is the plain geometric one.)"""
    return 2.0 ** (-8.0 * torch.arange(1, n_heads + 1, dtype=torch.float64) / n_heads)  # (H,)


def folded(bias: Tensor, allowed: Tensor, mask: Tensor | None) -> Tensor:
    """A positional bias (H, T, S) as SDPA's float attn_mask (B or 1, H, T, S): -inf where `allowed` (H or 1, T, S)
    is False (causality, or a one-way head) and on padding keys (mask (B, S), True = real). A row left without any
    key, a padding query of a one-way head, attends everywhere instead (its output is never used, but NaN would
    spread through the keys of the next layer)."""
    bias = bias.masked_fill(~allowed, float("-inf")).unsqueeze(0)  # (1, H, T, S)
    if mask is not None:
        bias = bias.masked_fill(~mask[:, None, None, :], float("-inf"))  # (B, H, T, S) no attending to padding
    return bias.masked_fill(bias.isinf().all(-1, keepdim=True), 0.0)  # (B or 1, H, T, S)


def offsets(q: Tensor, k: Tensor, start: int, dtype: torch.dtype) -> Tensor:
    """i - j (T, S) for queries at start .. start+T-1 and keys at 0 .. S-1."""
    i = torch.arange(start, start + q.size(2), device=q.device, dtype=dtype)  # (T,) query positions
    return i[:, None] - torch.arange(k.size(2), device=q.device, dtype=dtype)  # (T, S)


class ALiBi(nn.Module):
    """The attention bias of ALiBi, with the causal and padding masks folded in as -inf, since SDPA cannot combine
    `is_causal` with an `attn_mask`. `directional`: in the encoder, half of the heads look left and half right."""

    def __init__(self, *, n_heads: int, directional: bool = False):
        super().__init__()
        if directional and n_heads % 2:
            raise ValueError(f"n_heads ({n_heads}) must be even for alibi_directional (half look each way)")
        self.n_heads, self.directional = n_heads, directional

    def extra_repr(self) -> str:
        return f"n_heads={self.n_heads}, directional={self.directional}"

    def forward(self, q: Tensor, k: Tensor, *, start: int, causal: bool, mask: Tensor | None) -> Tensor:
        """For queries q (B, H, T, d) at positions start .. start+T-1 and keys k (B, H, S, d) at 0 .. S-1; mask (B, S),
        True = real key. Returns the float attn_mask, (B or 1, H, T, S), in q's dtype."""
        dtype = _exact(q.dtype)
        offset = offsets(q, k, start, dtype)  # (T, S) i - j
        allowed = (offset >= 0)[None] if causal else torch.ones_like(offset, dtype=torch.bool)[None]  # (1, T, S)
        if self.directional and not causal:
            half = self.n_heads // 2
            slopes = alibi_slopes(half).repeat(2)  # (H,) each direction gets the slopes of H/2 heads
            allowed = torch.stack([offset >= 0] * half + [offset <= 0] * half)  # (H, T, S) left, then right
        else:
            slopes = alibi_slopes(self.n_heads)  # (H,)
        bias = -slopes.to(q.device, dtype)[:, None, None] * offset.abs()  # (H, T, S)
        return folded(bias, allowed, mask).to(q.dtype)


def relative_buckets(offset: Tensor, *, bidirectional: bool, n_buckets: int, max_distance: int) -> Tensor:
    """T5's bucket (T, S) of each query-key offset i - j (T, S): distances below n_buckets / 2 each their own,
    longer ones log-spaced up to max_distance, all beyond it in the last bucket; with `bidirectional`, keys on the
    right (i < j) take the upper half of the buckets."""
    bucket = torch.zeros_like(offset, dtype=torch.long)  # (T, S)
    if bidirectional:
        n_buckets //= 2
        bucket += (offset < 0).long() * n_buckets
        offset = offset.abs()
    else:
        offset = offset.clamp(min=0)
    exact = n_buckets // 2
    far = exact + (torch.log(offset.float().clamp(min=1) / exact) / math.log(max_distance / exact)
                   * (n_buckets - exact)).long()  # (T, S) log-spaced
    return bucket + torch.where(offset < exact, offset.long(), far.clamp(max=n_buckets - 1))  # (T, S)


class RelativeBias(nn.Module):
    """T5's learned relative position bias: one scalar per head and bucket of i - j, added to the attention scores;
    causality and padding folded in as -inf, as for ALiBi."""

    def __init__(self, *, n_heads: int, n_buckets: int = 32, max_distance: int = 128):
        super().__init__()
        self.n_buckets, self.max_distance = n_buckets, max_distance
        self.table = nn.Embedding(n_buckets, n_heads)  # (buckets, H)
        nn.init.normal_(self.table.weight, std=0.1)

    def forward(self, q: Tensor, k: Tensor, *, start: int, causal: bool, mask: Tensor | None) -> Tensor:
        """As `ALiBi.forward`: the float attn_mask (B or 1, H, T, S) in q's dtype."""
        offset = offsets(q, k, start, torch.long)  # (T, S) i - j
        buckets = relative_buckets(offset, bidirectional=not causal, n_buckets=self.n_buckets,
                                   max_distance=self.max_distance)  # (T, S)
        bias = self.table(buckets).permute(2, 0, 1).to(_exact(q.dtype))  # (H, T, S)
        allowed = (offset >= 0)[None] if causal else torch.ones_like(offset, dtype=torch.bool)[None]  # (1, T, S)
        return folded(bias, allowed, mask).to(q.dtype)
