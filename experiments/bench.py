"""How fast the zoo trains and decodes, against what users would pick instead, side by side in one process on one
machine (the references are in references.py):

    python experiments/bench.py                              # CPU; Multi30k batches from ../shared/data/multi30k
    python experiments/bench.py --preset gpu --device cuda   # Transformer-base, 16k-token batches
    python experiments/bench.py data=toy                     # any override of the run config (conf/)

Every contender sees the same batches, the same loss (ours), the same optimizer (fused Adam) and the same
precision (bf16 autocast), and is timed in alternating rounds after a warm-up pass over every batch shape; the
median round counts. Prints a table, ends with one line of ratios (> 1: ours is faster) and writes bench.json.
Needs the `bench` extra (Hugging Face transformers) for the Marian rows.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from contextlib import contextmanager, nullcontext
from datetime import datetime, timezone
from functools import partial
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

sys.path.insert(0, str(Path(__file__).parent))
from references import (TextbookAttention, TorchTransformer, marian_forward, marian_like,  # noqa: E402
                        recompute_greedy, shape, textbook_gru)

from zoo.data.batching import round_up  # noqa: E402
from zoo.decoding import beam_search, greedy_search, static_greedy_search  # noqa: E402
from zoo.export import export  # noqa: E402
from zoo.metrics import device_name, matmul_peak_flops  # noqa: E402
from zoo.module import label_smoothed_nll  # noqa: E402
from zoo.models import REGISTRY, architectures, layers  # noqa: E402

CONF = Path(__file__).resolve().parents[1] / "conf"
BASE = ["model.net.d_model=512", "model.net.n_heads=8", "model.net.d_ff=2048", "model.net.n_encoder_layers=6",
        "model.net.n_decoder_layers=6"]  # Vaswani et al.'s base model
PRESETS = {  # where the model configs are (conf/model/FOLDER/NAME.yaml, else conf/model/NAME.yaml; "small": each
    # registered architecture's tiny test instance), the Transformer's size where it is not its config's, run-config
    # overrides, training batches timed per round, decoding batch size
    "cpu": {"models": "multi30k", "transformer": [],
            "overrides": ["data=multi30k", "data.root=../shared/data/multi30k"], "batches": 8, "decode_rows": 64},
    "gpu": {"models": "multi30k", "transformer": BASE,
            "overrides": ["data=multi30k", "data.root=../shared/data/multi30k", "data.max_tokens=16384"],
            "batches": 30, "decode_rows": 256},
    "tiny": {"models": "small", "transformer": [], "overrides": ["data=toy", "data.max_tokens=512",
                                                                 "data.source.n_train=2000"],
             "batches": 2, "decode_rows": 4},
}
DECODE_LENGTHS = (25, 100)


@contextmanager
def fused_attention():
    """Ours with PyTorch's fused attention kernels, which it uses off the CPU: the lever's size on this machine."""
    explicit = layers.scaled_dot_product
    layers.scaled_dot_product = partial(explicit, fused=True)
    try:
        yield
    finally:
        layers.scaled_dot_product = explicit


def ctranslate2_engines(net, src_tok, tgt_tok, device: torch.device) -> dict:
    """Our Transformer, exported to CTranslate2 (zoo/export.py) in a temporary `model_dir`, loaded at fp32 and at
    int8 with as many threads as ours; none without the ctranslate2 package."""
    try:
        import ctranslate2
    except ImportError:
        print("no ctranslate2 (pip install -e '.[bench]'): its rows are left out", flush=True)
        return {}
    with tempfile.TemporaryDirectory() as tmp:  # (a Translator holds its model in memory once loaded)
        export(net, src_tok, tgt_tok, Path(tmp) / "ct2")
        return {f"ctranslate2 {kind}": ctranslate2.Translator(str(Path(tmp) / "ct2"), device=device.type,
                                                              compute_type=kind, intra_threads=torch.get_num_threads())
                for kind in ("float32", "int8")}


def model_config(preset: dict, arch: str) -> list[str] | None:
    """The overrides that choose `arch`'s model config in `preset` (None: its registered tiny instance)."""
    if preset["models"] == "small":
        return None
    folder = preset["models"]
    name = f"{folder}/{arch}" if (CONF / "model" / folder / f"{arch}.yaml").exists() else arch
    return [f"model={name}", *(preset["transformer"] if arch == "transformer" else [])]


