"""Greedy and beam search, written once against the interface of `zoo.models.base`: they call only
`model.init_state`, `model.decoder.step` and `state.select`, and never ask which architecture they hold.
`static_greedy_search` needs one thing more, a decoder whose `init_state` takes a `capacity` (fixed-size caches:
the Transformer's).

Both stop a row at EOS or at its length limit, max_len_a * source length + max_len_b (as fairseq's options of the
same names). Given `oracle_lengths`, they decode at an oracle length instead (Newman et al. 2020, "The EOS Decision and
Length Extrapolation"): EOS is barred until a row has that many tokens, and the row ends there, which separates
what a model writes from its decision to stop. The returned hypotheses are lists of token ids without BOS and EOS.
"""
from __future__ import annotations

import inspect

import torch
from torch import Tensor

from zoo.models.base import EncoderDecoder


def length_limits(src_mask: Tensor, max_len_a: float, max_len_b: int, oracle_lengths: Tensor | None = None) -> Tensor:
    """The most tokens each row may generate (B,); with `oracle_lengths`, exactly those."""
    if oracle_lengths is None:
        return (src_mask.sum(1) * max_len_a + max_len_b).long()  # (B,)
    if oracle_lengths.shape != src_mask.shape[:1] or not bool((oracle_lengths >= 1).all()):
        raise ValueError(f"oracle lengths must be one integer >= 1 per row; got {oracle_lengths.tolist()}")
    return oracle_lengths.long()  # (B,)


@torch.no_grad()
def greedy_search(model: EncoderDecoder, src: Tensor, src_mask: Tensor, *, bos_id: int, eos_id: int,
                  max_len_a: float = 1.2, max_len_b: int = 10, oracle_lengths: Tensor | None = None) -> list[list[int]]:
    """Take the most probable token at every step (never EOS before an oracle length). Finished rows leave the
    batch (`state.select`), so a batch costs as many steps as its longest output, each step only as wide as the rows
    still running."""
    B = src.size(0)
    state = model.init_state(src, src_mask)
    limits = length_limits(src_mask, max_len_a, max_len_b, oracle_lengths)  # (B,)
    active = torch.arange(B, device=src.device)  # rows of the original batch still decoding
    token = torch.full((B,), bos_id, dtype=torch.long, device=src.device)  # (B,)
    out: list[list[int]] = [[] for _ in range(B)]
    for t in range(int(limits.max())):
        logits, state = model.decoder.step(token, state)  # (b, V)
        if oracle_lengths is not None:
            logits[:, eos_id] = float("-inf")
        token = logits.float().argmax(-1)  # (b,) (the same ids; argmax over bf16 is 2-3x slower on CPU)
        for row, tok in zip(active.tolist(), token.tolist()):
            if tok != eos_id:
                out[row].append(tok)
        running = (token != eos_id) & (limits[active] > t + 1)  # (b,)
        if not running.all():
            keep = running.nonzero().squeeze(1)  # (b',)
            if keep.numel() == 0:
                break
            active, token, state = active[keep], token[keep], state.select(keep)
    return out


@torch.no_grad()
def static_greedy_search(model: EncoderDecoder, src: Tensor, src_mask: Tensor, *, bos_id: int, eos_id: int,
                         max_len_a: float = 1.2, max_len_b: int = 10, oracle_lengths: Tensor | None = None,
                         compile: bool = False, sync_every: int = 8) -> list[list[int]]:
    """`greedy_search` at fixed shapes: the decoder's self-attention caches are static (zoo/models/cache.py, the
    Transformer's with table positions), sized by the longest limit, and every row is stepped until all have ended
    (a finished row goes on being computed, its tokens thrown away). Every step is then the same computation on
    tensors at the same addresses, so with `compile` torch.compile compiles it once and, on a GPU, replays it as a
    CUDA graph ("reduce-overhead"), once per batch shape (rows, source length, limit). The host looks at the tokens
    only every `sync_every` steps, to stop early."""
    if "capacity" not in inspect.signature(model.decoder.init_state).parameters:
        raise ValueError(f"{type(model).__name__} has no static decoding: its decoder's init_state takes no capacity")
    if sync_every < 1:
        raise ValueError(f"sync_every ({sync_every}) must be >= 1")
    B = src.size(0)
    limits = length_limits(src_mask, max_len_a, max_len_b, oracle_lengths)  # (B,)
    steps = int(limits.max())
    state = model.decoder.init_state(model.encoder(src, src_mask), src_mask, capacity=steps)

    def step(token: Tensor) -> Tensor:  # the state's caches are written in place
        return model.decoder.step(token, state)[0]  # (B, V)

    if compile:
        for cache in state["caches"]:  # buffers the step writes into: CUDA graphs may keep them at their addresses
            for buffer in (cache.k, cache.v, cache.position):
                torch._dynamo.mark_static_address(buffer)
        step = torch.compile(step, fullgraph=True, dynamic=False,
                             mode="reduce-overhead" if src.device.type == "cuda" else None)
    token = torch.full((B,), bos_id, dtype=torch.long, device=src.device)  # (B,)
    out = torch.full((B, steps), eos_id, dtype=torch.long, device=src.device)  # (B, steps)
    finished = torch.zeros(B, dtype=torch.bool, device=src.device)  # (B,)
    for t in range(steps):
        logits = step(token)  # (B, V)
        if oracle_lengths is not None:
            logits[:, eos_id] = float("-inf")
        token = logits.float().argmax(-1).masked_fill(finished, eos_id)  # (B,) finished rows write EOS
        out[:, t] = token
        finished |= (token == eos_id) | (limits <= t + 1)
        if (t + 1) % sync_every == 0 and bool(finished.all()):
            break
    hyps = []
    for row, limit in zip(out.tolist(), limits.tolist()):
        row = row[:limit]
        hyps.append(row[: row.index(eos_id)] if eos_id in row else row)
    return hyps


