"""Translate text with a trained model: source sentences in, one per line; translations out, one per line, in the
same order.

    python -m zoo.translate outputs/DATE/TIME < input.txt > output.txt
    python -m zoo.translate outputs/DATE/TIME/checkpoints/step700.ckpt --input in.txt --output out.txt --greedy
    python -m zoo.translate latest --beam 8 --alpha 1.0 --device cuda
    python -m zoo.translate outputs/DATE/TIME --engine ctranslate2 < input.txt     (pip install ctranslate2)

The checkpoint carries everything needed (zoo/checkpoint.py): the model's class, arguments and weights, both
tokenizers, and the run's decoding settings and precision, which are the defaults here, so that the same input gives
the run's own translations. Sentences are batched by a token budget in length order, for little padding, and written
back in input order. An empty line gives an empty line; it never reaches the model. Nothing here touches the network.

`--engine ctranslate2` exports the model to CTranslate2 (zoo/export.py: Transformers with sinusoidal or learned
positions) and translates with that engine instead: the same greedy translations at the same precision (fp32 on a
CPU: `--compute-type float32`), faster; int8 is faster still. Its beam search normalises scores by length its own
way, so beam translations can differ from ours.
"""
from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
from pathlib import Path

import torch

from zoo import checkpoint, export
from zoo.data.batching import TokenBudgetBatchSampler, collate
from zoo.data.tokenizer import Tokenizer
from zoo.decoding import beam_search, greedy_search
from zoo.errors import CheckpointError, UserError, exit_status
from zoo.models import EncoderDecoder
from zoo.models.positions import TablePositions

# The precisions translate reproduces -> the autocast dtype (None: fp32). The run decodes its test splits under
# the trainer's precision (trainer.precision_plugin.forward_context()), so the checkpoint's is the default here;
# weights trained in half precision (bf16-true, 16-true) are not.
PRECISIONS = {name: None if dtype == torch.float32 else dtype for name, dtype in checkpoint.PRECISION_DTYPES.items()
              if name not in ("bf16-true", "16-true")}
EVAL_MAX_TOKENS = 16384  # the data module's eval_max_tokens


