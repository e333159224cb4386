import math
from types import SimpleNamespace

import pytest
import sacrebleu
import torch
import torch.nn.functional as F
from torchmetrics.text import SacreBLEUScore

from zoo.data.batching import collate
from zoo.metrics import TrainClock, after_first_error, bleu_by_length, corpus_scores, matmul_peak_flops, moses_tokenized
from zoo.errors import ConfigError
from zoo.module import SmoothedCrossEntropy, inverse_sqrt_schedule, label_smoothed_nll, noam_schedule

HYPS = ["the cat sat on the mat", "a dog ran", "it is raining today in paris", "hello world"]
REFS = ["the cat sat on a mat", "a dog ran", "it rains today in paris", "goodbye world"]


def test_corpus_scores_equal_sacrebleu():
    scores = corpus_scores(HYPS, REFS, lang="en")
    assert scores["bleu"] == sacrebleu.corpus_bleu(HYPS, [REFS]).score
    assert scores["chrf"] == sacrebleu.corpus_chrf(HYPS, [REFS]).score
    assert scores["bleu_lc"] == sacrebleu.corpus_bleu(HYPS, [REFS], lowercase=True).score
    upper = [h.upper() for h in HYPS]  # case counts in `bleu`, not in `bleu_lc`
    shouted = corpus_scores(upper, REFS, lang="en")
    assert shouted["bleu_lc"] == scores["bleu_lc"] > shouted["bleu"]
    assert scores["exact_match"] == 25.0
    assert scores["signature"].startswith("nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp")
    assert scores["n"] == 4


def test_a_lowercasing_models_scores_fold_case_as_sacrebleu_does_and_its_signature_says_so():
    lowered = [h.lower() for h in ["The cat sat on the mat", "A dog ran", "It is raining today in Paris"]]
    refs = ["The cat sat on a mat", "A dog ran", "It rains today in Paris"]
    scores = corpus_scores(lowered, refs, lang="en", lowercase=True)
    assert scores["bleu"] == sacrebleu.corpus_bleu(lowered, [refs], lowercase=True).score
    assert scores["chrf"] == sacrebleu.metrics.CHRF(lowercase=True).corpus_score(lowered, [refs]).score
    assert scores["exact_match"] == pytest.approx(100 / 3)  # "a dog ran" is "A dog ran" with case folded
    assert "|case:lc|" in scores["signature"]
    cased = corpus_scores(lowered, refs, lang="en")
    assert cased["bleu"] < scores["bleu"] and cased["exact_match"] == 0 and cased["bleu_tok"] == scores["bleu_tok"]
    [bucket] = bleu_by_length([5, 5, 5], lowered, refs, width=10, lowercase=True)
    assert bucket["bleu"] == scores["bleu"]


def test_tokenized_bleu_is_sacrebleu_on_moses_tokenized_lowercased_text():
    hyps = ["Ein Mann, der läuft.", "Zwei Hunde spielen z.B. im Schnee!", "Ein \"Kind\" & sein rotes T-Shirt."]
    refs = ["Ein Mann läuft.", "Zwei Hunde spielen im Schnee.", "Ein Kind und sein T-Shirt."]
    assert moses_tokenized(hyps, "de") == ["ein mann , der läuft .", "zwei hunde spielen z.b. im schnee !",
                                           "ein &quot; kind &quot; &amp; sein rotes t-shirt ."]
    tokenized = sacrebleu.corpus_bleu(moses_tokenized(hyps, "de"), [moses_tokenized(refs, "de")], tokenize="none")
    assert corpus_scores(hyps, refs, lang="de")["bleu_tok"] == tokenized.score
    # not the same figure as sacreBLEU's 13a tokenization lowercased, which splits "z . b ." into four tokens
    assert tokenized.score != corpus_scores(hyps, refs, lang="de")["bleu_lc"]
    assert corpus_scores([h.upper() for h in hyps], refs, lang="de")["bleu_tok"] == tokenized.score


def test_torchmetrics_validation_bleu_agrees_when_nothing_needs_smoothing():
    hyps, refs = HYPS[:3], REFS[:3]  # every n-gram order has a match: smoothing plays no part
    metric = SacreBLEUScore()
    metric.update(hyps, [[r] for r in refs])
    assert 100 * metric.compute().item() == pytest.approx(sacrebleu.corpus_bleu(hyps, [refs]).score, abs=1e-3)


def test_bleu_by_length_scores_each_bucket_alone():
    src_lens = [3, 25, 12, 14]
    buckets = bleu_by_length(src_lens, HYPS, REFS, width=10)
    assert [(b["lo"], b["hi"], b["n"]) for b in buckets] == [(1, 10, 1), (11, 20, 2), (21, 30, 1)]
    assert buckets[1]["bleu"] == sacrebleu.corpus_bleu([HYPS[2], HYPS[3]], [[REFS[2], REFS[3]]]).score


