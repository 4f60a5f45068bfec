"""Which column is the input, what kind of input it holds, and which column is the label: decided here only.

Scoring, ``keep``, ``prune``, the alignment checks and the CLI all call ``detect_columns``, so a dataset loaded
however the user loads it (``load_dataset("json"|"csv"|"imagefolder"|"parquet")``, ``load_from_disk``, streamed
or not, or one batch that ``Dataset.filter`` passes) resolves to the same ``Columns``.

The rule, in order:

1. A column named by the caller must exist (the error quotes the columns and names the flag).
2. Label: the named one; else the one ``ClassLabel`` column (among several, the one with a usual label name); else
   the first usual label name (``label``, ``labels``, ``target``, ``class``, ``category``, ``digit``, ...,
   ``language``), compared case-insensitively.
3. Input: the named one; else the one ``Image`` column (among several, the usual image name); else a column with a
   usual image name that does not hold text (``img``, ``pixel_values``, ...); else the string columns other than the
   label: the only one, or the one left after setting aside usual metadata names (``id``, ``source``, ``language``,
   ``url``, ...), or the one with a usual text name (``text``, ``sentence``, ``content``, ...). Anything else is an
   error naming ``--input-column``.
4. A string input whose values are image file paths (``photos/1.png``; or path-like values in a column with a usual
   image name) is refused with the cast that makes it images (``ds.cast_column(name, datasets.Image())``): scoring
   would read the file names as text, and the ``example_id`` of a path is not the one of its image. Only
   ``--text-column`` (the kind named explicitly) reads such a column as text.

Typed features decide first; a streamed dataset without features, and a plain batch, are typed from their first row.
This module imports neither torch nor (at import time) ``datasets``.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import InvalidArgumentError, did_you_mean


class InputKind(str, enum.Enum):
    """What the input column holds; decides the decoder and the default model. A ``str`` so YAML/JSON carry it."""

    IMAGE = "image"
    TEXT = "text"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Columns:
    """The input column, what it holds, and the label column (None when the caller asked for no label)."""

    input: str
    kind: InputKind
    label: str | None

    def names(self) -> list[str]:
        """The columns an example id reads: the input, then the label."""
        return [self.input] + ([self.label] if self.label is not None else [])


IMAGE_NAMES = ("image", "img", "images", "picture", "photo", "pixel_values", "pixels")
TEXT_NAMES = (
    "text", "sentence", "content", "review", "document", "sms", "tweet", "question", "title", "body", "comment",
    "utterance", "message", "passage", "abstract", "description", "prompt", "input", "quote",
)  # fmt: skip
LABEL_NAMES = (
    "label", "labels", "fine_label", "coarse_label", "target", "class", "class_id", "category", "digit", "y",
    "sentiment", "emotion", "topic", "intent", "genre", "language", "lang",
)  # fmt: skip
METADATA_NAMES = (
    "id", "idx", "uid", "uuid", "example_id", "guid", "key", "source", "language", "lang", "url", "link", "path",
    "file", "filename", "file_name", "split", "date", "author", "name",
)  # fmt: skip
"""String columns that are usually not the input; set aside when several string columns compete."""

# column roles, from a datasets feature or from a value
_IMAGE, _STRING, _CLASSLABEL, _INTEGER, _FLOAT, _ARRAY, _MIXED, _OTHER = (
    "image", "string", "class label", "integer", "float", "array", "mixed-type", "other",
)  # fmt: skip

_INPUT_FLAG = "--input-column (library: input_column=)"
_LABEL_FLAG = "--label-column (library: label_column=)"


def _feature_role(feature: Any) -> str:
    import datasets

    if isinstance(feature, datasets.Image):
        return _IMAGE
    if isinstance(feature, datasets.ClassLabel):
        return _CLASSLABEL
    if isinstance(feature, datasets.Value):
        dtype = feature.dtype
        if dtype in ("string", "large_string"):
            return _STRING
        if dtype.startswith(("int", "uint")) or dtype == "bool":
            return _INTEGER
        if dtype.startswith("float"):
            return _FLOAT
        return _OTHER
    if type(feature).__name__ == "Json":  # datasets' type for a JSON field whose values differ in type
        return _MIXED
    if isinstance(feature, dict) and ("bytes" in feature or "path" in feature):  # an image struct without metadata
        return _IMAGE
    array_types = tuple(
        getattr(datasets, name)
        for name in ("Sequence", "List", "LargeList", "Array2D", "Array3D")
        if hasattr(datasets, name)
    )
    if isinstance(feature, array_types) or isinstance(feature, list):
        return _ARRAY
    return _OTHER


def _value_role(value: Any) -> str:
    """The role of one row's value (a batch from ``filter`` or a streamed row carries no features)."""
    import numbers

    if isinstance(value, str):
        return _STRING
    if isinstance(value, bool) or isinstance(value, numbers.Integral):
        return _INTEGER
    if isinstance(value, numbers.Real):
        return _FLOAT
    if isinstance(value, Mapping) and ("bytes" in value or "path" in value):
        return _IMAGE
    if type(value).__module__.startswith("PIL."):
        return _IMAGE
    if hasattr(value, "shape") or isinstance(value, (list, tuple)):
        return _ARRAY
    return _OTHER


