"""GRU encoder-decoder with a fixed-length context vector (Cho et al. 2014, "Learning Phrase Representations using
RNN Encoder-Decoder for Statistical Machine Translation", arXiv:1406.1078, section 2 and appendix A).

The encoder reads the source and keeps only its last hidden state; everything the decoder learns about the source
must pass through that one vector:

    h_t = GRU(e(x_t), h_{t-1})                 encoder, over the real source tokens
    c   = tanh(V h_N)                          the fixed-length context vector (A.1.1)
    s_0 = tanh(V' c)                           the decoder's initial state
    s_t = GRU([e(y_{t-1}); c], s_{t-1})        c is fed at every decoder step (A.1.2)
    p(y_t | ...) = softmax(G maxout(O_h s_t + O_y e(y_{t-1}) + O_c c))    deep output with maxout units

Because c is the same at every step, the teacher-forced decoder is one fused `nn.GRU` call over the whole target,
not a Python loop over time.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from zoo.models.base import (Decoder, Encoder, EncoderDecoder, State, check_dropout, check_positive, maxout,
                             normal_embedding, packed_rnn)
from zoo.models.registry import register


class ContextEncoder(Encoder):
    def __init__(self, *, vocab_size: int, pad_id: int, emb_dim: int, hidden: int, context: int, n_layers: int,
                 dropout: float):
        super().__init__()
        self.embed = normal_embedding(vocab_size, emb_dim, pad_id)
        self.rnn = nn.GRU(emb_dim, hidden, n_layers, batch_first=True, dropout=dropout if n_layers > 1 else 0.0)
        self.to_context = nn.Linear(hidden, context)  # V
        self.dropout = nn.Dropout(dropout)

    def forward(self, src: Tensor, src_mask: Tensor) -> Tensor:
        x = self.dropout(self.embed(src))  # (B, S, E)
        _, h_n = packed_rnn(self.rnn, x, src_mask)  # h_n: (layers, B, H), each row's state after its last token
        return torch.tanh(self.to_context(h_n[-1]))  # (B, C) the context vector c


class ContextDecoder(Decoder):
    def __init__(self, *, vocab_size: int, pad_id: int, emb_dim: int, hidden: int, context: int, n_layers: int,
                 maxout_dim: int, dropout: float):
        super().__init__()
        self.n_layers, self.hidden = n_layers, hidden
        self.embed = normal_embedding(vocab_size, emb_dim, pad_id)
        self.init_hidden = nn.Linear(context, n_layers * hidden)  # V'
        self.rnn = nn.GRU(emb_dim + context, hidden, n_layers, batch_first=True,
                          dropout=dropout if n_layers > 1 else 0.0)
        self.deep_out = nn.Linear(hidden + emb_dim + context, 2 * maxout_dim)  # [O_h O_y O_c], 2 units per maxout
        self.out = nn.Linear(maxout_dim, vocab_size)  # G
        self.dropout = nn.Dropout(dropout)

    def init_state(self, enc_out: Tensor, src_mask: Tensor) -> State:
        c = enc_out  # (B, C)
        s0 = torch.tanh(self.init_hidden(c)).view(-1, self.n_layers, self.hidden)  # (B, layers, H), batch-first
        return State(source={"context": c}, step={"hidden": s0})

    def forward(self, tgt_in: Tensor, state: State) -> Tensor:
        c = state["context"]  # (B, C)
        e = self.dropout(self.embed(tgt_in))  # (B, T, E)
        c_t = c.unsqueeze(1).expand(-1, e.size(1), -1)  # (B, T, C) the same c at every step
        s, _ = self.rnn(torch.cat([e, c_t], -1), state["hidden"].transpose(0, 1).contiguous())  # (B, T, H)
        return self.output(s, e, c_t)  # (B, T, V)

    def step(self, token: Tensor, state: State) -> tuple[Tensor, State]:
        c = state["context"].unsqueeze(1)  # (B, 1, C)
        e = self.dropout(self.embed(token)).unsqueeze(1)  # (B, 1, E) (dropout: training through steps)
        s, h = self.rnn(torch.cat([e, c], -1), state["hidden"].transpose(0, 1).contiguous())  # (B, 1, H)
        logits = self.output(s, e, c).squeeze(1)  # (B, V)
        return logits, state.updated(hidden=h.transpose(0, 1))

    def output(self, s: Tensor, e: Tensor, c: Tensor) -> Tensor:
        t = maxout(self.deep_out(torch.cat([self.dropout(s), e, c], -1)))  # (B, T, maxout_dim); e had its dropout
        return self.out(self.dropout(t))  # (B, T, V)


@register("gru", colour="tab:red", order=0, small={"emb_dim": 16, "hidden": 24, "context": 20, "maxout_dim": 12})
class GRUEncoderDecoder(EncoderDecoder):
    """Cho et al. 2014. Defaults are a small model for the embedded task; the paper used 1000 hidden units."""

    def __init__(self, *, src_vocab_size: int, tgt_vocab_size: int, pad_id: int, emb_dim: int = 128,
                 hidden: int = 256, context: int = 256, n_layers: int = 1, maxout_dim: int = 256,
                 dropout: float = 0.1):
        check_positive(src_vocab_size=src_vocab_size, tgt_vocab_size=tgt_vocab_size, emb_dim=emb_dim,
                       hidden=hidden, context=context, n_layers=n_layers, maxout_dim=maxout_dim)
        check_dropout(dropout=dropout)
        super().__init__(
            ContextEncoder(vocab_size=src_vocab_size, pad_id=pad_id, emb_dim=emb_dim, hidden=hidden,
                           context=context, n_layers=n_layers, dropout=dropout),
            ContextDecoder(vocab_size=tgt_vocab_size, pad_id=pad_id, emb_dim=emb_dim, hidden=hidden,
                           context=context, n_layers=n_layers, maxout_dim=maxout_dim, dropout=dropout),
        )

    @classmethod
    def at_width(cls, width: int, *, max_len: int, **common) -> GRUEncoderDecoder:
        return cls(emb_dim=width, hidden=width, context=width, maxout_dim=width, **common)

    @classmethod
    def cost(cls, phase: str, explicit_attention: bool) -> tuple[int, int] | None:
        """n steps of d² work, n states kept; decoding keeps only the state, so it has no cache to go without."""
        return {"train": (1, 1), "decode": (1, 1)}.get(phase)

    def forward_flops(self, src_len: int | Tensor, tgt_len: int | Tensor) -> int | Tensor:
        """With S = src_len, T = tgt_len, embeddings E, hidden H, context C, L layers, maxout M, V target words:

            encoder GRU, per source token   2·3H·(E + H) + (L-1)·2·3H·2H   W x and U h for r, z and h̃, a layer
            c = tanh(V h_N), s_0, once      2·H·C + 2·C·L·H
            decoder GRU, per target token   2·3H·(E + C + H) + (L-1)·2·3H·2H
            deep output, per target token   2·(H + E + C)·2M + 2·M·V        [O_h O_y O_c] and G

        The encoder runs over the real source tokens only (packed), so S is the sentence's own length."""
        E, H, L = self.encoder.rnn.input_size, self.encoder.rnn.hidden_size, self.encoder.rnn.num_layers
        C, M, V = self.encoder.to_context.out_features, self.decoder.out.in_features, self.decoder.out.out_features
        upper_layers = (L - 1) * 2 * 3 * H * 2 * H  # layers 2..L read the H-wide state below
        encoder = src_len * (2 * 3 * H * (E + H) + upper_layers) + 2 * H * C + 2 * C * L * H
        decoder = tgt_len * (2 * 3 * H * (E + C + H) + upper_layers + 2 * (H + E + C) * 2 * M + 2 * M * V)
        return encoder + decoder
