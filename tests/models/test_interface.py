"""Every architecture through the same tests of the interface in zoo.models.base."""
import itertools

import pytest
import torch

from tests.conftest import BOS, EOS, PAD, SMALL, SRC_V, TGT_V, build, random_batch
from zoo.decoding import beam_search, greedy_search
from zoo.models.positions import POSITIONS

MODELS = [*((arch, {}) for arch in SMALL),  # every registered architecture, then options of the zoo's own
          ("attention", {"bidirectional": False}), *(("transformer", {"positions": p}) for p in POSITIONS if p != "sinusoidal"),
          ("transformer", {"decoder_positions": "none"})]


@pytest.fixture(params=MODELS, ids=lambda m: "-".join([m[0], *(f"{k}={v}" for k, v in m[1].items())]))
def model(request):
    """Every architecture, and the Transformer with each kind of positions, through the tests of the interface."""
    arch, options = request.param
    return build(arch, **options).eval()


def test_shapes(model):
    src, src_mask, tgt_in = random_batch(B=3, S=7, T=6)
    assert model(src, src_mask, tgt_in).shape == (3, 6, TGT_V)
    logits, state = model.decoder.step(tgt_in[:, 0], model.init_state(src, src_mask))
    assert logits.shape == (3, TGT_V)


def test_causality(model):
    """Changing target tokens after position t leaves the logits at positions <= t unchanged."""
    src, src_mask, tgt_in = random_batch()
    t = 2
    changed = tgt_in.clone()
    changed[:, t + 1:] = torch.randint(4, TGT_V, changed[:, t + 1:].shape)
    assert not torch.equal(changed, tgt_in)
    a, b = model(src, src_mask, tgt_in), model(src, src_mask, changed)
    torch.testing.assert_close(a[:, : t + 1], b[:, : t + 1])
    assert not torch.allclose(a[:, t + 1:], b[:, t + 1:])


def test_padding_invariance(model):
    """Extra source padding changes nothing."""
    src, src_mask, tgt_in = random_batch()
    padded = torch.cat([src, torch.full((3, 5), PAD)], 1)
    padded_mask = torch.cat([src_mask, torch.zeros(3, 5, dtype=torch.bool)], 1)
    torch.testing.assert_close(model(src, src_mask, tgt_in), model(padded, padded_mask, tgt_in))


def test_padding_is_ignored_within_the_batch(model):
    """A row's output does not depend on the other rows, nor on what token id sits under its padding."""
    src, src_mask, tgt_in = random_batch()
    alone = model(src[1:2, : int(src_mask[1].sum())], src_mask[1:2, : int(src_mask[1].sum())], tgt_in[1:2])
    garbage = src.clone()
    garbage[~src_mask] = 5  # not the pad id: only the mask may say what is padding
    torch.testing.assert_close(model(garbage, src_mask, tgt_in)[1:2], alone)


TRANSFORMER_OPTIONS = [{"pre_norm": True}, {"tie_embeddings": True}, {"pre_norm": True, "positions": "rotary"},
                       {"pre_norm": True, "positions": "alibi"}]


@pytest.mark.parametrize("options", TRANSFORMER_OPTIONS)
def test_transformer_options_keep_step_equal_to_teacher_forcing(options):
    assert_step_by_step_equals_teacher_forcing(build("transformer", **options).eval())


def test_step_by_step_equals_teacher_forcing(model):
    assert_step_by_step_equals_teacher_forcing(model)


def assert_step_by_step_equals_teacher_forcing(model, S: int = 7, T: int = 8):
    """Decoding one token at a time through `step` (the KV cache, for the Transformer) gives the teacher-forced
    logits."""
    src, src_mask, tgt_in = random_batch(S=S, T=T)
    full = model(src, src_mask, tgt_in)  # (B, T, V)
    state, steps = model.init_state(src, src_mask), []
    for t in range(tgt_in.size(1)):
        logits, state = model.decoder.step(tgt_in[:, t], state)
        steps.append(logits)
    torch.testing.assert_close(torch.stack(steps, 1), full, atol=1e-5, rtol=1e-5)


