"""Static decoding (zoo/models/cache.py's StaticCache, zoo.decoding.static_greedy_search): the Transformer's step at
fixed shapes computes the growing cache's logits, its greedy search gives greedy_search's tokens, and torch.compile
compiles it once, here on the CPU, as it would for CUDA graphs on a GPU."""
import pytest
import torch

from tests.conftest import BOS, EOS, PAD, build, random_batch
from zoo.decoding import greedy_search, static_greedy_search

OPTIONS = [{}, {"pre_norm": True, "positions": "learned"}, {"tie_embeddings": True}]


def random_transformer(**options):
    model = build("transformer", **options).eval()
    with torch.no_grad():  # EOS made rarer, so that outputs differ in more than where they stop
        model.decoder.out.bias[EOS] -= 3.0
    return model


@pytest.mark.parametrize("options", OPTIONS)
def test_a_static_step_computes_the_growing_caches_logits(options):
    model = build("transformer", **options).eval()
    src, src_mask, tgt_in = random_batch(T=8)
    growing = model.init_state(src, src_mask)
    static = model.decoder.init_state(model.encoder(src, src_mask), src_mask, capacity=10)
    for t in range(tgt_in.size(1)):
        a, growing = model.decoder.step(tgt_in[:, t], growing)
        b, static = model.decoder.step(tgt_in[:, t], static)
        torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-5)
    assert static["caches"][0].k.shape[2] == 10 and int(static["caches"][0].position) == tgt_in.size(1)


@pytest.mark.parametrize("options", OPTIONS[:2])
@pytest.mark.parametrize("oracle", [False, True])
def test_static_greedy_search_gives_greedy_searchs_tokens(options, oracle):
    model = random_transformer(**options)
    src, src_mask, _ = random_batch(B=6, S=9, seed=3)
    src_mask[4, 5:] = False
    src[~src_mask] = PAD
    kw = {"bos_id": BOS, "eos_id": EOS, "max_len_a": 1.0, "max_len_b": 2,
          "oracle_lengths": torch.tensor([3, 1, 7, 5, 2, 4]) if oracle else None}
    expected = greedy_search(model, src, src_mask, **kw)
    assert static_greedy_search(model, src, src_mask, **kw) == expected
    assert static_greedy_search(model, src, src_mask, sync_every=1, **kw) == expected
    assert len({tuple(h) for h in expected}) >= 5 and len({t for h in expected for t in h}) >= 5


@pytest.mark.parametrize("options, message", [
    ({"positions": "rotary"}, "static decoding takes sinusoidal or learned decoder positions, not rotary"),
    ({"positions": "alibi"}, "static decoding takes sinusoidal or learned decoder positions, not a positional bias"),
    ({"decoder_positions": "none"}, "static decoding takes sinusoidal or learned decoder positions, not none"),
    ({"max_positions": 8}, "a static cache of 12 positions exceeds max_positions"),
])
def test_what_static_decoding_cannot_take_is_refused(options, message):
    model = build("transformer", **options).eval()
    src, src_mask, _ = random_batch(S=6)
    with pytest.raises(ValueError, match=message):
        static_greedy_search(model, src, src_mask, bos_id=BOS, eos_id=EOS, max_len_a=1.0, max_len_b=6)


def test_the_other_architectures_are_refused():
    model = build("gru").eval()
    src, src_mask, _ = random_batch()
    with pytest.raises(ValueError, match="GRUEncoderDecoder has no static decoding"):
        static_greedy_search(model, src, src_mask, bos_id=BOS, eos_id=EOS)


def test_the_static_step_compiles_once_into_one_graph():
    """torch.compile with fullgraph=True: a graph break, or a recompilation at a later step or in a second search of
    the same shape (which finds the same buffers), would fail here."""
    torch._dynamo.reset()
    model = random_transformer()
    src, src_mask, _ = random_batch(B=4, S=9, seed=5)
    kw = {"bos_id": BOS, "eos_id": EOS, "max_len_a": 1.0, "max_len_b": 3}
    expected = greedy_search(model, src, src_mask, **kw)
    with torch._dynamo.config.patch(error_on_recompile=True):
        first = static_greedy_search(model, src, src_mask, compile=True, **kw)
        buffers = [cache.k.data_ptr() for cache in model.decoder._static]
        second = static_greedy_search(model, src, src_mask, compile=True, **kw)
    assert first == second == expected
    assert [cache.k.data_ptr() for cache in model.decoder._static] == buffers
