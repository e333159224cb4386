"""Checkpoint averaging: one checkpoint whose weights are the element-wise mean of several, as fairseq's
`scripts/average_checkpoints.py` makes them (Vaswani et al. 2017 averaged the last 5 checkpoints of their base
models; Wu et al. 2021, whose Multi30k recipe the zoo follows, the last 10 epochs).

    python -m zoo.average outputs/DATE/TIME --last 10      # -> outputs/DATE/TIME/checkpoints/average.ckpt
    python -m zoo.average a.ckpt b.ckpt c.ckpt --output average.ckpt

A run directory's epoch checkpoints are the ones its run kept (`checkpoint.keep_epochs`), in order, wherever a resumed
run left them. The average carries the weights and the last file's "zoo" entry (so `python -m zoo.translate`
reads it like any checkpoint) plus the list of files averaged; it has no optimizer state, so training cannot resume
from it. Nothing is overwritten.
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import torch

from zoo import checkpoint
from zoo.errors import CheckpointError, UserError, exit_status
from zoo.translate import Parser


def epoch_checkpoints(run: Path) -> list[Path]:
    """A run directory's end-of-epoch checkpoints, oldest first: the list its last checkpoint keeps (which spans
    resumes into other directories), or else the epoch*.ckpt files of its checkpoints/ folder by epoch number."""
    last = run / "checkpoints" / "last.ckpt"
    if last.is_file():
        state = checkpoint.read(last).get("callbacks", {}).get("EpochCheckpoints")
        if state is not None:
            return [p for p in map(Path, state["kept"]) if p.is_file()]
    found = (run / "checkpoints").glob("epoch*.ckpt")
    return sorted(found, key=lambda p: int(re.sub(r"\D", "", p.stem) or 0))


def average(paths: list[Path]) -> dict:
    """The checkpoint whose weights are the mean of `paths`' (summed in fp64, stored in each weight's own dtype;
    integer buffers must agree and are kept), with the "zoo" entry of the last file listed and `zoo.averaged`
    listing them all. Refuses files of different models or vocabularies, naming them."""
    if not paths:
        raise UserError("no checkpoints to average")
    first = last = checkpoint.read(paths[0])
    total = {k: v.double() if v.is_floating_point() else v.clone() for k, v in first["state_dict"].items()}
    for path in paths[1:]:
        last = checkpoint.read(path)
        for key in ("net", "src_tokenizer", "tgt_tokenizer"):
            if last["zoo"][key] != first["zoo"][key]:
                raise CheckpointError(f"checkpoint {path} is not the same model as {paths[0]} (its {key} differs)")
        if last["state_dict"].keys() != total.keys():
            raise CheckpointError(f"checkpoint {path} holds other weights than {paths[0]}")
        for k, v in last["state_dict"].items():
            if v.is_floating_point():
                total[k] += v.double()
            elif not torch.equal(v, total[k]):
                raise CheckpointError(f"checkpoint {path}: {k} differs from {paths[0]}'s and cannot be averaged")
    state = {k: (v / len(paths)).to(first["state_dict"][k].dtype) if v.is_floating_point() else v
             for k, v in total.items()}
    return {"state_dict": state, "zoo": {**last["zoo"], "averaged": [str(p) for p in paths]},
            "epoch": last.get("epoch"), "global_step": last.get("global_step")}


def save(averaged: dict, output: Path) -> None:
    """Writes `averaged` to `output`, a new file (an existing one is never overwritten)."""
    output.parent.mkdir(parents=True, exist_ok=True)
    try:
        with open(output, "xb") as f:
            torch.save(averaged, f)
    except FileExistsError:
        raise UserError(f"{output} exists; it is not overwritten (name another --output)") from None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = Parser(prog="python -m zoo.average", description=__doc__,
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("inputs", nargs="+", type=Path, help="a run directory, or .ckpt files to average")
    parser.add_argument("--last", type=int, help="with a run directory: average its last N epoch checkpoints")
    parser.add_argument("--output", type=Path, help="the new checkpoint (default: the run's "
                                                    "checkpoints/average.ckpt)")
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> Path:
    """Averages what `args` names and returns the new checkpoint's path."""
    if len(args.inputs) == 1 and args.inputs[0].is_dir():
        run = args.inputs[0]
        if args.last is None or args.last < 1:
            raise UserError(f"{run} is a run directory: say how many of its epoch checkpoints with --last N (N >= 1)")
        paths = epoch_checkpoints(run)[-args.last:]
        if len(paths) < args.last:
            raise UserError(f"{run} has {len(paths)} epoch checkpoints, fewer than --last {args.last}")
        output = args.output or run / "checkpoints" / "average.ckpt"
    else:
        if args.last is not None:
            raise UserError("--last N needs a run directory, not checkpoint files")
        if args.output is None:
            raise UserError("averaging checkpoint files needs --output FILE")
        paths, output = args.inputs, args.output
    save(average(paths), output)
    print(f"{output}: the average of {len(paths)} checkpoints ({paths[0].name} ... {paths[-1].name})", file=sys.stderr)
    return output


def main(argv: list[str] | None = None) -> int:
    """The exit status: 0, or 1 after a one-line error on stderr for anything the user can fix."""
    return exit_status(lambda: run(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
