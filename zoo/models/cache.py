"""Key/value caches of a Transformer decoder's self-attention: what a decoding step keeps of the positions before it.

    GrowingCache   the keys and values so far, (B, H, t, d_head), extended by concatenation. Each step copies the
                   cache once, but attends over a contiguous tensor: on a CPU, the batched products of attention
                   over a strided view of a larger buffer cost more than that copy (measured in docs/speed.md).
    StaticCache    buffers of a fixed capacity, (B, H, capacity, d_head), written in place at the current position,
                   which is a tensor on the device; attention runs over the whole buffer with the positions not yet
                   written masked out. Every step then has the same shapes and never asks the host for a position:
                   what torch.compile needs to compile a step once, and CUDA graphs to replay it
                   (zoo.decoding.static_greedy_search).

Both answer `extend(k, v)` with the keys, values and key mask to attend over, and `index_select(0, rows)` (the
reordering of `State.select`).
"""
from __future__ import annotations

import torch
from torch import Tensor


class GrowingCache:
    def __init__(self, k: Tensor, v: Tensor):
        self.k, self.v = k, v  # (B, H, t, d_head) each

    @classmethod
    def empty(cls, like: Tensor) -> GrowingCache:
        """No positions yet, for the batch, heads and dtype of `like` (B, H, S, d_head)."""
        empty = like.new_zeros(like.size(0), like.size(1), 0, like.size(3))  # (B, H, 0, d_head)
        return cls(empty, empty)

    @property
    def length(self) -> int:
        return self.k.size(2)

    def extend(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor, None, GrowingCache]:
        """Keys and values (B, H, T, d_head) of T new positions -> all keys and values (B, H, t+T, d_head), no mask
        (the new queries see every position up to their own, causally), and the extended cache."""
        if self.length == 0:  # (nothing to copy, and no fp32 empty tensor to promote bf16 keys with)
            return k, v, None, GrowingCache(k, v)
        cache = GrowingCache(torch.cat([self.k, k], 2), torch.cat([self.v, v], 2))  # (B, H, t+T, d_head)
        return cache.k, cache.v, None, cache

    def index_select(self, dim: int, index: Tensor) -> GrowingCache:
        return GrowingCache(self.k.index_select(dim, index), self.v.index_select(dim, index))


class StaticCache:
    def __init__(self, k: Tensor, v: Tensor, position: Tensor):
        self.k, self.v = k, v  # (B, H, capacity, d_head) each, written up to `position`
        self.position = position  # () int64: the next position to write, on the buffers' device

    @classmethod
    def empty(cls, like: Tensor, capacity: int) -> StaticCache:
        """Zeroed buffers for `capacity` positions, for the batch, heads and dtype of `like` (B, H, S, d_head)."""
        k = like.new_zeros(like.size(0), like.size(1), capacity, like.size(3))  # (B, H, capacity, d_head)
        return cls(k, torch.zeros_like(k), torch.zeros((), dtype=torch.long, device=like.device))

    @property
    def length(self) -> Tensor:
        return self.position.clone()  # (the position as it is now: `extend` moves it on in place)

    def reset(self) -> StaticCache:
        """Empty again, at the same addresses (what a captured CUDA graph replays on)."""
        self.k.zero_()
        self.v.zero_()
        self.position.zero_()
        return self

    def extend(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor, Tensor, StaticCache]:
        """Keys and values (B, H, 1, d_head) of the next position, written in place -> the whole buffers, the mask
        (1, capacity) of the positions written so far (this one included), and this cache, one position on."""
        if k.size(2) != 1:
            raise ValueError(f"a static cache takes one position a step, not {k.size(2)}")
        self.k.index_copy_(2, self.position.view(1), k)
        self.v.index_copy_(2, self.position.view(1), v)
        written = torch.arange(self.k.size(2), device=k.device) <= self.position  # (capacity,)
        self.position.add_(1)
        return self.k, self.v, written.unsqueeze(0), self  # (B, H, capacity, d_head) twice, (1, capacity)

    def index_select(self, dim: int, index: Tensor) -> StaticCache:
        return StaticCache(self.k.index_select(dim, index), self.v.index_select(dim, index), self.position.clone())