def test_state_select_reorders_rows(model):
    src, src_mask, tgt_in = random_batch()
    state = model.init_state(src, src_mask)
    _, state = model.decoder.step(tgt_in[:, 0], state)
    order = torch.tensor([2, 0, 1])
    a, _ = model.decoder.step(tgt_in[order, 1], state.select(order))
    b, _ = model.decoder.step(tgt_in[:, 1], state)
    torch.testing.assert_close(a, b[order])


@pytest.mark.parametrize("search", ["greedy", "beam"])
def test_batched_decoding_equals_decoding_each_sentence_alone(arch, search):
    """Rows of different lengths and limits finish at different steps and leave the batch; what remains must
    decode exactly as it would alone."""
    model = build(arch).eval()
    src, src_mask, _ = random_batch(B=4, S=9)
    src_mask[2, 4:] = False
    src[~src_mask] = PAD
    kw = {"bos_id": BOS, "eos_id": EOS, "max_len_a": 1.0, "max_len_b": 2}

    def decode(s, m):
        if search == "greedy":
            return greedy_search(model, s, m, **kw)
        return beam_search(model, s, m, beam_size=3, alpha=0.6, **kw)

    batched = decode(src, src_mask)
    for row in range(4):
        n = int(src_mask[row].sum())
        assert batched[row] == decode(src[row:row + 1, :n], src_mask[row:row + 1, :n])[0]


def test_beam_of_one_is_greedy(arch):
    model = build(arch).eval()
    src, src_mask, _ = random_batch(B=4)
    kw = {"bos_id": BOS, "eos_id": EOS, "max_len_a": 1.0, "max_len_b": 3}
    greedy = greedy_search(model, src, src_mask, **kw)
    assert greedy == beam_search(model, src, src_mask, beam_size=1, alpha=0.6, **kw)
    assert all(len(h) <= int(n) + 3 for h, n in zip(greedy, src_mask.sum(1)))


@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_wide_beam_search_is_exhaustive_search(arch, alpha):
    """With a beam wider than the number of hypotheses nothing is pruned, so beam search must return the best
    length-penalised hypothesis of all, found here by scoring every possible output with teacher forcing."""
    V, limit = 5, 3  # tokens 0..4 (3, 4 are words), outputs of at most 3 tokens
    model = build(arch, tgt_vocab_size=V).eval()
    src, src_mask, _ = random_batch(B=2)
    found = beam_search(model, src, src_mask, bos_id=BOS, eos_id=EOS, beam_size=V**limit, alpha=alpha,
                        max_len_a=0.0, max_len_b=limit)
    words = [t for t in range(V) if t != EOS]
    outputs = [[*p, EOS] for n in range(limit) for p in itertools.product(words, repeat=n)]
    outputs += [list(p) for p in itertools.product(words, repeat=limit)]  # cut off at the limit
    for row in range(2):
        @torch.no_grad()
        def score(out):
            tgt = torch.tensor([[BOS, *out[:-1]]])
            logp = torch.log_softmax(model(src[row:row + 1], src_mask[row:row + 1], tgt)[0], -1)  # (T, V)
            return float(logp[torch.arange(len(out)), out].sum()) / ((5 + len(out)) / 6) ** alpha
        best = max(outputs, key=score)
        assert found[row] == [t for t in best if t != EOS]


def test_oracle_length_greedy_takes_the_best_token_but_eos_until_the_length(arch):
    """At an oracle length (Newman et al. 2020) every output has exactly its row's length, and each token is the
    most probable one but EOS given the prefix, as teacher forcing that prefix scores it."""
    model = build(arch).eval()
    src, src_mask, _ = random_batch(B=3)
    lengths = torch.tensor([1, 4, 9])
    out = greedy_search(model, src, src_mask, bos_id=BOS, eos_id=EOS, oracle_lengths=lengths)
    assert [len(h) for h in out] == lengths.tolist() and all(EOS not in h for h in out)
    for row, hyp in enumerate(out):
        with torch.no_grad():
            logits = model(src[row:row + 1], src_mask[row:row + 1], torch.tensor([[BOS, *hyp[:-1]]]))[0]  # (T, V)
        logits[:, EOS] = float("-inf")
        assert hyp == logits.argmax(-1).tolist()
    assert out == beam_search(model, src, src_mask, bos_id=BOS, eos_id=EOS, beam_size=1, oracle_lengths=lengths)


