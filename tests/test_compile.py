"""Batches padded to a multiple of their lengths (speed.pad_to_multiple): the same loss for every architecture, and
under torch.compile one graph per padded length pair, whatever the batch sizes, or without padding one graph with
symbolic shapes for every batch (zoo.train.compile_net). tests/test_run.py compiles a whole run with inductor."""
from functools import partial

import pytest
import torch
from torch._dynamo.utils import counters

from tests.conftest import SMALL, make
from zoo.data.datamodule import TranslationDataModule
from zoo.data.toy import ToyTranslation
from zoo.module import Seq2SeqModule
from zoo.train import compile_net


def toy(tmp_path, pad_to_multiple: int) -> TranslationDataModule:
    dm = TranslationDataModule(ToyTranslation(n_train=300, n_val=10, n_test=10, n_test_long=5, min_len=3, max_len=12,
                                              n_nouns=8, n_adjectives=4, n_verbs=6, n_adverbs=2),
                               preprocess={"kind": "word", "min_frequency": 1, "joint": False},
                               cache_dir=str(tmp_path), max_tokens=300, fit_size=20, pad_to_multiple=pad_to_multiple)
    dm.setup()
    return dm


def module_for(arch: str, dm: TranslationDataModule) -> Seq2SeqModule:
    torch.manual_seed(0)
    v = dm.tgt_tokenizer
    net = make(arch, src_vocab_size=len(dm.src_tokenizer), tgt_vocab_size=len(v), pad_id=v.pad_id, dropout=0.0)
    return Seq2SeqModule(net, optimizer=partial(torch.optim.Adam, lr=1e-3), scheduler=None, tokenizer=v)


@pytest.mark.parametrize("arch", list(SMALL))
def test_padding_to_a_multiple_leaves_the_loss_unchanged(arch, tmp_path):
    plain, padded = toy(tmp_path, 1), toy(tmp_path, 8)
    module = module_for(arch, plain)
    for a, b in zip(plain.loader("train"), padded.loader("train")):
        assert b["src"].size(1) % 8 == 0 and b["tgt_in"].size(1) % 8 == 0
        torch.testing.assert_close(module.loss(b), module.loss(a))


def compiled_epoch(tmp_path, pad_to_multiple: int) -> tuple[set, int]:
    """The (rows, source length, target length) shapes of a Transformer's epoch of toy batches compiled by
    compile_net (graphs captured, nothing compiled), and how many graphs it took; its losses are the eager ones."""
    dm = toy(tmp_path, pad_to_multiple)
    module = module_for("transformer", dm)
    eager = [module.loss(batch).item() for batch in dm.loader("train", shuffle=True)]
    torch._dynamo.reset()
    counters.clear()
    compile_net(module, dm, backend="eager")
    shapes, compiled = set(), []
    for batch in dm.loader("train", shuffle=True):  # the same batches: the sampler's epoch 0 again
        batch = module.on_after_batch_transfer(batch, 0)
        shapes.add(tuple(batch["src"].shape) + (batch["tgt_in"].size(1),))
        compiled.append(module.loss(batch).item())
    assert compiled == pytest.approx(eager, rel=1e-5)
    return shapes, counters["stats"]["unique_graphs"]


def test_compiled_with_static_lengths_one_graph_per_padded_shape_whatever_the_batch_size(tmp_path):
    shapes, graphs = compiled_epoch(tmp_path, 4)
    lengths = {shape[1:] for shape in shapes}
    assert len(shapes) > 2 * len(lengths)  # many batch sizes to a padded length pair...
    assert graphs <= 2 * len(lengths)  # ...yet a graph or two each (a batch of one row)
    assert torch._dynamo.config.recompile_limit >= 4 * len(lengths)


def test_compiled_without_padding_one_graph_with_symbolic_shapes_serves_every_batch(tmp_path):
    shapes, graphs = compiled_epoch(tmp_path, 1)
    assert len({shape[1:] for shape in shapes}) > 4  # batches of many lengths...
    assert graphs <= 2  # ...one graph (and one more for a batch of one row, if any)