def column_roles(source: Any) -> dict[str, str]:
    """Each column's role (image, string, class label, integer, float, array, other), in column order.

    ``source``: a ``datasets.Dataset``/``IterableDataset`` (features; a streamed one without features is typed from
    its first row), a ``datasets.Features`` or mapping of features, a batch (column -> list of values) or one row.
    """
    features = getattr(source, "features", None)
    if (
        features is None
        and hasattr(source, "__iter__")
        and hasattr(source, "take")
        and not isinstance(source, Mapping)
    ):
        row = next(iter(source), None)  # a streamed json/csv file: the first row says the types
        if row is None:
            raise InvalidArgumentError("The dataset has no rows, so its columns cannot be detected.")
        return {name: _value_role(value) for name, value in row.items()}
    if features is not None:
        return {name: _feature_role(feature) for name, feature in features.items()}
    if hasattr(source, "column_names") and hasattr(source, "column"):  # a pyarrow.Table batch
        return {name: _value_role(_first(source.column(name).to_pylist())) for name in source.column_names}
    if isinstance(source, Mapping):
        if source and all(type(v).__module__.startswith("datasets.features") for v in source.values()):
            return {name: _feature_role(feature) for name, feature in source.items()}  # datasets.Features
        return {name: _value_role(_first(value)) for name, value in source.items()}
    raise InvalidArgumentError(
        f"Cannot detect columns of a {type(source).__name__}; give a datasets.Dataset, IterableDataset, Features or "
        "a batch mapping column names to values."
    )


def _first(values: Any) -> Any:
    """The first non-null value of a batch column (a column of lists/arrays), or the value itself for one row."""
    if isinstance(values, (str, bytes, Mapping)) or not hasattr(values, "__len__"):
        return values
    if hasattr(values, "ndim"):  # a numpy column: rows are its first axis
        return values[0] if values.ndim > 1 and len(values) else (values[0].item() if len(values) else None)
    return next((v for v in values if v is not None), None)


def _usual(columns: Sequence[str], names: Sequence[str]) -> str | None:
    """The first of ``names`` present among ``columns``, compared case-insensitively."""
    lowered: dict[str, str] = {}
    for column in columns:
        lowered.setdefault(column.lower(), column)
    return next((lowered[name] for name in names if name in lowered), None)


