"""The Transformer (Vaswani et al. 2017, "Attention Is All You Need", arXiv:1706.03762, section 3).

    x = √D · E[token] + PE(position)                 embeddings scaled by √d_model (3.4), sinusoidal PE (3.5)
    Attention(Q, K, V) = softmax(Q Kᵀ / √d_k) V       scaled dot-product attention (eq. 1)
    MultiHead(Q, K, V) = Concat(head_1..head_H) W_O,  head_i = Attention(Q W_Q_i, K W_K_i, V W_V_i)   (3.2.2)
    FFN(x) = max(0, x W_1 + b_1) W_2 + b_2            position-wise feed-forward (eq. 2)
    LayerNorm(x + Dropout(Sublayer(x)))               residual + LayerNorm, post-LN as in the paper (5.4);
    x + Dropout(Sublayer(LayerNorm(x)))               pre-LN as an option (Xiong et al. 2020)

The decoder's self-attention is causal. Its decoding state caches every layer's keys and values, so `step` computes
one new position against the cache instead of re-running the whole prefix. Instead of the sinusoidal PE,
`positions` may be a learned table, or rotary (RoPE), alibi, alibi_directional or t5, which act inside
self-attention; `decoder_positions` may differ from the encoder's, or be none (see positions.py). The attention,
feed-forward and residual blocks are in layers.py, the decoding caches in cache.py.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from zoo.models.base import (Encoder, EncoderDecoder, IncrementalDecoder, State, check_dropout, check_positive,
                             normal_embedding)
from zoo.models.cache import GrowingCache, StaticCache
from zoo.models.layers import FeedForward, MultiHeadAttention, Residual
from zoo.models.positions import POSITIONS, TABLES, ALiBi, RelativeBias, Rotary, TablePositions
from zoo.models.registry import register


class Embedding(nn.Module):
    """√D · E[token] (+ PE[position] for absolute positions), then dropout. Token embeddings start at std D^-0.5 (as
    fairseq does) so that, once scaled by √D, they have unit size and do not drown the positional signal."""

    def __init__(self, *, vocab_size: int, d_model: int, pad_id: int, max_positions: int, positions: str,
                 dropout: float):
        super().__init__()
        self.tokens = normal_embedding(vocab_size, d_model, pad_id)  # std D^-0.5, pad row zero
        self.positions = (TablePositions(max_positions=max_positions, d_model=d_model, learned=positions == "learned")
                          if positions in TABLES else None)  # the others act in the attention, or there are none
        self.scale, self.dropout = math.sqrt(d_model), nn.Dropout(dropout)

    def forward(self, tokens: Tensor, start: int | Tensor = 0) -> Tensor:
        """tokens (B, T) at positions start .. start+T-1 -> (B, T, D)."""
        x = self.tokens(tokens) * self.scale  # (B, T, D)
        if self.positions is not None:
            x = self.positions(x, start)  # (B, T, D)
        return self.dropout(x)  # (B, T, D)


class EncoderLayer(nn.Module):
    def __init__(self, *, d_model: int, n_heads: int, d_ff: int, dropout: float, attention_dropout: float,
                 activation_dropout: float, pre_norm: bool, rotary: Rotary | None,
                 bias: ALiBi | RelativeBias | None):
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model=d_model, n_heads=n_heads, dropout=attention_dropout,
                                            rotary=rotary, bias=bias)
        self.ffn = FeedForward(d_model=d_model, d_ff=d_ff, activation_dropout=activation_dropout)
        self.res_attn, self.res_ffn = (Residual(d_model=d_model, dropout=dropout, pre_norm=pre_norm) for _ in range(2))

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        x = self.res_attn(x, lambda y: self.self_attn(y, *self.self_attn.keys_values(y), mask))  # (B, S, D)
        return self.res_ffn(x, self.ffn)  # (B, S, D)


class DecoderLayer(nn.Module):
    def __init__(self, *, d_model: int, n_heads: int, d_ff: int, dropout: float, attention_dropout: float,
                 activation_dropout: float, pre_norm: bool, rotary: Rotary | None,
                 bias: ALiBi | RelativeBias | None):
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model=d_model, n_heads=n_heads, dropout=attention_dropout,
                                            rotary=rotary, bias=bias)
        self.cross_attn = MultiHeadAttention(d_model=d_model, n_heads=n_heads, dropout=attention_dropout)
        self.ffn = FeedForward(d_model=d_model, d_ff=d_ff, activation_dropout=activation_dropout)
        self.res_self, self.res_cross, self.res_ffn = (Residual(d_model=d_model, dropout=dropout, pre_norm=pre_norm)
                                                       for _ in range(3))

    def forward(self, x: Tensor, cache: GrowingCache | StaticCache, memory: tuple[Tensor, Tensor],
                src_mask: Tensor):
        """x (B, T, D) follows the positions already in `cache` (cache.py); returns the new x and the cache extended
        by T positions. With an empty cache this is the teacher-forced pass, causally masked."""
        y = self.res_self.input(x)  # (B, T, D) what self-attention reads
        start = cache.length  # the new positions are start .. start+T-1
        k, v = self.self_attn.keys_values(y, start)  # (B, H, T, D/H)
        keys, values, written, cache = cache.extend(k, v)  # (B, H, t+T or capacity, D/H); None or (1, capacity)
        x = self.res_self.output(x, self.self_attn(y, keys, values, written, causal=written is None,
                                                   start=start))  # (B, T, D)
        x = self.res_cross(x, lambda y: self.cross_attn(y, *memory, src_mask))  # (B, T, D)
        return self.res_ffn(x, self.ffn), cache


class TransformerEncoder(Encoder):
    def __init__(self, embed: Embedding, layers: list[EncoderLayer], final_norm: nn.Module):
        super().__init__()
        self.embed, self.layers, self.final_norm = embed, nn.ModuleList(layers), final_norm

    def forward(self, src: Tensor, src_mask: Tensor) -> Tensor:
        x = self.embed(src)  # (B, S, D)
        for layer in self.layers:
            x = layer(x, src_mask)  # (B, S, D)
        return self.final_norm(x)  # (B, S, D) the memory


class TransformerDecoder(IncrementalDecoder):
    def __init__(self, embed: Embedding, layers: list[DecoderLayer], final_norm: nn.Module, out: nn.Linear):
        super().__init__()
        self.embed, self.layers, self.final_norm, self.out = embed, nn.ModuleList(layers), final_norm, out

    def init_state(self, memory: Tensor, src_mask: Tensor, capacity: int | None = None) -> State:
        """Cross-attention keys/values are projected from the memory once; self-attention caches start empty:
        growing ones, or with `capacity`, static ones of that many positions (cache.py), for table positions only."""
        cross = [layer.cross_attn.keys_values(memory) for layer in self.layers]  # each (B, H, S, D/H) twice
        k = cross[0][0]  # (B, H, S, D/H), in the dtype the cache will hold (bf16 under autocast)
        caches = ([GrowingCache.empty(k) for _ in self.layers] if capacity is None
                  else self.static_caches(k, capacity))
        return State(source={"mem_k": [k for k, _ in cross], "mem_v": [v for _, v in cross], "src_mask": src_mask},
                     step={"caches": caches})

    def static_caches(self, like: Tensor, capacity: int) -> list[StaticCache]:
        """Static caches of `capacity` positions for the batch of `like` (B, H, S, D/H): the last ones made, emptied,
        when their shape is the same (so that a compiled step finds its buffers where it left them), else new ones."""
        attn, table = self.layers[0].self_attn, self.embed.positions
        if table is None or attn.rotary is not None or attn.bias is not None:
            kind = "rotary" if attn.rotary is not None else "a positional bias" if attn.bias is not None else "none"
            raise ValueError(f"static decoding takes sinusoidal or learned decoder positions, not {kind}")
        if capacity > table.table.size(0):
            raise ValueError(f"a static cache of {capacity} positions exceeds max_positions ({table.table.size(0)})")
        def kind(t: Tensor) -> tuple:
            return t.shape[:2], t.size(3), t.dtype, t.device

        last = getattr(self, "_static", [])  # (a plain attribute: never saved, and only the last shape is kept)
        if last and kind(last[0].k) == kind(like) and last[0].k.size(2) == capacity:
            self._static = [cache.reset() for cache in last]
        else:
            self._static = [StaticCache.empty(like, capacity) for _ in self.layers]
        return self._static

    def run(self, tgt: Tensor, state: State) -> tuple[Tensor, State]:
        x = self.embed(tgt, start=state["caches"][0].length)  # (B, T, D)
        caches = []
        for cache, layer, k, v in zip(state["caches"], self.layers, state["mem_k"], state["mem_v"]):
            x, cache = layer(x, cache, (k, v), state["src_mask"])  # (B, T, D)
            caches.append(cache)
        return self.out(self.final_norm(x)), state.updated(caches=caches)  # (B, T, V)


@register("transformer", colour="tab:green", order=2,
          small={"d_model": 16, "n_heads": 4, "d_ff": 32, "n_encoder_layers": 2, "n_decoder_layers": 2})
class Transformer(EncoderDecoder):
    """Defaults are a small model for the embedded task; the paper's base model is d_model=512, n_heads=8,
    d_ff=2048, 6+6 layers, dropout 0.1. `dropout` is the paper's residual dropout (5.4), on every sub-layer's output
    and on the embeddings; `attention_dropout` (on the attention weights) and `activation_dropout` (after the FFN's
    ReLU) are later additions (tensor2tensor), 0 by default as in fairseq. `positions` is one of POSITIONS, for both
    stacks unless `decoder_positions` (one of POSITIONS, or none) differs; max_positions bounds the sinusoidal and
    learned tables only. `tie_embeddings` ties the decoder's embedding and
    output projection (Press & Wolf 2017); `share_all_embeddings` also gives the encoder the same table (the paper's
    3.4, and fairseq's option of that name), for a joint vocabulary only."""

    def __init__(self, *, src_vocab_size: int, tgt_vocab_size: int, pad_id: int, d_model: int = 128,
                 n_heads: int = 4, d_ff: int = 512, n_encoder_layers: int = 2, n_decoder_layers: int = 2,
                 dropout: float = 0.1, attention_dropout: float = 0.0, activation_dropout: float = 0.0,
                 pre_norm: bool = False, positions: str = "sinusoidal", decoder_positions: str | None = None,
                 max_positions: int = 1024, tie_embeddings: bool = False, share_all_embeddings: bool = False):
        check_positive(src_vocab_size=src_vocab_size, tgt_vocab_size=tgt_vocab_size, d_model=d_model,
                       n_heads=n_heads, d_ff=d_ff, n_encoder_layers=n_encoder_layers,
                       n_decoder_layers=n_decoder_layers, max_positions=max_positions)
        check_dropout(dropout=dropout, attention_dropout=attention_dropout, activation_dropout=activation_dropout)
        decoder_positions = decoder_positions or positions
        if positions not in POSITIONS:
            raise ValueError(f"positions ({positions!r}) must be one of {', '.join(map(repr, POSITIONS))}")
        if decoder_positions not in (*POSITIONS, "none"):
            raise ValueError(f"decoder_positions ({decoder_positions!r}) must be one of "
                             f"{', '.join(map(repr, POSITIONS))} or 'none'")
        if d_model % n_heads:
            raise ValueError(f"d_model ({d_model}) must be divisible by n_heads ({n_heads})")
        if share_all_embeddings and src_vocab_size != tgt_vocab_size:
            raise ValueError(f"share_all_embeddings needs one vocabulary for both languages, not {src_vocab_size} "
                             f"source and {tgt_vocab_size} target tokens (data.preprocess.joint=true)")
        if d_model % 2 and "sinusoidal" in (positions, decoder_positions):
            raise ValueError(f"d_model ({d_model}) must be even for sinusoidal positions")

        def embedding(vocab_size: int, kind: str) -> Embedding:
            return Embedding(vocab_size=vocab_size, d_model=d_model, pad_id=pad_id, max_positions=max_positions,
                             positions=kind, dropout=dropout)

        def layer(kind: str) -> dict:  # a stack's layers share one rotary and one bias (T5's table is per stack)
            bias = (ALiBi(n_heads=n_heads, directional=kind == "alibi_directional") if kind.startswith("alibi")
                    else RelativeBias(n_heads=n_heads) if kind == "t5" else None)
            return {"d_model": d_model, "n_heads": n_heads, "d_ff": d_ff, "dropout": dropout,
                    "attention_dropout": attention_dropout, "activation_dropout": activation_dropout,
                    "pre_norm": pre_norm, "rotary": Rotary(d_head=d_model // n_heads) if kind == "rotary" else None,
                    "bias": bias}

        def final_norm() -> nn.Module:  # pre-LN leaves the last residual stream un-normalised
            return nn.LayerNorm(d_model) if pre_norm else nn.Identity()

        encoder_embed = embedding(src_vocab_size, positions)
        decoder_embed = embedding(tgt_vocab_size, decoder_positions)
        encoder_layer, decoder_layer = layer(positions), layer(decoder_positions)
        out = nn.Linear(d_model, tgt_vocab_size)
        if tie_embeddings or share_all_embeddings:
            out.weight = decoder_embed.tokens.weight
        if share_all_embeddings:
            encoder_embed.tokens = decoder_embed.tokens
        super().__init__(
            TransformerEncoder(encoder_embed, [EncoderLayer(**encoder_layer) for _ in range(n_encoder_layers)],
                               final_norm()),
            TransformerDecoder(decoder_embed, [DecoderLayer(**decoder_layer) for _ in range(n_decoder_layers)],
                               final_norm(), out),
        )
        self.max_positions = max_positions if {positions, decoder_positions} & set(TABLES) else None  # else any

    @classmethod
    def at_width(cls, width: int, *, max_len: int, **common) -> Transformer:
        """d_model `width`, heads of 64, d_ff 4 · width, the tensor2tensor dropouts beside the residual one."""
        return cls(d_model=width, n_heads=max(1, width // 64), d_ff=4 * width, n_encoder_layers=1,
                   n_decoder_layers=1, attention_dropout=0.1, activation_dropout=0.1, max_positions=max_len, **common)

    @classmethod
    def cost(cls, phase: str, explicit_attention: bool) -> tuple[int, int] | None:
        """n² attention scores; the n x n weights stored only where attention is computed as written (the CPU path),
        never by fused kernels; decoding without the cache reruns a growing prefix, n² a step."""
        weights = 2 if explicit_attention else 1
        return {"train": (2, weights), "decode": (2, weights), "decode, no cache": (3, weights)}.get(phase)

    def attention_maps(self, src: Tensor, src_mask: Tensor, tgt_in: Tensor) -> Tensor:
        """Every decoder layer's cross-attention weights (B, L, H, T, S), recomputed (the fused kernel never forms
        them) from the queries that pre-hooks catch on their way into each layer's cross-attention."""
        state, queries = self.init_state(src, src_mask), []
        hooks = [layer.cross_attn.register_forward_pre_hook(lambda module, args: queries.append(args[0]))
                 for layer in self.decoder.layers]  # x (B, T, D) of each layer, in order
        try:
            self.decoder(tgt_in, state)
        finally:
            for hook in hooks:
                hook.remove()
        return torch.stack([layer.cross_attn.weights(q, k, src_mask)  # (B, H, T, S) each
                            for layer, q, k in zip(self.decoder.layers, queries, state["mem_k"])], 1)

    def forward_flops(self, src_len: int | Tensor, tgt_len: int | Tensor) -> int | Tensor:
        """S = src_len, T = tgt_len, width D, feed-forward F, V target words; rotary and alibi are element-wise.

            encoder layer   S·(4·2D² + 2·2DF) + 2·2S²D     Q K V O and FFN per source token; QKᵀ and AV
            decoder layer   T·(6·2D² + 2·2DF) + S·2·2D²    self Q K V O, cross Q O, FFN; cross K V of the memory
                            + 2·2T²D + 2·2TSD              causal self-attention as the full T×T product that
                                                           SDPA computes (masked half included); cross QKᵀ, AV
            output          T·2DV                          the projection onto the target vocabulary"""
        S, T = src_len, tgt_len
        D, V = self.decoder.out.in_features, self.decoder.out.out_features
        d_ff = self.decoder.layers[0].ffn[0].out_features  # F
        encoder = S * (8 * D * D + 4 * D * d_ff) + 4 * S * S * D
        decoder = T * (12 * D * D + 4 * D * d_ff) + 4 * S * D * D + 4 * T * T * D + 4 * T * S * D
        return len(self.encoder.layers) * encoder + len(self.decoder.layers) * decoder + 2 * T * D * V

    def decode_flops(self, src_len: int | Tensor, tgt_len: int | Tensor) -> int | Tensor:
        """The step at position t attends to the t cached keys only, so causal self-attention costs 2·2·D·t a step,
        2·T·(T+1)·D in all instead of forward_flops' full 4·T²·D: 2·T·(T-1)·D fewer a decoder layer."""
        T, D = tgt_len, self.decoder.out.in_features
        return self.forward_flops(src_len, tgt_len) - len(self.decoder.layers) * 2 * T * (T - 1) * D