class Parser(argparse.ArgumentParser):
    def error(self, message: str):
        """A bad option is a one-line error like any other (argparse would print the usage and exit with 2)."""
        raise UserError(f"{message} (see --help)")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = Parser(prog="python -m zoo.translate", description=__doc__,
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("ckpt", help="a .ckpt file, a run directory (its checkpoints/last.ckpt), or latest (the newest "
                                     "last.ckpt under outputs/)")
    parser.add_argument("--input", type=Path, help="read source sentences from this file (default: stdin)")
    parser.add_argument("--output", type=Path, help="write translations to this new file (default: stdout); an "
                                                    "existing file is never overwritten")
    parser.add_argument("--beam", type=int, help="beam size; 1 is greedy search (default: the checkpoint's)")
    parser.add_argument("--greedy", action="store_true", help="greedy search, the same as --beam 1")
    parser.add_argument("--alpha", type=float, help="GNMT length penalty ((5 + |Y|) / 6)^alpha of beam search; 0 "
                                                    "ranks by log-probability (default: the checkpoint's)")
    parser.add_argument("--max-len-a", type=float, help="outputs stop at max_len_a * source tokens + max_len_b "
                                                        "(default: the checkpoint's)")
    parser.add_argument("--max-len-b", type=int, help="(default: the checkpoint's)")
    parser.add_argument("--max-tokens", type=int, default=EVAL_MAX_TOKENS,
                        help="token budget of a batch: rows x (longest source + longest output limit) "
                             "(default: %(default)s)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: %(default)s)")
    parser.add_argument("--precision", choices=list(PRECISIONS),
                        help="bf16-mixed or 16-mixed: autocast; 32-true: fp32 (default: the checkpoint's training "
                             "precision)")
    parser.add_argument("--engine", choices=["zoo", "ctranslate2"], default="zoo",
                        help="zoo: our decoder; ctranslate2: export the Transformer to CTranslate2 and decode there "
                             "(default: %(default)s)")
    parser.add_argument("--compute-type",
                        help="with --engine ctranslate2: its compute type, e.g. float32, int8, int8_float32, "
                             "bfloat16 on a GPU (default: float32)")
    return parser.parse_args(argv)


def check_options(args: argparse.Namespace) -> torch.device:
    """Refuse option values that cannot work before anything is loaded; the device to decode on."""
    if args.greedy and args.beam not in (None, 1):
        raise UserError(f"--greedy and --beam {args.beam} contradict each other")
    bad = [f"{name} ({value}) must be {rule}" for name, value, ok, rule in [
        ("--beam", args.beam, args.beam is None or args.beam >= 1, ">= 1"),
        ("--alpha", args.alpha, args.alpha is None or args.alpha >= 0, ">= 0"),
        ("--max-len-a", args.max_len_a, args.max_len_a is None or args.max_len_a >= 0, ">= 0"),
        ("--max-len-b", args.max_len_b, args.max_len_b is None or args.max_len_b >= 0, ">= 0"),
        ("--max-tokens", args.max_tokens, args.max_tokens >= 1, ">= 1")] if not ok]
    if bad:
        raise UserError("; ".join(bad))
    if args.input is not None and not args.input.is_file():
        raise UserError(f"--input {args.input} does not exist")
    if args.output is not None and args.output.exists():
        raise UserError(f"--output {args.output} already exists; it is never overwritten")
    if args.output is not None and not args.output.parent.is_dir():
        raise UserError(f"--output {args.output}: the folder {args.output.parent} does not exist")
    try:
        device = torch.device(args.device)
    except RuntimeError:
        raise UserError(f"--device {args.device} is not a device (cpu, cuda, cuda:N)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {args.device}: no CUDA device is available")
    check_engine_options(args, device)
    return device


def check_engine_options(args: argparse.Namespace, device: torch.device) -> None:
    """--compute-type goes with --engine ctranslate2 only, --precision with our own decoder only; CTranslate2 must
    be installed and able to compute in that type on that device."""
    if args.engine == "zoo":
        if args.compute_type is not None:
            raise UserError(f"--compute-type {args.compute_type} is for --engine ctranslate2; ours takes --precision")
        return
    if args.precision is not None:
        raise UserError(f"--precision {args.precision} is for our own decoder; --engine ctranslate2 takes "
                        f"--compute-type")
    supported = export.engine().get_supported_compute_types(device.type)
    if args.compute_type not in (None, *supported):
        raise UserError(f"--compute-type {args.compute_type} is not one CTranslate2 supports on {device.type} "
                        f"({', '.join(sorted(supported))})")


def read_lines(path: Path | None) -> list[str]:
    """The input's lines (split at "\\n" only, so that line numbers are those of an editor)."""
    name = "stdin" if path is None else str(path)
    data = sys.stdin.buffer.read() if path is None else path.read_bytes()
    if not data:
        raise UserError(f"no input: {name} is empty")
    try:
        text = data.decode("utf-8-sig")  # (-sig: a byte-order mark is not part of the first word)
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise UserError(f"{name}: line {line} is not UTF-8") from None
    lines = text.split("\n")
    return lines[:-1] if text.endswith("\n") else lines


def load(path: Path) -> tuple[dict, EncoderDecoder, Tokenizer, Tokenizer]:
    """The checkpoint's "zoo" entry, its network (eval mode, CPU) and its source and target tokenizers; a
    CheckpointError names the file when they cannot be rebuilt from it."""
    saved = checkpoint.read(path)
    try:
        return saved["zoo"], checkpoint.load_net(saved), *checkpoint.load_tokenizers(saved)
    except (CheckpointError, KeyError, TypeError, ValueError, RuntimeError) as e:  # a damaged or foreign entry
        raise CheckpointError(f"checkpoint {path} cannot be used: {str(e).splitlines()[0]}") from None


def settings(args: argparse.Namespace, info: dict, path: Path) -> dict:
    """The decoding settings: the options given, else the checkpoint's."""
    saved = info["decode"]
    precision = args.precision or info["precision"]
    if args.engine == "ctranslate2":
        precision = "32-true"  # (not used: the engine computes in --compute-type, whatever the run trained in)
    if precision not in PRECISIONS:
        raise UserError(f"checkpoint {path} was trained with precision {precision!r}, which translate does not "
                        f"reproduce; choose --precision ({', '.join(PRECISIONS)})")
    return {"beam_size": 1 if args.greedy else args.beam or saved["beam_size"],
            "alpha": saved["alpha"] if args.alpha is None else args.alpha,
            "max_len_a": saved["max_len_a"] if args.max_len_a is None else args.max_len_a,
            "max_len_b": saved["max_len_b"] if args.max_len_b is None else args.max_len_b,
            "autocast": PRECISIONS[precision]}


def output_limits(src_lengths: list[int], max_len_a: float, max_len_b: int) -> list[int]:
    """Each sentence's output limit in tokens, in the float32 arithmetic of `zoo.decoding.length_limits`."""
    return (torch.tensor(src_lengths, dtype=torch.long) * max_len_a + max_len_b).long().tolist()  # (N,)


def check_lengths(net: EncoderDecoder, sources: list[list[int]], max_len_a: float, max_len_b: int) -> None:
    """Refuse, naming the line, a sentence longer than the model's position tables (sinusoidal or learned), or one
    whose output limit is: the encoder reads the source's positions and the decoder those of its output."""
    tables = [m.table.size(0) for m in net.modules() if isinstance(m, TablePositions)]
    if not tables:  # the RNNs, rotary and ALiBi take any length
        return
    P = min(tables)
    lengths = [len(s) for s in sources]
    for n, (S, limit) in enumerate(zip(lengths, output_limits(lengths, max_len_a, max_len_b)), start=1):
        if S > P:
            raise UserError(f"line {n} has {S} source tokens, more than the model's max_positions ({P})")
        if limit > P:
            raise UserError(f"line {n} has {S} source tokens, which allow an output of {limit} tokens (--max-len-a "
                            f"{max_len_a} x {S} + --max-len-b {max_len_b}), more than the model's max_positions "
                            f"({P}); lower --max-len-a or --max-len-b")


def translate(net: EncoderDecoder, sources: list[list[int]], *, pad_id: int, bos_id: int, eos_id: int,
              beam_size: int, alpha: float, max_len_a: float, max_len_b: int, autocast: torch.dtype | None,
              max_tokens: int = EVAL_MAX_TOKENS) -> list[list[int]]:
    """The output ids of every source, in input order. Batches cost rows x (longest source + longest output
    limit), the measure of the data module's evaluation batches with the limit standing in for the unknown
    output length; empty sources get empty outputs without reaching the model."""
    device = next(net.parameters()).device
    out: list[list[int]] = [[] for _ in sources]
    todo = [i for i, s in enumerate(sources) if s]
    src_len = [len(sources[i]) for i in todo]
    sampler = TokenBudgetBatchSampler(src_len, output_limits(src_len, max_len_a, max_len_b), max_tokens=max_tokens,
                                      shuffle=False)
    search = {"bos_id": bos_id, "eos_id": eos_id, "max_len_a": max_len_a, "max_len_b": max_len_b}
    precision = (torch.autocast(device.type, dtype=autocast) if autocast is not None
                 else contextlib.nullcontext())
    with precision:
        for batch in sampler.batches(epoch=0):  # in length order
            rows = [todo[j] for j in batch]
            padded = collate([(i, sources[i], []) for i in rows], pad_id=pad_id, bos_id=bos_id, eos_id=eos_id)
            src, src_mask = padded["src"].to(device), padded["src_mask"].to(device)  # (B, S) each
            if beam_size == 1:
                hyps = greedy_search(net, src, src_mask, **search)
            else:
                hyps = beam_search(net, src, src_mask, beam_size=beam_size, alpha=alpha, **search)
            for i, hyp in zip(rows, hyps):
                out[i] = hyp
    return out


def write_lines(lines: list[str], path: Path | None) -> None:
    text = "".join(f"{line}\n" for line in lines).encode("utf-8")
    if path is None:
        sys.stdout.buffer.write(text)
        sys.stdout.buffer.flush()
        return
    try:
        with open(path, "xb") as f:  # "x": never overwrite, even a file that appeared while translating
            f.write(text)
    except OSError as e:
        raise UserError(f"--output {path} cannot be written: {e.strerror}") from None


def run(args: argparse.Namespace) -> None:
    device = check_options(args)
    lines = read_lines(args.input)
    path = checkpoint.resolve(args.ckpt)
    info, net, src_tok, tgt_tok = load(path)
    decode = settings(args, info, path)
    net.to(device)
    sources = [src_tok.encode(line) for line in lines]
    check_lengths(net, sources, decode["max_len_a"], decode["max_len_b"])
    if args.engine == "ctranslate2":
        decode.pop("autocast")  # (the engine's precision is --compute-type)
        hyps = translate_ctranslate2(net, src_tok, tgt_tok, sources, args, **decode)
    else:
        hyps = translate(net, sources, pad_id=src_tok.pad_id, bos_id=tgt_tok.bos_id, eos_id=tgt_tok.eos_id,
                         max_tokens=args.max_tokens, **decode)
    write_lines([tgt_tok.decode(h) for h in hyps], args.output)


def translate_ctranslate2(net: EncoderDecoder, src_tok: Tokenizer, tgt_tok: Tokenizer, sources: list[list[int]],
                          args: argparse.Namespace, *, beam_size: int, alpha: float, max_len_a: float,
                          max_len_b: int) -> list[list[int]]:
    """As `translate`, by CTranslate2 from an export of `net` to a temporary directory, computing in
    --compute-type (float32 by default)."""
    export.check_exportable(net)
    todo = [i for i, s in enumerate(sources) if s]
    out: list[list[int]] = [[] for _ in sources]
    if not todo:
        return out
    device = torch.device(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = export.export(net, src_tok, tgt_tok, Path(tmp) / "model")
        hyps = export.translate(model_dir, [src_tok.pieces(sources[i]) for i in todo], beam_size=beam_size,
                                alpha=alpha, limits=output_limits([len(sources[i]) for i in todo], max_len_a,
                                                                  max_len_b),
                                device=device.type, device_index=device.index or 0,
                                compute_type=args.compute_type or "float32", threads=torch.get_num_threads(),
                                max_tokens=args.max_tokens)
    for i, pieces in zip(todo, hyps):
        out[i] = tgt_tok.ids(pieces)
    return out


def main(argv: list[str] | None = None) -> int:
    """The exit status: 0, or 1 after a one-line error on stderr for anything the user can fix."""
    return exit_status(lambda: run(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
