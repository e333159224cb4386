import random

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from zoo.data.batching import TokenBudgetBatchSampler, collate
from zoo.data.multi30k import Multi30k
from zoo.data.cache import Corpus, prepare
from zoo.data.preprocess import Settings

SRC = [random.Random(i).randint(1, 40) for i in range(1000)]
TGT = [random.Random(-i).randint(1, 40) for i in range(1000)]


def test_batches_stay_within_the_token_budget():
    sampler = TokenBudgetBatchSampler(SRC, TGT, max_tokens=500, shuffle=True)
    for batch in sampler:
        cost = len(batch) * (max(SRC[i] for i in batch) + max(TGT[i] for i in batch))
        assert cost <= 500 or len(batch) == 1


def test_every_example_once_per_epoch_in_a_new_order():
    """Through a real DataLoader, as Lightning iterates it: each pass is a new epoch with new batches."""
    sampler = TokenBudgetBatchSampler(SRC, TGT, max_tokens=500, shuffle=True, seed=3)
    loader = DataLoader(list(range(len(SRC))), batch_sampler=sampler, collate_fn=list)
    epoch0, epoch1 = ([i for b in loader for i in b] for _ in range(2))
    assert sorted(epoch0) == sorted(epoch1) == list(range(len(SRC)))
    assert epoch0 != epoch1
    assert abs(len(sampler) - sum(1 for _ in sampler)) <= 2
    sampler.set_epoch(0)  # an explicit epoch replays that epoch's batches
    assert [i for b in loader for i in b] == epoch0


@pytest.mark.parametrize("world", [2, 3, 8])
@pytest.mark.parametrize("shuffle", [True, False])
def test_ddp_ranks_get_disjoint_equal_shares_covering_every_example(world, shuffle):
    samplers = [TokenBudgetBatchSampler(SRC, TGT, max_tokens=700, shuffle=shuffle, seed=5, num_replicas=world,
                                        rank=r) for r in range(world)]
    for epoch in range(2):
        shares = [s.batches(epoch) for s in samplers]
        assert len({len(share) for share in shares}) == 1  # the same number of steps on every rank
        seen = [i for share in shares for batch in share for i in batch]
        assert sorted(seen) == list(range(len(SRC)))  # each example exactly once, on one rank
    with pytest.raises(ValueError, match=r"rank \(2\) must lie in \[0, num_replicas \(2\)\)"):
        TokenBudgetBatchSampler(SRC, TGT, max_tokens=700, shuffle=True, num_replicas=2, rank=2)


def test_length_sorted_batches_waste_little_on_padding():
    sampler = TokenBudgetBatchSampler(SRC, TGT, max_tokens=2000, shuffle=True)
    real = padded = 0
    for batch in sampler.batches(0):
        real += sum(SRC[i] + TGT[i] for i in batch)
        padded += len(batch) * (max(SRC[i] for i in batch) + max(TGT[i] for i in batch))
    assert sampler.padding_efficiency() == pytest.approx(real / padded) and real / padded > 0.9


def test_multi30k_batches_are_at_least_90_percent_real_tokens(shared_data, tmp_path):
    corpus = Corpus.load(prepare(Multi30k(root=str(shared_data / "multi30k")), tmp_path, Settings()))
    src, tgt = corpus.ids["train"].lengths
    efficiency = TokenBudgetBatchSampler(src, tgt + 1, max_tokens=4096, shuffle=True).padding_efficiency()
    order = np.random.default_rng(0).permutation(len(src))  # what fixed-size random batches would waste
    random_batches = [order[i:i + 128] for i in range(0, len(order), 128)]
    real = sum(int(src[b].sum() + tgt[b].sum() + len(b)) for b in random_batches)
    padded = sum(len(b) * int(src[b].max() + tgt[b].max() + 1) for b in random_batches)
    assert efficiency >= 0.9 > real / padded


