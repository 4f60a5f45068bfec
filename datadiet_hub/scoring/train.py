"""Short, deterministic, resumable training of one seed, saving a checkpoint at every score time.

Determinism: the init comes from ``torch.manual_seed(seed)``, the data order of epoch e from a generator seeded
with ("order", seed, e), the augmentation of step s from ("augment", seed, s), and the global RNG (dropout or other
randomness inside a custom model) is reseeded from ("step", seed, s) before every step. A run resumed from a
checkpoint therefore replays exactly the batches the uninterrupted run would have seen.

Checkpoints: one at every score time (kept: phase 2 scores them) and one every ``checkpoint_every`` epochs for
resuming; a periodic checkpoint is deleted once a later one exists, so disk use stays at one per score time plus one.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from datadiet_hub.errors import InvalidArgumentError

from . import checkpoint as ckpt
from .config import ScoringConfig
from .data import TensorData
from .data.prepare import RunData
from .loops import IDX, LABELS, Batch, StepCallback, StepOutput, step_lr, train_loop
from .metrics.forgetting import ForgettingTracker
from .models import MODELS, build_model, choose_training, resolve_training
from .placement import place
from .precision import autocast_for

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Schedule:
    """Training length and score times in optimizer steps."""

    steps_per_epoch: int
    total_steps: int
    score_steps: tuple[int, ...]

    @classmethod
    def from_config(cls, cfg: ScoringConfig, num_examples: int) -> Schedule:
        spe = math.ceil(num_examples / cfg.batch_size)  # the last partial batch is kept: every example, every epoch
        score_steps = sorted({t * spe if cfg.unit == "epoch" else t for t in cfg.at})
        epochs = cfg.epochs if cfg.epochs is not None else math.ceil(score_steps[-1] / spe)
        total = epochs * spe
        if score_steps[-1] > total:
            raise InvalidArgumentError(
                f"Score time {max(cfg.at)} {cfg.unit}(s) is after the end of training ({epochs} epochs = {total} "
                "steps); raise --epochs or lower --at."
            )
        return cls(spe, total, tuple(score_steps))


def stream_seed(*parts: int | str) -> int:
    """A 63-bit seed hashed from a tuple such as ("order", seed, epoch): distinct tuples give unrelated streams."""
    text = "/".join(str(p) for p in parts).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little") >> 1


def seed_generator(*parts: int | str) -> torch.Generator:
    """A CPU generator seeded from a tuple, so each (stream, seed, epoch-or-step) stream is independent."""
    return torch.Generator().manual_seed(stream_seed(*parts))


def resolved_for(cfg: ScoringConfig, data: TensorData | RunData) -> ScoringConfig:
    """``cfg`` with the model, optimizer and learning rate that ``data``'s input kind and the model family choose
    for what the user left out (``scoring.models.choose_training``); unchanged when all three are set."""
    if cfg.model is not None and cfg.optimizer is not None and cfg.lr is not None and cfg.weight_decay is not None:
        return cfg
    plan = getattr(data, "plan", None)
    kind, column = (plan.kind, plan.input_column) if plan is not None else ("image", "image")
    return resolve_training(cfg, kind, column)[0]


def make_model(cfg: ScoringConfig, data: TensorData | RunData, seed: int) -> torch.nn.Module:
    """The model of ``seed`` for ``data``: the factory is offered what the data says (``in_channels`` and
    ``image_size`` for images; ``vocab_size``, ``max_length``, ``pad_token_id`` for text)."""
    torch.manual_seed(seed)
    name = resolved_for(cfg, data).model
    assert name is not None
    return build_model(name, num_classes=data.num_classes, width=cfg.width, **data.model_kwargs)


def _training(cfg: ScoringConfig) -> tuple[str, float, float]:
    """The optimizer, learning rate and weight decay: as given, else the named registry model's family defaults."""
    if cfg.optimizer is not None and cfg.lr is not None and cfg.weight_decay is not None:
        return cfg.optimizer, cfg.lr, cfg.weight_decay
    entry = MODELS.get(cfg.model) if cfg.model is not None else None
    if entry is None:
        raise InvalidArgumentError(
            "The optimizer, learning rate and weight decay are not chosen yet: resolve the config for its data first "
            "(datadiet_hub.scoring.train.resolved_for), or give optimizer, lr and weight_decay."
        )
    choice = choose_training(
        cfg.model, cfg.optimizer, cfg.lr, kind=entry.kind, input_column="input", weight_decay=cfg.weight_decay
    )
    return choice.optimizer, choice.lr, choice.weight_decay


