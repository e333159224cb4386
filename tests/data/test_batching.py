import random

import pytest
import torch
from torch.utils.data import DataLoader

from zoo.data.batching import TokenBudgetBatchSampler, collate
from zoo.data.vocab import Vocab

LENGTHS = [(random.Random(i).randint(1, 40), random.Random(-i).randint(1, 40)) for i in range(1000)]


def test_batches_stay_within_the_token_budget():
    sampler = TokenBudgetBatchSampler(LENGTHS, max_tokens=500, shuffle=True)
    for batch in sampler:
        cost = len(batch) * (max(LENGTHS[i][0] for i in batch) + max(LENGTHS[i][1] for i in batch))
        assert cost <= 500 or len(batch) == 1


def test_every_example_once_per_epoch_in_a_new_order():
    """Through a real DataLoader, as Lightning iterates it: each pass is a new epoch with new batches."""
    sampler = TokenBudgetBatchSampler(LENGTHS, max_tokens=500, shuffle=True, seed=3)
    loader = DataLoader(list(range(len(LENGTHS))), batch_sampler=sampler, collate_fn=list)
    epoch0, epoch1 = ([i for b in loader for i in b] for _ in range(2))
    assert sorted(epoch0) == sorted(epoch1) == list(range(len(LENGTHS)))
    assert epoch0 != epoch1
    assert abs(len(sampler) - sum(1 for _ in sampler)) <= 2
    sampler.set_epoch(0)  # an explicit epoch replays that epoch's batches
    assert [i for b in loader for i in b] == epoch0


def test_sorted_pools_leave_little_padding():
    sampler = TokenBudgetBatchSampler(LENGTHS, max_tokens=2000, shuffle=True)
    real = padded = 0
    for batch in sampler:
        real += sum(sum(LENGTHS[i]) for i in batch)
        padded += len(batch) * (max(LENGTHS[i][0] for i in batch) + max(LENGTHS[i][1] for i in batch))
    assert real / padded > 0.9


def test_bad_budget_is_an_error():
    with pytest.raises(ValueError, match=r"max_tokens \(0\)"):
        TokenBudgetBatchSampler(LENGTHS, max_tokens=0, shuffle=False)


def test_collate_pads_and_shifts_the_target():
    batch = collate([(7, [5, 6, 7], [8, 9]), (3, [5], [8, 9, 10])], pad_id=0, bos_id=1, eos_id=2)
    assert batch["src"].tolist() == [[5, 6, 7], [5, 0, 0]]
    assert batch["src_mask"].tolist() == [[True, True, True], [True, False, False]]
    assert batch["tgt_in"].tolist() == [[1, 8, 9, 0], [1, 8, 9, 10]]
    assert batch["tgt_out"].tolist() == [[8, 9, 2, 0], [8, 9, 10, 2]]
    assert torch.equal(batch["index"], torch.tensor([7, 3]))


def test_vocab_round_trip_and_unknown_words():
    vocab = Vocab.build(["b a a", "c a"])
    assert (vocab.pad_id, vocab.bos_id, vocab.eos_id, vocab.unk_id) == (0, 1, 2, 3)
    assert vocab.itos[4] == "a"  # most frequent first
    assert vocab.decode(vocab.encode("a c b")) == "a c b"
    assert vocab.encode("a zzz") == [4, vocab.unk_id]
    assert vocab.decode([vocab.bos_id, 4, vocab.eos_id, vocab.pad_id]) == "a"
