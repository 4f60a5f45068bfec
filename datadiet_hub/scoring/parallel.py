"""Seeds in parallel: M seeds of a small model trained as one vectorized model, one optimizer step for all.

The recipe trains many seeds of models that leave a device mostly idle. ``StackedModel`` stacks the seeds'
parameters and buffers (``torch.func.stack_module_state``) and runs ``vmap(functional_call)`` over them, so one
call does the forward and backward of every seed. Each seed keeps everything it has when trained alone: its
initialisation (``make_model(cfg, data, seed)``), its data order and augmentation stream (its own
``RunData.train_batches``, stacked batch by batch), its forgetting tracker and its checkpoints (the same files as
``datadiet_hub.scoring.train.train_seed`` writes, so scoring, resuming and the sequential path read them as they
are). The loss is the sum of the seeds' batch means, so each seed's gradient is its own; SGD and Adam act
elementwise, so the optimizer step of the stack is every seed's own step. Results equal sequential training up to
float rounding (``tests/scoring/test_parallel_seeds.py`` says how close).

BatchNorm: the running statistics are stacked buffers updated in place under ``vmap``, each seed from its own
batch. Randomness inside the model (dropout) cannot follow each seed's own stream under ``vmap``, so models with
active dropout are trained one seed at a time (``--parallel-seeds`` on such a model is refused).

When: ``choose`` decides from the device and the model by the measured rule in ``AUTO_RULE`` (the log says which
path and why): on the CPU, models without convolutions; ``--parallel-seeds``/``--no-parallel-seeds`` overrides it.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from datadiet_hub.columns import InputKind
from datadiet_hub.errors import InvalidArgumentError

from . import checkpoint as ckpt
from .config import ScoringConfig
from .data.prepare import RunData
from .loops import IDX, LABELS, StepOutput, train_loop
from .metrics.forgetting import ForgettingTracker
from .precision import autocast_for
from .train import (
    EpochLog,
    Schedule,
    checkpoint_steps,
    lr_at,
    make_model,
    make_optimizer,
    save_checkpoint,
    seed_generator,
    training_bar,
)

logger = logging.getLogger(__name__)

AUTO_RULE = (
    "measured on 2 CPU cores (benchmarks/parallel_seeds.py, docs/performance.md): 3 vectorized seeds of the MLP "
    "trained faster than one at a time, of the small CNN slower (vmap turns each convolution into a grouped one); "
    "GPUs not measured"
)
"""Why ``choose`` vectorizes by itself only models without convolutions, on the CPU."""


class StackedModel(nn.Module):
    """M copies of one architecture with stacked parameters ``[M, ...]``; ``forward`` takes inputs ``[M, B, ...]``
    (a tensor or a mapping of keyword tensors) and returns logits ``[M, B, K]``."""

    def __init__(self, models: Sequence[nn.Module]) -> None:
        super().__init__()
        params, buffers = stack_module_state(list(models))
        self.names = list(params)
        self.stacked = nn.ParameterList([nn.Parameter(params[name].detach().clone()) for name in self.names])
        self.buffer_names = list(buffers)
        for i, name in enumerate(self.buffer_names):
            self.register_buffer(f"buffer_{i}", buffers[name].clone())
        self.state_names = list(models[0].state_dict())  # what a single model's checkpoint holds
        self.size = len(models)
        base = copy.deepcopy(models[0]).to("meta")
        self._base = [base]  # not a submodule: its meta tensors are no parameters of the stack

    def train(self, mode: bool = True) -> StackedModel:
        super().train(mode)
        self._base[0].train(mode)
        return self

    def _buffers_by_name(self) -> dict[str, torch.Tensor]:
        return {name: getattr(self, f"buffer_{i}") for i, name in enumerate(self.buffer_names)}

    def forward(self, inputs: Any = None, **keyword_inputs: torch.Tensor) -> torch.Tensor:
        base = self._base[0]
        params = dict(zip(self.names, self.stacked))

        def one(p: dict, b: dict, x: Any) -> torch.Tensor:
            out = (
                functional_call(base, (p, b), kwargs=dict(x))
                if isinstance(x, Mapping)
                else functional_call(base, (p, b), (x,))
            )
            return out if isinstance(out, torch.Tensor) else out.logits

        x = keyword_inputs if inputs is None else inputs
        return vmap(one, in_dims=(0, 0, 0), randomness="error")(params, self._buffers_by_name(), x)

    def seed_state(self, i: int) -> dict[str, torch.Tensor]:
        """Seed ``i``'s ``state_dict`` (parameters and persistent buffers) as a single model would have it."""
        everything = {**dict(zip(self.names, self.stacked)), **self._buffers_by_name()}
        return {name: everything[name][i].detach() for name in self.state_names}


