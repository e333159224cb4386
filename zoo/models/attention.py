"""RNN encoder-decoder with additive attention (Bahdanau, Cho & Bengio 2015, "Neural Machine Translation by Jointly
Learning to Align and Translate", arXiv:1409.0473, section 3 and appendix A).

No fixed-length vector: the decoder looks back at every source annotation at every step.

    h_j = [→h_j ; ←h_j]                        bidirectional GRU annotations (3.2)
    s_0 = tanh(W_s ←h_1)                       decoder initial state from the backward state (A.2.2)
    e_ij = v_aᵀ tanh(W_a s_{i-1} + U_a h_j)     additive alignment model (A.1.2); U_a h_j is computed once per source
    α_ij = softmax_j(e_ij)                     alignment weights, padding masked out (eq. 6)
    c_i  = Σ_j α_ij h_j                        a context vector for every target position (eq. 5)
    s_i  = GRU(s_{i-1}, y_{i-1}, c_i)          (eq. 4), with the matrices W (from E y), U (from s), C (from c) of A.2.2
    p(y_i | ...) = softmax(W_o maxout(U_o s_i + V_o e(y_{i-1}) + C_o c_i))    deep output with maxout units

The query of step i depends on s_{i-1}, so teacher forcing still runs one GRU cell per target position; that loop
holds the recurrence and nothing else (see `AttentionDecoder.forward`). With `bidirectional=False` the encoder reads
left to right only, as Lake & Baroni 2018's did: h_j = →h_j and s_0 = tanh(W_s →h_S) (their decoder started from
→h_S itself). Shapes: K is the annotations' width, 2H (H with one direction).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from zoo.models.base import (Decoder, Encoder, EncoderDecoder, State, check_dropout, check_positive, maxout,
                             normal_embedding, packed_rnn)
from zoo.models.registry import register


class AnnotationEncoder(Encoder):
    def __init__(self, *, vocab_size: int, pad_id: int, emb_dim: int, hidden: int, bidirectional: bool,
                 dropout: float):
        super().__init__()
        self.embed = normal_embedding(vocab_size, emb_dim, pad_id)
        self.rnn = nn.GRU(emb_dim, hidden, batch_first=True, bidirectional=bidirectional)
        self.dropout = nn.Dropout(dropout)

    def forward(self, src: Tensor, src_mask: Tensor) -> tuple[Tensor, Tensor]:
        x = self.dropout(self.embed(src))  # (B, S, E)
        annotations, h_n = packed_rnn(self.rnn, x, src_mask)  # (B, S, dirs*H), (dirs, B, H)
        return annotations, h_n[-1]  # ←h_1, the backward state after the whole source (→h_S if one direction)


class AdditiveAttention(nn.Module):
    """e = v_aᵀ tanh(W_a s + U_a h): the 'alignment model' a(s_{i-1}, h_j), a one-hidden-layer network."""

    def __init__(self, *, query_dim: int, key_dim: int, attn_dim: int):
        super().__init__()
        self.W_a = nn.Linear(query_dim, attn_dim, bias=False)
        self.U_a = nn.Linear(key_dim, attn_dim)
        self.v_a = nn.Linear(attn_dim, 1, bias=False)

    def forward(self, query: Tensor, keys: Tensor, annotations: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """query s_{i-1} (B, Hd), keys U_a h (B, S, A), annotations h (B, S, K) -> context (B, K), α (B, S)."""
        e = self.v_a(torch.tanh(self.W_a(query).unsqueeze(1) + keys)).squeeze(-1)  # (B, S)
        e = e.float().masked_fill(~mask, float("-inf"))  # softmax in fp32, padding gets zero weight
        alpha = torch.softmax(e, -1)  # (B, S)
        context = torch.bmm(alpha.unsqueeze(1).to(annotations.dtype), annotations).squeeze(1)  # (B, K)
        return context, alpha


class AttentionDecoder(Decoder):
    def __init__(self, *, vocab_size: int, pad_id: int, emb_dim: int, enc_hidden: int, annotation_dim: int,
                 hidden: int, attn_dim: int, maxout_dim: int, dropout: float):
        super().__init__()
        self.embed = normal_embedding(vocab_size, emb_dim, pad_id)
        self.init_hidden = nn.Linear(enc_hidden, hidden)  # W_s
        self.attention = AdditiveAttention(query_dim=hidden, key_dim=annotation_dim, attn_dim=attn_dim)
        self.W = nn.Linear(emb_dim, 3 * hidden)  # [W_r; W_z; W] E y: the GRU's gates from the previous word
        self.U = nn.Linear(hidden, 3 * hidden)  # [U_r; U_z; U] s: from the previous state
        self.C = nn.Linear(annotation_dim, 3 * hidden, bias=False)  # [C_r; C_z; C] c: from the context
        self.deep_out = nn.Linear(hidden + emb_dim + annotation_dim, 2 * maxout_dim)  # [U_o V_o C_o]
        self.out = nn.Linear(maxout_dim, vocab_size)  # W_o
        self.dropout = nn.Dropout(dropout)

    def init_state(self, enc_out: tuple[Tensor, Tensor], src_mask: Tensor) -> State:
        annotations, last = enc_out  # (B, S, K), (B, H) ←h_1 (or →h_S)
        keys = self.attention.U_a(annotations)  # (B, S, A) computed once, reused at every step
        s0 = torch.tanh(self.init_hidden(last))  # (B, Hd)
        return State(source={"annotations": annotations, "keys": keys, "mask": src_mask}, step={"hidden": s0})

    def forward(self, tgt_in: Tensor, state: State, return_alignment: bool = False):
        """Teacher forcing. With `return_alignment`, also the weights α (B, T, S), e.g. to plot them. The loop holds
        only what depends on s_{i-1}: the previous words' share of the gates, W E y, is one product for all
        positions before it, and the output layer runs after it."""
        e = self.dropout(self.embed(tgt_in))  # (B, T, E)
        s = state["hidden"]  # (B, Hd)
        states, contexts, alphas = [], [], []
        for from_word in self.W(e).unbind(1):  # (B, 3Hd) each; unbind, not [:, i], whose backward fills (B, T, 3Hd)
            s, c, alpha = self.recur(from_word, s, state)  # (B, Hd), (B, K), (B, S)
            states.append(s)
            contexts.append(c)
            alphas.append(alpha)
        logits = self.output(torch.stack(states, 1), e, torch.stack(contexts, 1))  # (B, T, V)
        return (logits, torch.stack(alphas, 1)) if return_alignment else logits

    def step(self, token: Tensor, state: State) -> tuple[Tensor, State]:
        e = self.dropout(self.embed(token))  # (B, E) (dropout: training through steps, zoo/sampling.py)
        s, c, _ = self.recur(self.W(e), state["hidden"], state)  # (B, Hd), (B, K)
        return self.output(s, e, c), state.updated(hidden=s)  # (B, V)

    def recur(self, from_word: Tensor, s: Tensor, state: State) -> tuple[Tensor, Tensor, Tensor]:
        """s_i, c_i, α_i from W E y_{i-1} + b (B, 3Hd) and s_{i-1} (B, Hd); the gates in fp32."""
        c, alpha = self.attention(s, state["keys"], state["annotations"], state["mask"])  # (B, K), (B, S)
        return gru_update((from_word + self.C(c)).float(), self.U(s).float(), s), c, alpha

    def output(self, s: Tensor, e: Tensor, c: Tensor) -> Tensor:
        t = maxout(self.deep_out(torch.cat([self.dropout(s), e, c], -1)))  # (..., maxout_dim); e had its dropout
        return self.out(self.dropout(t))  # (..., V)


def gru_update(x: Tensor, h: Tensor, s: Tensor) -> Tensor:
    """The GRU's update from the gates' inputs x = W E y + C c + b (B, 3Hd) and h = U s + b (B, 3Hd), each in
    reset, update, candidate order: r = σ(x_r + h_r), z = σ(x_z + h_z), ŝ = tanh(x_ŝ + r ∘ h_ŝ),
    s' = z ∘ s + (1 - z) ∘ ŝ. That is appendix A.2.2 as `nn.GRU` and cuDNN compute it: their z keeps the old state
    where the paper's gates the new one, and the reset comes after the product, r ∘ (U s), not inside it, U(r ∘ s),
    so that the three products of s are one."""
    Hd = s.size(1)
    r, z = torch.sigmoid(x[:, : 2 * Hd] + h[:, : 2 * Hd]).chunk(2, -1)  # (B, Hd) each
    candidate = torch.tanh(torch.addcmul(x[:, 2 * Hd:], r, h[:, 2 * Hd:]))  # (B, Hd) ŝ
    return torch.lerp(candidate, s.float(), z)  # (B, Hd) z ∘ s + (1 - z) ∘ ŝ in one op; s0 may be bf16


@register("attention", colour="tab:blue", order=1,
          small={"emb_dim": 16, "enc_hidden": 12, "hidden": 24, "attn_dim": 10, "maxout_dim": 12})
class AttentionEncoderDecoder(EncoderDecoder):
    """Bahdanau et al. 2015 (RNNsearch). Defaults are small for the embedded task; the paper used 1000 units."""

    def __init__(self, *, src_vocab_size: int, tgt_vocab_size: int, pad_id: int, emb_dim: int = 128,
                 enc_hidden: int = 128, hidden: int = 256, attn_dim: int = 128, maxout_dim: int = 256,
                 dropout: float = 0.1, bidirectional: bool = True):
        check_positive(src_vocab_size=src_vocab_size, tgt_vocab_size=tgt_vocab_size, emb_dim=emb_dim,
                       enc_hidden=enc_hidden, hidden=hidden, attn_dim=attn_dim, maxout_dim=maxout_dim)
        check_dropout(dropout=dropout)
        super().__init__(
            AnnotationEncoder(vocab_size=src_vocab_size, pad_id=pad_id, emb_dim=emb_dim, hidden=enc_hidden,
                              bidirectional=bidirectional, dropout=dropout),
            AttentionDecoder(vocab_size=tgt_vocab_size, pad_id=pad_id, emb_dim=emb_dim, enc_hidden=enc_hidden,
                             annotation_dim=(1 + bidirectional) * enc_hidden, hidden=hidden, attn_dim=attn_dim,
                             maxout_dim=maxout_dim, dropout=dropout),
        )

    def attention_maps(self, src: Tensor, src_mask: Tensor, tgt_in: Tensor) -> Tensor:
        """Alignment weights α (B, 1, 1, T, S) of a teacher-forced pass, the picture of Bahdanau et al. Fig. 3: one
        attention, one 'head'."""
        alpha = self.decoder(tgt_in, self.init_state(src, src_mask), return_alignment=True)[1]  # (B, T, S)
        return alpha[:, None, None]  # (B, 1, 1, T, S)

    @classmethod
    def at_width(cls, width: int, *, max_len: int, **common) -> AttentionEncoderDecoder:
        """Annotations `width` wide: width / 2 a direction."""
        return cls(emb_dim=width, enc_hidden=width // 2, hidden=width, attn_dim=width, maxout_dim=width, **common)

    @classmethod
    def cost(cls, phase: str, explicit_attention: bool) -> tuple[int, int] | None:
        """Each of n decoder steps scores all n annotations: n² time. Training keeps tanh(W_a s + U_a h), (B, S, A),
        for every step: n² memory; decoding only the step's."""
        return {"train": (2, 2), "decode": (2, 1)}.get(phase)

    def forward_flops(self, src_len: int | Tensor, tgt_len: int | Tensor) -> int | Tensor:
        """With S = src_len, T = tgt_len, embeddings E, encoder H per direction and K = 2H annotations (K = H with
        one direction), decoder Hd, alignment A, maxout M, V target words:

            encoder GRU, per source token     K/H directions · 2·3H·(E + H)
            U_a h_j, per source token         2·K·A
            s_0 = tanh(W_s ←h_1), once        2·H·Hd
            per target token                  2·Hd·A + 2·3Hd·(E + K + Hd) + 2·(Hd + E + K)·2M + 2·M·V
                                              W_a s_{i-1}, the GRU (W, C, U), deep output [U_o V_o C_o], W_o
            per target and source token       2·A + 2·K    v_aᵀ tanh(...) and c_i = Σ_j α_ij h_j
        """
        E, H = self.encoder.rnn.input_size, self.encoder.rnn.hidden_size
        K, dirs = self.decoder.C.in_features, 1 + self.encoder.rnn.bidirectional
        Hd, A = self.decoder.U.in_features, self.decoder.attention.v_a.in_features
        M, V = self.decoder.out.in_features, self.decoder.out.out_features
        encoder = src_len * (dirs * 2 * 3 * H * (E + H) + 2 * K * A) + 2 * H * Hd
        decoder = tgt_len * (2 * Hd * A + 2 * 3 * Hd * (E + K + Hd) + 2 * (Hd + E + K) * 2 * M + 2 * M * V)
        return encoder + decoder + src_len * tgt_len * (2 * A + 2 * K)
