"""Convolutional sequence to sequence learning (Gehring, Auli, Grangier, Yarats & Dauphin 2017, "Convolutional
Sequence to Sequence Learning", arXiv:1705.03122, section 3).

    e_j = w_j + p_j                              token and learned position embeddings (3.1)
    h^l = GLU(conv_k(h^(l-1))) + h^(l-1)         a block: a convolution of width k, gated linear units,
    GLU([A B]) = A ⊗ σ(B)                        a residual connection (3.2); decoder convolutions are causal
    d_i = W_d h_i + b_d + g_i                    multi-step attention: every decoder layer has its own (3.3), its
    a_ij = softmax_j(d_i · z_j)                  query from its own state and the previous target embedding g_i,
    c_i = Σ_j a_ij (z_j + e_j)                   over the encoder's output z; the values add the source embeddings
    h_i += W_c c_i                               back into it
    p(y_(i+1)) = softmax(W_o h_i^L + b_o)

Scaling (3.4): every residual sum is multiplied by √0.5 to keep its variance; the attention output by m·√(1/m) for
m source tokens; the encoder's gradients by 1/(2 · decoder layers), as many layers attend to it. Initialisation
(3.5): embeddings N(0, 0.1); layers N(0, √((1-p)/n)) for n inputs after dropout p, convolutions feeding a GLU
N(0, √(4(1-p)/n)). No recurrence and no self-attention: a token sees the k-1 before it per decoder layer, so L layers
see L(k-1) tokens back, and the path between two tokens n apart is n/(k-1) layers long (log_k n with dilations,
which the paper does not use). Padding is zeroed before every encoder convolution and masked in the attention.

Decoding steps one position at a time: the state keeps each decoder layer's last k-1 inputs (fairseq's linearized
convolution), so a step convolves k positions for one output and equals the teacher-forced pass. Differences from
the paper, stated: no weight normalization; every layer has the same number of channels (the paper's projections
between widths are not needed); the last hidden layer projects to `out_dim` before the output layer, and the query d_i
and the values z_j + e_j are scaled by √0.5, as fairseq does.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zoo.models.base import Encoder, EncoderDecoder, IncrementalDecoder, State, check_dropout, check_positive
from zoo.models.registry import register

SQRT_HALF = math.sqrt(0.5)


def linear(n_in: int, n_out: int, dropout: float = 0.0) -> nn.Linear:
    """N(0, √((1-p)/n_in)) weights, zero bias (3.5); `dropout` is the rate applied to its input."""
    layer = nn.Linear(n_in, n_out)
    nn.init.normal_(layer.weight, std=math.sqrt((1.0 - dropout) / n_in))
    nn.init.zeros_(layer.bias)
    return layer


def glu_conv(channels: int, kernel_size: int, dropout: float) -> nn.Conv1d:
    """A convolution to 2C channels for a GLU, N(0, √(4(1-p)/(k·C))) weights (3.5); no padding of its own."""
    conv = nn.Conv1d(channels, 2 * channels, kernel_size)
    nn.init.normal_(conv.weight, std=math.sqrt(4.0 * (1.0 - dropout) / (kernel_size * channels)))
    nn.init.zeros_(conv.bias)
    return conv


def embedding(n: int, dim: int, pad_id: int | None = None) -> nn.Embedding:
    """N(0, 0.1) rows (3.5), the pad row (if any) zero: for tokens and for positions alike."""
    emb = nn.Embedding(n, dim, padding_idx=pad_id)
    nn.init.normal_(emb.weight, std=0.1)
    if pad_id is not None:
        with torch.no_grad():
            emb.weight[pad_id].zero_()
    return emb


class ScaleGradient(torch.autograd.Function):
    """The identity forward; gradients multiplied by `scale` on the way back."""

    @staticmethod
    def forward(ctx, x: Tensor, scale: float) -> Tensor:
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: Tensor):
        return grad * ctx.scale, None


class ConvEncoder(Encoder):
    def __init__(self, *, vocab_size: int, pad_id: int, emb_dim: int, channels: int, n_layers: int,
                 kernel_size: int, dropout: float, max_positions: int, n_attention_layers: int):
        super().__init__()
        self.embed, self.positions = embedding(vocab_size, emb_dim, pad_id), embedding(max_positions, emb_dim)
        self.fc1, self.fc2 = linear(emb_dim, channels, dropout), linear(channels, emb_dim)
        self.convs = nn.ModuleList(glu_conv(channels, kernel_size, dropout) for _ in range(n_layers))
        self.dropout, self.pad = nn.Dropout(dropout), (kernel_size - 1) // 2  # odd k: centred
        self.gradient_scale = 1.0 / (2.0 * n_attention_layers)

    def forward(self, src: Tensor, src_mask: Tensor) -> tuple[Tensor, Tensor]:
        """-> the attention's keys z (B, S, E) and values (z + e)·√0.5 (B, S, E)."""
        e = self.dropout(self.embed(src) + self.positions(torch.arange(src.size(1), device=src.device)))  # (B, S, E)
        h = self.fc1(e)  # (B, S, C)
        for conv in self.convs:
            x = self.dropout(h.masked_fill(~src_mask.unsqueeze(-1), 0.0))  # padding contributes nothing
            x = F.glu(conv(F.pad(x.transpose(1, 2), (self.pad, self.pad))), dim=1).transpose(1, 2)  # (B, S, C)
            h = (x + h) * SQRT_HALF
        z = ScaleGradient.apply(self.fc2(h), self.gradient_scale)  # (B, S, E)
        return z, (z + e) * SQRT_HALF


