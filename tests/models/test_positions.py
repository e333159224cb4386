"""The positional encodings of zoo.models.positions, alone and inside the Transformer."""
import pytest
import torch

from tests.conftest import build, random_batch
from tests.models.test_interface import assert_step_by_step_equals_teacher_forcing
from zoo.models.positions import ALiBi, RelativeBias, Rotary, alibi_slopes, relative_buckets


def test_alibi_slopes_for_eight_heads_are_the_papers():
    assert alibi_slopes(8).tolist() == [1 / 2, 1 / 4, 1 / 8, 1 / 16, 1 / 32, 1 / 64, 1 / 128, 1 / 256]


def test_alibi_bias_is_causal_in_the_decoder_and_symmetric_in_the_encoder():
    alibi, m = ALiBi(n_heads=2), alibi_slopes(2).float()  # m = 1/16, 1/256
    q, k = torch.zeros(1, 2, 3, 4), torch.zeros(1, 2, 5, 4)  # queries at 2, 3, 4 (start 2), keys at 0..4
    i, j = torch.arange(2, 5)[:, None], torch.arange(5)  # (T, 1), (S,)
    causal = alibi(q, k, start=2, causal=True, mask=None)  # (1, H, T, S)
    expected = (-m[:, None, None] * (i - j)).masked_fill(j > i, float("-inf"))  # (H, T, S)
    torch.testing.assert_close(causal[0], expected)
    both_ways = alibi(q, k, start=2, causal=False, mask=None)  # (1, H, T, S)
    torch.testing.assert_close(both_ways[0], -m[:, None, None] * (i - j).abs())
    mask = torch.tensor([[True, True, True, False, False]])
    padded = alibi(q, k, start=2, causal=False, mask=mask)  # (1, H, T, S)
    assert padded[..., 3:].eq(float("-inf")).all() and padded[..., :3].isfinite().all()


def test_directional_alibi_has_half_its_encoder_heads_look_left_and_half_right():
    alibi, m = ALiBi(n_heads=4, directional=True), alibi_slopes(2).float()  # each direction: 1/16, 1/256
    q, k = torch.zeros(1, 4, 5, 4), torch.zeros(1, 4, 5, 4)
    i, j = torch.arange(5)[:, None], torch.arange(5)
    distance = -(i - j).abs().float()  # (T, S)
    bias = alibi(q, k, start=0, causal=False, mask=None)[0]  # (H, T, S)
    for h, slope in enumerate(m):
        torch.testing.assert_close(bias[h], (slope * distance).masked_fill(j > i, float("-inf")))  # left only
        torch.testing.assert_close(bias[2 + h], (slope * distance).masked_fill(j < i, float("-inf")))  # right only
    torch.testing.assert_close(alibi(q, k, start=0, causal=True, mask=None),
                               ALiBi(n_heads=4)(q, k, start=0, causal=True, mask=None))  # the decoder's is ALiBi's
    mask = torch.tensor([[True, True, True, False, False]])  # padding queries 3, 4 of right-looking heads see
    padded = alibi(q, k, start=0, causal=False, mask=mask)[0]  # nothing real: they attend everywhere, not NaN
    assert padded[:2, :3, 3:].isinf().all() and padded[2:, 3:].eq(0).all() and padded[:, :3, :3].isfinite().any()


def test_t5_buckets_are_exact_near_log_spaced_far_and_two_sided_in_the_encoder():
    offset = torch.tensor([0, 1, 7, 8, 12, 16, 32, 64, 127, 128, 1000])  # i - j: keys on the left
    causal = relative_buckets(offset, bidirectional=False, n_buckets=32, max_distance=128)
    assert causal.tolist() == [0, 1, 7, 8, 12, 16, 21, 26, 31, 31, 31]  # 16 + ⌊16 · log(n/16) / log(128/16)⌋
    assert relative_buckets(-offset, bidirectional=False, n_buckets=32, max_distance=128).eq(0).all()  # the future
    both = relative_buckets(torch.cat([offset, -offset[1:]]), bidirectional=True, n_buckets=32, max_distance=128)
    assert both[:11].tolist() == [0, 1, 7, 8, 9, 10, 12, 14, 15, 15, 15]  # 16 buckets a side, 8 exact
    assert (both[11:] - 16).tolist() == both[1:11].tolist()  # keys on the right: the upper half


def test_t5_bias_is_a_learned_scalar_per_head_and_bucket():
    bias = RelativeBias(n_heads=2, n_buckets=8, max_distance=16)
    q, k = torch.zeros(1, 2, 3, 4), torch.zeros(1, 2, 3, 4)
    out = bias(q, k, start=0, causal=True, mask=None)[0]  # (H, T, S)
    table = bias.table.weight  # (buckets, H)
    assert out[:, 2, 0].tolist() == table[2].tolist() and out[:, 1, 1].tolist() == table[0].tolist()
    assert out[:, 0, 1:].isinf().all()  # causal