def detect_columns(
    source: Any,
    *,
    input_column: str | None = None,
    label_column: str | None = None,
    image_column: str | None = None,
    text_column: str | None = None,
    require_label: bool = True,
) -> Columns:
    """The input column, its kind and the label column of ``source`` (see the module docstring for the rule).

    ``image_column``/``text_column`` are the older names of ``input_column`` that also fix the kind. With
    ``require_label=False`` a dataset without a label column gives ``label=None`` instead of an error.
    Raises ``InvalidArgumentError`` quoting the columns and naming the flag that fixes it.
    """
    roles = column_roles(source)
    columns = list(roles)
    named = [(n, f) for n, f in ((image_column, "--image-column"), (text_column, "--text-column")) if n is not None]
    if input_column is not None:
        named.insert(0, (input_column, "--input-column"))
    if len({n for n, _ in named}) > 1:
        raise InvalidArgumentError(
            "Name one input column, not " + " and ".join(f"{f} {n!r}" for n, f in named) + ": a run scores one input.",
            value=[n for n, _ in named],
        )
    for given, flag in [*named, (label_column, "--label-column")]:
        if given is not None and given not in roles:
            raise InvalidArgumentError(
                f"Column {given!r} ({flag}) is not in the dataset; its columns are {columns}.{did_you_mean(given, columns)}"
                " Check the spelling (column names are case-sensitive) or leave the flag out to detect the column.",
                column=given,
                value=given,
            )
    given_input = named[0][0] if named else None
    label = label_column if label_column is not None else _detect_label(roles, given_input, require_label)
    if label is not None and roles[label] not in (_CLASSLABEL, _INTEGER, _STRING):
        raise InvalidArgumentError(
            f"The label column {label!r} holds {roles[label]} values; a label is a class: a ClassLabel, integers or "
            f"strings. Name the label with {_LABEL_FLAG}.",
            column=label,
            value=roles[label],
        )
    if given_input is not None:
        kind = _kind_of(given_input, roles[given_input], image_column == given_input, text_column == given_input)
        if given_input == label:
            raise InvalidArgumentError(
                f"Column {given_input!r} is named both as the input and as the label; name the label with "
                f"{_LABEL_FLAG}.",
                column=given_input,
            )
        if kind is InputKind.TEXT and text_column != given_input:
            _refuse_image_paths(source, given_input)
        return Columns(given_input, kind, label)
    detected = _detect_input(roles, label)
    if detected.kind is InputKind.TEXT:
        _refuse_image_paths(source, detected.input)
    return detected


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm")
_SAMPLE = 8


def _sample_values(source: Any, column: str) -> list[Any]:
    """The first few values of ``column`` (a dataset, a stream, a batch or a row); [] for bare features."""
    if hasattr(source, "take") and not hasattr(source, "__len__"):  # IterableDataset: a few rows of the stream
        return [row.get(column) for row in source.take(_SAMPLE)]
    if hasattr(source, "select_columns") and hasattr(source, "__len__"):  # datasets.Dataset
        rows = source.select_columns([column]).with_format(None)
        return list(rows[: min(_SAMPLE, len(rows))][column])
    if hasattr(source, "column_names") and hasattr(source, "column"):  # a pyarrow.Table batch
        return source.column(column).slice(0, _SAMPLE).to_pylist()
    if isinstance(source, Mapping) and column in source:
        value = source[column]
        if type(value).__module__.startswith("datasets.features"):
            return []
        return [value] if isinstance(value, str) else list(value[:_SAMPLE])
    return []


def _path_like(value: str) -> bool:
    return (
        bool(value) and len(value) < 4096 and not any(c.isspace() for c in value) and ("/" in value or "\\" in value)
    )


def _refuse_image_paths(source: Any, column: str) -> None:
    """Raise when the string column ``column`` holds image file paths (rule 4 of the module docstring)."""
    values = [v for v in _sample_values(source, column) if v is not None]
    if not values or not all(isinstance(v, str) for v in values):
        return
    suffixed = all(v.strip().lower().endswith(IMAGE_SUFFIXES) and "\n" not in v.strip() for v in values)
    named = column.lower() in IMAGE_NAMES and all(_path_like(v) for v in values)
    if not (suffixed or named):
        return
    found = sum(os.path.isfile(v) for v in values)
    where = (
        f"{found} of the first {len(values)} exist as files here"
        if found
        else f"none of the first {len(values)} exists relative to {os.getcwd()}: cast where they do, or make them "
        "absolute"
    )
    raise InvalidArgumentError(
        f"Column {column!r} holds image file paths as strings ({values[0]!r}, ...; {where}), not images: scoring "
        f"would read the file names as text. Cast it to images first: ds = ds.cast_column({column!r}, "
        "datasets.Image()), then ds.save_to_disk(FOLDER) and give FOLDER (or keep the dataset in Python). To score "
        "the strings as text anyway, name them with --text-column.",
        column=column,
        value=values[0],
    )