def length_penalty(length: Tensor, alpha: float) -> Tensor:
    """GNMT's lp(Y) = ((5 + |Y|) / 6)^α (Wu et al. 2016, eq. 14); α = 0 ranks by total log-probability."""
    return ((5.0 + length) / 6.0) ** alpha


@torch.no_grad()
def beam_search(model: EncoderDecoder, src: Tensor, src_mask: Tensor, *, bos_id: int, eos_id: int,
                beam_size: int = 4, alpha: float = 0.6, max_len_a: float = 1.2,
                max_len_b: int = 10, oracle_lengths: Tensor | None = None) -> list[list[int]]:
    """Keep the `beam_size` best prefixes per sentence by total log-probability; a finished hypothesis stays in
    its beam with a frozen score (it can only be extended by EOS, at no cost). A sentence is done, and leaves the
    batch, once no open hypothesis can beat its best finished one by the length-penalised score
    log P(Y|X) / lp(Y): scores only fall, and lp grows at most to lp(limit), so an open hypothesis ends at best at
    score / lp(limit). This bound makes the early stop exact, not a heuristic. With beam_size 1 this is greedy. At
    an oracle length every hypothesis of a sentence has the same length, so the length penalty plays no part."""
    if beam_size < 1:
        raise ValueError(f"beam_size ({beam_size}) must be >= 1")
    if alpha < 0:
        raise ValueError(f"alpha ({alpha}) must be >= 0")
    B, K, device = src.size(0), beam_size, src.device
    state = model.init_state(src, src_mask).select(torch.arange(B, device=device).repeat_interleave(K))  # B*K
    limits = length_limits(src_mask, max_len_a, max_len_b, oracle_lengths).unsqueeze(1).expand(B, K).float()  # (B, K)
    scores = torch.full((B, K), float("-inf"), device=device)  # (B, K) total log-probability
    scores[:, 0] = 0.0  # all K beams start identical; only the first may expand at step one
    tokens = torch.full((B, K, 1), bos_id, dtype=torch.long, device=device)  # (B, K, t+1)
    lengths = torch.zeros(B, K, device=device)  # (B, K) tokens generated, EOS included
    finished = torch.zeros(B, K, dtype=torch.bool, device=device)  # (B, K)
    alive = torch.arange(B, device=device)  # sentences still searching
    out: list[list[int]] = [[] for _ in range(B)]
    for _ in range(int(limits.max())):
        b = alive.numel()
        logits, state = model.decoder.step(tokens[:, :, -1].reshape(-1), state)  # (b*K, V)
        logp = torch.log_softmax(logits.float(), -1).view(b, K, -1)  # (b, K, V)
        V = logp.size(-1)
        eos_only = logp.new_full((V,), float("-inf"))
        eos_only[eos_id] = 0.0
        if oracle_lengths is not None:  # an oracle length: the hypotheses still open may not stop
            logp[..., eos_id] = float("-inf")
        logp[finished] = eos_only  # finished: only EOS, at no cost (touches those rows only)
        scores, flat = (scores.unsqueeze(-1) + logp).view(b, K * V).topk(K, -1)  # (b, K)
        beam, token = flat // V, flat % V  # (b, K) which prefix each survivor extends, and with what
        rows = (torch.arange(b, device=device).unsqueeze(1) * K + beam).view(-1)  # (b*K,)
        state = state.select(rows, same_sources=True)
        tokens = torch.cat([tokens.view(b * K, -1)[rows].view(b, K, -1), token.unsqueeze(-1)], -1)  # (b, K, t+2)
        was_finished = finished.gather(1, beam)  # (b, K)
        lengths = lengths.gather(1, beam) + (~was_finished).float()
        finished = was_finished | (token == eos_id) | (lengths >= limits)

        final = (scores / length_penalty(lengths, alpha)).masked_fill(~finished, float("-inf"))  # (b, K)
        best_open = (scores / length_penalty(limits, alpha)).masked_fill(finished, float("-inf"))  # (b, K)
        done = final.amax(-1) >= best_open.amax(-1)  # (b,)
        for i in done.nonzero().squeeze(1).tolist():
            hyp = tokens[i, final[i].argmax(), 1:].tolist()  # without BOS
            out[int(alive[i])] = hyp[: hyp.index(eos_id)] if eos_id in hyp else hyp
        if done.all():
            break
        if done.any():  # finished sentences leave the batch
            keep = (~done).nonzero().squeeze(1)  # (b',)
            state = state.select((keep.unsqueeze(1) * K + torch.arange(K, device=device)).view(-1))
            alive, scores, tokens, lengths, finished, limits = (
                x[keep] for x in (alive, scores, tokens, lengths, finished, limits))
    return out