def random_modules(model: nn.Module) -> list[str]:
    """Names of the submodules that draw random numbers in training (dropout with p > 0)."""
    found = []
    for name, module in model.named_modules():
        p = getattr(module, "p", None) if isinstance(module, nn.modules.dropout._DropoutNd) else None
        if p is None and isinstance(module, nn.MultiheadAttention):
            p = module.dropout
        if p is None and isinstance(getattr(module, "dropout", None), float):
            p = module.dropout
        if p:
            found.append(f"{name or type(module).__name__} ({type(module).__name__}, p={p})")
    return found


@dataclass(frozen=True)
class Choice:
    parallel: bool
    reason: str


def choose(
    cfg: ScoringConfig, model: nn.Module, num_seeds: int, device: torch.device, *, ragged: bool = False
) -> Choice:
    """Whether this process trains its ``num_seeds`` seeds together, and why (logged by the caller). ``ragged``:
    the data's batches are padded to their own longest row (text), so two seeds' batches differ in shape."""
    randomness = random_modules(model)
    if cfg.parallel_seeds is True:
        if ragged:
            raise InvalidArgumentError(
                "--parallel-seeds: text batches are padded to their own longest row, so the seeds' batches differ in "
                "shape and cannot be stacked; drop --parallel-seeds (or use --no-parallel-seeds)."
            )
        if randomness:
            raise InvalidArgumentError(
                f"--parallel-seeds: the model {cfg.model!r} uses randomness in training ({', '.join(randomness[:3])}), "
                "which cannot follow each seed's own stream when the seeds are vectorized; drop --parallel-seeds "
                "(or use --no-parallel-seeds) to train one seed at a time."
            )
        return Choice(num_seeds > 1, "--parallel-seeds" if num_seeds > 1 else "only one seed to train here")
    if cfg.parallel_seeds is False:
        return Choice(False, "--no-parallel-seeds")
    if num_seeds < 2:
        return Choice(False, "only one seed to train here")
    if ragged:
        return Choice(False, "text batches are padded to their own longest row: the seeds' shapes differ")
    if randomness:
        return Choice(False, f"the model draws random numbers in training ({randomness[0]})")
    convolutions = [name for name, m in model.named_modules() if isinstance(m, nn.modules.conv._ConvNd)]
    if device.type != "cpu":
        return Choice(False, f"on {device.type}, not measured yet; {AUTO_RULE}")
    if convolutions:
        return Choice(False, f"the model has convolutions ({convolutions[0]}, ...); {AUTO_RULE}")
    return Choice(True, f"no convolutions, on the CPU; {AUTO_RULE}")


def stacked_batches(
    data: RunData, seeds: Sequence[int], *, steps: range, batch_size: int, device: torch.device
) -> Iterator[dict[str, torch.Tensor]]:
    """Each seed's own training batches (``RunData.train_batches`` with its order and augmentation streams), stacked
    step by step into ``[M, B, ...]`` tensors."""
    streams = [_seed_batches(data, seed, steps, batch_size, device) for seed in seeds]
    for parts in zip(*streams):
        yield {key: torch.stack([part[key] for part in parts]) for key in parts[0]}


def _seed_batches(
    data: RunData, seed: int, steps: range, batch_size: int, device: torch.device
) -> Iterator[dict[str, torch.Tensor]]:
    def order(epoch: int) -> torch.Generator:
        return seed_generator("order", seed, epoch)

    def augment(step: int) -> torch.Generator:
        return seed_generator("augment", seed, step)

    return data.train_batches(
        seed=seed, steps=steps, batch_size=batch_size, order=order, augment=augment, device=device
    )


def stacked_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The sum over seeds of each seed's batch-mean cross-entropy (so each seed's gradient is its own)."""
    return F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), reduction="sum") / labels.shape[1]


def _stack_optimizer_state(stacked_opt: torch.optim.Optimizer, singles: Sequence[torch.optim.Optimizer]) -> None:
    """Stack the per-parameter state of the seeds' optimizers (resumed from checkpoints) into ``stacked_opt``."""
    params = list(stacked_opt.param_groups[0]["params"])
    single_params = [list(opt.param_groups[0]["params"]) for opt in singles]
    for k, param in enumerate(params):
        states = [opt.state.get(sp[k], {}) for opt, sp in zip(singles, single_params)]
        if not states[0]:
            continue
        merged = {}
        for key, value in states[0].items():
            if torch.is_tensor(value) and value.shape == single_params[0][k].shape:
                merged[key] = torch.stack([state[key] for state in states]).to(param.device)
            else:
                merged[key] = value
        stacked_opt.state[param] = merged


