"""Scheduled sampling: training on the model's own predictions as well as on the references, against exposure bias
(a model trained only with teacher forcing never sees its own mistakes in its input, yet decodes from them).

Bengio et al. 2015 ("Scheduled Sampling for Sequence Prediction with Recurrent Neural Networks") feed each decoder
input from the reference with probability ε_i and otherwise the model's own previous prediction, ε_i falling with the
update i. Token by token this needs the decoder's own step (`method: step`, through `decoder.step`, as decoding
runs). The Transformer trains every position at once, so Mihaylova & Martins 2019 ("Scheduled Sampling for
Transformers") make two passes (`method: two_pass`): a teacher-forced pass without gradients predicts every
position, and the second pass trains on the references mixed with those predictions. Lake & Baroni 2018 draw once per
sentence (`unit: sentence`): a whole target teacher-forced with probability 0.5, or decoded from the model's own
outputs. The prediction fed back is the most probable token (Bengio et al. also sampled from the distribution).
Both methods use only the interface of `zoo.models.base`, so they work for every architecture.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from zoo.models.base import EncoderDecoder

METHODS, UNITS, SCHEDULES = ("step", "two_pass"), ("token", "sentence"), ("constant", "linear", "inverse_sigmoid")


@dataclass(frozen=True)
class ScheduledSampling:
    method: str = "step"
    unit: str = "token"            # draw the reference or the prediction for each input token, or each sentence
    schedule: str = "inverse_sigmoid"
    p: float = 0.5                 # constant: ε itself; linear and inverse_sigmoid: the floor ε falls to
    k: float = 1000.0              # linear: updates to fall from 1 to p; inverse_sigmoid: ε_i = k / (k + exp(i / k))

    def __post_init__(self):
        bad = [f"{name} ({value!r}) must be one of {list(allowed)}" for name, value, allowed in
               (("method", self.method, METHODS), ("unit", self.unit, UNITS), ("schedule", self.schedule, SCHEDULES))
               if value not in allowed]
        bad += [f"p ({self.p}) must be in [0, 1]"] * (not 0 <= self.p <= 1)
        bad += [f"k ({self.k}) must be > 0"] * (not self.k > 0)
        bad += [f"k ({self.k}) must be >= 1 for inverse_sigmoid (ε_0 = k / (k + 1))"] * (
            self.schedule == "inverse_sigmoid" and 0 < self.k < 1)
        if bad:
            raise ValueError("; ".join(bad))

    def gold_probability(self, update: int) -> float:
        """ε_i, the probability that an input is the reference's token at update i (from 0)."""
        if self.schedule == "constant":
            return self.p
        if self.schedule == "linear":
            return max(self.p, 1.0 - (1.0 - self.p) * update / self.k)
        return max(self.p, self.k / (self.k + math.exp(min(update / self.k, 700.0))))  # (exp overflows past 709)

    def gold_mask(self, tgt_in: Tensor, update: int) -> Tensor:
        """(B, T) True where the input is the reference's token: BOS always, the rest drawn with ε_i."""
        B, T = tgt_in.shape
        draw = torch.rand(B, T if self.unit == "token" else 1, device=tgt_in.device) < self.gold_probability(update)
        mask = draw.expand(B, T).clone()  # (B, T)
        mask[:, 0] = True
        return mask

    def logits(self, net: EncoderDecoder, src: Tensor, src_mask: Tensor, tgt_in: Tensor, update: int) -> Tensor:
        """The training logits (B, T, V) at update `update`: teacher-forced where every input is drawn from the
        reference (exactly `net(src, src_mask, tgt_in)`, and with ε_i = 1 without a draw, so that the random state
        is teacher forcing's too), else `mixed`."""
        if self.gold_probability(update) >= 1.0:
            return net(src, src_mask, tgt_in)
        gold = self.gold_mask(tgt_in, update)
        return net(src, src_mask, tgt_in) if gold.all() else self.mixed(net, src, src_mask, tgt_in, gold)

    def mixed(self, net: EncoderDecoder, src: Tensor, src_mask: Tensor, tgt_in: Tensor, gold: Tensor) -> Tensor:
        """Logits (B, T, V) with each input the reference's where `gold` (B, T) says so, else the model's most
        probable token for that position: from the step before (`step`), or from a teacher-forced first pass
        (`two_pass`)."""
        if self.method == "two_pass":
            with torch.no_grad():
                predicted = net(src, src_mask, tgt_in).argmax(-1)  # (B, T) the guess for each next input
            own = torch.cat([tgt_in[:, :1], predicted[:, :-1]], 1)  # (B, T) input t+1 is the guess made at t
            return net(src, src_mask, torch.where(gold, tgt_in, own))
        return free_running(net, src, src_mask, tgt_in, gold)


def free_running(net: EncoderDecoder, src: Tensor, src_mask: Tensor, tgt_in: Tensor, gold: Tensor) -> Tensor:
    """Logits (B, T, V) decoded one step at a time, as greedy search runs, with gradients: each input is the
    reference's token where `gold` (B, T) says so, else the most probable token of the step before. Beyond a
    target's end the inputs do not matter: the decoder is causal and the loss ignores padding."""
    state = net.init_state(src, src_mask)
    token, out = tgt_in[:, 0], []  # BOS
    for t in range(tgt_in.size(1)):
        logits, state = net.decoder.step(token, state)  # (B, V)
        out.append(logits)
        if t + 1 < tgt_in.size(1):
            token = torch.where(gold[:, t + 1], tgt_in[:, t + 1], logits.detach().argmax(-1))  # (B,)
    return torch.stack(out, 1)  # (B, T, V)
