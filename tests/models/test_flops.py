"""EncoderDecoder.forward_flops: by hand for one tiny model of each architecture, against PyTorch's own count of a
real forward pass, and for tensors of lengths; decode_flops against PyTorch's count of greedy search."""
import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from tests.conftest import BOS, EOS, SMALL, build
from zoo.decoding import greedy_search
from zoo.models import AttentionEncoderDecoder, GRUEncoderDecoder, Transformer
from zoo.models.positions import POSITIONS

S, T = 5, 4  # source tokens, target-input tokens


def test_gru_by_hand():
    model = GRUEncoderDecoder(src_vocab_size=13, tgt_vocab_size=11, pad_id=0, emb_dim=6, hidden=5, context=7,
                              n_layers=2, maxout_dim=4)
    encoder = S * (2 * 3 * 5 * (6 + 5)  # layer 1: 3 gates, W (5×6) on the embedding and U (5×5) on the state
                   + 2 * 3 * 5 * (5 + 5))  # layer 2 reads layer 1's 5-wide state
    once = 2 * 5 * 7 + 2 * 7 * (2 * 5)  # c = tanh(V h_N) (7×5), s_0 = tanh(V' c) for both layers (10×7)
    decoder = T * (2 * 3 * 5 * (6 + 7 + 5)  # layer 1 reads [e(y); c]
                   + 2 * 3 * 5 * (5 + 5)
                   + 2 * (5 + 6 + 7) * (2 * 4)  # deep output, 2 units per maxout
                   + 2 * 4 * 11)  # G onto 11 words
    assert model.forward_flops(S, T) == encoder + once + decoder


def test_attention_by_hand():
    model = AttentionEncoderDecoder(src_vocab_size=13, tgt_vocab_size=11, pad_id=0, emb_dim=6, enc_hidden=5,
                                    hidden=7, attn_dim=3, maxout_dim=4)
    encoder = S * (2 * 2 * 3 * 5 * (6 + 5)  # two directions, 3 gates, W (5×6) and U (5×5)
                   + 2 * 10 * 3)  # U_a h_j (3×10), once per annotation
    once = 2 * 5 * 7  # s_0 = tanh(W_s ←h_1) (7×5)
    decoder = T * (2 * 7 * 3  # W_a s_{i-1} (3×7)
                   + 2 * 3 * 7 * (6 + 10 + 7)  # GRU cell on [e(y); c] and s
                   + 2 * (7 + 6 + 10) * (2 * 4)  # deep output
                   + 2 * 4 * 11)  # W_o onto 11 words
    pairs = S * T * (2 * 3  # v_aᵀ tanh(...) for each source position at each target position
                     + 2 * 10)  # c_i = Σ_j α_ij h_j
    assert model.forward_flops(S, T) == encoder + once + decoder + pairs


def test_transformer_by_hand():
    model = Transformer(src_vocab_size=13, tgt_vocab_size=11, pad_id=0, d_model=8, n_heads=2, d_ff=12,
                        n_encoder_layers=1, n_decoder_layers=2)
    encoder_layer = (S * 4 * 2 * 8 * 8  # W_Q, W_K, W_V, W_O (8×8) on every source token
                     + 2 * (2 * S * S * 4)  # QKᵀ: 2 heads, S×S dot products of 4 numbers
                     + 2 * (2 * S * S * 4)  # AV, the same size
                     + S * (2 * 8 * 12 + 2 * 12 * 8))  # FFN
    decoder_layer = (T * 4 * 2 * 8 * 8  # self-attention W_Q, W_K, W_V, W_O
                     + 2 * 2 * (2 * T * T * 4)  # self-attention QKᵀ and AV, the full T×T (as SDPA computes it)
                     + T * 2 * 2 * 8 * 8  # cross-attention W_Q, W_O on the target
                     + S * 2 * 2 * 8 * 8  # cross-attention W_K, W_V on the memory
                     + 2 * 2 * (2 * T * S * 4)  # cross-attention QKᵀ and AV
                     + T * (2 * 8 * 12 + 2 * 12 * 8))  # FFN
    output = T * 2 * 8 * 11
    assert model.forward_flops(S, T) == encoder_layer + 2 * decoder_layer + output


MODELS = [*((arch, {}) for arch in SMALL),  # every registered architecture, then options of the zoo's own
          ("gru", {"n_layers": 2}), ("attention", {"bidirectional": False}),
          *(("transformer", {"positions": p}) for p in POSITIONS if p != "sinusoidal")]


@pytest.mark.parametrize("arch,options", MODELS)
def test_forward_flops_are_what_pytorch_counts(arch, options):
    """FlopCounterMode counts mm/addmm/bmm (GRUs included: on the CPU they run as matrix products) but not the
    fused CPU attention kernel, so attention runs on SDPA's math backend here: two bmm of the full T×T (or T×S)
    size, masked entries included, as in forward_flops. Batch 1 without padding, so S and T are the real lengths."""
    model = build(arch, **options).eval()
    src, tgt_in = torch.randint(4, 20, (1, 9)), torch.randint(4, 20, (1, 6))  # (1, S), (1, T)
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        model(src, torch.ones_like(src, dtype=torch.bool), tgt_in)
    assert counter.get_total_flops() == model.forward_flops(9, 6)


@pytest.mark.parametrize("arch,options", MODELS)
def test_decode_flops_are_what_pytorch_counts_in_greedy_search(arch, options):
    """Step by step, the Transformer's causal self-attention covers the cached keys only, the half of the T×T
    product that the teacher-forced pass also computes masked; the RNNs' steps do what their parallel pass does.
    No architecture's steps do more than its parallel pass."""
    model = build(arch, **options).eval()
    with torch.no_grad():
        model.decoder.out.bias[EOS] = -1e4  # EOS never wins: all 6 steps run
    src = torch.randint(4, 20, (1, 9))  # (1, S)
    with FlopCounterMode(display=False) as counter:
        out = greedy_search(model, src, torch.ones_like(src, dtype=torch.bool), bos_id=BOS, eos_id=EOS,
                            max_len_a=0.0, max_len_b=6)
    assert len(out[0]) == 6
    assert counter.get_total_flops() == model.decode_flops(9, 6)
    assert model.decode_flops(9, 6) <= model.forward_flops(9, 6)
    if arch in ("gru", "attention", "transformer"):  # the zoo's first three, as the docstring says
        assert (model.decode_flops(9, 6) < model.forward_flops(9, 6)) == (arch == "transformer")


@pytest.mark.parametrize("arch", ["gru", "attention", "transformer"])
def test_lengths_as_tensors_count_pair_by_pair(arch):
    model = build(arch)
    src_len, tgt_len = torch.tensor([1, 5, 30, 7]), torch.tensor([2, 9, 4, 7])  # (B,) each
    expected = [model.forward_flops(int(s), int(t)) for s, t in zip(src_len, tgt_len)]
    assert model.forward_flops(src_len, tgt_len).tolist() == expected
    assert isinstance(expected[0], int)