class ConvDecoder(IncrementalDecoder):
    def __init__(self, *, vocab_size: int, pad_id: int, emb_dim: int, channels: int, n_layers: int,
                 kernel_size: int, out_dim: int, dropout: float, max_positions: int):
        super().__init__()
        self.embed, self.positions = embedding(vocab_size, emb_dim, pad_id), embedding(max_positions, emb_dim)
        self.fc1 = linear(emb_dim, channels, dropout)
        self.convs = nn.ModuleList(glu_conv(channels, kernel_size, dropout) for _ in range(n_layers))
        self.queries = nn.ModuleList(linear(channels, emb_dim) for _ in range(n_layers))  # W_d
        self.contexts = nn.ModuleList(linear(emb_dim, channels) for _ in range(n_layers))  # W_c
        self.fc2, self.out = linear(channels, out_dim), linear(out_dim, vocab_size, dropout)
        self.dropout, self.history = nn.Dropout(dropout), kernel_size - 1

    def init_state(self, enc_out: tuple[Tensor, Tensor], src_mask: Tensor) -> State:
        """Each layer's k-1 inputs before the first position are zeros, as a causal convolution's left padding."""
        keys, values = enc_out  # (B, S, E) each
        B, C = keys.size(0), self.fc1.out_features
        empty = keys.new_zeros(B, self.history, C)  # (B, k-1, C)
        m = src_mask.sum(1, keepdim=True).to(values.dtype)  # (B, 1) source tokens
        return State(source={"keys": keys, "values": values * (m * m.rsqrt()).unsqueeze(-1), "mask": src_mask},
                     step={"inputs": [empty] * len(self.convs), "t": src_mask.new_zeros(B, dtype=torch.long)})

    def run(self, tgt: Tensor, state: State, return_alignment: bool = False):
        """tgt (B, T) at positions t .. t+T-1 -> logits (B, T, V), the state after them (and each layer's attention
        weights (B, L, T, S))."""
        positions = state["t"][:1, None] + torch.arange(tgt.size(1), device=tgt.device)  # (1, T): every row's alike
        g = self.dropout(self.embed(tgt) + self.positions(positions))  # (B, T, E) the target embeddings
        h, inputs, weights = self.fc1(g), [], []  # (B, T, C)
        for conv, query, context, before in zip(self.convs, self.queries, self.contexts, state["inputs"]):
            x = torch.cat([before.to(h.dtype), self.dropout(h)], 1)  # (B, k-1+T, C) with the layer's history
            inputs.append(x[:, x.size(1) - self.history:])  # (B, k-1, C) for the next step
            x = F.glu(conv(x.transpose(1, 2)), dim=1).transpose(1, 2)  # (B, T, C) causal: no padding on the right
            d = (query(x) + g) * SQRT_HALF  # (B, T, E)
            scores = torch.bmm(d, state["keys"].transpose(1, 2).to(d.dtype)).float()  # (B, T, S)
            a = torch.softmax(scores.masked_fill(~state["mask"].unsqueeze(1), float("-inf")), -1)  # (B, T, S)
            c = torch.bmm(a.to(d.dtype), state["values"].to(d.dtype))  # (B, T, E), scaled by m·√(1/m) already
            x = (context(c) + x) * SQRT_HALF  # (B, T, C)
            h = (x + h) * SQRT_HALF  # (B, T, C)
            weights.append(a)
        logits = self.out(self.dropout(self.fc2(h)))  # (B, T, V)
        state = state.updated(inputs=inputs, t=state["t"] + tgt.size(1))
        return (logits, state, torch.stack(weights, 1)) if return_alignment else (logits, state)