def unsorted_padding_efficiency(src_len, tgt_len, max_tokens: int, seed: int = 0) -> float:
    """The reference for our batching: the same token budget, filled in random order without sorting by length."""
    real = padded = rows = src_max = tgt_max = 0
    for i in torch.randperm(len(src_len), generator=torch.Generator().manual_seed(seed)).tolist():
        s, t = int(src_len[i]), int(tgt_len[i])
        if rows and (rows + 1) * (max(src_max, s) + max(tgt_max, t)) > max_tokens:
            padded += rows * (src_max + tgt_max)
            rows = src_max = tgt_max = 0
        rows, src_max, tgt_max, real = rows + 1, max(src_max, s), max(tgt_max, t), real + s + t
    return real / (padded + rows * (src_max + tgt_max))


def padded_forward(model, src, src_mask, tgt_in, *, pad_id: int, multiple: int = 8):
    """`model`'s logits with the batch padded as speed.pad_to_multiple pads it, its size marked symbolic as
    zoo.train.compile_net marks it; the padded target positions' logits are cut off again."""
    S, T = src.size(1), tgt_in.size(1)
    src = torch.nn.functional.pad(src, (0, round_up(S, multiple) - S), value=pad_id)
    src_mask = torch.nn.functional.pad(src_mask, (0, round_up(S, multiple) - S), value=False)
    tgt_in = torch.nn.functional.pad(tgt_in, (0, round_up(T, multiple) - T), value=pad_id)
    for tensor in (src, src_mask, tgt_in):
        torch._dynamo.maybe_mark_dynamic(tensor, 0)
    return model(src, src_mask, tgt_in)[:, :T]


def real_tokens(batches: list[dict], pad_id: int) -> int:
    """Source and target tokens of `batches`, padding left out: what tokens/s counts, as in a run's results."""
    return sum(int(b["src_mask"].sum() + (b["tgt_out"] != pad_id).sum()) for b in batches)


def compose_config(overrides: list[str]):
    with initialize_config_dir(config_dir=str(CONF), version_base=None):
        return compose("config", overrides=overrides)


