"""Score your own data, end to end from the CLI, on two real data sets this script makes (nothing downloaded):

- ``images``: Fashion-MNIST images (Debian ``dataset-fashion-mnist``) tinted with a random colour and re-saved as
  PNG or JPEG at random sizes 20-96 px, RGB, in an ``imagefolder`` layout, with ``--flip`` of the labels moved to
  a wrong class folder;
- ``text``: the fortunes of the Debian ``fortunes-de``, ``fortunes-es``, ``fortunes-it`` (and ``fortunes-min``,
  English) packages, split on the ``%`` lines into one row per fortune, labelled with its language, with ``--flip``
  of the labels changed to another language.

Each is scored with ``datadiet score`` in a subprocess (resumable: rerunning continues), loaded back with plain
``datasets.load_dataset``, and reported: the AUROC of EL2N for the flipped labels (with a 95% bootstrap interval
over rows) and the seed agreement (mean pairwise Spearman of the per-seed EL2N). One CSV row per data set in
``docs/results/own_data.csv`` (replaced on rerun).

    python -m experiments.own_data images --n 3000 --seeds 0,1,2 --epochs 3
    python -m experiments.own_data text --per-language 750 --seeds 0,1,2 --epochs 3
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results" / "own_data.csv"
FIELDS = [
    "dataset",
    "rows",
    "flipped",
    "flip_rate",
    "model",
    "seeds",
    "epochs",
    "config",
    "el2n_auroc",
    "auroc_ci_low",
    "auroc_ci_high",
    "seed_spearman",
    "data_path",
    "wall_s",
    "hardware",
    "command",
]
FORTUNES = Path("/usr/share/games/fortunes")
LANGUAGES = {
    "de": (FORTUNES / "de", "fortunes-de"),
    "es": (FORTUNES / "es", "fortunes-es"),
    "it": (FORTUNES / "it", "fortunes-it"),
    "en": (FORTUNES, "fortunes-min"),  # fortunes, literature, riddles at the top level
}
EN_FILES = ("fortunes", "literature", "riddles")


# -- the data ---------------------------------------------------------------------------------------------------------


def make_image_folder(root: Path, *, n: int, flip: float, seed: int = 0) -> Path:
    """``root/train/<class>/<i>.png|jpg`` and ``root/flips.json`` (file names whose label was flipped)."""
    from PIL import Image

    from datadiet_hub.sources import FASHION_MNIST_CLASSES, fashion_mnist_arrays

    done = root / "flips.json"
    if done.exists():
        return root
    images, labels = fashion_mnist_arrays("train")
    rng = np.random.default_rng(seed)
    rows = rng.choice(len(labels), n, replace=False)
    flipped = set(rng.choice(n, round(flip * n), replace=False).tolist())
    names = [c.replace("/", "-") for c in FASHION_MNIST_CLASSES]
    flips: list[str] = []
    for i, row in enumerate(rows):
        label = int(labels[row])
        if i in flipped:
            label = int((label + rng.integers(1, 10)) % 10)
        side = int(rng.integers(20, 97))
        colour = rng.integers(60, 256, 3)
        background = rng.integers(0, 60, 3)
        grey = images[row].astype(np.float32)[:, :, None] / 255.0
        rgb = (background + grey * (colour - background)).astype(np.uint8)
        image = Image.fromarray(rgb, "RGB").resize((side, int(rng.integers(20, 97))), Image.Resampling.BILINEAR)
        folder = root / "train" / names[label]
        folder.mkdir(parents=True, exist_ok=True)
        fmt = "png" if i % 2 == 0 else "jpg"
        path = folder / f"{i:06d}.{fmt}"
        image.save(path, **({"quality": 90} if fmt == "jpg" else {}))
        if i in flipped:
            flips.append(str(path.relative_to(root)))
    done.write_text(json.dumps(sorted(flips)))
    return root


def image_flip_rows(root: Path) -> np.ndarray:
    """Row positions (as ``load_dataset(root)`` orders them) of the flipped images."""
    import datasets

    flips = set(json.loads((root / "flips.json").read_text()))
    ds = datasets.load_dataset(str(root), split="train").cast_column("image", datasets.Image(decode=False))
    paths = [Path(v["path"]) for v in ds["image"]]
    return np.array([str(p.relative_to(root)) in flips if p.is_absolute() else str(p) in flips for p in paths])


def read_fortunes(path: Path) -> list[str]:
    """The fortunes of one file: blocks separated by lines holding only ``%``."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    blocks, current = [], []
    for line in text.splitlines():
        if line.strip() == "%":
            blocks.append("\n".join(current).strip())
            current = []
        else:
            current.append(line)
    blocks.append("\n".join(current).strip())
    return [" ".join(b.split()) for b in blocks if 20 <= len(b) <= 400]


