"""The one LightningModule for all three architectures: teacher-forced training with label-smoothed cross-entropy,
optimizer and schedule from the config, validation BLEU from greedy decoding. It sees the model only through the
interface of `zoo.models.base`."""
from __future__ import annotations

from collections.abc import Callable

import lightning as L
import torch
from torch import Tensor
from torch.optim.lr_scheduler import LambdaLR
from torchmetrics.text import SacreBLEUScore

from zoo.data.tokenizer import Tokenizer
from zoo.decoding import beam_search, greedy_search
from zoo.errors import ConfigError, TrainingStopped
from zoo.models.base import EncoderDecoder
from zoo.sampling import ScheduledSampling


def label_smoothed_nll(logits: Tensor, target: Tensor, *, pad_id: int, epsilon: float) -> Tensor:
    """Cross-entropy against (1 - ε) on the reference token plus ε spread evenly over every class but pad
    (Szegedy et al. 2016; Vaswani et al. 2017, 5.4), averaged over real target tokens only; logits (B, T, V),
    target (B, T). In fp32 whatever the logits' dtype."""
    rows = SmoothedCrossEntropy.apply(logits.flatten(0, -2), target.flatten(), pad_id, epsilon)  # (B*T,)
    real = target.flatten() != pad_id  # (B*T,)
    return (rows * real).sum() / real.sum()