def test_wide_beam_search_at_an_oracle_length_is_exhaustive_search(arch):
    """Unpruned, beam search at an oracle length returns the most probable output of exactly that length without
    EOS, whatever the length penalty (every candidate has the same length)."""
    V, n = 5, 3
    model = build(arch, tgt_vocab_size=V).eval()
    src, src_mask, _ = random_batch(B=2)
    found = beam_search(model, src, src_mask, bos_id=BOS, eos_id=EOS, beam_size=V**n, alpha=2.0,
                        oracle_lengths=torch.tensor([n, n]))
    outputs = torch.tensor(list(itertools.product([t for t in range(V) if t != EOS], repeat=n)))  # (N, n)
    tgt_in = torch.cat([torch.full((len(outputs), 1), BOS), outputs[:, :-1]], 1)  # (N, n)
    for row in range(2):
        with torch.no_grad():
            logits = model(src[row].expand(len(outputs), -1), src_mask[row].expand(len(outputs), -1), tgt_in)
        logp = torch.log_softmax(logits, -1).gather(-1, outputs.unsqueeze(-1)).squeeze(-1).sum(-1)  # (N,)
        assert found[row] == outputs[logp.argmax()].tolist()


@pytest.mark.parametrize("lengths", [[2, 0, 3], [2, 3]])
def test_oracle_lengths_are_checked(lengths):
    model = build("gru").eval()
    src, src_mask, _ = random_batch(B=3)
    for search in (greedy_search, beam_search):
        with pytest.raises(ValueError, match="oracle lengths"):
            search(model, src, src_mask, bos_id=BOS, eos_id=EOS, oracle_lengths=torch.tensor(lengths))


@pytest.mark.parametrize("arch", ["attention", "transformer", "convs2s", "decoder_only"])
def test_alignment_is_a_distribution_over_real_tokens(arch):
    model = build(arch).eval()
    src, src_mask, tgt_in = random_batch()
    alpha = model.alignment(src, src_mask, tgt_in)  # (B, T, S)
    assert alpha.shape == (3, tgt_in.size(1), src.size(1))
    torch.testing.assert_close(alpha.sum(-1), torch.ones(3, tgt_in.size(1)))
    assert (alpha[1, :, ~src_mask[1]] == 0).all()
    assert (alpha[:, :, src_mask[1]] > 0).all()


@pytest.mark.parametrize("arch,layers,heads", [("attention", 1, 1), ("transformer", 2, 4), ("convs2s", 2, 1),
                                               ("decoder_only", 3, 4)])
def test_every_layer_and_head_attends_over_the_real_source_tokens(arch, layers, heads):
    """attention_maps keeps each layer and head apart (the explorer shows them one by one); each row is a
    distribution over the real source tokens, and the heads of one layer differ."""
    model = build(arch).eval()
    src, src_mask, tgt_in = random_batch()
    with torch.no_grad():
        maps = model.attention_maps(src, src_mask, tgt_in)  # (B, L, H, T, S)
    assert maps.shape == (3, layers, heads, tgt_in.size(1), src.size(1))
    torch.testing.assert_close(maps.sum(-1), torch.ones(3, layers, heads, tgt_in.size(1)))
    assert (maps[1, ..., ~src_mask[1]] == 0).all()
    if heads > 1:
        assert not torch.allclose(maps[:, :, 0], maps[:, :, 1])
    if arch != "convs2s":  # (whose picture is the mean over its layers, as fairseq's)
        torch.testing.assert_close(model.alignment(src, src_mask, tgt_in), maps[:, -1].mean(1))