class Bench:
    def __init__(self, device: torch.device, rounds: int):
        self.device, self.rounds = device, rounds
        self.autocast = torch.autocast(device.type, dtype=torch.bfloat16)

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def timed(self, contenders: dict, run_once, rounds: int | None = None) -> dict[str, float]:
        """Median seconds of `run_once(contender)` for each contender, after one untimed warm-up call each; the
        contenders take turns, round by round, so that a busy moment of the machine hits them alike."""
        for contender in contenders.values():
            run_once(contender)
        seconds: dict[str, list[float]] = {name: [] for name in contenders}
        for _ in range(rounds or self.rounds):
            for name, contender in contenders.items():
                self.sync()
                start = time.perf_counter()
                run_once(contender)
                self.sync()
                seconds[name].append(time.perf_counter() - start)
        return {name: statistics.median(s) for name, s in seconds.items()}

    def train(self, contenders: dict, batches: list[dict], pad_id: int) -> dict[str, float]:
        """Training tokens (source + target, real ones only) per second of each contender: (model, forward,
        context), forward(model, src, src_mask, tgt_in) -> logits (B, T, V), run inside context(); each step is
        forward, loss, backward and a fused Adam update."""
        optimizers = {name: torch.optim.Adam(model.parameters(), lr=1e-4, fused=True)
                      for name, (model, _, _) in contenders.items()}

        def run_once(item):
            name, (model, forward, context) = item
            model.train()
            for b in batches:
                with self.autocast, context():  # (a context may switch autocast off again)
                    logits = forward(model, b["src"], b["src_mask"], b["tgt_in"])  # (B, T, V)
                loss = label_smoothed_nll(logits, b["tgt_out"], pad_id=pad_id, epsilon=0.1)
                loss.backward()
                optimizers[name].step()
                optimizers[name].zero_grad(set_to_none=True)

        tokens = real_tokens(batches, pad_id)
        seconds = self.timed({name: (name, c) for name, c in contenders.items()}, run_once)
        return {name: tokens / s for name, s in seconds.items()}

    def decode(self, contenders: dict, tokens: int, rounds: int | None = None) -> dict[str, float]:
        """Generated tokens per second of each contender, a no-argument function that generates `tokens`."""
        def run_once(fn):
            with torch.no_grad(), self.autocast:
                fn()
        return {name: tokens / s for name, s in self.timed(contenders, run_once, rounds).items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", choices=PRESETS, default="cpu")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds per contender (the median counts)")
    parser.add_argument("--out", type=Path, default=Path("bench.json"))
    parser.add_argument("--compile", action="store_true", help="also time ours under torch.compile (training, and "
                                                              "greedy decoding at static shapes)")
    parser.add_argument("overrides", nargs="*", help="overrides of the run config, e.g. data=toy")
    args = parser.parse_args()
    if args.out.exists():
        sys.exit(f"error: {args.out} already exists; choose another --out")
    preset, device = PRESETS[args.preset], torch.device(args.device)
    bench = Bench(device, args.rounds)
    torch.manual_seed(0)

    cfg = compose_config([*preset["overrides"], *args.overrides])
    dm = instantiate(cfg.data)
    dm.setup()
    tok = dm.tgt_tokenizer
    special = {"pad_id": tok.pad_id, "bos_id": tok.bos_id, "eos_id": tok.eos_id}
    loader = iter(dm.loader("train", shuffle=True))
    batches = [{k: v.to(device) for k, v in next(loader).items()} for _ in range(preset["batches"])]
    print(f"{device_name(device)}; torch {torch.__version__}; {len(batches)} training batches of "
          f"{cfg.data.max_tokens} padded tokens; vocabularies {len(dm.src_tokenizer)} / {len(tok)}", flush=True)

    peak = matmul_peak_flops(device, torch.bfloat16)
    results: dict = {"matmul_peak_gflops": peak / 1e9}
    rows: list[tuple[str, str, float, str]] = []  # (what, contender, value, unit)

    def build(arch: str):
        sizes = {"src_vocab_size": len(dm.src_tokenizer), "tgt_vocab_size": len(tok), "pad_id": tok.pad_id}
        overrides = model_config(preset, arch)
        torch.manual_seed(0)
        if overrides is None:
            return REGISTRY[arch].cls(**{**REGISTRY[arch].small, **sizes}).to(device)
        model_cfg = compose_config([*preset["overrides"], *args.overrides, *overrides]).model
        return instantiate(model_cfg.net)(**sizes).to(device)

    def flops_per_s(net, rate: float) -> float:
        """Training model FLOP/s at `rate` tokens/s: 3x the forward pass's matrix products over the batches."""
        fl = sum(3 * int(net.forward_flops(b["src_mask"].sum(1), (b["tgt_out"] != tok.pad_id).sum(1)).sum())
                 for b in batches)
        return fl / real_tokens(batches, tok.pad_id) * rate

    # --- Transformer training ---------------------------------------------------------------------------------
    net = build("transformer")
    marian = marian_like(net, **special).to(device)
    torch_tf = TorchTransformer(**shape(net), pad_id=tok.pad_id).to(device)

    def ours_forward(m, src, src_mask, tgt_in):
        return m(src, src_mask, tgt_in)

    contenders = {"ours": (net, ours_forward, nullcontext), "marian": (marian, marian_forward, nullcontext),
                  "nn.Transformer": (torch_tf, ours_forward, nullcontext)}
    if device.type == "cpu":
        contenders["ours, fused attention kernels"] = (net, ours_forward, fused_attention)
    contenders["ours, fp32 (no autocast)"] = (net, ours_forward, partial(torch.autocast, device.type, enabled=False))
    if args.compile:
        compiled = build("transformer")
        compiled.load_state_dict(net.state_dict())
        compiled.compile()
        contenders["ours, compiled"] = (compiled, ours_forward, nullcontext)
        static = build("transformer")  # speed.pad_to_multiple=8 with speed.compile: lengths static, batch size not
        static.load_state_dict(net.state_dict())
        static.compile(dynamic=False)
        contenders["ours, compiled, lengths padded to 8"] = (static, partial(padded_forward, pad_id=tok.pad_id),
                                                             nullcontext)
    print("timing Transformer training ...", flush=True)
    rate = bench.train(contenders, batches, tok.pad_id)
    for name, r in rate.items():
        rows.append(("Transformer training", name, r, "tokens/s"))
    results["transformer_train_vs_marian"] = rate["ours"] / rate["marian"]
    results["transformer_train_vs_nn_transformer"] = rate["ours"] / rate["nn.Transformer"]
    results["transformer_mfu"] = flops_per_s(net, rate["ours"]) / peak
    results["marian_mfu"] = flops_per_s(net, rate["marian"]) / peak
    results["transformer_train_tokens_per_s"] = rate["ours"]
    results["transformer_train_bf16_vs_fp32"] = rate["ours"] / rate["ours, fp32 (no autocast)"]

    # --- Decoding ---------------------------------------------------------------------------------------------
    rows_n = preset["decode_rows"]
    test = next(iter(dm.loader("test")))
    src, src_mask = test["src"][:rows_n].to(device), test["src_mask"][:rows_n].to(device)
    net.eval()
    marian.eval()
    with torch.no_grad():  # EOS never wins, so every contender generates exactly `length` tokens a row
        net.decoder.out.bias[tok.eos_id] = -1e4
        marian.final_logits_bias[:, tok.eos_id] = -1e4
    search = {"bos_id": tok.bos_id, "eos_id": tok.eos_id, "max_len_a": 0.0}
    ct2 = ctranslate2_engines(net, dm.src_tokenizer, tok, device)
    pieces = [dm.src_tokenizer.pieces(row[mask].tolist()) for row, mask in zip(src, src_mask)]
    fp32 = partial(torch.autocast, device.type, enabled=False)
    for length in DECODE_LENGTHS:
        for beam in (1, 4):
            kind = "greedy" if beam == 1 else f"beam {beam}"
            print(f"timing {kind} decoding of {length} tokens ...", flush=True)

            def ours_fn(length=length, beam=beam):
                if beam == 1:
                    return greedy_search(net, src, src_mask, max_len_b=length, **search)
                return beam_search(net, src, src_mask, beam_size=beam, max_len_b=length, **search)

            def ours_fp32(length=length, beam=beam):
                with fp32():
                    return ours_fn(length, beam)

            contenders = {"ours": ours_fn, "ours, fp32": ours_fp32}
            if beam == 1:  # the step at fixed shapes (what CUDA graphs need), eager and, with --compile, compiled
                contenders["ours, static shapes"] = partial(static_greedy_search, net, src, src_mask,
                                                            max_len_b=length, **search)
                if args.compile:
                    contenders["ours, static shapes, compiled"] = partial(static_greedy_search, net, src, src_mask,
                                                                          max_len_b=length, compile=True, **search)
            contenders |= {
                "marian generate": partial(marian.generate, input_ids=src, attention_mask=src_mask,
                                           max_new_tokens=length, num_beams=beam, do_sample=False)}
            for name, translator in ct2.items():  # exactly `length` tokens: EOS never wins, and the limit is both
                contenders[name] = partial(translator.translate_batch, pieces, beam_size=beam,
                                           min_decoding_length=length, max_decoding_length=length)
            rate = bench.decode(contenders, rows_n * length)
            for name, r in rate.items():
                rows.append((f"{kind}, {length} tokens", name, r, "tokens/s"))
            key = "greedy" if beam == 1 else "beam"
            results[f"{key}_{length}_vs_marian_generate"] = rate["ours"] / rate["marian generate"]
            if ct2:
                results[f"{key}_{length}_fp32_vs_ctranslate2_fp32"] = rate["ours, fp32"] / rate["ctranslate2 float32"]
                results[f"{key}_{length}_vs_ctranslate2_int8"] = rate["ours"] / rate["ctranslate2 int8"]
    for key in ("greedy", "beam"):
        results[f"{key}_vs_marian_generate"] = min(results[f"{key}_{n}_vs_marian_generate"] for n in DECODE_LENGTHS)
        if ct2:
            results[f"{key}_fp32_vs_ctranslate2_fp32"] = min(results[f"{key}_{n}_fp32_vs_ctranslate2_fp32"]
                                                             for n in DECODE_LENGTHS)
    for length in DECODE_LENGTHS:
        print(f"timing greedy decoding of {length} tokens with and without the cache ...", flush=True)
        rate = bench.decode({
            "ours (cached)": lambda: greedy_search(net, src, src_mask, max_len_b=length, **search),
            "recompute the prefix": lambda: recompute_greedy(net, src, src_mask, bos_id=tok.bos_id, steps=length)},
            rows_n * length, rounds=1)
        for name, r in rate.items():
            rows.append((f"greedy, {length} tokens", name, r, "tokens/s"))
        results[f"cached_vs_recompute_{length}"] = rate["ours (cached)"] / rate["recompute the prefix"]
    del net, torch_tf, contenders  # (Marian stays referenced by the decoding closures until the end)

    # --- Every other architecture's training, beside the textbook loops of the RNNs -----------------------------
    def textbook(arch: str, net) -> dict:
        """The loops an RNN is timed beside, as the textbooks write it (references.py); none for the others."""
        if arch == "attention":
            return {"loop": (TextbookAttention(net), ours_forward, nullcontext),
                    "lean_loop": (TextbookAttention(net, lean=True), ours_forward, nullcontext)}
        return {"loop": (net, textbook_gru, nullcontext)} if arch == "gru" else {}

    names = {"loop": "textbook loop", "lean_loop": "textbook loop, made lean"}
    for arch in (a.name for a in architectures() if a.name != "transformer"):  # (the Transformer's are above)
        print(f"timing {arch} training ...", flush=True)
        net = build(arch)
        loops = textbook(arch, net)
        contenders = {"ours": (net, ours_forward, nullcontext), **{names[k]: c for k, c in loops.items()}}
        rate = bench.train(contenders, batches, tok.pad_id)
        for name, r in rate.items():
            rows.append((f"{arch} training", name, r, "tokens/s"))
        for key in loops:
            results[f"{arch}_train_vs_{key}"] = rate["ours"] / rate[names[key]]
        results[f"{arch}_mfu"] = flops_per_s(net, rate["ours"]) / peak
        results[f"{arch}_train_tokens_per_s"] = rate["ours"]

    # --- Batching ---------------------------------------------------------------------------------------------
    src_len, tgt_len = dm.corpus.ids["train"].lengths
    results["padding_efficiency"] = dm.sampler("train", shuffle=True).padding_efficiency()
    results["padding_efficiency_unsorted"] = unsorted_padding_efficiency(src_len, tgt_len + 1, cfg.data.max_tokens)

    record = {"results": results, "table": [dict(zip(("what", "contender", "value", "unit"), r)) for r in rows],
              "machine": {"device": device_name(device), "torch": torch.__version__,
                          "python": platform.python_version(), "threads": torch.get_num_threads()},
              "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "command": " ".join(["python", *sys.argv]), "preset": args.preset,
              "data": {"name": cfg.data.source._target_.rsplit(".", 1)[-1], "max_tokens": cfg.data.max_tokens,
                       "vocab": [len(dm.src_tokenizer), len(tok)], "training_batches": len(batches),
                       "decode_rows": rows_n, "decode_source_tokens": int(src_mask.sum())},
              "models": {a.name: model_config(preset, a.name) or "registered small instance" for a in architectures()}}
    with open(args.out, "x") as f:
        json.dump(record, f, indent=1)
    print(f"bench: {args.out}")
    print_table(rows, results)  # last, so that the output ends with the line of ratios


