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
    ({"positions": "rotary"}, "static decoding takes sinusoidal or learned decoder positions"),
    ({"positions": "alibi"}, "static decoding takes sinusoidal or learned decoder positions"),
    ({"decoder_positions": "none"}, "static decoding takes sinusoidal or learned decoder positions"),
    ({"max_positions": 8}, "a static cache of 12 positions exceeds max_positions"),
])
def test_what_static_decoding_cannot_take_is_refused(options, message):
    model = build("transformer", **options).eval()
    src, src_mask, _ = random_batch(S=6)
    with pytest.raises(ValueError, match=message):
        static_greedy_search(model, src, src_mask, bos_id=BOS, eos_id=EOS, max_len_a=1.0, max_len_b=6)


def test_the_static_step_compiles_once_into_one_graph():
    """torch.compile with fullgraph=True: a graph break or a recompilation at a later step would fail here."""
    torch._dynamo.reset()
    model = random_transformer()
    src, src_mask, _ = random_batch(B=4, S=9, seed=5)
    kw = {"bos_id": BOS, "eos_id": EOS, "max_len_a": 1.0, "max_len_b": 3}
    with torch._dynamo.config.patch(error_on_recompile=True):
        compiled = static_greedy_search(model, src, src_mask, compile=True, **kw)
    assert compiled == greedy_search(model, src, src_mask, **kw)