def test_mismatched_lengths_are_an_error():
    with pytest.raises(ValueError, match="2 hypotheses but 1 references"):
        corpus_scores(["a", "b"], ["a"], lang="en")


def test_label_smoothing_zero_is_cross_entropy_over_real_tokens():
    torch.manual_seed(0)
    logits, target = torch.randn(2, 5, 7), torch.randint(1, 7, (2, 5))
    target[0, 3:] = 0  # padding
    expected = F.cross_entropy(logits.flatten(0, 1), target.flatten(), ignore_index=0)
    torch.testing.assert_close(label_smoothed_nll(logits, target, pad_id=0, epsilon=0.0), expected)


def test_label_smoothing_puts_no_mass_on_pad():
    """The smoothed target is (1-ε) on the reference plus ε/(V-1) on every class but pad: the loss is minimised by
    exactly that distribution, so its gradient there is zero, pad logit included."""
    V, eps, pad, ref = 6, 0.1, 0, 3
    q = torch.full((V,), eps / (V - 1))
    q[pad], q[ref] = 0.0, 1 - eps + eps / (V - 1)
    logits = torch.log(q.clamp_min(1e-30)).view(1, 1, V).requires_grad_()
    label_smoothed_nll(logits, torch.tensor([[ref]]), pad_id=pad, epsilon=eps).backward()
    assert logits.grad.abs().max() < 1e-6


def smoothed_by_autograd(logits, target, pad_id, epsilon):
    """The loss as a formula, for autograd to differentiate."""
    logp = torch.log_softmax(logits.double(), -1)  # (B, T, V)
    nll = -logp.gather(-1, target.unsqueeze(-1)).squeeze(-1)  # (B, T)
    smooth = -(logp.sum(-1) - logp[..., pad_id]) / (logp.size(-1) - 1)  # (B, T)
    return ((1 - epsilon) * nll + epsilon * smooth)[target != pad_id].mean()


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_the_written_out_gradient_is_autograds(dtype, monkeypatch):
    """Loss and gradient of the fused loss equal autograd's through the formula, also when the rows are taken in
    blocks that do not divide them evenly, and for bf16 logits (as autocast makes them)."""
    monkeypatch.setattr(SmoothedCrossEntropy, "BLOCK", 3 * 11)  # blocks of 3 rows: the 14 rows end in a block of 2
    torch.manual_seed(0)
    logits, target = torch.randn(2, 7, 11).to(dtype), torch.randint(1, 11, (2, 7))
    target[1, 4:] = 0  # padding
    ours, reference = logits.clone().requires_grad_(), logits.clone().requires_grad_()
    label_smoothed_nll(ours, target, pad_id=0, epsilon=0.1).backward()
    expected = smoothed_by_autograd(reference, target, 0, 0.1)
    expected.backward()
    torch.testing.assert_close(label_smoothed_nll(logits, target, pad_id=0, epsilon=0.1).double(), expected)
    torch.testing.assert_close(ours.grad, reference.grad)
    assert ours.grad.dtype == dtype and (ours.grad[1, 4:] == 0).all()  # pad positions get no gradient


def test_rows_are_taken_in_blocks_on_the_cpu_only():
    """Blocks keep the CPU's fp32 copies in cache; on a GPU each block would only add kernel launches."""
    on_cpu = SmoothedCrossEntropy.blocks(16800, 8000, torch.device("cpu"))
    assert len(on_cpu) == 129 and on_cpu[0] == slice(0, 131) and on_cpu[-1].stop >= 16800
    assert SmoothedCrossEntropy.blocks(16800, 8000, torch.device("cuda")) == [slice(0, 16800)]


def test_the_fused_loss_passes_gradcheck():
    logits = torch.randn(3, 4, 9, dtype=torch.float64, requires_grad=True)
    target = torch.randint(0, 9, (3, 4))
    target[0, 0] = 0
    assert torch.autograd.gradcheck(lambda x: label_smoothed_nll(x, target, pad_id=0, epsilon=0.2), (logits,))


def test_noam_schedule_gives_update_n_the_papers_rate_for_step_n():
    opt = torch.optim.Adam([torch.zeros(1, requires_grad=True)], lr=1.0)
    sched = noam_schedule(opt, d_model=512, warmup=4000)
    rates = {}
    for step in range(1, 16001):  # the rate in force for the step-th optimizer update
        rates[step] = opt.param_groups[0]["lr"]
        opt.step()
        sched.step()
    assert rates[1] == pytest.approx(512**-0.5 * 4000**-1.5)
    assert rates[4000] == pytest.approx(512**-0.5 / math.sqrt(4000)) == max(rates.values())
    assert rates[2000] == pytest.approx(rates[4000] / 2) and rates[16000] == pytest.approx(rates[4000] / 2)


