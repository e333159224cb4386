"""Export a trained zoo Transformer to CTranslate2 (github.com/OpenNMT/CTranslate2), the inference engine, so that
what was trained here can be deployed there:

    python -m zoo.export outputs/DATE/TIME model_ct2 [--quantization int8]     (or any .ckpt, e.g. average.ckpt)
    python -m zoo.translate outputs/DATE/TIME --engine ctranslate2 < input.txt    (exports, then translates)

CTranslate2 describes a model by a specification (`ctranslate2.specs.TransformerSpec`) that names each weight by
its role, as its own converters for fairseq and OpenNMT-py fill it; this fills it from our modules:

    ours                                        CTranslate2
    √D · E[token] + PE[position]                embeddings (scaled by √D), position_encodings (our table)
    self-attention W_Q, W_K, W_V; W_O           self_attention.linear[0] = [W_Q; W_K; W_V]; linear[1] = W_O
    cross-attention W_Q; W_K, W_V; W_O          attention.linear[0] = W_Q; linear[1] = [W_K; W_V]; linear[2]
    post-LN: LayerNorm after each residual      the sublayer's layer_norm, applied after it when pre_norm=False
    pre-LN: LayerNorm before, one at the end    applied before it when pre_norm=True; the stack's layer_norm
    FFN W_1, W_2                                ffn.linear_0, ffn.linear_1
    output projection                           decoder projection

Positions: sinusoidal and learned tables are exported as the tables they are. Rotary, ALiBi, T5's relative bias
and NoPE are refused (the zoo's variants are not checked against CTranslate2's), as are the RNNs and ConvS2S.
Tokens go in and out as vocabulary strings, ids 0-3 being our pad, bos, eos and unk.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch import nn

from zoo.data.tokenizer import SPECIALS, Tokenizer
from zoo.errors import UserError, exit_status
from zoo.models.layers import MultiHeadAttention
from zoo.models.positions import TablePositions
from zoo.models.transformer import Transformer

TOKENIZERS = ("source_tokenizer.json", "target_tokenizer.json")  # ours, written beside the model: text <-> pieces


def check_exportable(net: nn.Module) -> None:
    """Raise a one-line UserError unless `net` is a Transformer with table positions in both stacks."""
    if not isinstance(net, Transformer):
        raise UserError(f"CTranslate2 export takes a Transformer, not {type(net).__name__}")
    for stack in (net.encoder, net.decoder):
        if not isinstance(stack.embed.positions, TablePositions):
            kinds = {"rotary": any(layer.self_attn.rotary is not None for layer in stack.layers),
                     "a positional attention bias (alibi or t5)": any(layer.self_attn.bias is not None
                                                                       for layer in stack.layers)}
            kind = next((k for k, present in kinds.items() if present), "no positions")
            raise UserError(f"CTranslate2 export takes sinusoidal or learned positions; this model's "
                            f"{'encoder' if stack is net.encoder else 'decoder'} has {kind}")


def _numpy(t: torch.Tensor):
    return t.detach().float().cpu().numpy()


def _linear(spec, *modules: nn.Linear) -> None:
    """One CTranslate2 linear layer from one or more of ours, stacked along the output (as its fused QKV)."""
    spec.weight = _numpy(torch.cat([m.weight for m in modules]))  # (sum out, in)
    spec.bias = _numpy(torch.cat([m.bias for m in modules]))  # (sum out,)


def _norm(spec, norm: nn.LayerNorm) -> None:
    spec.gamma, spec.beta = _numpy(norm.weight), _numpy(norm.bias)


def _attention(spec, attn: MultiHeadAttention, *, self_attention: bool) -> None:
    if self_attention:
        _linear(spec.linear[0], attn.W_Q, attn.W_K, attn.W_V)
    else:
        _linear(spec.linear[0], attn.W_Q)
        _linear(spec.linear[1], attn.W_K, attn.W_V)
    _linear(spec.linear[-1], attn.W_O)


def _stack(spec, stack, *, decoder: bool) -> None:
    embed = stack.embed
    table = spec.embeddings if decoder else spec.embeddings[0]  # (an encoder may have several source embeddings)
    table.weight = _numpy(embed.tokens.weight)
    spec.scale_embeddings = True  # √D
    spec.position_encodings.encodings = _numpy(embed.positions.table)  # (P, D)
    for layer_spec, layer in zip(spec.layer, stack.layers):
        _attention(layer_spec.self_attention, layer.self_attn, self_attention=True)
        if decoder:
            _norm(layer_spec.self_attention.layer_norm, layer.res_self.norm)
            _attention(layer_spec.attention, layer.cross_attn, self_attention=False)
            _norm(layer_spec.attention.layer_norm, layer.res_cross.norm)
        else:
            _norm(layer_spec.self_attention.layer_norm, layer.res_attn.norm)
        _linear(layer_spec.ffn.linear_0, layer.ffn[0])
        _linear(layer_spec.ffn.linear_1, layer.ffn[3])
        _norm(layer_spec.ffn.layer_norm, layer.res_ffn.norm)
    if isinstance(stack.final_norm, nn.LayerNorm):  # pre-LN
        _norm(spec.layer_norm, stack.final_norm)


def engine():
    """The ctranslate2 module, or a one-line error saying how to install it."""
    try:
        import ctranslate2
    except ImportError:
        raise UserError("CTranslate2 is not installed: pip install ctranslate2 (the project's deploy extra)") from None
    return ctranslate2


def export(net: Transformer, src_tok: Tokenizer, tgt_tok: Tokenizer, out_dir: Path,
           quantization: str | None = None) -> Path:
    """Write `net` as a CTranslate2 model directory `out_dir` (which must not exist yet), with our two tokenizers
    beside it (TOKENIZERS), and return it. The weights are stored in fp32 unless `quantization` names another of
    CTranslate2's types (e.g. int8); the engine converts them to the compute type it is asked for when it loads
    them."""
    ctranslate2 = engine()
    check_exportable(net)
    if out_dir.exists():
        raise UserError(f"{out_dir} already exists; CTranslate2 export writes a new directory")
    layers = (len(net.encoder.layers), len(net.decoder.layers))
    pre_norm = net.decoder.layers[0].res_self.pre_norm
    heads = net.decoder.layers[0].self_attn.h
    spec = ctranslate2.specs.TransformerSpec.from_config(layers, heads, pre_norm=pre_norm)
    _stack(spec.encoder, net.encoder, decoder=False)
    _stack(spec.decoder, net.decoder, decoder=True)
    _linear(spec.decoder.projection, net.decoder.out)
    _, bos, eos, unk = SPECIALS  # (pad never reaches the engine)
    spec.config.bos_token, spec.config.eos_token, spec.config.unk_token = bos, eos, unk
    spec.config.decoder_start_token = bos  # and no BOS or EOS added to the source, as ours has none
    spec.config.layer_norm_epsilon = next(m.eps for m in net.modules() if isinstance(m, nn.LayerNorm))
    spec.register_source_vocabulary(src_tok.pieces(range(len(src_tok))))
    spec.register_target_vocabulary(tgt_tok.pieces(range(len(tgt_tok))))
    spec.validate()
    try:
        spec.optimize(quantization=quantization)  # shares tied tables, converts the weights' type
    except ValueError as e:
        raise UserError(f"--quantization {quantization}: {e}") from None
    out_dir.mkdir(parents=True)
    spec.save(str(out_dir))
    for tok, name in zip((src_tok, tgt_tok), TOKENIZERS):
        tok.save(out_dir / name)
    return out_dir


def translate(model_dir: Path, sources: list[list[str]], *, beam_size: int, alpha: float, limits: list[int],
              device: str = "cpu", device_index: int = 0, compute_type: str = "float32", threads: int = 1,
              max_tokens: int = 16384) -> list[list[str]]:
    """The output pieces of each source (pieces, none empty) from the CTranslate2 model in `model_dir`, at most its
    limit of tokens: sentences go to the engine in groups of one limit. Greedy search gives ours exactly (at the
    same precision); beam search ranks its hypotheses by CTranslate2's length normalisation, log P / |Y|^alpha, not
    GNMT's, so it may choose otherwise."""
    translator = engine().Translator(str(model_dir), device=device, device_index=device_index,
                                     compute_type=compute_type, intra_threads=threads)
    by_limit: dict[int, list[int]] = {}
    for i, limit in enumerate(limits):
        by_limit.setdefault(limit, []).append(i)
    out: list[list[str]] = [[] for _ in sources]
    for limit, rows in by_limit.items():
        results = translator.translate_batch(
            [sources[i] for i in rows], beam_size=beam_size, length_penalty=alpha, max_decoding_length=limit,
            min_decoding_length=0,  # (its default, 1, would bar EOS at the first step, where ours may end)
            max_input_length=0,  # (its default, 1,024, would cut longer sources; check_lengths bounds ours)
            max_batch_size=max_tokens, batch_type="tokens")
        for i, result in zip(rows, results):
            out[i] = result.hypotheses[0]
    return out


def main(argv: list[str] | None = None) -> int:
    """python -m zoo.export CKPT OUT_DIR [--quantization int8]: the exit status, 0 or 1 after a one-line error."""
    parser = argparse.ArgumentParser(prog="python -m zoo.export", description=__doc__.split("\n\n")[0])
    parser.add_argument("ckpt", help="a .ckpt file, a run directory (its checkpoints/last.ckpt), or latest")
    parser.add_argument("out_dir", type=Path, help="the CTranslate2 model directory to write (must not exist)")
    parser.add_argument("--quantization", help="store the weights as this CTranslate2 type (e.g. int8, float16); "
                                               "default: fp32")
    args = parser.parse_args(argv)

    def run() -> None:
        from zoo import checkpoint
        from zoo.translate import load  # (names the file when a checkpoint is unusable)
        _, net, src_tok, tgt_tok = load(checkpoint.resolve(args.ckpt))
        print(export(net, src_tok, tgt_tok, args.out_dir, quantization=args.quantization))

    return exit_status(run)


if __name__ == "__main__":
    sys.exit(main())