class SmoothedCrossEntropy(torch.autograd.Function):
    """Per-row label-smoothed cross-entropy of logits (N, V), and its gradient p - q (softmax minus the smoothed
    target) written directly. On the CPU rows are taken a block at a time, so the fp32 copies stay in cache: the
    (N, V) output layer costs as much memory traffic as the rest of the step, and autograd through log_softmax,
    gather and sum made five fp32 passes over it where this makes two reads and one write of the logits."""

    BLOCK = 2**20  # elements of fp32 scratch per block (4 MiB)

    @staticmethod
    def forward(ctx, logits: Tensor, target: Tensor, pad_id: int, epsilon: float) -> Tensor:
        N, V = logits.shape
        dtype = torch.promote_types(logits.dtype, torch.float32)  # fp32, or fp64 for fp64 logits
        lse, picked, summed = (logits.new_empty(N, dtype=dtype) for _ in range(3))  # (N,) each
        for r in SmoothedCrossEntropy.blocks(N, V, logits.device):
            x = logits[r].to(dtype)  # (n, V)
            lse[r] = torch.logsumexp(x, -1)  # log Σ_v exp x_v
            picked[r] = x.gather(-1, target[r].unsqueeze(-1)).squeeze(-1)  # x_y
            summed[r] = x.sum(-1) - x[:, pad_id]  # Σ_{v≠pad} x_v
        ctx.save_for_backward(logits, target, lse)
        ctx.pad_id, ctx.epsilon = pad_id, epsilon
        nll = lse - picked  # -log p_y
        smooth = lse - summed / (V - 1)  # mean of -log p_v over the V-1 classes but pad
        return (1.0 - epsilon) * nll + epsilon * smooth  # (N,)

    @staticmethod
    def backward(ctx, grad_rows: Tensor):
        logits, target, lse = ctx.saved_tensors
        N, V = logits.shape
        off_target, grad = ctx.epsilon / (V - 1), torch.empty_like(logits)  # q_v for v ≠ y, pad; (N, V)
        for r in SmoothedCrossEntropy.blocks(N, V, logits.device):
            p = (logits[r].to(lse.dtype) - lse[r].unsqueeze(-1)).exp_()  # (n, V) softmax
            p -= off_target
            p[:, ctx.pad_id] += off_target  # q_pad = 0
            p.scatter_add_(-1, target[r].unsqueeze(-1), p.new_full((p.size(0), 1), ctx.epsilon - 1.0))  # q_y
            grad[r] = p.mul_(grad_rows[r].unsqueeze(-1))  # (n, V) (p - q) · ∂L/∂row
        return grad, None, None, None

    @staticmethod
    def blocks(N: int, V: int, device: torch.device) -> list[slice]:
        """Off the CPU one block: each block is several kernel launches, and on an H200 the CPU's 130 blocks of a
        16k-token batch cost a third of a Transformer-base step (experiments/results/bench/gpu_profile.md)."""
        n = max(1, SmoothedCrossEntropy.BLOCK // V) if device.type == "cpu" else max(N, 1)
        return [slice(i, i + n) for i in range(0, N, n)]


class NonFiniteLoss(TrainingStopped):
    """The training loss became NaN or infinite."""


def check_decoding(*, beam_size: int, alpha: float, max_len_a: float, max_len_b: int) -> None:
    """Refuse decoding settings that cannot work, naming the config value (`decode.*`)."""
    bad = [f"decode.{name} ({value}) must be {rule}" for name, value, ok, rule in [
        ("beam_size", beam_size, isinstance(beam_size, int) and beam_size >= 1, "an integer >= 1"),
        ("alpha", alpha, alpha >= 0, ">= 0"),
        ("max_len_a", max_len_a, max_len_a >= 0, ">= 0"),
        ("max_len_b", max_len_b, isinstance(max_len_b, int) and max_len_b >= 0, "an integer >= 0")] if not ok]
    if bad:
        raise ConfigError("; ".join(bad))


def noam_schedule(optimizer: torch.optim.Optimizer, *, d_model: int, warmup: int, factor: float = 1.0,
                  cooldown: int = 0, total: int | None = None) -> LambdaLR:
    """lrate = factor · d_model^-0.5 · min(step^-0.5, step · warmup^-1.5) (Vaswani et al. 2017, eq. 3): linear
    warm-up, then decay with the inverse square root of the step. Multiplies the optimizer's lr, so set lr 1.0.

    With `cooldown` > 0 the rate of the last `cooldown` of `total` updates is also scaled down linearly to zero, so
    a fixed budget ends at a minimum of the loss rather than wherever the noise of a high rate left it (the decay
    phase of Hägele et al. 2024's warm-up, stable, decay schedules). A budget shorter than `cooldown` cools down over
    all of its updates; updates beyond `total` get rate 0."""
    if not (isinstance(cooldown, int) and cooldown >= 0):
        raise ConfigError(f"model.scheduler.cooldown ({cooldown}) must be an integer >= 0")
    if cooldown and not (isinstance(total, int) and total > 0):
        raise ConfigError(f"model.scheduler.total ({total}) must be an integer > 0, the number of updates the "
                          "cool-down ends at (usually ${trainer.max_steps}); or set model.scheduler.cooldown=0")
    if cooldown:
        cooldown = min(cooldown, total)

    def lrate(step: int) -> float:
        rate = factor * d_model**-0.5 * min(step**-0.5, step * warmup**-1.5)
        if cooldown and step > total - cooldown:
            rate *= max(total - step + 1, 0) / (cooldown + 1)
        return rate
    return LambdaLR(optimizer, lambda done: lrate(done + 1))  # LambdaLR counts updates done, from 0


def inverse_sqrt_schedule(optimizer: torch.optim.Optimizer, *, warmup: int, init_lr: float = 0.0) -> LambdaLR:
    """fairseq's `inverse_sqrt`: the rate rises linearly from `init_lr` to the optimizer's lr over `warmup` updates,
    then decays as lr · sqrt(warmup / step). Unlike `noam_schedule`, the optimizer's lr is the peak rate itself."""
    peak = optimizer.defaults["lr"]
    if not (isinstance(warmup, int) and warmup > 0):
        raise ConfigError(f"model.scheduler.warmup ({warmup}) must be an integer > 0")
    if not 0 <= init_lr <= peak:
        raise ConfigError(f"model.scheduler.init_lr ({init_lr}) must be between 0 and the optimizer's lr ({peak})")

    def factor(done: int) -> float:  # the multiple of the peak rate for the update after `done` updates
        if done < warmup:
            return (init_lr + (peak - init_lr) * done / warmup) / peak
        return (warmup / done) ** 0.5
    return LambdaLR(optimizer, factor)


class Seq2SeqModule(L.LightningModule):
    def __init__(self, net: EncoderDecoder, *, optimizer: Callable, scheduler: Callable | None, tokenizer: Tokenizer,
                 label_smoothing: float = 0.1, beam_size: int = 4,
                 alpha: float = 0.6, max_len_a: float = 1.2, max_len_b: int = 10, checkpoint_info: dict | None = None,
                 sampling: ScheduledSampling | None = None):
        super().__init__()
        check_decoding(beam_size=beam_size, alpha=alpha, max_len_a=max_len_a, max_len_b=max_len_b)
        self.checkpoint_info = checkpoint_info  # what `zoo.checkpoint` needs to rebuild the model and tokenizers
        self.net, self.make_optimizer, self.make_scheduler = net, optimizer, scheduler
        self.tokenizer, self.label_smoothing = tokenizer, label_smoothing  # the target side's
        self.sampling = sampling  # None: teacher forcing only
        self.search = {"bos_id": tokenizer.bos_id, "eos_id": tokenizer.eos_id, "max_len_a": max_len_a,
                       "max_len_b": max_len_b}
        self.beam = {"beam_size": beam_size, "alpha": alpha}
        self.val_bleu, self.fit_bleu = SacreBLEUScore(), SacreBLEUScore()
        self.symbolic_batch = False  # zoo.train.compile_net: batches' lengths are static, their size is not

    def loss(self, batch: dict[str, Tensor]) -> Tensor:
        """Teacher-forced, but in training with scheduled sampling, where some inputs are the model's own
        predictions (zoo/sampling.py); validation's loss is always teacher-forced."""
        if self.training and self.sampling is not None:
            logits = self.sampling.logits(self.net, batch["src"], batch["src_mask"], batch["tgt_in"], self.global_step)
        else:
            logits = self.net(batch["src"], batch["src_mask"], batch["tgt_in"])  # (B, T, V) teacher forcing
        return label_smoothed_nll(logits, batch["tgt_out"], pad_id=self.tokenizer.pad_id, epsilon=self.label_smoothing)

    def on_after_batch_transfer(self, batch: dict[str, Tensor], dataloader_idx: int) -> dict[str, Tensor]:
        if self.symbolic_batch:  # on the device's copies: the mark stays with the tensor it is put on
            for tensor in batch.values():
                torch._dynamo.maybe_mark_dynamic(tensor, 0)
        return batch

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        loss = self.loss(batch)
        finite = bool(torch.isfinite(loss))
        if self.trainer.world_size > 1:  # every process stops, or the others would wait for it forever
            finite = self.trainer.strategy.reduce_boolean_decision(finite, all=True)
        if not finite:  # before the update: the weights are those of the last step, the last checkpoint's or later
            value = loss.item() if not torch.isfinite(loss) else "not finite on another process"
            raise NonFiniteLoss(f"the training loss is {value} at step {self.global_step + 1} (batch "
                                f"{batch_idx + 1} of epoch {self.current_epoch}); training stopped")
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["src"].size(0))
        if self.sampling is not None:
            self.log("train/p_gold", self.sampling.gold_probability(self.global_step))
        return loss

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int, dataloader_idx: int = 0) -> None:
        """Loader 0 is the validation split; loader 1, if any, a fixed sample of training pairs ("fit")."""
        if dataloader_idx == 0:
            self.log("val/loss", self.loss(batch), batch_size=batch["src"].size(0), sync_dist=True,
                     add_dataloader_idx=False)
        hyps = self.translate(batch["src"], batch["src_mask"])
        refs = [[self.tokenizer.decode(t)] for t in batch["tgt_out"].tolist()]
        (self.val_bleu if dataloader_idx == 0 else self.fit_bleu).update(hyps, refs)

    def on_validation_epoch_end(self) -> None:
        # under DDP, the metric sums its n-gram counts over all processes before computing BLEU: the same everywhere
        self.log("val/bleu", 100 * self.val_bleu.compute(), prog_bar=True, sync_dist=True)
        self.val_bleu.reset()
        if self.fit_bleu.update_count:
            self.log("fit/bleu", 100 * self.fit_bleu.compute(), sync_dist=True)
            self.fit_bleu.reset()

    def generate(self, src: Tensor, src_mask: Tensor, beam: bool = False,
                 oracle_lengths: Tensor | None = None) -> list[list[int]]:
        """Token ids of the translations (no BOS, no EOS), by greedy search or (with `beam`) beam search; with
        `oracle_lengths` (B,), that many tokens each, EOS barred (`zoo.decoding`)."""
        if beam:
            return beam_search(self.net, src, src_mask, **self.search, **self.beam, oracle_lengths=oracle_lengths)
        return greedy_search(self.net, src, src_mask, **self.search, oracle_lengths=oracle_lengths)

    def translate(self, src: Tensor, src_mask: Tensor, beam: bool = False) -> list[str]:
        """Detokenized translations."""
        return [self.tokenizer.decode(h) for h in self.generate(src, src_mask, beam)]

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        if self.checkpoint_info is not None:
            checkpoint["zoo"] = self.checkpoint_info

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None) -> None:
        """The trainer's `gradient_clip_val` (the RNNs' `grad_clip`). Lightning refuses to clip for a fused optimizer
        under mixed precision, lest a loss scale still sit on the gradients; bf16 has no loss scale, so there the
        gradients are clipped directly. (fp16's scaler goes through Lightning, which unscales first.)"""
        if not gradient_clip_val:
            return
        if getattr(self.trainer.precision_plugin, "scaler", None) is not None:
            return super().configure_gradient_clipping(optimizer, gradient_clip_val, gradient_clip_algorithm)
        if gradient_clip_algorithm == "value":
            torch.nn.utils.clip_grad_value_(self.parameters(), gradient_clip_val)
        else:
            torch.nn.utils.clip_grad_norm_(self.parameters(), gradient_clip_val)

    def configure_optimizers(self):
        optimizer = self.make_optimizer(self.parameters())
        if self.make_scheduler is None:
            return optimizer
        return {"optimizer": optimizer,
                "lr_scheduler": {"scheduler": self.make_scheduler(optimizer), "interval": "step"}}