@pytest.mark.parametrize("bidirectional", [True, False])
def test_the_annotations_read_both_ways_or_left_to_right_only(bidirectional):
    """Bahdanau's h_j = [→h_j ; ←h_j] sees the whole source; with one direction, h_j sees x_1..x_j alone."""
    model = build("attention", bidirectional=bidirectional).eval()
    src, src_mask, _ = random_batch(B=2, S=7)
    changed = src.clone()
    changed[0, -1] = 4 if src[0, -1] != 4 else 5  # a different last source token
    with torch.no_grad():
        (before, _), (after, _) = model.encoder(src, src_mask), model.encoder(changed, src_mask)  # (2, S, K)
    assert before.size(-1) == (2 if bidirectional else 1) * model.encoder.rnn.hidden_size
    assert torch.equal(before[0, :-1], after[0, :-1]) != bidirectional


def test_gru_has_no_alignment():
    src, src_mask, tgt_in = random_batch()
    assert build("gru").alignment(src, src_mask, tgt_in) is None


def test_transformer_alignment_weights_are_those_the_attention_uses():
    """The weights `alignment` reports, times the values, give what the attention computes."""
    model = build("transformer").eval()
    src, src_mask, tgt_in = random_batch()
    attn, memory = model.decoder.layers[-1].cross_attn, model.encoder(src, src_mask)  # memory (B, S, D)
    x = torch.randn(3, tgt_in.size(1), 16)  # (B, T, D) queries
    k, v = attn.keys_values(memory)  # (B, H, S, D/H) each
    by_hand = attn.W_O((attn.weights(x, k, src_mask) @ v).transpose(1, 2).flatten(2))  # (B, T, D)
    torch.testing.assert_close(by_hand, attn(x, k, v, src_mask))


@pytest.mark.parametrize("arch,bad,message", [
    ("transformer", {"d_model": 30, "n_heads": 4}, r"d_model \(30\) must be divisible by n_heads \(4\)"),
    ("transformer", {"positions": "relative"},
     r"positions \('relative'\) must be one of 'sinusoidal', 'learned', 'rotary', 'alibi', 'alibi_directional', 't5'"),
    ("transformer", {"decoder_positions": "nope"}, r"decoder_positions \('nope'\) must be one of .*'t5' or 'none'"),
    ("transformer", {"positions": "alibi_directional", "n_heads": 3, "d_model": 12},
     r"n_heads \(3\) must be even for alibi_directional"),
    ("transformer", {"positions": "rotary", "d_model": 12, "n_heads": 4}, r"d_head = d_model / n_heads \(3\)"),
    ("transformer", {"n_encoder_layers": 0}, r"n_encoder_layers \(0\) must be > 0"),
    ("gru", {"hidden": -1}, r"hidden \(-1\) must be > 0"),
    ("attention", {"dropout": 1.5}, r"dropout \(1.5\)"),
    ("transformer", {"attention_dropout": -0.1, "activation_dropout": 1.0},
     r"attention_dropout \(-0.1\), activation_dropout \(1.0\) must be in \[0, 1\)"),
])
def test_constructor_arguments_are_checked(arch, bad, message):
    with pytest.raises(ValueError, match=message):
        build(arch, **bad)


def test_tied_embeddings_share_one_matrix():
    tied = build("transformer", tie_embeddings=True)
    assert tied.decoder.out.weight is tied.decoder.embed.tokens.weight


def test_shared_embeddings_are_one_table_for_encoder_decoder_and_output():
    shared = build("transformer", share_all_embeddings=True, src_vocab_size=TGT_V)
    table = shared.decoder.embed.tokens.weight
    assert shared.encoder.embed.tokens.weight is table and shared.decoder.out.weight is table
    assert sum(p.numel() for p in shared.parameters()) == sum(
        p.numel() for p in build("transformer", tie_embeddings=True, src_vocab_size=TGT_V).parameters()) - table.numel()
    assert_step_by_step_equals_teacher_forcing(shared.eval())
    with pytest.raises(ValueError, match=rf"one vocabulary for both languages, not {SRC_V} source and {TGT_V}"):
        build("transformer", share_all_embeddings=True)


def test_transformer_embeddings_start_small():
    """Token embeddings ~ N(0, D^-1/2): scaled by √D they are unit-sized, like the positional encoding."""
    model = build("transformer", d_model=64, n_heads=4)
    std = model.encoder.embed.tokens.weight[1:].std().item()
    assert abs(std - 64**-0.5) < 0.03
    assert (model.encoder.embed.tokens.weight[PAD] == 0).all()
