"""`results.json`, the one record of a run that the report, the plots, the tracking and the tests' fake runs all
read: its schema as typed dictionaries, written by zoo/train.py and checked when read back (`load`); zoo/summary.py
prints it when a run ends. Keys marked NotRequired are those that runs of earlier versions did not write, or that no
reader needs; the report still reads such runs (the committed results go back to the zoo's first sweeps).
(No `from __future__ import annotations` here: with string annotations, TypedDict on Python 3.11 would take every
NotRequired key for a required one.)"""
import base64
import gzip
import json
import types
import typing
import zlib
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from typing_extensions import NotRequired, TypedDict, get_type_hints, is_typeddict  # (NotRequired: Python 3.10)

from zoo.errors import UserError


class ResultsError(UserError):
    """A results.json that is not one of this zoo's: unreadable, or without a key the readers need."""


class LengthBucket(TypedDict):
    """One source-length bucket of a decoding (zoo.metrics.bleu_by_length)."""
    lo: int
    hi: int
    n: int
    bleu: float
    len_ratio: NotRequired[float]
    hit_limit: NotRequired[float]  # % of its hypotheses that reached the length limit without EOS


class Sample(TypedDict):
    source: str
    reference: str
    hypothesis: str  # by beam search (the configured decoding), or greedy search for the fit sample
    greedy: NotRequired[str]
    oracle: NotRequired[str]  # greedy at the reference's length (oracle_length=true)


class Figures(TypedDict):
    """One decoding's corpus scores (zoo.metrics.corpus_scores): BLEU is sacreBLEU on detokenized cased text."""
    bleu: float
    chrf: float
    exact_match: float
    bleu_lc: NotRequired[float]
    bleu_tok: NotRequired[float]  # Moses-tokenized lowercased, as the Multi30k papers report
    len_ratio: NotRequired[float]
    sys_len: NotRequired[int]
    ref_len: NotRequired[int]
    hit_limit: NotRequired[float]


class Greedy(Figures):
    by_src_len: list[LengthBucket]


class ExposurePoint(TypedDict):
    t: int
    n: int
    teacher_forced: float
    free_running: float


class Exposure(TypedDict):
    """Next-token accuracy (%) on the reference's prefix and on the model's own (exposure_bias=true)."""
    teacher_forced: float
    free_running: float
    positions: list[ExposurePoint]


class Split(Figures):
    """A test split: beam search's figures at the top level, greedy search's under "greedy", every hypothesis."""
    signature: str
    n: int
    by_src_len: list[LengthBucket]
    samples: NotRequired[list[Sample]]  # every hypothesis; results committed without them keep only their scores
    greedy: NotRequired[Greedy]
    greedy_bleu: NotRequired[float]  # (runs from before "greedy" kept all the figures)
    oracle: NotRequired[Figures]
    exposure: NotRequired[Exposure]


class Fit(Figures):
    """Greedy translations of a fixed sample of training pairs: how well the model fits what it trained on."""
    n: int
    samples: list[Sample]


class ValPoint(TypedDict):
    step: int
    bleu: float
    train_s: float  # training time so far, validation excluded
    wall_s: NotRequired[float]
    fit_bleu: NotRequired[float | None]
    loss: NotRequired[float | None]


class Train(TypedDict):
    wall_s: float
    steps: int
    tokens_per_s: float
    tgt_tokens_per_s: float
    train_s: float
    flops_per_token: float
    mfu: float  # of the device's measured matmul peak (device.matmul_peak_gflops)
    val_curve: list[ValPoint]
    tokens: NotRequired[int]
    tgt_tokens: NotRequired[int]
    val_bleu: NotRequired[float | None]
    best_val_bleu: NotRequired[float | None]
    best_step: NotRequired[int | None]
    val_plateaued: NotRequired[bool]
    evaluated: NotRequired[str]  # last, best or average: the weights the test splits were scored with
    averaged: NotRequired[list[str] | None]
    stopped_early: NotRequired[bool]
    out_of_time: NotRequired[bool]
    resumed_from: NotRequired[str | None]


class Device(TypedDict):
    name: str
    precision: str
    matmul_peak_gflops: float
    type: NotRequired[str]  # cpu, cuda
    processes: NotRequired[int]


class DecodeSpeed(TypedDict):
    greedy_tokens_per_s: float
    beam_tokens_per_s: float


class Memory(TypedDict):
    peak_mb: float
    kind: NotRequired[str]  # what was measured: CUDA's max allocated, or the process's peak RSS


class Alignment(TypedDict):
    """One sentence's alignment weights: rows the output tokens (then EOS), columns the source tokens."""
    source: list[str]
    target: list[str]
    weights: list[list[float]]


class AttentionMaps(TypedDict):
    """Every decoder layer's and head's weights over the source for the model's own greedy translation of one test
    sentence, for the explorer page (zoo/explorer). `weights` holds the (layers, heads, T, S) array as bytes, each
    weight w as round(255 w), zlib-compressed and base64-encoded (`encode_weights`): the attention of a few sentences
    in a few hundred kilobytes."""
    split: str
    index: int  # the sentence's place in the split (and in its "samples")
    source: list[str]  # the source pieces, the columns
    target: list[str]  # the output pieces, then EOS (unless the output ran to its length limit): the rows
    layers: int
    heads: int
    weights: str