def print_table(rows: list[tuple[str, str, float, str]], results: dict) -> None:
    print(f"\n{'':<28} {'contender':<34} {'value':>12}")
    for what, contender, value, unit in rows:
        print(f"{what:<28} {contender:<34} {value:>12,.0f} {unit}")
    mfu = ", ".join(f"{a.name} {100 * results[f'{a.name}_mfu']:.1f}%" for a in architectures())
    print(f"\nmatmul peak {results['matmul_peak_gflops']:,.0f} GFLOP/s (bf16); MFU: {mfu}, Marian "
          f"{100 * results['marian_mfu']:.1f}%; padding efficiency "
          f"{100 * results['padding_efficiency']:.1f}% (unsorted batches: "
          f"{100 * results['padding_efficiency_unsorted']:.1f}%)")
    keys = ["transformer_train_vs_marian", "transformer_train_vs_nn_transformer", "greedy_vs_marian_generate",
            "beam_vs_marian_generate", "greedy_fp32_vs_ctranslate2_fp32", "beam_fp32_vs_ctranslate2_fp32",
            "cached_vs_recompute_100", "attention_train_vs_loop",
            "attention_train_vs_lean_loop", "gru_train_vs_loop", "transformer_train_bf16_vs_fp32"]
    print("ratios: " + "  ".join(f"{k} {results[k]:.2f}x" for k in keys if k in results))


if __name__ == "__main__":
    main()