def test_a_decoder_without_positions_still_decodes_as_it_trains():
    model = build("transformer", decoder_positions="none").eval()
    assert model.encoder.embed.positions is not None and model.decoder.embed.positions is None
    assert all(layer.self_attn.rotary is None and layer.self_attn.bias is None for layer in model.decoder.layers)
    assert_step_by_step_equals_teacher_forcing(model)


def test_rotary_keeps_norms_and_makes_scores_depend_on_the_offset_only():
    """⟨R_m q, R_n k⟩ = ⟨q, R_(n-m) k⟩ (RoFormer eq. 16): the same for every pair (m, n) with the same n - m."""
    rotary, g = Rotary(d_head=8), torch.Generator().manual_seed(0)
    q, k = torch.randn(8, generator=g, dtype=torch.float64), torch.randn(8, generator=g, dtype=torch.float64)

    def at(x, position):
        return rotary(x.view(1, 1, 1, 8), start=position).view(8)  # (d_head,)

    for m in (0, 1, 7, 1000):
        torch.testing.assert_close(at(q, m).norm(), q.norm())
    for offset in (0, 3, -5):
        scores = torch.stack([at(q, m) @ at(k, m + offset) for m in (5, 6, 50, 1000)])
        torch.testing.assert_close(scores, scores[:1].expand(4))
    assert not torch.isclose(at(q, 0) @ at(k, 3), at(q, 0) @ at(k, 4))
    torch.testing.assert_close(at(q, 0), q)  # position 0 is not rotated


def test_rotary_rotates_a_sequence_position_by_position():
    """One call over positions start .. start+T-1 equals T calls of one position each (the KV cache relies on it)."""
    rotary, x = Rotary(d_head=4), torch.randn(2, 3, 5, 4)  # (B, H, T, d_head)
    whole = rotary(x, start=7)
    for t in range(5):
        torch.testing.assert_close(rotary(x[:, :, t:t + 1], start=7 + t), whole[:, :, t:t + 1])


@pytest.mark.parametrize("positions", ["rotary", "alibi", "alibi_directional", "t5"])
def test_relative_positions_have_no_length_limit(positions):
    """max_positions bounds only the tables: rotary and alibi run, and decode incrementally, beyond it."""
    model = build("transformer", positions=positions, max_positions=4).eval()
    src, src_mask, tgt_in = random_batch(S=9, T=8)
    assert model(src, src_mask, tgt_in).isfinite().all()
    assert_step_by_step_equals_teacher_forcing(model, S=9, T=8)  # beyond max_positions


@pytest.mark.parametrize("positions", ["sinusoidal", "learned"])
def test_tables_stop_at_max_positions(positions):
    model = build("transformer", positions=positions, max_positions=4).eval()
    src, src_mask, tgt_in = random_batch(S=9)
    with pytest.raises(ValueError, match=r"sequence of length 9 exceeds max_positions \(4\)"):
        model(src, src_mask, tgt_in)


@pytest.mark.parametrize("positions", ["rotary", "alibi", "alibi_directional", "t5"])
def test_cross_attention_has_no_positional_term(positions):
    model = build("transformer", positions=positions)
    for layer in model.decoder.layers:
        assert layer.cross_attn.rotary is None and layer.cross_attn.bias is None
        assert (layer.self_attn.rotary or layer.self_attn.bias) is not None
    assert model.encoder.embed.positions is None and model.decoder.embed.positions is None


def test_positions_become_angles_and_biases_in_fp32_before_the_cast_to_bf16():
    """At position 1001 bf16 cannot even hold the position (it rounds to 1000); fp32 then one rounding can."""
    x = torch.randn(1, 2, 3, 8).bfloat16()  # (B, H, T, d_head)
    rotary = Rotary(d_head=8)
    assert rotary(x, start=1001).dtype == torch.bfloat16
    torch.testing.assert_close(rotary(x, start=1001), rotary(x.float(), start=1001).bfloat16(), atol=0, rtol=0)
    alibi, k = ALiBi(n_heads=2), torch.randn(1, 2, 1003, 8)  # (B, H, S, d_head)
    bias = alibi(x, k.bfloat16(), start=1000, causal=True, mask=None)  # (1, H, T, S)
    assert bias.dtype == torch.bfloat16
    torch.testing.assert_close(bias, alibi(x.float(), k, start=1000, causal=True, mask=None).bfloat16(),
                               atol=0, rtol=0)


@pytest.mark.parametrize("positions", ["rotary", "alibi", "alibi_directional", "t5"])
def test_bf16_autocast_stays_close_to_fp32(positions):
    model = build("transformer", positions=positions).eval()
    src, src_mask, tgt_in = random_batch()
    full = model(src, src_mask, tgt_in)  # (B, T, V)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = model(src, src_mask, tgt_in)  # (B, T, V)
    assert low.dtype == torch.bfloat16
    torch.testing.assert_close(low.float(), full, atol=0.1, rtol=0.05)