def encode_weights(weights: np.ndarray) -> str:
    """A (layers, heads, T, S) array of weights in [0, 1] as `AttentionMaps.weights`."""
    data = np.rint(np.clip(weights, 0, 1) * 255).astype(np.uint8)
    return base64.b64encode(zlib.compress(data.tobytes(), 9)).decode("ascii")


def decode_weights(maps: AttentionMaps) -> np.ndarray:
    """`AttentionMaps.weights` back as a (layers, heads, T, S) array of weights in [0, 1] (to 1/255)."""
    data = np.frombuffer(zlib.decompress(base64.b64decode(maps["weights"])), dtype=np.uint8)
    return data.reshape(maps["layers"], maps["heads"], len(maps["target"]), len(maps["source"])) / 255


class AlphaScore(TypedDict):
    alpha: float
    bleu: float
    bleu_tok: float


class AlphaTuning(TypedDict):
    split: str
    metric: str
    scores: list[AlphaScore]
    alpha: float


class Results(TypedDict):
    """One run. Each name in test_splits is also a key, holding a `Split` (a TypedDict cannot say so)."""
    model: str  # the model config's name (multi30k/gru is gru)
    data: str
    params: int
    seed: int
    device: Device
    corpus: dict  # zoo.data.datamodule's summary of the data, and the longest training source
    test_splits: list[str]
    train: Train
    decode: DecodeSpeed
    memory: Memory
    alignment: Alignment | None
    attention_sample: NotRequired[list[AttentionMaps] | None]  # None for a model without attention
    architecture: NotRequired[str]  # the registered architecture the model config builds
    overrides: NotRequired[list[str]]  # the command line's settings, which the report groups runs by
    choices: NotRequired[dict]  # each config group's choice (model, data, decode, ablation, ...)
    fit: NotRequired[Fit]
    decoding: NotRequired[dict]
    alpha_tuning: NotRequired[AlphaTuning | None]
    speed: NotRequired[dict]
    checkpoint: NotRequired[str | None]
    best_checkpoint: NotRequired[str | None]
    average_checkpoint: NotRequired[str | None]
    wandb: NotRequired[dict | None]


def problems(value: object, schema: type, where: str = "") -> list[str]:
    """What keeps `value` from matching the typed dictionary `schema` (and those nested in it): its missing
    required keys, and values where a dictionary or a list is due, as paths such as "test.by_src_len[0].lo"."""
    if not isinstance(value, Mapping):
        return [f"{where or 'the file'} is not a JSON object"]
    found = [f"{where}{'.' if where else ''}{key} is missing" for key in sorted(schema.__required_keys__ - set(value))]
    for key, hint in get_type_hints(schema).items():
        if key in value:
            found += matches(value[key], hint, f"{where}{'.' if where else ''}{key}")
    return found


def matches(value: object, hint: object, where: str) -> list[str]:
    """`problems` for a value annotated `hint`: a typed dictionary, a list of them, or one of several such, perhaps
    None (none if the value is None and may be, or if any other option fits; else the first option's)."""
    if is_typeddict(hint):
        return problems(value, hint, where)
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        options = [h for h in typing.get_args(hint) if h is not type(None)]
        if value is None and len(options) < len(typing.get_args(hint)):
            return []
        found = [matches(value, h, where) for h in options]
        return [] if [] in found else found[0]
    if typing.get_origin(hint) is list:
        if not isinstance(value, list):
            return [f"{where} is not a list"]
        (item,) = typing.get_args(hint)
        return [p for i, v in enumerate(value) for p in matches(v, item, f"{where}[{i}]")]
    return []


def check(results: object, where: str) -> Results:
    """`results` if it is a run's results (its test splits included), else a ResultsError naming `where` and the
    first key at fault."""
    found = problems(results, Results)
    splits = [] if found else results["test_splits"]
    if not found and not (splits and all(isinstance(split, str) for split in splits)):
        found = [f"test_splits ({splits!r}) is not a list of split names"]
    if not found:
        found = [p for split in splits for p in
                 ([f"{split} is missing"] if split not in results else problems(results[split], Split, split))]
    if found:
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        raise ResultsError(f"{where}: not a results.json of the zoo's: {found[0]}{more}")
    return results


def load(path: Path) -> Results:
    """A run's results.json (or the results.json.gz that experiments/record_run.sh commits), checked."""
    try:
        text = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_text()
        return check(json.loads(text), str(path))
    except (OSError, ValueError, EOFError) as e:  # (json's and gzip's errors are ValueErrors)
        raise ResultsError(f"{path}: cannot be read ({e})") from None


def write(results: Results, path: Path) -> None:
    """Writes `results` to `path`, which must not exist: a run never overwrites an earlier one's record."""
    with open(path, "x") as f:
        json.dump(results, f, indent=1)
