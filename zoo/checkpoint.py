"""What a zoo checkpoint carries besides Lightning's training state, and how it is read back: by `run.py
ckpt_path=...` to resume, and by `python -m zoo.translate` to translate.

Lightning's checkpoint holds the weights, optimizer, schedule, loop counters and callback states. The zoo adds, under
the key "zoo", everything needed to rebuild the model and its tokenizers without the config tree or the data:

    {"version": 1, "model": "transformer", "data": "toy",
     "net": {"class": "zoo.models.transformer.Transformer", "kwargs": {"d_model": 128, ..., "src_vocab_size": 77}},
     "src_tokenizer": "<tokenizer JSON>", "tgt_tokenizer": "<tokenizer JSON>",
     "decode": {"beam_size": 4, "alpha": 0.6, "max_len_a": 1.2, "max_len_b": 10}, "precision": "bf16-mixed"}

Everything is plain data (str, numbers, dicts, tensors), so checkpoints load with `torch.load(weights_only=True)`:
loading one never runs code from the file, and the model class must be one of the zoo's own.
"""
from __future__ import annotations

from pathlib import Path

import torch

from zoo.data.tokenizer import Tokenizer
from zoo.errors import CheckpointError
from zoo.models import EncoderDecoder, architectures

VERSION = 1
ARCHITECTURES = {f"{a.cls.__module__}.{a.cls.__qualname__}": a.cls for a in architectures()}  # only these are rebuilt
DATA_SIZED = ("src_vocab_size", "tgt_vocab_size", "pad_id")  # net arguments that come from the data, not the config
# Lightning's precision names (a checkpoint's "precision") -> the dtype that matrix products run in (-mixed:
# autocast over fp32 weights; -true: the weights themselves in that dtype)
PRECISION_DTYPES = {"32-true": torch.float32, "32": torch.float32, "bf16-mixed": torch.bfloat16,
                    "bf16": torch.bfloat16, "16-mixed": torch.float16, "16": torch.float16,
                    "bf16-true": torch.bfloat16, "16-true": torch.float16}


def describe(*, model: str, data: str, net_class: str, net_kwargs: dict, src_tokenizer: Tokenizer,
             tgt_tokenizer: Tokenizer, decode: dict, precision: str) -> dict:
    """The "zoo" entry of a checkpoint (see the module docstring)."""
    return {"version": VERSION, "model": model, "data": data,
            "net": {"class": net_class, "kwargs": dict(net_kwargs)},
            "src_tokenizer": src_tokenizer.tok.to_str(), "tgt_tokenizer": tgt_tokenizer.tok.to_str(),
            "decode": dict(decode), "precision": precision}


def resolve(ckpt_path: str, runs: Path = Path("outputs")) -> Path:
    """The checkpoint file that `ckpt_path` names: a .ckpt file; a run directory (its checkpoints/last.ckpt); or
    "latest", the most recently written last.ckpt of any run under `runs`."""
    if ckpt_path == "latest":
        found = sorted(runs.glob("**/checkpoints/last.ckpt"), key=lambda p: p.stat().st_mtime)
        if not found:
            raise CheckpointError(f"latest: no run under {runs}/ has a checkpoints/last.ckpt")
        return found[-1]
    path = Path(ckpt_path)
    if path.is_dir():
        path = path / "checkpoints" / "last.ckpt"
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    return path


def read(path: Path) -> dict:
    """A zoo checkpoint, loaded on the CPU with `weights_only=True`; a CheckpointError names the file when it is
    truncated, is not a checkpoint, or was not written by the zoo."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {path} does not exist") from None
    except Exception as e:  # a truncated zip, a pickle of something else, a text file
        raise CheckpointError(f"checkpoint {path} cannot be read (truncated or not a checkpoint): "
                              f"{str(e).splitlines()[0]}") from None
    info = checkpoint.get("zoo") if isinstance(checkpoint, dict) else None
    if not isinstance(info, dict):
        raise CheckpointError(f"checkpoint {path} was not written by the zoo (it has no 'zoo' entry)")
    if info.get("version") != VERSION:
        raise CheckpointError(f"checkpoint {path} has format version {info.get('version')}; this zoo reads {VERSION}")
    return checkpoint


def check_matches(info: dict, path: Path, *, model: str, net_class: str, net_kwargs: dict) -> None:
    """Refuse to resume from a checkpoint of another architecture or other model sizes, naming what differs
    (the arguments that come from the data are compared once the data is loaded, by `check_data`)."""
    if info["net"]["class"] != net_class:
        raise CheckpointError(f"checkpoint {path} is a {info['model']} ({info['net']['class']}); this run is "
                              f"model={model} ({net_class})")
    saved = {k: v for k, v in info["net"]["kwargs"].items() if k not in DATA_SIZED}
    differ = [f"model.net.{k}={saved.get(k)!r} in the checkpoint, {net_kwargs.get(k)!r} here"
              for k in sorted(set(saved) | set(net_kwargs)) if saved.get(k) != net_kwargs.get(k)]
    if differ:
        raise CheckpointError(f"checkpoint {path} has other model sizes: {'; '.join(differ)}")


def check_data(saved: dict, path: Path, this_run: dict) -> None:
    """Refuse to resume on other data: the tokenizers (and so every token id) in this run's "zoo" entry
    (`describe`) must be the checkpoint's."""
    if any(saved[side] != this_run[side] for side in ("src_tokenizer", "tgt_tokenizer")):
        raise CheckpointError(f"checkpoint {path} was trained on data={saved['data']} with other vocabularies than "
                              f"this run's data={this_run['data']}")


def load_net(checkpoint: dict) -> EncoderDecoder:
    """The trained network of a checkpoint read by `read`, in eval mode on the CPU."""
    spec = checkpoint["zoo"]["net"]
    cls = ARCHITECTURES.get(spec["class"])
    if cls is None:
        raise CheckpointError(f"unknown model class {spec['class']} (the zoo's are {', '.join(ARCHITECTURES)})")
    net = cls(**spec["kwargs"])
    net.load_state_dict({k.removeprefix("net."): v for k, v in checkpoint["state_dict"].items()
                         if k.startswith("net.")})
    return net.eval()


def load_tokenizers(checkpoint: dict) -> tuple[Tokenizer, Tokenizer]:
    info = checkpoint["zoo"]
    return Tokenizer.from_str(info["src_tokenizer"]), Tokenizer.from_str(info["tgt_tokenizer"])