def _seed_training_state(
    model: StackedModel, optimizer: torch.optim.Optimizer, i: int, tracker: ForgettingTracker
) -> dict[str, torch.Tensor]:
    """Seed ``i``'s checkpoint tensors, in the format of ``checkpoint.pack_training_state`` for a single model."""
    tensors = {f"model.{k}": v for k, v in model.seed_state(i).items()}
    for pid, param in enumerate(optimizer.param_groups[0]["params"]):
        for key, value in optimizer.state.get(param, {}).items():
            if torch.is_tensor(value):
                tensors[f"optim.{pid}.{key}"] = value[i] if value.shape == param.shape else value
    tensors.update({f"forgetting.{k}": v for k, v in tracker.state().items()})
    return tensors


def train_seeds_together(
    cfg: ScoringConfig,
    data: RunData,
    seeds: Sequence[int],
    schedule: Schedule,
    state_dir: Path,
    device: torch.device,
    *,
    start: int = 0,
    progress: bool = True,
) -> None:
    """Train ``seeds`` (all at step ``start``: fresh, or resumed from their checkpoints of that step) to the end of
    the schedule as one vectorized model, writing every seed's checkpoints as ``train_seed`` would."""
    singles = [make_model(cfg, data, seed).to(device) for seed in seeds]
    single_opts = [make_optimizer(cfg, model) for model in singles]
    trackers = [ForgettingTracker(len(data)) for _ in seeds]
    if start > 0:
        for seed, model, opt, tracker in zip(seeds, singles, single_opts, trackers):
            tensors, _ = ckpt.load(ckpt.checkpoint_path(state_dir, seed, start))
            tracker.load_state(ckpt.unpack_training_state(tensors, model, opt))
        logger.info("seeds %s: resuming together from step %d", list(seeds), start)
    model = StackedModel(singles)
    optimizer = make_optimizer(cfg, model)
    _stack_optimizer_state(optimizer, single_opts)
    del singles, single_opts
    wanted = checkpoint_steps(cfg, schedule)
    spe = schedule.steps_per_epoch

    def save(step: int) -> None:
        for i, seed in enumerate(seeds):
            save_checkpoint(state_dir, seed, step, _seed_training_state(model, optimizer, i, trackers[i]), schedule)

    if start == 0:
        save(0)
    if start >= schedule.total_steps:
        return
    label = ",".join(str(s) for s in seeds)
    bar = training_bar(f"seeds {label}", schedule, start, progress)
    epoch_log = EpochLog(label, spe, schedule.total_steps, bar)

    def per_seed(out: StepOutput) -> None:
        correct = out.logits.argmax(-1) == out.batch[LABELS]
        for i, tracker in enumerate(trackers):
            tracker.update(out.batch[IDX][i], correct[i])
        if out.step in wanted:
            save(out.step)
        # the log counts the examples of every seed and shows their mean loss
        epoch_log(StepOutput(out.step, {LABELS: out.batch[LABELS].flatten()}, out.logits, out.loss / len(seeds)))

    started = time.perf_counter()
    train_loop(
        model,
        optimizer,
        stacked_batches(
            data, seeds, steps=range(start, schedule.total_steps), batch_size=cfg.batch_size, device=device
        ),
        start_step=start,
        lr=lambda step: lr_at(cfg, step // spe),
        callbacks=[per_seed],
        loss_fn=stacked_loss,
        autocast=autocast_for(cfg.precision, device),
    )
    bar.close()
    logger.info("seeds %s trained together in %.1f s", label, time.perf_counter() - started)


def train_in_parallel(
    cfg: ScoringConfig,
    data: RunData,
    todo: Mapping[int, int],
    schedule: Schedule,
    state_dir: Path,
    device: torch.device,
    progress: bool,
    rank: int = 0,
) -> dict[int, int]:
    """Train together the seeds of ``todo`` (seed -> step it resumes from) that ``choose`` lets share a stack (the
    seeds resuming from one step); returns the seeds left for one-at-a-time training."""
    if not todo:
        return {}
    ragged = data.plan.kind != InputKind.IMAGE
    choice = choose(cfg, make_model(cfg, data, next(iter(todo))), len(todo), device, ragged=ragged)
    logger.info(
        "[rank %d] seeds %s: %s (%s)",
        rank,
        list(todo),
        "trained together" if choice.parallel else "one at a time",
        choice.reason,
    )
    if not choice.parallel:
        return dict(todo)
    by_start: dict[int, list[int]] = {}
    for seed, start in todo.items():
        by_start.setdefault(start, []).append(seed)
    left = {}
    for start, seeds in sorted(by_start.items()):
        if len(seeds) == 1 and cfg.parallel_seeds is not True:
            left[seeds[0]] = start
            continue
        train_seeds_together(cfg, data, seeds, schedule, state_dir, device, start=start, progress=progress)
    return left