def language_files(language: str) -> list[Path]:
    folder, package = LANGUAGES[language]
    if language == "en":
        files = [folder / name for name in EN_FILES]
    else:
        files = sorted(
            p for p in folder.iterdir() if p.is_file() and p.suffix not in (".dat", ".u8") and not p.is_symlink()
        )
    files = [p for p in files if p.exists()]
    if not files:
        raise FileNotFoundError(f"No fortunes for {language!r} under {folder}: apt-get install {package}")
    return files


def make_text_set(root: Path, *, per_language: int, flip: float, seed: int = 0) -> Path:
    """``root/train.jsonl`` (``text``, ``language``) and ``root/flips.json`` (row positions flipped)."""
    done = root / "flips.json"
    if done.exists():
        return root
    rng = np.random.default_rng(seed)
    rows: list[dict[str, str]] = []
    for language in sorted(LANGUAGES):
        texts = sorted({t for path in language_files(language) for t in read_fortunes(path)})
        chosen = rng.choice(len(texts), min(per_language, len(texts)), replace=False)
        rows += [{"text": texts[i], "language": language} for i in chosen]
    order = rng.permutation(len(rows))
    rows = [rows[i] for i in order]
    flipped = sorted(rng.choice(len(rows), round(flip * len(rows)), replace=False).tolist())
    languages = sorted(LANGUAGES)
    for i in flipped:
        others = [lang for lang in languages if lang != rows[i]["language"]]
        rows[i]["language"] = others[int(rng.integers(0, len(others)))]
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "train.jsonl", "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    done.write_text(json.dumps(flipped))
    return root


# -- the measures -----------------------------------------------------------------------------------------------------


def auroc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve of ``scores`` for ``positive`` (Mann-Whitney U with average ranks for ties)."""
    from scipy.stats import rankdata

    positive = positive.astype(bool)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def bootstrap_auroc(
    scores: np.ndarray, positive: np.ndarray, *, rounds: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """95% percentile interval of the AUROC over rows resampled with replacement."""
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(rounds):
        pick = rng.integers(0, len(scores), len(scores))
        values.append(auroc(scores[pick], positive[pick]))
    low, high = np.nanpercentile(values, [2.5, 97.5])
    return float(low), float(high)


def seed_spearman(per_seed: np.ndarray) -> float:
    """Mean pairwise Spearman correlation between the seeds' scores (``[N, M]``)."""
    from scipy.stats import spearmanr

    m = per_seed.shape[1]
    pairs = [spearmanr(per_seed[:, a], per_seed[:, b])[0] for a in range(m) for b in range(a + 1, m)]
    return float(np.mean(pairs)) if pairs else float("nan")


# -- running ----------------------------------------------------------------------------------------------------------