def make_optimizer(cfg: ScoringConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    optimizer, lr, weight_decay = _training(cfg)
    if optimizer == "sgd":
        return torch.optim.SGD(
            model.parameters(),
            lr=lr,
            momentum=cfg.momentum,
            nesterov=cfg.nesterov and cfg.momentum > 0,
            weight_decay=weight_decay,
        )
    return torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)


def lr_at(cfg: ScoringConfig, epoch: int) -> float:
    return step_lr(_training(cfg)[1], epoch, cfg.lr_milestones, cfg.lr_gamma)


def training_bar(desc: str, schedule: Schedule, start: int, progress: bool) -> tqdm:
    """The progress bar of one training (one seed, or seeds trained together): steps, resumed at ``start``."""
    return tqdm(
        total=schedule.total_steps,
        initial=start,
        desc=desc,
        unit="step",
        disable=not progress,
        leave=False,
        dynamic_ncols=True,
    )


class EpochLog:
    """Mean loss and throughput of each epoch, to the progress bar and the log (a ``train_loop`` callback)."""

    def __init__(self, seed: int | str, steps_per_epoch: int, total_steps: int, bar: tqdm) -> None:
        self.seed, self.spe, self.total, self.bar = seed, steps_per_epoch, total_steps, bar
        self.t0, self.seen = time.perf_counter(), 0
        self.loss_sum: torch.Tensor | None = None

    def __call__(self, out: StepOutput) -> None:
        n = len(out.batch[LABELS])
        self.loss_sum = out.loss * n if self.loss_sum is None else self.loss_sum + out.loss * n
        self.seen += n
        self.bar.update(1)
        if out.step % self.spe:
            return
        elapsed = max(time.perf_counter() - self.t0, 1e-9)
        mean_loss = (self.loss_sum.item() if self.loss_sum is not None else 0.0) / max(self.seen, 1)
        epoch = out.step // self.spe
        self.bar.set_postfix(epoch=epoch, loss=f"{mean_loss:.3f}", ex_s=f"{self.seen / elapsed:.0f}")
        logger.info(
            "seed %s epoch %d/%d: loss %.4f, %.0f examples/s (%.1f s)",
            self.seed,
            epoch,
            self.total // self.spe,
            mean_loss,
            self.seen / elapsed,
            elapsed,
        )
        self.t0, self.seen, self.loss_sum = time.perf_counter(), 0, None


