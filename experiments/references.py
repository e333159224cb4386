"""What users would pick instead of the zoo, built to the same shape, for `bench.py` to race against:

- `marian_like`: Hugging Face `MarianMTModel` (random init, no download) with our Transformer's dimensions;
- `TorchTransformer`: a translation model around `torch.nn.Transformer`, the PyTorch tutorials' way;
- `TextbookAttention` / `textbook_gru`: the per-time-step Python loops of the popular seq2seq tutorials, run on our
  own RNN modules and weights, so they compute exactly what our teacher-forced passes compute;
- `recompute_greedy`: decoding that runs the whole prefix through the decoder at every step (no cache).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zoo.models.attention import AttentionEncoderDecoder
from zoo.models.base import EncoderDecoder
from zoo.models.positions import sinusoidal_table
from zoo.models.transformer import Transformer


def shape(net: Transformer) -> dict:
    """The dimensions of one of our Transformers."""
    layer = net.encoder.layers[0]
    return {"d_model": net.decoder.out.in_features, "n_heads": layer.self_attn.h,
            "d_ff": layer.ffn[0].out_features, "n_encoder_layers": len(net.encoder.layers),
            "n_decoder_layers": len(net.decoder.layers), "dropout": net.encoder.embed.dropout.p,
            "attention_dropout": layer.self_attn.dropout, "activation_dropout": layer.ffn[2].p,
            "src_vocab_size": net.encoder.embed.tokens.num_embeddings, "tgt_vocab_size": net.decoder.out.out_features}


def marian_like(net: Transformer, *, pad_id: int, bos_id: int, eos_id: int):
    """A `MarianMTModel` of identical shape: post-LN, ReLU, √D-scaled embeddings, sinusoidal positions, separate
    source and target embeddings and an untied output projection, the same dropout in the same places."""
    from transformers import MarianConfig, MarianMTModel  # the optional `bench` extra

    s = shape(net)
    config = MarianConfig(
        vocab_size=s["src_vocab_size"], decoder_vocab_size=s["tgt_vocab_size"], d_model=s["d_model"],
        encoder_layers=s["n_encoder_layers"], decoder_layers=s["n_decoder_layers"],
        encoder_attention_heads=s["n_heads"], decoder_attention_heads=s["n_heads"],
        encoder_ffn_dim=s["d_ff"], decoder_ffn_dim=s["d_ff"], activation_function="relu", scale_embedding=True,
        dropout=s["dropout"], attention_dropout=s["attention_dropout"], activation_dropout=s["activation_dropout"],
        max_position_embeddings=1024, share_encoder_decoder_embeddings=False, tie_word_embeddings=False,
        pad_token_id=pad_id, eos_token_id=eos_id, decoder_start_token_id=bos_id, forced_eos_token_id=None)
    return MarianMTModel(config)


def marian_forward(model, src: Tensor, src_mask: Tensor, tgt_in: Tensor) -> Tensor:
    return model(input_ids=src, attention_mask=src_mask, decoder_input_ids=tgt_in,
                 decoder_attention_mask=tgt_in != model.config.pad_token_id).logits  # (B, T, V)


class TorchTransformer(nn.Module):
    """`nn.Transformer` with what it leaves to its user: √D-scaled embeddings, sinusoidal positions, the causal
    mask, padding masks and the output projection. `nn.Transformer` has one dropout rate for every place; the
    attention-weight and FFN-activation dropouts are set to ours afterwards, so all contenders drop the same."""

    def __init__(self, *, src_vocab_size: int, tgt_vocab_size: int, pad_id: int, d_model: int, n_heads: int,
                 d_ff: int, n_encoder_layers: int, n_decoder_layers: int, dropout: float, attention_dropout: float,
                 activation_dropout: float):
        super().__init__()
        self.pad_id, self.scale = pad_id, d_model**0.5
        self.src_embed = nn.Embedding(src_vocab_size, d_model, padding_idx=pad_id)
        self.tgt_embed = nn.Embedding(tgt_vocab_size, d_model, padding_idx=pad_id)
        self.register_buffer("pe", sinusoidal_table(1024, d_model), persistent=False)  # (1024, D)
        self.dropout = nn.Dropout(dropout)
        self.transformer = nn.Transformer(d_model, n_heads, n_encoder_layers, n_decoder_layers, d_ff, dropout,
                                          batch_first=True)
        for layer in [*self.transformer.encoder.layers, *self.transformer.decoder.layers]:
            for attention in (layer.self_attn, getattr(layer, "multihead_attn", None)):
                if attention is not None:
                    attention.dropout = attention_dropout
            layer.dropout.p = activation_dropout  # the one after the FFN's activation
        self.out = nn.Linear(d_model, tgt_vocab_size)

    def embed(self, table: nn.Embedding, tokens: Tensor) -> Tensor:
        return self.dropout(table(tokens) * self.scale + self.pe[: tokens.size(1)])  # (B, T, D)

    def forward(self, src: Tensor, src_mask: Tensor, tgt_in: Tensor) -> Tensor:
        T = tgt_in.size(1)
        causal = nn.Transformer.generate_square_subsequent_mask(T, device=src.device, dtype=torch.bool)  # (T, T)
        x = self.transformer(self.embed(self.src_embed, src), self.embed(self.tgt_embed, tgt_in), tgt_mask=causal,
                             src_key_padding_mask=~src_mask, memory_key_padding_mask=~src_mask,
                             tgt_key_padding_mask=tgt_in == self.pad_id, tgt_is_causal=True)  # (B, T, D)
        return self.out(x)  # (B, T, V)


class TextbookAttention(nn.Module):
    """Bahdanau et al.'s decoder as the PyTorch seq2seq tutorials write it (bentrevett/pytorch-seq2seq, notebook 4,
    here batch-first), around one of our models. At every target step the decoder state is repeated along the
    source, concatenated with every annotation and projected together, [s; h_j] W = W_a s + U_a h_j; an `nn.GRU`
    reads the one step [E y; c]; the output layer's logits are written into a tensor allocated for all steps. The
    GRU starts as a copy of our W, C and U, so the logits (B, T, V) are ours.

    `lean` tightens the tutorial where it is slowest: an `nn.GRUCell` (the same weights) instead of a one-step
    `nn.GRU`, and the steps' logits stacked at the end instead of written into the preallocated tensor, whose
    backward pass copies the whole (B, T, V) gradient once per step."""

    def __init__(self, net: AttentionEncoderDecoder, lean: bool = False):
        super().__init__()
        self.net, self.lean, dec = net, lean, net.decoder
        self.rnn = nn.GRU(dec.W.in_features + dec.C.in_features, dec.U.in_features, batch_first=True)
        with torch.no_grad():
            self.rnn.weight_ih_l0.copy_(torch.cat([dec.W.weight, dec.C.weight], 1))
            self.rnn.bias_ih_l0.copy_(dec.W.bias)
            self.rnn.weight_hh_l0.copy_(dec.U.weight)
            self.rnn.bias_hh_l0.copy_(dec.U.bias)
        self.rnn.to(dec.U.weight.device)

    def forward(self, src: Tensor, src_mask: Tensor, tgt_in: Tensor) -> Tensor:
        annotations, backward_first = self.net.encoder(src, src_mask)  # (B, S, 2H), (B, H)
        dec, (B, S), T = self.net.decoder, src.shape, tgt_in.size(1)
        W = torch.cat([dec.attention.W_a.weight, dec.attention.U_a.weight], 1)  # (A, Hd + 2H) the tutorial's attn
        s = torch.tanh(dec.init_hidden(backward_first))  # (B, Hd)
        logits = [] if self.lean else torch.zeros(B, T, dec.out.out_features, device=src.device)  # (B, T, V)
        for i in range(T):
            e = dec.dropout(dec.embed(tgt_in[:, i]))  # (B, E)
            energy = torch.tanh(F.linear(torch.cat([s.unsqueeze(1).expand(-1, S, -1), annotations], -1), W,
                                         dec.attention.U_a.bias))  # (B, S, A)
            scores = dec.attention.v_a(energy).squeeze(-1).float().masked_fill(~src_mask, float("-inf"))  # (B, S)
            c = torch.bmm(scores.softmax(-1).unsqueeze(1).to(annotations.dtype), annotations).squeeze(1)  # (B, 2H)
            x = torch.cat([e, c], -1)  # (B, E + 2H)
            if self.lean:
                s = torch.gru_cell(x, s, self.rnn.weight_ih_l0, self.rnn.weight_hh_l0, self.rnn.bias_ih_l0,
                                   self.rnn.bias_hh_l0)  # (B, Hd), what nn.GRUCell computes
                logits.append(dec.output(s, e, c))  # (B, V)
            else:
                s = self.rnn(x.unsqueeze(1), s.unsqueeze(0).contiguous())[1][0]  # (B, Hd)
                logits[:, i] = dec.output(s, e, c)  # (B, V)
        return torch.stack(logits, 1) if self.lean else logits  # (B, T, V)


def textbook_gru(net: EncoderDecoder, src: Tensor, src_mask: Tensor, tgt_in: Tensor) -> Tensor:
    """Teacher forcing as a loop over target positions, one decoder step (a one-step `nn.GRU` and the output layer)
    at a time, each step's logits written into a tensor allocated for all of them, as the tutorials do for Cho et
    al.'s model (bentrevett/pytorch-seq2seq, notebook 2, here batch-first). Logits (B, T, V)."""
    state, T = net.init_state(src, src_mask), tgt_in.size(1)
    logits = torch.zeros(src.size(0), T, net.decoder.out.out_features, device=src.device)  # (B, T, V)
    for i in range(T):
        logits[:, i], state = net.decoder.step(tgt_in[:, i], state)  # (B, V)
    return logits  # (B, T, V)


@torch.no_grad()
def recompute_greedy(net: EncoderDecoder, src: Tensor, src_mask: Tensor, *, bos_id: int, steps: int) -> Tensor:
    """Greedy decoding without a decoding cache: the source is encoded once, but every step runs the whole prefix
    through the decoder again and keeps the last position. `steps` tokens, no early stop. (B, steps)."""
    state = net.init_state(src, src_mask)
    tokens = torch.full((src.size(0), 1), bos_id, dtype=torch.long, device=src.device)  # (B, 1)
    for _ in range(steps):
        next_token = net.decoder(tokens, state)[:, -1].argmax(-1)  # (B,)
        tokens = torch.cat([tokens, next_token.unsqueeze(1)], 1)  # (B, t+1)
    return tokens[:, 1:]  # (B, steps)
