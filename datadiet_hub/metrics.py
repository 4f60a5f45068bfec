"""The metric declarations: what a score is, in one place, without torch.

A ``Metric`` says which columns a score writes (``<name>``, and when it is averaged over training seeds
``<name>_std`` and ``<name>_per_seed``, plus boolean ``flags``), their type, which direction is harder, its help
line and its sentence on the card. The score format (``schema.py``), the ``--scores`` choices, the provenance, the
aggregation over seeds and the card all read these declarations; the computation is registered by the same name on
the torch side (``datadiet_hub.scoring.metrics.registry``). Adding a metric is one ``declare`` here (or in your own
code, before scoring) and one ``@register`` there.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import InvalidArgumentError

__all__ = ["METRICS", "Metric", "declare", "get", "names"]


@dataclass(frozen=True)
class Metric:
    """One score column family.

    Attributes:
        name: the mean column's name, and the name given to ``--scores`` and ``column=``.
        help: one line for ``--help`` and error messages.
        card: the card's sentence defining the column; may use ``{minibatches}`` ("augmented minibatches as
            trained", "minibatches as trained, without augmentation" or "minibatches as trained").
        higher_is_harder: whether larger values mean harder examples (``hardest`` keeps the largest); ``False``
            flips the ranking, never the stored values.
        dtype: the arrow type (an alias such as ``float32``) of the value, ``_std`` and ``_per_seed`` items.
        over_seeds: computed once per training seed and written as mean, ``_std`` and ``_per_seed``; ``False``: a
            score that no training seed changes, computed once and written as one column.
        needs_training: meaningless at step 0 (no config scored at initialisation carries it).
        label: how prose names it (``EL2N``); the name when not given.
        noise_at_init: the card's warning when the metric is scored at initialisation, where it is a noise control
            rather than a difficulty; ``None``: meaningful at initialisation.
        card_note: sentences the card adds after the column definitions (what a flag means).
        flags: boolean per-row companion columns, true when true for any seed (``never_learned``).
        convention: how the score counts, recorded in the provenance as ``<name>_convention``.
    """

    name: str
    help: str
    card: str
    higher_is_harder: bool = True
    dtype: str = "float32"
    over_seeds: bool = True
    needs_training: bool = False
    label: str = ""
    noise_at_init: str | None = None
    card_note: str | None = None
    flags: tuple[str, ...] = ()
    convention: str | None = None

    @property
    def title(self) -> str:
        """How prose names the metric."""
        return self.label or self.name

    @property
    def value_columns(self) -> tuple[str, ...]:
        """The columns holding this metric's values: the mean, and with seeds its spread and raw values."""
        if self.over_seeds:
            return (self.name, f"{self.name}_std", f"{self.name}_per_seed")
        return (self.name,)

    @property
    def columns(self) -> tuple[str, ...]:
        """Every column this metric writes, in the format's order."""
        return (*self.value_columns, *self.flags)


METRICS: dict[str, Metric] = {}
"""The declared metrics by name, in declaration order (the format's column order)."""


def declare(metric: Metric, *, replace: bool = False) -> Metric:
    """Add ``metric`` to the declarations; a name or column already taken is an ``InvalidArgumentError`` unless
    ``replace`` (a redeclaration of the same name)."""
    if not metric.name.isidentifier() or metric.name != metric.name.lower():
        raise InvalidArgumentError(
            f"Invalid metric name {metric.name!r}: use a lowercase identifier such as 'el2n'.", value=metric.name
        )
    if metric.name in METRICS and not replace:
        raise InvalidArgumentError(f"Metric {metric.name!r} is already declared.", value=metric.name)
    taken = {c for m in METRICS.values() if m.name != metric.name for c in m.columns}
    clash = [c for c in metric.columns if c in taken or c in ("idx", "example_id", "label")]
    if clash:
        raise InvalidArgumentError(
            f"Metric {metric.name!r} would write column(s) {clash} already in use.", value=clash
        )
    METRICS[metric.name] = metric
    return metric


def names() -> tuple[str, ...]:
    """The declared metric names, in declaration order."""
    return tuple(METRICS)


def get(name: str) -> Metric:
    """The metric called ``name``; ``InvalidArgumentError`` listing the choices otherwise."""
    try:
        return METRICS[name]
    except (KeyError, TypeError):
        raise InvalidArgumentError(
            f"Unknown metric {name!r}. Choose from: {', '.join(METRICS)}.", value=name
        ) from None


declare(
    Metric(
        "el2n",
        help="‖softmax - one-hot‖₂ of a trained model's prediction (Paul et al., 2021)",
        card="`el2n` = ‖softmax − one-hot‖₂ (not squared) in eval mode on un-augmented inputs",  # noqa: RUF001
        label="EL2N",
        noise_at_init=(
            "EL2N at initialisation is a noise control, not a difficulty score: an untrained network's errors are "
            "unrelated across seeds (seed-to-seed Spearman about 0). Prune with a later config; GraNd at "
            "initialisation is meaningful (it follows the input norm)."
        ),
    )
)
declare(
    Metric(
        "grand",
        help="‖∇_w loss‖₂ over all parameters, per example (Paul et al., 2021)",
        card="`grand` = ‖∇_w loss‖₂ over all parameters, BatchNorm in eval mode",
        label="GraNd",
    )
)
declare(
    Metric(
        "forgetting",
        help="correct→incorrect transitions during training (Toneva et al., 2019)",
        card=(
            "`forgetting` = correct→incorrect transitions between consecutive presentations during training (counted "
            "on the {minibatches}), up to the config's time"
        ),
        needs_training=True,
        flags=("never_learned",),
        card_note=(
            "`never_learned` is true when some seed never classified the example correctly during training; its "
            "`forgetting` count is 0 for that seed (DeepCore's convention). data_diet ranks such examples as "
            "infinitely forgotten: `datadiet_hub` does so by default when ranking by `forgetting` "
            "(`never_learned_as_inf=True`)."
        ),
        convention=(
            "count of correct->incorrect transitions on the trained minibatches; never_learned "
            "rows count 0 per seed and are flagged (data_diet ranks them as infinite)"
        ),
    )
)
declare(
    Metric(
        "loss",
        help="mean next-token cross entropy of a document under briefly trained reference language models "
        "(perplexity = exp)",
        card=(
            "`loss` = mean next-token cross entropy over the document's predicted tokens (its perplexity is "
            "exp(loss)), under reference language models trained briefly on the corpus"
        ),
        label="loss",
    )
)
declare(
    Metric(
        "num_tokens",
        help="predicted tokens per document (its tokens minus the first), under the run's tokenizer",
        card="`num_tokens` = the number of next tokens the reference models predict in the document",
        dtype="int64",
        over_seeds=False,
        label="tokens",
    )
)
