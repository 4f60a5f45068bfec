"""Real data as a user has it on disk, in every form ``datadiet score`` reads: JSON lines and CSV of short texts
(fortunes in four languages, Debian packages fortunes-min/-de/-es/-it) with string labels and extra columns, an
imagefolder tree of PNG and JPEG images of mixed sizes and modes, a parquet file with an ``Image`` column named
``img`` and a ``ClassLabel`` named ``digit``, and a ``save_to_disk`` folder (sklearn's 8x8 digits, upscaled)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from experiments import own_data

LANGUAGES = ("de", "en", "es", "it")


def fortunes(per_language: int, *, seed: int = 0) -> list[dict]:
    """``per_language`` short fortunes of each language, shuffled: ``text``, ``language``, ``source`` (file name)."""
    rng = np.random.default_rng(seed)
    rows = []
    for language in LANGUAGES:
        found = sorted({(t, p.name) for p in own_data.language_files(language) for t in own_data.read_fortunes(p)})
        found = [(t, f) for t, f in found if len(t) <= 160]
        for i in rng.choice(len(found), per_language, replace=False):
            rows.append({"text": found[i][0], "language": language, "source": found[i][1]})
    return [rows[i] for i in rng.permutation(len(rows))]


def fortunes_available() -> bool:
    try:
        return all(own_data.language_files(language) for language in LANGUAGES)
    except FileNotFoundError:
        return False


def write_jsonl(path: Path, per_language: int = 60) -> Path:
    """``id``, ``sentence``, ``category`` (the language, a string), ``source``: labels under an unusual name."""
    rows = [
        {"id": f"f{i:04d}", "sentence": r["text"], "category": r["language"], "source": r["source"]}
        for i, r in enumerate(fortunes(per_language))
    ]
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    return path


def write_csv(path: Path, per_language: int = 60) -> Path:
    """``Text``, ``Label`` (capitalised, string labels) and ``chars`` (numeric metadata)."""
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Text", "Label", "chars"])
        for row in fortunes(per_language, seed=1):
            writer.writerow([row["text"], row["language"], len(row["text"])])
    return path


def digits(n: int, *, seed: int = 0) -> tuple[list, np.ndarray]:
    """``n`` of sklearn's 8x8 digits as PIL images upscaled to 16-40 px (varied sizes, some RGB), and labels."""
    from PIL import Image
    from sklearn.datasets import load_digits

    data = load_digits()
    rng = np.random.default_rng(seed)
    rows = rng.choice(len(data.target), n, replace=False)
    images = []
    for k, row in enumerate(rows):
        grey = Image.fromarray((data.images[row] * (255 / 16)).astype(np.uint8), "L")
        side = int(rng.integers(16, 41))
        image = grey.resize((side, int(rng.integers(16, 41))), Image.Resampling.BILINEAR)
        images.append(image.convert("RGB") if k % 3 == 0 else image)
    return images, data.target[rows].astype(np.int64)


def write_imagefolder(root: Path, n: int = 200) -> Path:
    """``root/train/<digit name>/<i>.png|jpg``: PNG and JPEG, greyscale and RGB, sizes 16-40 px."""
    names = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    images, labels = digits(n)
    for i, (image, label) in enumerate(zip(images, labels)):
        folder = root / "train" / names[label]
        folder.mkdir(parents=True, exist_ok=True)
        if i % 2:
            image.save(folder / f"{i:05d}.jpg", quality=95)
        else:
            image.save(folder / f"{i:05d}.png")
    return root


def write_parquet(path: Path, n: int = 200) -> Path:
    """An ``Image`` column ``img`` and a ``ClassLabel`` column ``digit``, plus a numeric ``weight`` column."""
    import datasets

    images, labels = digits(n, seed=1)
    features = datasets.Features(
        {
            "img": datasets.Image(),
            "digit": datasets.ClassLabel(names=[str(k) for k in range(10)]),
            "weight": datasets.Value("float32"),
        }
    )
    ds = datasets.Dataset.from_dict({"img": images, "digit": labels.tolist(), "weight": [1.0] * n}, features=features)
    ds.to_parquet(str(path))
    return path


def write_saved(root: Path, n: int = 200) -> Path:
    """A ``save_to_disk`` folder: ``image`` (Image), ``label`` as plain integers (no names), a string ``uid``."""
    import datasets

    images, labels = digits(n, seed=2)
    features = datasets.Features(
        {"uid": datasets.Value("string"), "image": datasets.Image(), "label": datasets.Value("int64")}
    )
    ds = datasets.Dataset.from_dict(
        {"uid": [f"u{i}" for i in range(n)], "image": images, "label": labels.tolist()}, features=features
    )
    ds.save_to_disk(str(root))
    return root
