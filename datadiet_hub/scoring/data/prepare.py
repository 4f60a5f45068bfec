"""``prepare_data``: from a ``ScoringConfig`` to ``RunData``, the one object the engine reads rows through, whichever
path (in memory or DataLoader) serves them.

The first run decides (and logs, with the reasons) the path, the image geometry, the channels and the training
augmentation, trains or loads the tokenizer, and makes the one pass over every row (labels, example ids, pixel
statistics); all of it goes into the run's state folder, so a resumed run, and every process of a distributed run,
reads the same decisions instead of re-deriving them.

State files: ``data.json`` (the plan); in-memory path: the decoded split through ``datadiet_hub.scoring.state.RunState`` (as
before); DataLoader path: ``manifest.npz`` (labels, example ids, pixel sums) and ``tokenizer.json``.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from datadiet_hub.atomic import atomic_write_text
from datadiet_hub.columns import InputKind
from datadiet_hub.errors import InvalidArgumentError
from datadiet_hub.provenance import SourceInfo
from datadiet_hub.sources import Source, fashion_mnist_files, is_fashion_mnist, load_source

from ..loops import ordered_batches, shuffled_batches
from ..models import TrainingChoice, choose_training
from ..state import RunState
from .cache import PreparedCache, cache_key, cache_root, file_digest
from .loader import Inputs, Manifest, default_workers, epoch_batches, scan, to_device
from .ngrams import NgramEncoder, build_features, load_features, save_features
from .plan import choose_path, image_geometry, probe, resolve_train_augmentation
from .tensors import Preprocess, TensorData, channel_stats, resolve_augmentation
from .text import TextEncoder, iter_texts, load_tokenizer, pad_id_of, train_tokenizer

logger = logging.getLogger(__name__)

PLAN_FILE = "data.json"
MANIFEST_FILE = "manifest.npz"
TOKENIZER_FILE = "tokenizer.json"


@dataclass
class Plan:
    """How this run reads its rows; saved as ``data.json`` and reused on resume."""

    path: str
    reason: str
    kind: InputKind
    input_column: str
    label_column: str
    name: str
    revision: str | None
    image_size: int = 0
    channels: int = 0
    geometry: str = ""
    augmentation: str = "none"
    label_names: list[str] | None = None
    class_count: int = 0  # from the ClassLabel feature (0: from the labels)
    class_names: list[str] | None = None  # the ClassLabel names (string labels: sorted), recorded on the card

    def __post_init__(self) -> None:
        self.kind = InputKind(self.kind)  # read back from data.json as a plain string

    @property
    def scored_names(self) -> list[str] | None:
        """Class names by class id, as the example ids number the labels (``hashing.LabelSpace``)."""
        return self.class_names or self.label_names


@dataclass
class RunData:
    """The rows of a scoring run, in memory or behind a DataLoader; batches are dicts carrying ``idx``,
    ``labels`` and the model's keyword inputs, already on the device and normalised.

    Attributes:
        plan: the decisions (path, geometry, augmentation) and their reasons.
        labels: int64 ``[N]`` (CPU), row i = source row i.
        example_ids: arrow string array of the ``N`` content hashes (no Python string per row).
        num_classes: classes of the label column.
        mean, std: per-channel normalisation (images), else None.
        model_kwargs: what the model factory is offered (``in_channels``/``image_size`` or ``vocab_size``/...).
    """

    plan: Plan
    labels: torch.Tensor
    example_ids: Any
    num_classes: int
    mean: list[float] | None
    std: list[float] | None
    model_kwargs: dict[str, Any]
    tensors: TensorData | None = None
    dataset: Any = None
    inputs: Inputs | None = None
    num_workers: int | None = None
    _device_images: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def path(self) -> str:
        return self.plan.path

    @property
    def source_meta(self) -> dict[str, Any]:
        """The facts about the source the card's provenance records."""
        return {
            "name": self.plan.name,
            "revision": self.plan.revision,
            "input_column": self.plan.input_column,
            "input_kind": str(self.plan.kind),
            "label_column": self.plan.label_column,
        }

    @property
    def source_info(self) -> SourceInfo:
        """Where the rows came from (``SourceInfo``)."""
        return SourceInfo(
            dataset=self.plan.name,
            revision=self.plan.revision,
            input_column=self.plan.input_column,
            label_column=self.plan.label_column,
        )

    def facts(self) -> dict[str, Any]:
        """What the card records about how the rows were read."""
        facts: dict[str, Any] = {"data_path": self.plan.path, "data_path_reason": self.plan.reason}
        if self.plan.kind == InputKind.IMAGE:
            facts.update(image_size=self.plan.image_size, image_channels=self.plan.channels, images=self.plan.geometry)
        elif self.inputs is not None and self.inputs.encoder is not None:
            facts.update(self.inputs.encoder.facts())
        return facts

    @property
    def augmentation(self) -> str:
        return self.plan.augmentation

    def preprocess(self) -> Preprocess:
        """uint8 images -> normalised float (and the in-memory training augmentation)."""
        if self.mean is None or self.std is None:
            raise ValueError("Text runs have no image preprocessing.")
        return Preprocess(self.mean, self.std, self.plan.augmentation)

    def _images_on(self, device: torch.device) -> torch.Tensor:
        assert self.tensors is not None
        key = str(device)
        if key not in self._device_images:
            self._device_images = {key: self.tensors.images.to(device)}
        return self._device_images[key]

    def _normalise(self) -> dict[str, torch.Tensor | None]:
        if self.mean is None or self.std is None:
            return {"mean": None, "std": None}
        return {
            "mean": torch.tensor(self.mean, dtype=torch.float32),
            "std": torch.tensor(self.std, dtype=torch.float32),
        }

    @property
    def streaming(self) -> bool:
        import datasets

        return isinstance(self.dataset, datasets.IterableDataset)

    def train_batches(
        self,
        *,
        seed: int,
        steps: range,
        batch_size: int,
        order: Callable[[int], torch.Generator],
        augment: Callable[[int], torch.Generator],
        device: torch.device,
    ) -> Iterator[dict[str, torch.Tensor]]:
        """The training batches of the optimizer steps in ``steps``: epoch e visits every row once, in the order
        ``randperm(N, generator=order(e))`` (streamed: a buffer shuffle seeded by (seed, e)), so a step's batch
        depends only on its number and a resumed run replays exactly the batches the uninterrupted one saw.

        In memory the augmentation of step s draws from ``augment(s)`` (``loops.shuffled_batches``, unchanged); on
        the DataLoader path each row's augmentation is seeded by (seed, epoch, idx).
        """
        if self.tensors is not None:
            yield from shuffled_batches(
                self._images_on(device),
                self.labels.to(device),
                self.preprocess(),
                batch_size=batch_size,
                steps=steps,
                order=order,
                augment=augment,
            )
            return
        assert self.inputs is not None
        n, spe = len(self), -(-len(self) // batch_size)
        norm = self._normalise()
        step = steps.start
        while step < steps.stop:
            epoch, within = divmod(step, spe)
            loader = epoch_batches(
                self.dataset,
                self.inputs,
                batch_size=batch_size,
                train=True,
                seed=seed,
                epoch=epoch,
                order=None if self.streaming else torch.randperm(n, generator=order(epoch)).numpy(),
                start_batch=within,
                shuffle_seed=_stream_shuffle_seed(seed, epoch) if self.streaming else None,
                num_workers=self.num_workers,
                pin_memory=device.type == "cuda",
            )
            for batch in loader:
                yield to_device(batch, device, **norm)
                step += 1
                if step >= steps.stop:
                    return

    def eval_rows(self, *, batch_size: int, rank: int = 0, world: int = 1) -> torch.Tensor:
        """The rows this process scores, in the order ``eval_batches`` yields them: every ``world``-th row in
        memory; whole batches dealt round-robin on the DataLoader path (a stream can only be dealt that way)."""
        n = len(self)
        if self.tensors is not None:
            return torch.arange(n)[rank::world]
        starts = range(rank * batch_size, n, world * batch_size)
        parts = [torch.arange(s, min(s + batch_size, n)) for s in starts]
        return torch.cat(parts) if parts else torch.empty(0, dtype=torch.int64)

    def eval_batches(
        self, *, batch_size: int, device: torch.device, rank: int = 0, world: int = 1
    ) -> Iterator[dict[str, torch.Tensor]]:
        """Un-augmented batches of ``eval_rows(batch_size, rank, world)``, on ``device``, normalised."""
        if self.tensors is not None:
            rows = self.eval_rows(batch_size=batch_size, rank=rank, world=world)
            yield from ordered_batches(
                self.tensors.images, self.labels, self.preprocess(), batch_size=batch_size, rows=rows, device=device
            )
            return
        assert self.inputs is not None
        loader = epoch_batches(
            self.dataset,
            self.inputs,
            batch_size=batch_size,
            train=False,
            keep=(rank, world),
            num_workers=self.num_workers,
            pin_memory=device.type == "cuda",
        )
        norm = self._normalise()
        for batch in loader:
            yield to_device(batch, device, **norm)


def _stream_shuffle_seed(seed: int, epoch: int) -> int:
    return int(np.random.SeedSequence([0x5EED, seed, epoch]).generate_state(1, np.uint64)[0] >> 1)


def epoch_order(num_rows: int, generator: torch.Generator) -> torch.Tensor:
    """The permutation of an epoch (the in-memory path's ``torch.randperm``; int64, the only per-row state)."""
    return torch.randperm(num_rows, generator=generator)


def load_run_source(cfg: Any, opened: Any | None = None) -> Source:
    """The run's split with the columns its configuration names: the one place a scoring run loads its source
    (the plan, the decoded tensors, the DataLoader path and the card's examples all come through here).
    ``opened``: ``datadiet_hub.sources.open_split``'s answer for the run's split, when the caller holds it."""
    return load_source(
        cfg.dataset,
        split=cfg.split,
        input_column=cfg.input_column,
        image_column=cfg.image_column,
        text_column=cfg.text_column,
        label_column=cfg.label_column,
        revision=cfg.revision,
        data_files=cfg.data_files,
        streaming=cfg.streaming,
        opened=opened,
    )


class _SourceOnce:
    """The run's source, loaded on the first call and kept: a process loads its split at most once."""

    def __init__(self, cfg: Any, opened: Any | None = None) -> None:
        self.cfg, self.opened = cfg, opened
        self.source: Source | None = None

    def __call__(self) -> Source:
        if self.source is None:
            self.source = load_run_source(self.cfg, self.opened)
        return self.source


def _num_rows(source: Source) -> int | None:
    if not source.streaming:
        return len(source.dataset)
    splits = getattr(source.dataset.info, "splits", None) or {}
    info = splits.get(source.split)
    return int(info.num_examples) if info is not None and info.num_examples else None


def _stream_label_names(source: Source) -> list[str] | None:
    """Sorted class names of a streamed string label column (one pass over that column only)."""
    features = source.dataset.features or {}
    feature = features.get(source.label_column)
    if feature is not None and hasattr(feature, "names"):
        return None
    names: set[str] = set()
    for chunk in source.dataset.select_columns([source.label_column]).iter(batch_size=10_000):
        values = chunk[source.label_column]
        if values and not isinstance(values[0], str):
            return None
        names.update(values)
    return sorted(names)


def make_plan(cfg: Any, source: Source) -> Plan:
    """Decide the path, geometry and augmentation of a run (logged with the reasons)."""
    class_names = source.class_names
    plan = Plan(
        path="loader",
        reason="",
        kind=source.kind,
        input_column=source.input_column,
        label_column=source.label_column,
        name=source.name,
        revision=source.revision,
        class_count=len(class_names) if class_names else 0,
        class_names=class_names,
    )
    choice = _check_model(cfg, plan)  # a model for the other input kind fails here, before any row is read
    probed = probe(source.dataset, source.input_column, source.kind)
    if source.kind == InputKind.IMAGE:
        plan.image_size, plan.channels, plan.geometry = image_geometry(
            probed, image_size=cfg.image_size, channels=cfg.image_channels
        )
    elif cfg.image_size is not None or cfg.image_channels is not None:
        raise InvalidArgumentError("--image-size/--image-channels apply to images; this split's input is text.")
    plan.path, plan.reason = choose_path(
        requested=cfg.data_path,
        kind=source.kind,
        streaming=source.streaming,
        num_rows=_num_rows(source),
        probed=probed,
        image_size=plan.image_size,
        channels=plan.channels,
    )
    if choice.text_inputs == "ngrams" and plan.path == "loader":
        plan.reason = "text: n-gram features computed once for the split, batches sliced from them"
    if plan.path == "memory":
        plan.augmentation = resolve_augmentation(cfg.augmentation, (plan.channels, plan.image_size, plan.image_size))
    else:
        plan.augmentation = resolve_train_augmentation(
            cfg.augmentation,
            kind=source.kind,
            path=plan.path,
            image_size=plan.image_size,
            channels=plan.channels,
            varied=probed.fixed_size is None,
        )
    if source.streaming:
        plan.label_names = _stream_label_names(source)
    logger.info("data path: %s (%s)", plan.path, plan.reason)
    if plan.geometry:
        logger.info("images: %s", plan.geometry)
    logger.info("training augmentation: %s", plan.augmentation)
    return plan


def _save_json(path: Path, value: Any) -> None:
    atomic_write_text(path, json.dumps(value, indent=2, sort_keys=True))


def _check_model(cfg: Any, plan: Plan) -> TrainingChoice:
    """The run's model for this input kind (raises for a model of the other kind, or ``--tokenizer`` given to a
    model that does not read tokens)."""
    choice = choose_training(cfg.model, cfg.optimizer, cfg.lr, kind=plan.kind, input_column=plan.input_column)
    if choice.text_inputs == "ngrams" and cfg.tokenizer is not None:
        raise InvalidArgumentError(
            f"--tokenizer {cfg.tokenizer!r} is for token models (text-transformer, transformers:...), but the model "
            f"{choice.model!r} reads the character and word n-grams of each text. Leave --tokenizer out, or choose "
            "--model text-transformer to use it.",
            value=cfg.tokenizer,
        )
    return choice


def _ngram_encoder(source: Source | None, state_dir: Path) -> NgramEncoder:
    """The split's n-gram features, computed once (one pass over the text column) and saved with the run."""
    features = load_features(state_dir)
    if features is None:
        if source is None:
            raise FileNotFoundError(f"The n-gram features of this run are missing under {str(state_dir)!r}.")
        logger.info("computing the character and word n-grams of %s", source.name)
        features = build_features(iter_texts(source.dataset, source.input_column))
        save_features(features, state_dir)
        logger.info("%d distinct n-grams over %d texts", features.vocab_size - 1, len(features))
    return NgramEncoder(state_dir, features.vocab_size)


def _encoder(cfg: Any, plan: Plan, source: Source | None, state_dir: Path) -> TextEncoder | NgramEncoder:
    if _check_model(cfg, plan).text_inputs == "ngrams":
        return _ngram_encoder(source, state_dir)
    assert source is not None
    saved = state_dir / TOKENIZER_FILE
    if saved.exists():
        tokenizer = load_tokenizer(saved)
    elif cfg.tokenizer is not None:
        tokenizer = load_tokenizer(cfg.tokenizer)
        tokenizer.save(str(saved))
    else:
        logger.info("training a %s tokenizer (vocabulary %d) on %s", cfg.tokenizer_kind, cfg.vocab_size, source.name)
        tokenizer = train_tokenizer(
            iter_texts(source.dataset, source.input_column), vocab_size=cfg.vocab_size, kind=cfg.tokenizer_kind
        )
        tokenizer.save(str(saved))
    return TextEncoder(tokenizer, cfg.max_length)


def _inputs(cfg: Any, plan: Plan, source: Source, state_dir: Path) -> Inputs:
    if plan.kind == InputKind.TEXT:
        return Inputs(
            InputKind.TEXT,
            plan.input_column,
            plan.label_column,
            encoder=_encoder(cfg, plan, source, state_dir),
            label_names=tuple(plan.label_names) if plan.label_names else None,
        )
    return Inputs(
        InputKind.IMAGE,
        plan.input_column,
        plan.label_column,
        image_size=plan.image_size,
        channels=plan.channels,
        augmentation=plan.augmentation,
        label_names=tuple(plan.label_names) if plan.label_names else None,
    )


def _text_ready(cfg: Any, plan: Plan, state_dir: Path) -> bool:
    if _check_model(cfg, plan).text_inputs == "ngrams":
        return load_features(state_dir) is not None
    return (state_dir / TOKENIZER_FILE).exists()


def _prepare_on_main(cfg: Any, state_dir: Path, progress: bool, load: _SourceOnce) -> None:
    """Everything that reads the whole split, done once and saved: the plan, then the decoded tensors (memory
    path) or the tokenizer and the manifest (DataLoader path). A new run first looks in the cache of prepared splits
    (``datadiet_hub.scoring.data.cache``) and adds what it prepared itself; the source is loaded at most once."""
    plan_path = state_dir / PLAN_FILE
    cache, key, restored = None, None, False
    if plan_path.exists():
        plan = Plan(**json.loads(plan_path.read_text()))
    else:
        root = cache_root()
        if root is not None:
            fingerprint = _source_fingerprint(cfg, load)
            if fingerprint is not None:
                cache, key = PreparedCache(root), cache_key(cfg, fingerprint)
                restored = cache.restore(key, state_dir, last=PLAN_FILE)
        if restored:
            plan = Plan(**json.loads(plan_path.read_text()))
        else:
            plan = make_plan(cfg, load())
    if plan.path == "memory":
        state = RunState.at(state_dir)
        state.decode(cfg, load=load, progress=progress)
        prepared = tuple(path.name for path in (state.ids_path, state.source_path, state.data_path))
    else:
        prepared = (MANIFEST_FILE,)
        manifest_path = state_dir / MANIFEST_FILE
        if not manifest_path.exists() or (plan.kind == InputKind.TEXT and not _text_ready(cfg, plan, state_dir)):
            source = load()
            inputs = _inputs(cfg, plan, source, state_dir)
            if not manifest_path.exists():
                manifest = scan(
                    source.dataset,
                    inputs,
                    num_workers=cfg.num_workers,
                    progress=progress,
                    total=_num_rows(source),
                )
                manifest.save(manifest_path)
    if not plan_path.exists():
        _save_json(plan_path, asdict(plan))  # last: a run killed before this point prepares again
    if cache is not None and key is not None and not restored:
        cache.store(key, state_dir, (*prepared, PLAN_FILE))


def _source_fingerprint(cfg: Any, load: _SourceOnce) -> str | None:
    """A content fingerprint of the run's source: Fashion-MNIST's IDX files are hashed without loading the split;
    any other split uses the ``datasets`` fingerprint of the loaded split (kept by ``load`` for the rest of the
    run). None for streams and splits without one."""
    if cfg.streaming:
        return None
    if is_fashion_mnist(cfg.dataset, cfg.data_files):
        files = fashion_mnist_files(cfg.split)
        if not all(path.is_file() for path in files):
            return None  # loading the source reports what is missing
        return f"fashion-mnist:{file_digest(files)}"
    fingerprint = getattr(load().dataset, "_fingerprint", None)
    return f"datasets:{fingerprint}" if fingerprint else None


def prepare_data(
    cfg: Any,
    state_dir: str | os.PathLike,
    *,
    progress: bool = True,
    on_main: Callable[[Callable[[], None]], Any] | None = None,
    split: Any | None = None,
) -> RunData:
    """The run's rows (see the module docstring). ``on_main`` runs the one-time preparation on the main process
    only (the engine passes its "run on main, re-raise everywhere" helper); every process then reads the state."""
    state_dir = Path(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    load = _SourceOnce(cfg, split)
    work = lambda: _prepare_on_main(cfg, state_dir, progress, load)  # noqa: E731
    if on_main is None:
        work()
    else:
        on_main(work)
    plan = Plan(**json.loads((state_dir / PLAN_FILE).read_text()))
    if plan.path == "memory":
        data, _ = RunState.at(state_dir).load_data()
        mean, std = (cfg.mean, cfg.std) if cfg.mean is not None else channel_stats(data.images)
        _check_channels(mean, plan.channels)
        import pyarrow as pa

        return RunData(
            plan=plan,
            labels=data.labels,
            example_ids=pa.array(data.example_ids, type=pa.string()),
            num_classes=data.num_classes,
            mean=mean,
            std=std,
            model_kwargs={"in_channels": plan.channels, "image_size": plan.image_size},
            tensors=data,
        )
    import pyarrow as pa

    source = load()
    manifest = Manifest.load(state_dir / MANIFEST_FILE)
    inputs = _inputs(cfg, plan, source, state_dir)
    num_classes = max(plan.class_count, manifest.num_classes, len(plan.label_names or ()))
    workers = cfg.num_workers if cfg.num_workers is not None else default_workers()
    if plan.kind == InputKind.IMAGE:
        mean, std = (cfg.mean, cfg.std) if cfg.mean is not None else manifest.mean_std()
        _check_channels(mean, plan.channels)
        model_kwargs: dict[str, Any] = {"in_channels": plan.channels, "image_size": plan.image_size}
    else:
        mean = std = None
        assert inputs.encoder is not None
        if inputs.encoder.kind == "ngrams" and cfg.num_workers is None:
            workers = 0  # batches are slices of the saved features: nothing for worker processes to do
        model_kwargs = {
            "vocab_size": inputs.encoder.vocab_size,
            "max_length": cfg.max_length,
            "pad_token_id": inputs.encoder.pad_id,
        }
    return RunData(
        plan=plan,
        labels=torch.from_numpy(manifest.labels),
        example_ids=pa.array(manifest.example_ids).cast(pa.string()),
        num_classes=num_classes,
        mean=mean,
        std=std,
        model_kwargs=model_kwargs,
        dataset=source.dataset,
        inputs=inputs,
        num_workers=workers,
    )


def _check_channels(mean: list[float], channels: int) -> None:
    if len(mean) != channels:
        raise InvalidArgumentError(f"mean/std have {len(mean)} values but the images have {channels} channel(s).")


__all__ = ["Plan", "RunData", "epoch_order", "make_plan", "pad_id_of", "prepare_data"]