def test_noam_cooldown_scales_the_last_updates_down_to_zero_and_leaves_the_rest():
    def rates(**cooldown) -> list[float]:
        opt = torch.optim.Adam([torch.zeros(1, requires_grad=True)], lr=1.0)
        sched = noam_schedule(opt, d_model=128, warmup=200, factor=0.5, **cooldown)
        out = []
        for _ in range(1700):  # out[k]: the rate of update k + 1
            out.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
        return out
    plain, cooled = rates(), rates(cooldown=400, total=1600)
    assert cooled[:1200] == plain[:1200]
    assert cooled[1200] == pytest.approx(plain[1200] * 400 / 401)
    assert cooled[1599] == pytest.approx(plain[1599] / 401)
    assert all(a > b for a, b in zip(cooled[1200:1600], cooled[1201:1600]))
    assert cooled[1600:] == [0.0] * 100
    short = rates(cooldown=400, total=6)  # a budget shorter than the cool-down (a smoke test's) cools down throughout
    assert short[:6] == pytest.approx([plain[k] * (6 - k) / 7 for k in range(6)]) and short[6:] == [0.0] * 1694
    for total in (None, -1):  # trainer.max_steps -1 means no step limit, so no end to cool down to
        with pytest.raises(ConfigError, match=rf"model.scheduler.total \({total}\) must be an integer > 0"):
            rates(cooldown=400, total=total)


def test_inverse_sqrt_schedule_is_fairseqs():
    """Linear warm-up from init_lr to lr over `warmup` updates, then lr · sqrt(warmup / updates done)."""
    opt = torch.optim.Adam([torch.zeros(1, requires_grad=True)], lr=0.005)
    sched = inverse_sqrt_schedule(opt, warmup=2000, init_lr=1e-7)
    rates = []
    for _ in range(8000):  # rates[k]: the rate of the update after k updates done
        rates.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert rates[0] == pytest.approx(1e-7)
    assert rates[1000] == pytest.approx((1e-7 + 0.005) / 2)
    assert rates[2000] == pytest.approx(0.005) == max(rates)
    assert rates[7999] == pytest.approx(0.005 * math.sqrt(2000 / 7999))
    with pytest.raises(ConfigError, match=r"init_lr \(0.01\) must be between 0 and the optimizer's lr \(0.005\)"):
        inverse_sqrt_schedule(opt, warmup=10, init_lr=0.01)


def test_train_clock_counts_real_tokens_and_their_flops_only():
    class Net:
        def forward_flops(self, src_len, tgt_len):  # a stand-in whose count shows which lengths it was given
            return 1000 * src_len + tgt_len

    class Module:
        tokenizer, net = SimpleNamespace(pad_id=0), Net()

    clock = TrainClock()
    clock.on_train_epoch_start(None, Module)
    batch = collate([(0, [5, 6, 7], [8]), (1, [5], [8, 9, 10])], pad_id=0, bos_id=1, eos_id=2)
    clock.on_train_batch_end(None, Module, None, batch, 0)
    assert clock.src_tokens == 3 + 1 and clock.tgt_tokens == (1 + 1) + (3 + 1)  # targets with their EOS; no padding
    assert clock.flops == 3 * ((1000 * 3 + 2) + (1000 * 1 + 4))  # forward + backward (2x forward), per real pair
    summary = clock.summary(peak_flops_per_s=1e9)
    assert summary["tokens"] == 10 and summary["tgt_tokens"] == 6 and clock.steps == 1
    assert summary["tokens_per_s"] == pytest.approx(10 / 6 * summary["tgt_tokens_per_s"])
    assert summary["flops_per_token"] == pytest.approx(clock.flops / 10)
    assert summary["mfu"] == pytest.approx(clock.flops / clock.seconds / 1e9)


def test_matmul_peak_is_measured_in_flops_per_second():
    peak = matmul_peak_flops(torch.device("cpu"), torch.float32, seconds=0.2)
    assert 1e8 < peak < 1e14  # a real CPU: between 0.1 GFLOP/s and 100 TFLOP/s


def test_after_first_error_counts_the_reference_words_an_output_still_writes_after_its_first_mistake():
    ref = "a b c d e"
    assert after_first_error([ref], [ref]) is None  # nothing wrong
    assert after_first_error(["a x c d e"], [ref]) == pytest.approx(100 * 3 / 4)  # a slip: c d e of b c d e
    assert after_first_error(["a c d e"], [ref]) == pytest.approx(100 * 3 / 4)  # b dropped, the rest in order
    assert after_first_error(["a b x x x x"], [ref]) == 0.0  # off course after b
    assert after_first_error(["a b c"], [ref]) == 0.0  # stopped two words early
    assert after_first_error(["a b c d e f"], [ref]) is None  # only a word added after the whole reference
    # pooled over the wrong outputs' words, the right ones left out: (3 + 0) of (4 + 3)
    assert after_first_error(["a x c d e", ref, "a b x x"], [ref, ref, ref]) == pytest.approx(100 * 3 / 7)
