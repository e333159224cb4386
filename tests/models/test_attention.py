"""Scaled dot-product attention, written out (the CPU path) and through PyTorch's fused kernels (the GPU path):
the same numbers for every kind of mask the Transformer uses, and the same whole model either way."""
from functools import partial

import pytest
import torch
import torch.nn.functional as F

from tests.conftest import build, random_batch
from zoo.models import layers
from zoo.models.layers import scaled_dot_product
from zoo.models.positions import POSITIONS, ALiBi


def qkv(T: int, S: int, B: int = 2, H: int = 3, d: int = 8):
    g = torch.Generator().manual_seed(0)
    return (torch.randn(B, H, n, d, generator=g) for n in (T, S, S))


def padding(B: int = 2, S: int = 6) -> torch.Tensor:
    mask = torch.ones(B, 1, 1, S, dtype=torch.bool)  # (B, 1, 1, S)
    mask[1, ..., S - 2:] = False
    return mask


@pytest.mark.parametrize("T,S,causal,masked", [(6, 6, False, True), (6, 6, True, False), (1, 6, True, False),
                                                (3, 6, True, False), (4, 6, False, False)])
def test_written_out_attention_equals_the_fused_kernels(T, S, causal, masked):
    q, k, v = qkv(T, S)
    mask = padding(S=S) if masked else None
    written = scaled_dot_product(q, k, v, mask, causal=causal, fused=False)
    torch.testing.assert_close(written, scaled_dot_product(q, k, v, mask, causal=causal, fused=True))


def test_causal_queries_are_the_last_positions():
    """Three new queries after three cached positions see keys 0..3, 0..4 and 0..5: what the full pass gives them."""
    q, k, v = qkv(6, 6)
    full = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, H, 6, d)
    for fused in (False, True):
        torch.testing.assert_close(scaled_dot_product(q[:, :, 3:], k, v, causal=True, fused=fused), full[:, :, 3:])


def test_an_additive_bias_is_added_to_the_scores():
    q, k, v = qkv(5, 5)
    bias = ALiBi(n_heads=3)(q, k, start=0, causal=True, mask=padding(S=5)[:, 0, 0])  # (B, H, 5, 5) with -inf
    written = scaled_dot_product(q, k, v, bias, fused=False)
    torch.testing.assert_close(written, F.scaled_dot_product_attention(q, k, v, attn_mask=bias))


@pytest.mark.parametrize("positions", POSITIONS)
def test_the_transformer_computes_the_same_on_either_path(positions, monkeypatch):
    """The model as a GPU runs it (fused kernels), here on the CPU, against the written-out formula."""
    model = build("transformer", positions=positions).eval()
    src, src_mask, tgt_in = random_batch()
    written = model(src, src_mask, tgt_in)
    monkeypatch.setattr(layers, "scaled_dot_product", partial(scaled_dot_product, fused=True))
    torch.testing.assert_close(model(src, src_mask, tgt_in), written)


def test_attention_dropout_drops_weights_in_training_only():
    q, k, v = qkv(4, 4)
    torch.manual_seed(0)
    dropped = scaled_dot_product(q, k, v, dropout=0.5, fused=False)
    assert not torch.allclose(dropped, scaled_dot_product(q, k, v, fused=False))
    model = build("transformer", attention_dropout=0.5).eval()  # eval: no dropout anywhere
    src, src_mask, tgt_in = random_batch()
    torch.testing.assert_close(model(src, src_mask, tgt_in), model(src, src_mask, tgt_in))