def checkpoint_steps(cfg: ScoringConfig, schedule: Schedule) -> set[int]:
    """The steps after which a seed is checkpointed: every score time, every ``checkpoint_every`` epochs, the end."""
    spe = schedule.steps_per_epoch
    periodic = {e * spe for e in range(0, schedule.total_steps // spe + 1, cfg.checkpoint_every)}
    wanted = {s for s in set(schedule.score_steps) | periodic if s <= schedule.total_steps}
    return wanted | {schedule.total_steps}


def save_checkpoint(
    state_dir: Path, seed: int, step: int, tensors: dict[str, torch.Tensor], schedule: Schedule
) -> None:
    """Write ``seed``'s training state at ``step`` and delete its earlier periodic checkpoints (score times and the
    latest are kept)."""
    ckpt.atomic_save(tensors, ckpt.checkpoint_path(state_dir, seed, step), {"seed": seed, "step": step})
    for old_step, old_path in ckpt.list_checkpoints(state_dir, seed):
        if old_step < step and old_step not in schedule.score_steps:
            old_path.unlink(missing_ok=True)


class TrainingState(Protocol):
    """State a seed's training keeps besides the model and optimizer (the forgetting tracker), saved with them."""

    def state(self) -> dict[str, torch.Tensor]: ...

    def load_state(self, state: dict[str, torch.Tensor]) -> None: ...


@dataclass
class SeedStart:
    """One seed's model and optimizer on the device, resumed from the seed's latest checkpoint: ``start`` is the step
    training goes on from (0 for a fresh seed, whose step-0 checkpoint is written). ``checkpoint`` is the
    ``train_loop`` callback that saves at every step of ``checkpoint_steps``."""

    seed: int
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    start: int
    state_dir: Path
    schedule: Schedule
    wanted: set[int]
    extra: TrainingState | None = None

    @property
    def finished(self) -> bool:
        return self.start >= self.schedule.total_steps

    def save(self, step: int) -> None:
        extra = self.extra.state() if self.extra is not None else {}
        save_checkpoint(
            self.state_dir, self.seed, step, ckpt.pack_training_state(self.model, self.optimizer, extra), self.schedule
        )

    def checkpoint(self, out: StepOutput) -> None:
        if out.step in self.wanted:
            self.save(out.step)

    def train(
        self,
        cfg: ScoringConfig,
        batches: Iterable[Batch],
        device: torch.device,
        *,
        callbacks: Sequence[StepCallback] = (),
        loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = F.cross_entropy,
        progress: bool = True,
    ) -> None:
        """Train on ``batches`` (those of steps ``start`` to the end) with what every single-seed training shares:
        the learning-rate schedule, per-step reseeding, precision, the checkpoints, a progress bar and the epoch
        log; ``callbacks`` run first after each step."""
        spe = self.schedule.steps_per_epoch
        bar = training_bar(f"seed {self.seed}", self.schedule, self.start, progress)
        train_loop(
            self.model,
            self.optimizer,
            batches,
            start_step=self.start,
            lr=lambda step: lr_at(cfg, step // spe),
            reseed=lambda step: stream_seed("step", self.seed, step),
            callbacks=[*callbacks, self.checkpoint, EpochLog(self.seed, spe, self.schedule.total_steps, bar)],
            loss_fn=loss_fn,
            autocast=autocast_for(cfg.precision, device),
        )
        bar.close()


def start_seed(
    cfg: ScoringConfig,
    model: torch.nn.Module,
    seed: int,
    schedule: Schedule,
    state_dir: Path,
    device: torch.device,
    *,
    extra: TrainingState | None = None,
) -> SeedStart:
    """The setup every single-seed training shares (an image or text classifier, a reference LM): ``model`` (built
    from the seed) placed on ``device``, its optimizer, the latest checkpoint of ``seed`` restored into both (and
    into ``extra``), or a step-0 checkpoint written for a fresh seed. ``placement.place`` puts the model on the
    device (channels-last where that is chosen)."""
    model = place(model, cfg, device)
    optimizer = make_optimizer(cfg, model)
    start = 0
    latest = ckpt.latest_checkpoint(state_dir, seed)
    if latest is not None:
        start, path = latest
        tensors, _ = ckpt.load(path)
        restored = ckpt.unpack_training_state(tensors, model, optimizer)
        if extra is not None:
            extra.load_state(restored)
        logger.info("seed %d: resuming from step %d (%s)", seed, start, path.name)
    begun = SeedStart(seed, model, optimizer, start, state_dir, schedule, checkpoint_steps(cfg, schedule), extra)
    if latest is None:
        begun.save(0)
    return begun


def train_seed(
    cfg: ScoringConfig,
    data: RunData,
    seed: int,
    schedule: Schedule,
    state_dir: Path,
    device: torch.device,
    *,
    progress: bool = True,
) -> None:
    """Train ``seed`` to the end of the schedule, resuming from its latest checkpoint if one exists."""
    tracker = ForgettingTracker(len(data))
    begun = start_seed(cfg, make_model(cfg, data, seed), seed, schedule, state_dir, device, extra=tracker)

    def track_forgetting(out: StepOutput) -> None:
        tracker.update(out.batch[IDX], out.logits.argmax(1) == out.batch[LABELS])

    if begun.finished:
        return
    batches = data.train_batches(
        seed=seed,
        steps=range(begun.start, schedule.total_steps),
        batch_size=cfg.batch_size,
        order=lambda epoch: seed_generator("order", seed, epoch),
        augment=lambda step: seed_generator("augment", seed, step),
        device=device,
    )
    begun.train(cfg, batches, device, callbacks=[track_forgetting], progress=progress)
