"""The Hugging Face Hub side: loading a version through ``datasets.load_dataset(..., revision=)``."""

from __future__ import annotations

from typing import Any

from .errors import ScoresNotFoundError


def load_from_hub(repo_id: str, config: str | None, version: str | None, *, token: Any = None, **kwargs: Any):
    import datasets  # noqa: PLC0415

    try:
        return datasets.load_dataset(repo_id, config, split="train", revision=version, token=token, **kwargs)
    except FileNotFoundError as err:
        raise ScoresNotFoundError(f"Score dataset {repo_id!r} (version {version!r}) not found on the Hub: {err}") from err