@pytest.mark.parametrize("pool_size", [100_000, 32])
def test_sentence_count_batches_hold_at_most_that_many_and_random_pools_mix_lengths(pool_size):
    """fairseq's --batch-size beside the token budget; pools of one batch's size draw each batch at random."""
    sampler = TokenBudgetBatchSampler(SRC, TGT, max_tokens=10**6, max_sentences=32, pool_size=pool_size,
                                      shuffle=True, seed=1)
    batches = sampler.batches(0)
    assert sorted(i for b in batches for i in b) == list(range(len(SRC)))
    assert max(map(len, batches)) == 32 and sum(len(b) < 32 for b in batches) <= len(SRC) // pool_size + 1
    spread = np.mean([max(SRC[i] for i in b) - min(SRC[i] for i in b) for b in batches])  # source lengths 1-40
    assert spread < 5 if pool_size == 100_000 else spread > 25
    assert [len(b) for b in TokenBudgetBatchSampler(SRC, TGT, max_tokens=10**6, max_sentences=1,
                                                   shuffle=True).batches(0)] == [1] * len(SRC)  # batch size 1


def test_without_a_sentence_limit_the_batches_are_those_of_the_token_budget_alone():
    alone = TokenBudgetBatchSampler(SRC, TGT, max_tokens=700, shuffle=True, seed=2)
    roomy = TokenBudgetBatchSampler(SRC, TGT, max_tokens=700, max_sentences=len(SRC), shuffle=True, seed=2)
    assert alone.batches(3) == roomy.batches(3)


def test_bad_budget_is_an_error():
    with pytest.raises(ValueError, match=r"max_tokens \(0\)"):
        TokenBudgetBatchSampler(SRC, TGT, max_tokens=0, shuffle=False)
    with pytest.raises(ValueError, match=r"max_sentences \(0\) must be >= 1"):
        TokenBudgetBatchSampler(SRC, TGT, max_tokens=10, max_sentences=0, shuffle=False)


def test_collate_pads_and_shifts_the_target():
    batch = collate([(7, [5, 6, 7], [8, 9]), (3, np.array([5], np.int64), np.array([8, 9, 10]))], pad_id=0,
                    bos_id=1, eos_id=2)
    assert batch["src"].tolist() == [[5, 6, 7], [5, 0, 0]]
    assert batch["src_mask"].tolist() == [[True, True, True], [True, False, False]]
    assert batch["tgt_in"].tolist() == [[1, 8, 9, 0], [1, 8, 9, 10]]
    assert batch["tgt_out"].tolist() == [[8, 9, 2, 0], [8, 9, 10, 2]]
    assert torch.equal(batch["index"], torch.tensor([7, 3]))


def test_collate_pads_lengths_up_to_a_multiple_and_only_with_padding():
    examples = [(7, [5, 6, 7], [8, 9]), (3, [5], [8, 9, 10, 11, 12, 13, 14])]
    plain = collate(examples, pad_id=0, bos_id=1, eos_id=2)
    padded = collate(examples, pad_id=0, bos_id=1, eos_id=2, pad_to_multiple=4)
    assert padded["src"].shape == (2, 4) and padded["tgt_in"].shape == (2, 8)  # 3 -> 4; 7 + 1 -> 8
    for key in ("src", "src_mask", "tgt_in", "tgt_out"):
        width = plain[key].size(1)
        assert torch.equal(padded[key][:, :width], plain[key])
        assert not padded[key][:, width:].any()  # pad id 0, mask False
    assert collate(examples, pad_id=0, bos_id=1, eos_id=2, pad_to_multiple=8)["tgt_out"].shape == (2, 8)
    with pytest.raises(ValueError, match=r"pad_to_multiple \(0\) must be >= 1"):
        collate(examples, pad_id=0, bos_id=1, eos_id=2, pad_to_multiple=0)


def test_a_resumed_sampler_continues_the_epoch_it_stopped_in_and_follows_the_trainers_epoch():
    sampler = TokenBudgetBatchSampler(SRC, TGT, max_tokens=700, shuffle=True, seed=3)
    epochs = [list(sampler) for _ in range(3)]  # each pass is the next epoch
    assert epochs[1] != epochs[0] and epochs == [sampler.batches(e) for e in range(3)]
    resumed = TokenBudgetBatchSampler(SRC, TGT, max_tokens=700, shuffle=True, seed=3)
    trainer_epoch = 1
    resumed.epoch_of = lambda: trainer_epoch
    resumed.resume(epoch=1, taken=2)
    assert list(resumed) == epochs[1][2:]  # the rest of epoch 1
    assert list(resumed) == epochs[1]  # the trainer is still in epoch 1 (as Lightning when it ends that epoch)
    trainer_epoch = 2
    assert list(resumed) == epochs[2]
