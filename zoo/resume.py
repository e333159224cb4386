"""What makes a training run resumable: checkpoints every N steps and at each epoch's end with
`last.ckpt` always the newest state, the random state inside every checkpoint (so a resumed run draws the same
dropout masks as an uninterrupted one), and a graceful stop on Ctrl-C or SIGTERM that keeps a checkpoint of the last
finished step. (The data module saves where the epoch's batches stood; `zoo.metrics.TrainClock` its running totals.)

Lightning builds a checkpoint's state on every DDP process and writes the first process's; `every_process` puts
each process's own state in it (the random state, the running totals), and `this_process` takes it back out."""
from __future__ import annotations

import random
import signal
import threading
from pathlib import Path

import lightning as L
import numpy as np
import torch
import torch.distributed as dist
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint

from zoo.errors import ConfigError


def all_processes(obj) -> list:
    """Every DDP process's `obj`, in rank order ([obj] on one process); called at the same point on every one."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return [obj]
    objs = [None] * dist.get_world_size()
    dist.all_gather_object(objs, obj)
    return objs


def every_process(state: dict) -> dict:
    """{"processes": [each DDP process's `state`, in rank order]}, for a checkpoint."""
    return {"processes": all_processes(state)}


def this_process(saved: dict) -> dict:
    """This process's state from `every_process`'s result (the first's, if the run had fewer processes)."""
    states = saved["processes"]
    rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
    return states[rank] if rank < len(states) else states[0]


def epoch_finished(trainer: L.Trainer) -> bool:
    """Whether the epoch's batches are all taken (Lightning also ends an epoch it stops in part-way)."""
    progress = trainer.fit_loop.epoch_loop.batch_progress
    return progress.is_last_batch or progress.current.ready >= trainer.num_training_batches


class StepCheckpoints(ModelCheckpoint):
    """Lightning's ModelCheckpoint every `every_n_steps` steps, keeping the newest step checkpoint and `last.ckpt`.

    Changes to when it saves: at a step that validation follows, after the validation (Lightning resumes a
    checkpoint taken before a validation by skipping that validation, and the resumed run would miss a point of its
    validation curve); at the end of every epoch, beside `EpochCheckpoints`; and when training ends or stops,
    before Lightning closes the epoch (a run that ends part-way through an epoch resumes that epoch where it stood,
    not the next one). So `last.ckpt` is always the newest state, and the final one once a run is done."""

    def __init__(self, dirpath: Path, every_n_steps: int):
        super().__init__(dirpath=dirpath, filename="step{step}", auto_insert_metric_name=False, save_last=True,
                         save_top_k=1, every_n_train_steps=every_n_steps, enable_version_counter=False)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args, **kwargs) -> None:
        if validates_after_this_step(trainer):
            return
        if training_ends_here(trainer) and not epoch_finished(trainer):
            self.save_now(trainer)  # now: once training ends, Lightning counts the epoch it stopped in as finished
        else:
            super().on_train_batch_end(trainer, pl_module, *args, **kwargs)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking and (trainer.global_step % self._every_n_train_steps == 0
                                            or training_ends_here(trainer)):
            self.save_now(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if epoch_finished(trainer):  # `EpochCheckpoints` writes the epoch's own file; here only last.ckpt, always
            # (even when this step's checkpoint is written: EpochCheckpoints has just changed its list of kept files)
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
            self._last_global_step_saved = trainer.global_step

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.save_now(trainer)  # (saved already where training ended part-way through an epoch)

    def save_now(self, trainer: L.Trainer) -> None:
        if trainer.global_step > self._last_global_step_saved:
            candidates = self._monitor_candidates(trainer)
            self._save_topk_checkpoint(trainer, candidates)
            self._save_last_checkpoint(trainer, candidates)
            self._last_global_step_saved = trainer.global_step


def training_ends_here(trainer: L.Trainer) -> bool:
    """Whether training ends after the step just taken (or its validation): the step budget is spent, or a callback
    has stopped training (early stopping; `GracefulStop` and the time budget lower the step budget to this step)."""
    max_steps = trainer.fit_loop.epoch_loop.max_steps
    return trainer.should_stop or (max_steps is not None and 0 <= max_steps <= trainer.global_step)


def validates_after_this_step(trainer: L.Trainer) -> bool:
    """Whether Lightning validates after the step just taken, for validation every `val_check_interval` steps
    across epochs (`check_val_every_n_epoch: null`, as in conf/trainer/); epoch-based validation is not foreseen."""
    every = trainer.val_check_batch
    return (trainer.enable_validation and trainer.check_val_every_n_epoch is None and every not in (None, float("inf"))
            and trainer.global_step % int(every) == 0)


class EpochCheckpoints(Callback):
    """`epochN.ckpt` at the end of every training epoch, and only there (Lightning also calls the end-of-epoch hook
    when training stops part-way through one), keeping the newest `keep`: the last N that `zoo.average` averages,
    as fairseq's `--keep-last-epochs` keeps them for `average_checkpoints.py`. The list of kept files travels in
    every checkpoint, so a run resumed into a new directory goes on counting (and deleting) the earlier run's files;
    it deletes files in its own folder only."""

    def __init__(self, folder: Path, keep: int = 1):
        self.folder, self.keep = folder, keep  # (config_checks.check_config checks checkpoint.keep_epochs)
        self.kept: list[str] = []

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not epoch_finished(trainer):
            return
        path = str(self.folder / f"epoch{trainer.current_epoch}.ckpt")
        self.kept.append(path)  # before saving, so the checkpoint lists itself
        old, self.kept = self.kept[:-self.keep], self.kept[-self.keep:]
        trainer.save_checkpoint(path, weights_only=False)  # whole (every process calls it; the first writes)
        if trainer.is_global_zero:
            for file in map(Path, old):
                if file.parent == self.folder:
                    file.unlink(missing_ok=True)

    def state_dict(self) -> dict:
        return {"kept": list(self.kept)}

    def load_state_dict(self, state: dict) -> None:
        self.kept = list(state["kept"])


class RandomState(Callback):
    """Saves the random generators of torch (CPU and CUDA), numpy and Python of every process with every
    checkpoint, and restores them when training resumes, just before the first step (after the resumed run has
    made its loaders, whose iterators each draw a seed from the global generator): the resumed run then draws the
    same dropout masks as the run that was interrupted would have."""

    def __init__(self):
        self._to_restore: dict | None = None

    def state_dict(self) -> dict:
        kind, keys, pos, has_gauss, gauss = np.random.get_state()
        return every_process({
            "torch": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss],  # weights_only-safe
            "python": random.getstate()})

    def load_state_dict(self, state: dict) -> None:
        self._to_restore = this_process(state)

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
    """The first Ctrl-C (or SIGTERM, as SLURM sends at a time limit or preemption) lets the current step finish and
    ends training there: `stopped` is set, and `StepCheckpoints` writes `last.ckpt` as training ends. A second
    signal acts at once, as usual. Training ends as if the step budget ran out there, so no validation is added that
    the uninterrupted run would not have had. Under DDP every process stops at the same step."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.stopped, self.reason = False, "a signal to another process"  # (DDP: it may reach one process only)
        self._requested = False
        self._previous: dict[int, object] = {}

    def _request(self, signum, frame) -> None:
        self._requested, self.reason = True, "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
        signal.signal(signum, self._previous[signum])  # a second signal acts at once
        print(f"\n{self.reason}: stopping after this step and saving a checkpoint (again: stop at once)", flush=True)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if threading.current_thread() is threading.main_thread():  # signal handlers live in the main thread
            self._previous = {s: signal.signal(s, self._request) for s in self.SIGNALS}

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch,
                           batch_idx: int) -> None:
        requested = self._requested
        if trainer.world_size > 1:
            requested = trainer.strategy.reduce_boolean_decision(requested, all=False)
        if requested and not self.stopped:
            self.stopped = True
            trainer.fit_loop.epoch_loop.max_steps = trainer.global_step  # (`should_stop` would validate first)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        for s, previous in self._previous.items():
            if signal.getsignal(s) == self._request:
                signal.signal(s, previous)


class BestCheckpoint(Callback):
    """`best.ckpt` in `folder` whenever validation BLEU beats every earlier check (the first of equal ones), for
    `evaluate=best` and for translating with. Its score, step and path travel in every checkpoint, so a run resumed
    into a new directory keeps pointing at the earlier run's file until it does better (Lightning's ModelCheckpoint
    forgets the best score when the directory changes, and would take the resumed run's first check as the best)."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.score: float | None = None
        self.step: int | None = None
        self.path: str | None = None

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        bleu = trainer.callback_metrics.get("val/bleu")
        if trainer.sanity_checking or bleu is None or (self.score is not None and float(bleu) <= self.score):
            return
        self.score, self.step, self.path = float(bleu), trainer.global_step, str(self.folder / "best.ckpt")
        trainer.save_checkpoint(self.path, weights_only=False)  # whole (every process calls it; the first writes)

    def state_dict(self) -> dict:
        return {"score": self.score, "step": self.step, "path": self.path}

    def load_state_dict(self, state: dict) -> None:
        self.score, self.step, self.path = state["score"], state["step"], state["path"]


class ValidationStop(EarlyStopping):
    """Lightning's EarlyStopping on validation BLEU (higher is better) or loss, resumable under a changed setting.
    Lightning keeps the patience saved in the checkpoint and drops the count of a figure the run did not watch
    before; here the configured patience holds, and a run resumed with another `early_stopping.monitor` counts from
    its own validation curve (`clock.val_curve`) as if it had watched that figure from the start. Where that count
    would already have stopped the run, it refuses, naming the step."""

    def __init__(self, clock: Callback, figure: str, patience: int, min_delta: float = 0.0):
        super().__init__(monitor=f"val/{figure}", mode="max" if figure == "bleu" else "min", patience=patience,
                         min_delta=min_delta, check_on_train_epoch_end=False)
        self.clock, self.figure, self.restored = clock, figure, False

    @property
    def state_key(self) -> str:
        """Lightning's EarlyStopping's key, so that checkpoints saved with it resume."""
        return f"EarlyStopping{{'monitor': {self.monitor!r}, 'mode': {self.mode!r}}}"

    def load_state_dict(self, state: dict) -> None:
        patience = self.patience
        super().load_state_dict(state)
        self.patience, self.restored = patience, True

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.restored:
            return
        for point in self.clock.val_curve:  # (empty unless resumed)
            value = point.get(self.figure)
            if value is None:
                raise ConfigError(f"early_stopping.monitor={self.figure}: the resumed run's validation curve has no "
                                  f"{self.figure} at step {point['step']} to count from")
            if self._evaluate_stopping_criteria(torch.tensor(value))[0]:
                raise ConfigError(f"early_stopping.monitor={self.figure} with patience {self.patience} would have "
                                  f"stopped this run at step {point['step']}; its checkpoint is at step "
                                  f"{trainer.global_step}")