def score(args: list[str], out: Path) -> float:
    """``python -m datadiet_hub.scoring ARGS --output-dir OUT`` with one torch thread; returns the wall time in seconds."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    command = [sys.executable, "-m", "datadiet_hub.scoring", *args, "--output-dir", str(out), "--no-progress", "-v"]
    print("$", shlex.join(command), flush=True)
    started = time.perf_counter()
    subprocess.run(command, check=True, env=env, cwd=ROOT)
    return time.perf_counter() - started


def report(
    name: str, out: Path, flipped: np.ndarray, *, model: str, seeds: str, epochs: int, wall: float, command: str
) -> dict[str, Any]:
    """Load the scores with plain ``load_dataset`` and measure them; one CSV row."""
    import datasets

    from datadiet_hub.card import ScoreCard

    card = ScoreCard.read(out / "README.md").metadata()
    config = sorted(c["config_name"] for c in card["configs"])[-1]
    scores = datasets.load_dataset(str(out), config, split="train").with_format("numpy")
    el2n = np.asarray(scores["el2n"], dtype=np.float64)
    per_seed = np.stack(list(scores["el2n_per_seed"]))
    if len(el2n) != len(flipped):
        raise RuntimeError(f"{out}: {len(el2n)} score rows for {len(flipped)} data rows.")
    low, high = bootstrap_auroc(el2n, flipped)
    provenance = card.get("datadiet", {})
    return {
        "dataset": name,
        "rows": len(el2n),
        "flipped": int(flipped.sum()),
        "flip_rate": round(float(flipped.mean()), 4),
        "model": model,
        "seeds": seeds,
        "epochs": epochs,
        "config": config,
        "el2n_auroc": round(auroc(el2n, flipped), 4),
        "auroc_ci_low": round(low, 4),
        "auroc_ci_high": round(high, 4),
        "seed_spearman": round(seed_spearman(per_seed), 4),
        "data_path": provenance.get("scoring", {}).get("data", {}).get("data_path", ""),
        "wall_s": round(wall, 1),
        "hardware": provenance.get("environment", {}).get("hardware", provenance.get("hardware", "")),
        "command": command,
    }


def write_row(row: dict[str, Any], path: Path = RESULTS) -> None:
    """Replace the row of the same data set (or add it), atomically."""
    rows = []
    if path.exists():
        with open(path, newline="") as handle:
            rows = [r for r in csv.DictReader(handle) if r["dataset"] != row["dataset"]]
    rows.append({k: row.get(k, "") for k in FIELDS})
    from datadiet_hub.atomic import atomic_path

    with atomic_path(path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(sorted(rows, key=lambda r: r["dataset"]))


def run_images(ns: argparse.Namespace) -> dict[str, Any]:
    root = make_image_folder(Path(ns.work) / "images", n=ns.n, flip=ns.flip)
    flipped = image_flip_rows(root)
    args = [
        "--dataset", str(root), "--model", ns.model, "--width", str(ns.width), "--image-size", str(ns.image_size),
        "--seeds", ns.seeds, "--at", str(ns.epochs), "--scores", "el2n", "--batch-size", "64", "--lr", "0.05",
    ]  # fmt: skip
    out = Path(ns.work) / "images-scores"
    wall = score(args, out)
    command = "datadiet score " + shlex.join(args) + f" --output-dir {out}"
    return report("images", out, flipped, model=ns.model, seeds=ns.seeds, epochs=ns.epochs, wall=wall, command=command)


def run_text(ns: argparse.Namespace) -> dict[str, Any]:
    root = make_text_set(Path(ns.work) / "text", per_language=ns.per_language, flip=ns.flip)
    flipped_rows = json.loads((root / "flips.json").read_text())
    n = sum(1 for _ in open(root / "train.jsonl", encoding="utf-8"))
    flipped = np.zeros(n, dtype=bool)
    flipped[flipped_rows] = True
    args = [
        "--dataset", str(root / "train.jsonl"), "--text-column", "text", "--label-column", "language",
        "--model", ns.model, "--width", str(ns.width), "--max-length", str(ns.max_length), "--vocab-size", str(ns.vocab_size),
        "--seeds", ns.seeds, "--at", str(ns.epochs), "--scores", "el2n", "--batch-size", "64",
        "--optimizer", "adam", "--lr", str(ns.lr), "--weight-decay", "0",
    ]  # fmt: skip
    out = Path(ns.work) / "text-scores"
    wall = score(args, out)
    command = "datadiet score " + shlex.join(args) + f" --output-dir {out}"
    return report("text", out, flipped, model=ns.model, seeds=ns.seeds, epochs=ns.epochs, wall=wall, command=command)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="which", required=True)
    images = sub.add_parser("images", help="the variable-size colour image folder")
    images.add_argument("--n", type=int, default=3000, help="images (default 3000)")
    images.add_argument("--image-size", type=int, default=32, help="side in px the model sees (default 32)")
    images.add_argument("--model", default="cnn")
    images.add_argument("--width", type=float, default=0.5)
    text = sub.add_parser("text", help="the fortunes by language")
    text.add_argument("--per-language", type=int, default=750, help="fortunes per language (default 750)")
    text.add_argument("--model", default="text-transformer")
    text.add_argument("--width", type=float, default=0.5)
    text.add_argument("--max-length", type=int, default=64)
    text.add_argument("--vocab-size", type=int, default=4000)
    text.add_argument("--lr", type=float, default=1e-3)
    for p in (images, text):
        p.add_argument("--flip", type=float, default=0.04, help="fraction of labels flipped (default 0.04)")
        p.add_argument("--seeds", default="0,1,2")
        p.add_argument("--epochs", type=int, default=3)
        p.add_argument("--work", default=str(ROOT / "runs" / "own_data"), help="where the data and scores go")
        p.add_argument("--results", default=str(RESULTS), help="CSV to write the row to")
    ns = parser.parse_args(argv)
    row = run_images(ns) if ns.which == "images" else run_text(ns)
    write_row(row, Path(ns.results))
    print(json.dumps(row, indent=2))


if __name__ == "__main__":
    main()
