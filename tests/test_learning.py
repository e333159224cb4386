"""Each architecture, trained with the real loss, overfits a tiny fixed set of the embedded task to exact match."""
from functools import partial

import pytest
import torch

from tests.conftest import SMALL, make
from zoo.data.datamodule import TranslationDataModule
from zoo.data.toy import ToyTranslation
from zoo.decoding import greedy_search
from zoo.module import Seq2SeqModule


@pytest.mark.parametrize("arch", list(SMALL))
def test_overfits_a_tiny_set(arch, tmp_path):
    dm = TranslationDataModule(ToyTranslation(n_train=12, n_val=1, n_test=1, n_test_long=1, min_len=3, max_len=6,
                                              n_nouns=8, n_adjectives=4, n_verbs=6, n_adverbs=2),
                               preprocess={"kind": "word", "min_frequency": 1, "joint": False},
                               cache_dir=str(tmp_path), eval_max_tokens=10_000)
    dm.setup()
    batch = next(iter(dm.loader("train")))  # all 12 pairs in one batch
    v = dm.tgt_tokenizer
    torch.manual_seed(0)
    model = make(arch, src_vocab_size=len(dm.src_tokenizer), tgt_vocab_size=len(v), pad_id=v.pad_id,
                                dropout=0.0)
    module = Seq2SeqModule(model, optimizer=partial(torch.optim.Adam, lr=3e-3), scheduler=None, tokenizer=v,
                           label_smoothing=0.1)
    optimizer = module.configure_optimizers()
    for _ in range(300):
        loss = module.loss(batch)  # teacher forcing, label-smoothed cross-entropy
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    hyps = greedy_search(model, batch["src"], batch["src_mask"], bos_id=v.bos_id, eos_id=v.eos_id)
    refs = [[t for t in row if t not in (v.pad_id, v.eos_id)] for row in batch["tgt_out"].tolist()]
    assert hyps == refs


@pytest.mark.parametrize("algorithm", ["norm", "value"])
def test_gradients_are_clipped_for_a_fused_optimizer_without_a_loss_scale(algorithm):
    """bf16 (no loss scale): the module clips the gradients itself, since Lightning refuses fused optimizers."""
    from types import SimpleNamespace

    torch.manual_seed(0)
    net = make("gru", src_vocab_size=20, tgt_vocab_size=20, pad_id=0)
    module = Seq2SeqModule(net, optimizer=partial(torch.optim.Adam, fused=True), scheduler=None,
                           tokenizer=SimpleNamespace(bos_id=1, eos_id=2, pad_id=0))
    module._trainer = SimpleNamespace(precision_plugin=SimpleNamespace())  # bf16-mixed's plugin has no scaler
    for p in net.parameters():
        p.grad = torch.full_like(p, 3.0)
    module.configure_gradient_clipping(module.configure_optimizers(), 0.5, algorithm)
    grads = [p.grad for p in net.parameters()]
    if algorithm == "norm":
        assert torch.linalg.vector_norm(torch.cat([g.flatten() for g in grads])).item() == pytest.approx(0.5, rel=1e-3)
    else:
        assert all((g == 0.5).all() for g in grads)
