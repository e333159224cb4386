"""What makes a training run resumable: checkpoints every N steps and at each epoch's end with
`last.ckpt` always the newest state, the random state inside every checkpoint (so a resumed run draws the same
dropout masks as an uninterrupted one), and a graceful stop on Ctrl-C that keeps a checkpoint of the last finished
step. (The data module saves where the epoch's batches stood; `zoo.metrics.TrainClock` its running totals.)"""
from __future__ import annotations

import random
import signal
import threading
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint


class StepCheckpoints(ModelCheckpoint):
    """Lightning's ModelCheckpoint every `every_n_steps` steps, keeping the newest step checkpoint and `last.ckpt`.

    Two changes to when it saves. At a step that validation follows, it saves after the validation: Lightning
    resumes a checkpoint taken before a validation by skipping that validation, and the resumed run would miss a
    point of its validation curve. And it also saves when training ends or stops, so `last.ckpt` is always the
    final state (Lightning writes it at the periodic saves only)."""

    def __init__(self, dirpath: Path, every_n_steps: int):
        super().__init__(dirpath=dirpath, filename="step{step}", auto_insert_metric_name=False, save_last=True,
                         save_top_k=1, every_n_train_steps=every_n_steps, enable_version_counter=False)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args, **kwargs) -> None:
        if not validates_after_this_step(trainer):
            super().on_train_batch_end(trainer, pl_module, *args, **kwargs)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking and trainer.global_step % self._every_n_train_steps == 0:
            self.save_now(trainer)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.save_now(trainer)

    def save_now(self, trainer: L.Trainer) -> None:
        if trainer.global_step > self._last_global_step_saved:
            candidates = self._monitor_candidates(trainer)
            self._save_topk_checkpoint(trainer, candidates)
            self._save_last_checkpoint(trainer, candidates)
            self._last_global_step_saved = trainer.global_step


def validates_after_this_step(trainer: L.Trainer) -> bool:
    """Whether Lightning validates after the step just taken, for validation every `val_check_interval` steps
    across epochs (`check_val_every_n_epoch: null`, as in conf/trainer/); epoch-based validation is not foreseen."""
    every = trainer.val_check_batch
    return (trainer.enable_validation and trainer.check_val_every_n_epoch is None and every not in (None, float("inf"))
            and trainer.global_step % int(every) == 0)


def epoch_checkpoints(dirpath: Path) -> ModelCheckpoint:
    """A checkpoint at the end of every training epoch (the newest is kept)."""
    return ModelCheckpoint(dirpath=dirpath, filename="epoch{epoch}", auto_insert_metric_name=False, save_top_k=1,
                           every_n_epochs=1, save_on_train_epoch_end=True, enable_version_counter=False)


class RandomState(Callback):
    """Saves the random generators of torch (CPU and CUDA), numpy and Python with every checkpoint and restores
    them when training resumes, just before the first step: the resumed run then draws the same dropout masks as
    the run that was interrupted would have."""

    def __init__(self):
        self._to_restore: dict | None = None

    def state_dict(self) -> dict:
        kind, keys, pos, has_gauss, gauss = np.random.get_state()
        return {"torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
                "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss],  # weights_only
                "python": random.getstate()}

    def load_state_dict(self, state: dict) -> None:
        self._to_restore = state

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._to_restore is None:
            return
        state, self._to_restore = self._to_restore, None
        torch.set_rng_state(state["torch"])
        if state["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])
        kind, keys, pos, has_gauss, gauss = state["numpy"]
        np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
        version, internal, gauss = state["python"]
        random.setstate((version, tuple(internal), gauss))


class GracefulStop(Callback):
    """The first Ctrl-C lets the current step finish and stops training there (`stopped` is then set, and
    `StepCheckpoints` writes `last.ckpt` as training ends); a second Ctrl-C interrupts at once, as usual. Under DDP
    every process stops at the same step."""

    def __init__(self):
        self.stopped, self._requested = False, False
        self._previous_handler = None

    def _request(self, signum, frame) -> None:
        self._requested = True
        signal.signal(signal.SIGINT, self._previous_handler)  # a second Ctrl-C is a plain KeyboardInterrupt
        print("\nCtrl-C: stopping after this step and saving a checkpoint (press again to stop at once)", flush=True)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if threading.current_thread() is threading.main_thread():  # signal handlers live in the main thread
            self._previous_handler = signal.signal(signal.SIGINT, self._request)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch,
                           batch_idx: int) -> None:
        requested = self._requested
        if trainer.world_size > 1:
            requested = trainer.strategy.reduce_boolean_decision(requested, all=False)
        if requested:
            self.stopped, trainer.should_stop = True, True

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._previous_handler is not None and not self._requested:
            signal.signal(signal.SIGINT, self._previous_handler)