def _kind_of(column: str, role: str, as_image: bool, as_text: bool) -> InputKind:
    """The kind of a column the caller named; ``--image-column``/``--text-column`` must agree with its values."""
    kind = InputKind.TEXT if role == _STRING else InputKind.IMAGE if role in (_IMAGE, _ARRAY, _OTHER) else None
    if kind is None:
        raise InvalidArgumentError(
            f"Column {column!r} holds {role} values, not images or texts; name the input with {_INPUT_FLAG}.",
            column=column,
            value=role,
        )
    if (as_image and kind is InputKind.TEXT) or (as_text and kind is InputKind.IMAGE):
        flag = "--image-column" if as_image else "--text-column"
        raise InvalidArgumentError(
            f"{flag} {column!r} holds {kind.value} values; name it with --input-column (the kind is detected).",
            column=column,
            value=kind.value,
        )
    return kind


def _detect_label(roles: Mapping[str, str], input_column: str | None, required: bool) -> str | None:
    candidates = [c for c in roles if c != input_column]
    typed = [c for c in candidates if roles[c] == _CLASSLABEL]
    if len(typed) == 1:
        return typed[0]
    label = _usual(typed, LABEL_NAMES) if typed else None
    if label is None:
        usable = [c for c in candidates if roles[c] in (_CLASSLABEL, _INTEGER, _STRING)]
        label = _usual(usable, LABEL_NAMES)
    if label is None and required and (odd := _usual(candidates, LABEL_NAMES)) is not None:
        raise InvalidArgumentError(
            f"Column {odd!r} looks like the label but holds {roles[odd]} values (a mixed-type column mixes e.g. "
            "strings and numbers); make every label a string or every label an integer, or name the label with "
            f"{_LABEL_FLAG}.",
            column=odd,
            value=roles[odd],
        )
    if label is None and required:
        several = f" (several ClassLabel columns: {typed})" if typed else ""
        raise InvalidArgumentError(
            f"No label column found among the columns {list(roles)}{several}: none is the one ClassLabel or is named "
            f"like {', '.join(LABEL_NAMES[:8])}, ...; name it with {_LABEL_FLAG}.",
            value=list(roles),
        )
    return label


def _detect_input(roles: Mapping[str, str], label: str | None) -> Columns:
    others = [c for c in roles if c != label]
    images = [c for c in others if roles[c] == _IMAGE]
    if len(images) == 1:
        return Columns(images[0], InputKind.IMAGE, label)
    if len(images) > 1:
        chosen = _usual(images, IMAGE_NAMES)
        if chosen is None:
            raise InvalidArgumentError(
                f"Several image columns {images} and none has a usual name ({', '.join(IMAGE_NAMES)}); name the "
                f"input with {_INPUT_FLAG}.",
                value=images,
            )
        return Columns(chosen, InputKind.IMAGE, label)
    named_image = _usual([c for c in others if roles[c] in (_ARRAY, _OTHER)], IMAGE_NAMES)
    if named_image is not None:
        return Columns(named_image, InputKind.IMAGE, label)
    texts = [c for c in others if roles[c] == _STRING]
    if len(texts) > 1:
        lowered = {name.lower() for name in METADATA_NAMES}
        content = [c for c in texts if c.lower() not in lowered and not c.lower().endswith("_id")]
        usual = _usual(texts, TEXT_NAMES)
        if usual is not None:
            texts = [usual]
        elif len(content) == 1:
            texts = content
        else:
            raise InvalidArgumentError(
                f"Several text columns {texts} and none has a usual name ({', '.join(TEXT_NAMES[:6])}, ...); name the "
                f"input with {_INPUT_FLAG}.",
                value=texts,
            )
    if len(texts) == 1:
        return Columns(texts[0], InputKind.TEXT, label)
    raise InvalidArgumentError(
        f"Cannot find the input column among {list(roles)} (types: "
        + ", ".join(f"{c}: {r}" for c, r in roles.items())
        + f"): no Image column, no text column, no usual image name; name it with {_INPUT_FLAG}.",
        value=list(roles),
    )
