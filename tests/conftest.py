import os
from pathlib import Path

import pytest
import torch

from zoo.models import architectures

PAD, BOS, EOS = 0, 1, 2
SRC_V, TGT_V = 23, 29

SMALL = {a.name: (a.cls, a.small) for a in architectures()}  # every registered architecture, small


def make(arch: str, **kwargs):
    """A small instance of `arch`; every interface test runs on each architecture."""
    cls, small = SMALL[arch]
    return cls(**{**small, **kwargs})


@pytest.fixture(params=list(SMALL))
def arch(request) -> str:
    return request.param


def build(arch: str, **overrides):
    torch.manual_seed(0)
    kwargs = {"src_vocab_size": SRC_V, "tgt_vocab_size": TGT_V, "pad_id": PAD, "dropout": 0.0, **overrides}
    return make(arch, **kwargs)


@pytest.fixture
def model(arch):
    return build(arch).eval()


def random_batch(B: int = 3, S: int = 7, T: int = 6, seed: int = 1):
    """Source rows of different lengths (row 1 is padded), targets of real tokens starting with BOS."""
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(4, SRC_V, (B, S), generator=g)  # (B, S)
    src_mask = torch.ones(B, S, dtype=torch.bool)
    src_mask[1, S - 3:] = False
    src[~src_mask] = PAD
    tgt_in = torch.randint(4, TGT_V, (B, T), generator=g)  # (B, T)
    tgt_in[:, 0] = BOS
    return src, src_mask, tgt_in


SHARED_DATA = Path(os.environ.get("ZOO_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The team's copies of Multi30k and SCAN (../shared/data beside the checkout, or $ZOO_SHARED_DATA)."""
    if not (SHARED_DATA / "multi30k").is_dir():
        pytest.skip(f"no shared datasets at {SHARED_DATA}; set ZOO_SHARED_DATA")
    return SHARED_DATA


@pytest.fixture
def one_thread():
    """Tiny models: on a busy 2-core machine one thread decodes them many times faster than two."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_sweep(tmp_path_factory) -> Path:
    """A sweep directory as `python run.py -m model=gru,attention,transformer experiment=smoke` leaves it, with a
    second transformer seed: real runs, logged to wandb offline in the sweep's group, then the report, its figures,
    its explorer page and its wandb comparison run."""
    from tests.runs import train_here
    from zoo.report import write_report

    sweep_dir = tmp_path_factory.mktemp("sweep")
    for i, (model, seed) in enumerate((("gru", 0), ("attention", 0), ("transformer", 0), ("transformer", 1))):
        train_here(sweep_dir / str(i), f"model={model}", f"seed={seed}", "experiment=smoke",
                   f"data.cache_dir={sweep_dir}/cache", "logger=wandb", f"logger.group={sweep_dir}")
    write_report(sweep_dir)
    return sweep_dir
