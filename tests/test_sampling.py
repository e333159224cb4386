"""Scheduled sampling (zoo/sampling.py) for every architecture: with the reference always drawn it is teacher forcing
exactly; with the model's own predictions, each input is the previous step's most probable token, by either method."""
import math
from functools import partial

import pytest
import torch

from tests.conftest import BOS, build, random_batch
from zoo.module import Seq2SeqModule
from zoo.sampling import ScheduledSampling, free_running


def test_with_the_reference_always_drawn_the_loss_and_gradients_are_teacher_forcings_exactly(arch):
    """ε = 1: no draw is made, so in training mode, dropout on, the same dropout draws follow."""
    net = build(arch, dropout=0.3).train()
    tok = type("Tok", (), {"bos_id": 1, "eos_id": 2, "pad_id": 0})()
    src, src_mask, tgt_in = random_batch(B=3)
    batch = {"src": src, "src_mask": src_mask, "tgt_in": tgt_in, "tgt_out": torch.roll(tgt_in, -1, 1)}
    grads = []
    for sampling in (None, *(ScheduledSampling(method=m, schedule="constant", p=1.0) for m in ("step", "two_pass"))):
        module = Seq2SeqModule(net, optimizer=torch.optim.Adam, scheduler=None, tokenizer=tok, sampling=sampling)
        net.zero_grad()
        torch.manual_seed(0)
        module.loss(batch).backward()
        grads.append([p.grad.clone() for p in net.parameters() if p.grad is not None])
    assert all(torch.equal(a, b) for other in grads[1:] for a, b in zip(grads[0], other, strict=True))


def test_every_input_drawn_from_the_reference_is_teacher_forcing_by_either_method(arch):
    """The mixing itself, past the shortcut: all-reference inputs through the steps (as decoding runs them) and
    through the two passes give the teacher-forced logits."""
    net = build(arch).eval()
    src, src_mask, tgt_in = random_batch(B=3, T=6)
    gold = torch.ones_like(tgt_in, dtype=torch.bool)
    with torch.no_grad():
        forced = net(src, src_mask, tgt_in)  # (B, T, V)
        torch.testing.assert_close(ScheduledSampling(method="step").mixed(net, src, src_mask, tgt_in, gold), forced)
        assert torch.equal(ScheduledSampling(method="two_pass").mixed(net, src, src_mask, tgt_in, gold), forced)


def test_free_running_is_teacher_forcing_on_the_models_own_greedy_prefix(arch):
    net = build(arch).eval()
    src, src_mask, tgt_in = random_batch(B=3, T=6)
    with torch.no_grad():
        logits = free_running(net, src, src_mask, tgt_in, torch.zeros_like(tgt_in, dtype=torch.bool))  # (B, T, V)
        own = torch.cat([tgt_in[:, :1], logits.argmax(-1)[:, :-1]], 1)  # (B, T) BOS, then each step's argmax
        torch.testing.assert_close(logits, net(src, src_mask, own))
        mixed = torch.zeros_like(tgt_in, dtype=torch.bool)
        mixed[:, 3] = True  # the reference's token at position 3 only: the steps after it follow from it
        logits = free_running(net, src, src_mask, tgt_in, mixed)
        own = torch.cat([tgt_in[:, :1], logits.argmax(-1)[:, :-1]], 1)
        own[:, 3] = tgt_in[:, 3]
        torch.testing.assert_close(logits, net(src, src_mask, own))


def test_two_passes_feed_the_first_passes_predictions_to_the_second(arch):
    net = build(arch).eval()
    src, src_mask, tgt_in = random_batch(B=3, T=6)
    sampling = ScheduledSampling(method="two_pass", schedule="constant", p=0.0)
    with torch.no_grad():
        first = net(src, src_mask, tgt_in).argmax(-1)  # (B, T) predicted from the reference's prefixes
        own = torch.cat([tgt_in[:, :1], first[:, :-1]], 1)
        assert torch.equal(sampling.logits(net, src, src_mask, tgt_in, update=0), net(src, src_mask, own))
        assert torch.equal(sampling.mixed(net, src, src_mask, tgt_in, torch.zeros_like(tgt_in, dtype=torch.bool)),
                           net(src, src_mask, own))


def test_the_schedules_and_the_draws():
    constant = ScheduledSampling(schedule="constant", p=0.25)
    linear = ScheduledSampling(schedule="linear", p=0.2, k=100)
    sigmoid = ScheduledSampling(schedule="inverse_sigmoid", p=0.1, k=50)
    assert [constant.gold_probability(i) for i in (0, 10**6)] == [0.25, 0.25]
    assert [linear.gold_probability(i) for i in (0, 50, 100, 1000)] == pytest.approx([1.0, 0.6, 0.2, 0.2])
    assert sigmoid.gold_probability(0) == pytest.approx(50 / 51)
    assert sigmoid.gold_probability(500) == pytest.approx(max(0.1, 50 / (50 + math.exp(10))))
    assert sigmoid.gold_probability(10**9) == 0.1  # floored, and no overflow
    tgt_in = torch.ones(2000, 30, dtype=torch.long)
    torch.manual_seed(0)
    tokens = constant.gold_mask(tgt_in, 0)
    assert tokens[:, 0].all() and abs(tokens[:, 1:].float().mean() - 0.25) < 0.01  # BOS always, the rest drawn
    sentences = ScheduledSampling(unit="sentence", schedule="constant", p=0.5).gold_mask(tgt_in, 0)
    rows = sentences[:, 1:].float().mean(1)  # a whole sentence of references, or of predictions
    assert set(rows.tolist()) == {0.0, 1.0} and abs(rows.mean() - 0.5) < 0.05 and sentences[:, 0].all()


def test_bad_settings_name_their_values():
    with pytest.raises(ValueError, match=r"method \('beam'\) must be one of \['step', 'two_pass'\]; "
                                         r"p \(1.5\) must be in \[0, 1\]; k \(0\) must be > 0"):
        ScheduledSampling(method="beam", p=1.5, k=0)
    with pytest.raises(ValueError, match=r"k \(0.5\) must be >= 1 for inverse_sigmoid"):
        ScheduledSampling(k=0.5)


def test_trained_half_on_its_own_predictions_a_model_still_fits_a_tiny_set(arch):
    """Lake & Baroni's recipe: each sentence teacher-forced with probability 0.5, else decoded from its own outputs."""
    torch.manual_seed(0)
    net = build(arch, tgt_vocab_size=8)
    src, src_mask, _ = random_batch(B=4, S=5)
    tgt = torch.randint(3, 8, (4, 5))  # (B, T) real tokens, no EOS inside
    batch = {"src": src, "src_mask": src_mask, "tgt_in": torch.cat([torch.full((4, 1), BOS), tgt], 1),
             "tgt_out": torch.cat([tgt, torch.full((4, 1), 2)], 1)}
    tok = type("Tok", (), {"bos_id": BOS, "eos_id": 2, "pad_id": 0})()
    module = Seq2SeqModule(net, optimizer=partial(torch.optim.Adam, lr=1e-2), scheduler=None, tokenizer=tok,
                           label_smoothing=0.0, sampling=ScheduledSampling(unit="sentence", schedule="constant", p=0.5))
    optimizer = module.configure_optimizers()
    for _ in range(150):
        loss = module.loss(batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    net.eval()
    with torch.no_grad():
        free = free_running(net, src, src_mask, batch["tgt_in"], torch.zeros(4, 6, dtype=torch.bool))
    assert torch.equal(free.argmax(-1), batch["tgt_out"])  # right on its own prefix, EOS included