@register("convs2s", colour="tab:orange", order=3,
          small={"emb_dim": 12, "channels": 16, "n_encoder_layers": 2, "n_decoder_layers": 2, "out_dim": 10})
class ConvS2S(EncoderDecoder):
    """Gehring et al. 2017. Defaults are a small model for the embedded task; the paper's WMT models have 15-20
    layers of 512-1024 channels and 768-dimensional embeddings. `kernel_size` must be odd (the encoder centres it)."""

    def __init__(self, *, src_vocab_size: int, tgt_vocab_size: int, pad_id: int, emb_dim: int = 128,
                 channels: int = 128, n_encoder_layers: int = 4, n_decoder_layers: int = 4, kernel_size: int = 3,
                 out_dim: int = 128, dropout: float = 0.1, max_positions: int = 1024):
        check_positive(src_vocab_size=src_vocab_size, tgt_vocab_size=tgt_vocab_size, emb_dim=emb_dim,
                       channels=channels, n_encoder_layers=n_encoder_layers, n_decoder_layers=n_decoder_layers,
                       kernel_size=kernel_size, out_dim=out_dim, max_positions=max_positions)
        check_dropout(dropout=dropout)
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size ({kernel_size}) must be odd")
        sizes = {"pad_id": pad_id, "emb_dim": emb_dim, "channels": channels, "kernel_size": kernel_size,
                 "dropout": dropout, "max_positions": max_positions}
        super().__init__(
            ConvEncoder(vocab_size=src_vocab_size, n_layers=n_encoder_layers, n_attention_layers=n_decoder_layers,
                        **sizes),
            ConvDecoder(vocab_size=tgt_vocab_size, n_layers=n_decoder_layers, out_dim=out_dim, **sizes),
        )
        self.max_positions = max_positions

    def attention_maps(self, src: Tensor, src_mask: Tensor, tgt_in: Tensor) -> Tensor:
        """The attention weights (B, L, 1, T, S) of a teacher-forced pass, one attention (a single head) per decoder
        layer."""
        return self.decoder.run(tgt_in, self.init_state(src, src_mask), return_alignment=True)[2][:, :, None]

    def alignment(self, src: Tensor, src_mask: Tensor, tgt_in: Tensor) -> Tensor:
        """Averaged over the decoder's layers, as fairseq draws it (B, T, S)."""
        return self.attention_maps(src, src_mask, tgt_in).mean((1, 2))  # (B, T, S)

    @classmethod
    def at_width(cls, width: int, *, max_len: int, **common) -> ConvS2S:
        return cls(emb_dim=width, channels=width, n_encoder_layers=1, n_decoder_layers=1, out_dim=width,
                   max_positions=max_len, **common)

    @classmethod
    def cost(cls, phase: str, explicit_attention: bool) -> tuple[int, int] | None:
        """A convolution costs k·n·d² (Vaswani et al.'s Table 1), but every decoder layer also attends over the n
        source positions at each of n target positions: n² in time, and in training memory (the weights are
        stored); a decoding step keeps only its own weights and k-1 inputs a layer."""
        return {"train": (2, 2), "decode": (2, 1)}.get(phase)

    def forward_flops(self, src_len: int | Tensor, tgt_len: int | Tensor) -> int | Tensor:
        """With S = src_len, T = tgt_len, embeddings E, channels C, kernel k, output width F, V target words:

            encoder, per source token       2·E·C (fc1) + layers · 2·k·C·2C (convolutions) + 2·C·E (fc2)
            decoder, per target token       2·E·C (fc1) + layers · (2·k·C·2C + 2·C·E + 2·E·C)
                                            (convolution, W_d, W_c) + 2·C·F + 2·F·V (fc2, output)
            per target and source token     layers · (2·E + 2·E)   d·z and Σ a (z + e)
        """
        enc, dec = self.encoder, self.decoder
        E, C, k = dec.fc1.in_features, dec.fc1.out_features, dec.convs[0].kernel_size[0]
        F_, V = dec.out.in_features, dec.out.out_features  # (F_: F is torch.nn.functional here)
        Le, Ld = len(enc.convs), len(dec.convs)
        conv = 2 * k * C * 2 * C
        encoder = src_len * (2 * E * C + Le * conv + 2 * C * E)
        decoder = tgt_len * (2 * E * C + Ld * (conv + 4 * C * E) + 2 * C * F_ + 2 * F_ * V)
        return encoder + decoder + src_len * tgt_len * Ld * 4 * E
