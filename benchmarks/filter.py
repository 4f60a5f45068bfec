"""Pruning throughput at 10M rows: ``prune`` vs the batched ``keep`` filter vs the naive per-example filter.

Run by hand (takes a few minutes and ~3 GB of disk under --workdir):

    PYTHONPATH=. python benchmarks/filter.py                      # 10M rows, 100k-row image sample, 500k streamed
    PYTHONPATH=. python benchmarks/filter.py --rows 200000 --image-rows 5000 --stream-rows 20000   # smoke run

What it builds (not timed): a score dataset folder of ``--rows`` rows (idx, example_id, label, el2n, never_learned,
a README card with the source fingerprint) loaded with ``load_scores`` (memory-mapped arrow, as users get it), and
a dataset of the same rows saved to disk and memory-mapped (label, a 4-float feature, example_id). An image dataset
of ``--image-rows`` rows (32x32 RGB PNGs, like CIFAR-10) measures the naive filter where users meet it: per-example
``filter`` formats every column, so it decodes every image; its time is extrapolated to ``--rows`` and labelled so.

Every ratio is against a baseline measured in the same run. Goals (issue 8): prune >= 10M rows/s, batched keep
filter <= 3 s at 10M, prune >= 100x the naive filter on the image dataset, memory independent of non-score columns.
"""

from __future__ import annotations

import argparse
import gc
import io
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


# -- measurement helpers ---------------------------------------------------------------------------------------------


def _status_kb(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def measure(fn: Callable[[], Any]) -> tuple[Any, float, float | None]:
    """(result, seconds, peak RSS growth in MB during the call). Peak RSS is reset through /proc/self/clear_refs
    (Linux), so it counts every page the call touched, memory-mapped data pages included."""
    gc.collect()
    reset = False
    try:
        Path("/proc/self/clear_refs").write_text("5")
        reset = True
    except OSError:
        pass
    before = _status_kb("VmRSS")
    start = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - start
    peak = _status_kb("VmHWM") if reset else None
    growth = (peak - before) / 1024 if peak is not None and before is not None else None
    return result, seconds, growth


class Report:
    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def add(self, name: str, rows: int, seconds: float, mem_mb: float | None = None, note: str = "") -> dict:
        entry = {
            "name": name,
            "rows": rows,
            "seconds": seconds,
            "rows_per_s": rows / seconds if seconds else 0.0,
            "mem_mb": mem_mb,
            "note": note,
        }
        self.rows.append(entry)
        mem = f"{mem_mb:8.1f} MB" if mem_mb is not None else "       n/a"
        print(
            f"  {name:<52} {rows:>11,} rows {seconds:9.3f} s {entry['rows_per_s'] / 1e6:9.3f} M rows/s {mem}  {note}",
            flush=True,
        )
        return entry


# -- data ------------------------------------------------------------------------------------------------------------


def random_hex_ids(n: int, seed: int):
    """``n`` distinct-with-overwhelming-probability 32-hex-digit ids as an arrow string array, built in numpy."""
    import pyarrow as pa

    raw = np.random.default_rng(seed).integers(0, 256, size=(n, 16), dtype=np.uint8)
    digits = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
    text = np.empty((n, 32), dtype=np.uint8)
    text[:, 0::2] = digits[raw >> 4]
    text[:, 1::2] = digits[raw & 15]
    offsets = np.arange(0, 32 * (n + 1), 32, dtype=np.int32) if 32 * n < 2**31 else None
    if offsets is None:
        return pa.array(text.view("S32").ravel().astype(str), pa.large_string())
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(text))


def write_score_folder(folder: Path, ids, labels: np.ndarray, seed: int) -> Path:
    """A score dataset folder in the published layout (README card with configs + provenance, one parquet)."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    import yaml

    from datadiet_hub.hashing import fingerprint

    n = len(labels)
    rng = np.random.default_rng(seed)
    table = pa.table(
        {
            "idx": pa.array(np.arange(n, dtype=np.int64)),
            "example_id": ids,
            "label": pa.array(labels),
            "el2n": pa.array(rng.random(n, dtype=np.float32)),
            "never_learned": pa.array(rng.random(n) > 0.99),
        }
    )
    (folder / "data" / "bench").mkdir(parents=True, exist_ok=True)
    pq.write_table(table, folder / "data" / "bench" / "train-00000-of-00001.parquet", row_group_size=1 << 20)
    meta = {
        "configs": [
            {"config_name": "bench", "data_files": [{"split": "train", "path": "data/bench/train-*.parquet"}]}
        ],
        "datadiet": {
            "source": {"dataset": "synthetic", "split": "train", "num_rows": n, "fingerprint": fingerprint(ids)}
        },
    }
    (folder / "README.md").write_text("---\n" + yaml.safe_dump(meta, sort_keys=False) + "---\n\n# bench\n")
    return folder


def saved(dataset, path: Path):
    """Save and reload, so the dataset is memory-mapped from disk like one from ``load_dataset``."""
    import datasets

    dataset.save_to_disk(str(path), max_shard_size="4GB")
    return datasets.load_from_disk(str(path))


def numeric_dataset(ids, labels: np.ndarray, path: Path):
    import datasets
    import pyarrow as pa

    n = len(labels)
    feature = np.random.default_rng(7).random((n, 4), dtype=np.float32)
    table = pa.table(
        {
            "label": pa.array(labels),
            "feature": pa.FixedSizeListArray.from_arrays(pa.array(feature.ravel()), 4),
            "example_id": ids,
        }
    )
    return saved(datasets.Dataset(table), path)


def image_dataset(n: int, path: Path, seed: int = 3):
    """``n`` 32x32 RGB PNG images (smooth gradients plus noise, ~2-3 KB each, like CIFAR-10) and labels."""
    import datasets
    from PIL import Image

    rng = np.random.default_rng(seed)
    base = np.linspace(0, 200, 32, dtype=np.float32)
    encoded = []
    for i in range(n):
        array = (base[None, :, None] + rng.integers(0, 56, size=(32, 32, 3))).astype(np.uint8)
        array[0, 0] = (i % 256, (i // 256) % 256, i // 65536)
        buffer = io.BytesIO()
        Image.fromarray(array, mode="RGB").save(buffer, format="PNG")
        encoded.append({"bytes": buffer.getvalue(), "path": None})
    labels = rng.integers(0, 10, size=n)
    features = datasets.Features({"img": datasets.Image(), "label": datasets.ClassLabel(num_classes=10)})
    ds = datasets.Dataset.from_dict({"img": encoded, "label": labels.tolist()}, features=features)
    return saved(ds, path), labels


# -- run -------------------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--image-rows", type=int, default=100_000)
    parser.add_argument("--stream-rows", type=int, default=500_000)
    parser.add_argument(
        "--naive-rows",
        type=int,
        default=None,
        help="rows for the naive numeric filter (default: all; fewer are extrapolated, labelled)",
    )
    parser.add_argument("--fraction", type=float, default=0.5)
    parser.add_argument("--workdir", default=None, help="scratch folder (default: a temp dir, removed at the end)")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args(argv)

    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="datadiet-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("HF_DATASETS_CACHE", str(workdir / "hf-cache"))
    import datasets
    import pyarrow.parquet as pq

    import datadiet_hub
    from datadiet_hub import keep, load_scores, prune, select_indices

    datasets.disable_progress_bars()
    n, frac = args.rows, args.fraction
    print(
        f"datadiet-hub benchmark: {n:,} rows, keep fraction {frac}; python {platform.python_version()}, "
        f"datasets {datasets.__version__}, numpy {np.__version__}, {os.cpu_count()} CPU(s), {platform.machine()}"
    )
    report = Report()
    try:
        t0 = time.perf_counter()
        labels = np.random.default_rng(1).integers(0, 10, size=n)
        ids = random_hex_ids(n, seed=2)
        folder = write_score_folder(workdir / "scores", ids, labels, seed=3)
        scores = load_scores(folder)
        ds = numeric_dataset(ids, labels, workdir / "numeric")
        print(f"  setup (not timed in results): {time.perf_counter() - t0:.1f} s; dataset columns {ds.column_names}")

        print("\nmap-style Dataset, memory-mapped:")
        pruned, t_prune, m_prune = measure(lambda: prune(ds, scores, fraction=frac))
        report.add("prune (select, verify=sample)", n, t_prune, m_prune)
        _, t_none, m_none = measure(lambda: prune(ds, scores, fraction=frac, verify="none"))
        report.add("prune (select, verify=none)", n, t_none, m_none)
        assert pruned._indices is not None and len(pruned) == int(np.floor(frac * n + 0.5))
        sub, t_sub, _ = measure(lambda: pruned.select(range(0, len(pruned), 2)))
        assert sub._indices is not None and sub.data.num_rows == n  # still a mapping over the full table
        report.add("select on the pruned result (no flatten)", len(pruned), t_sub)
        _, t_keep, _ = measure(lambda: keep(scores, fraction=frac))
        report.add("keep(...) predicate construction", n, t_keep)
        mask = np.zeros(n, dtype=bool)
        mask[select_indices(scores, fraction=frac)] = True
        for bs in (1000, 10_000):  # the floor: datasets' own per-batch cost, with a predicate that does nothing
            _, t, _ = measure(
                lambda bs=bs: ds.filter(
                    lambda b, i: mask[i[0] : i[-1] + 1].tolist(),
                    with_indices=True,
                    batched=True,
                    batch_size=bs,
                    load_from_cache_file=False,
                )
            )
            report.add(f"floor: ds.filter(<mask slice>, batched, batch_size={bs})", n, t, None, "baseline")
        results = {}
        for bs in (1000, 10_000):
            out, t, mem = measure(
                lambda bs=bs: ds.filter(
                    keep(scores, fraction=frac),
                    with_indices=True,
                    batched=True,
                    batch_size=bs,
                    load_from_cache_file=False,
                )
            )
            assert len(out) == len(pruned)
            results[bs] = report.add(
                f"ds.filter(keep(...), batched, batch_size={bs})",
                n,
                t,
                mem,
                "default batch_size" if bs == 1000 else "",
            )
        out, t_np, _ = measure(
            lambda: ds.filter(
                keep(scores, fraction=frac),
                with_indices=True,
                batched=True,
                batch_size=10_000,
                num_proc=2,
                load_from_cache_file=False,
            )
        )
        assert len(out) == len(pruned)
        report.add("ds.filter(keep(...), batched, batch_size=10000, num_proc=2)", n, t_np)
        shuffled = ds.shuffle(seed=5)
        joined, t_join, m_join = measure(lambda: prune(shuffled, scores, fraction=frac, on="example_id"))
        assert len(joined) == len(pruned)
        report.add("prune(on='example_id') of a shuffled copy", n, t_join, m_join)

        kept = set(select_indices(scores, fraction=frac).tolist())
        naive_n = min(args.naive_rows or n, n)
        part = ds if naive_n == n else ds.select(range(naive_n))
        out, t_naive, _ = measure(
            lambda: part.filter(lambda example, i: i in kept, with_indices=True, load_from_cache_file=False)
        )
        report.add(
            "naive ds.filter(lambda ex, i: i in kept)",
            naive_n,
            t_naive,
            None,
            "" if naive_n == n else f"extrapolated x{n / naive_n:.0f}",
        )
        t_naive_full = t_naive * n / naive_n

        print(f"\nimage dataset ({args.image_rows:,} rows of 32x32 RGB PNG, memory-mapped):")
        img_ds, img_labels = image_dataset(args.image_rows, workdir / "images")
        img_ids = random_hex_ids(args.image_rows, seed=9)
        img_scores = load_scores(write_score_folder(workdir / "img-scores", img_ids, img_labels, seed=4))
        img_kept = set(select_indices(img_scores, fraction=frac).tolist())
        _, t_img_naive, m_img_naive = measure(
            lambda: img_ds.filter(lambda ex, i: i in img_kept, with_indices=True, load_from_cache_file=False)
        )
        img_naive = report.add(
            "naive ds.filter(lambda ex, i: i in kept)",
            args.image_rows,
            t_img_naive,
            m_img_naive,
            "decodes every image",
        )
        us_per_row = t_img_naive / args.image_rows * 1e6
        _, t_img_prune, m_img_prune = measure(lambda: prune(img_ds, img_scores, fraction=frac, verify="none"))
        report.add("prune (select, verify=none)", args.image_rows, t_img_prune, m_img_prune)
        _, t_img_keep, m_img_keep = measure(
            lambda: img_ds.filter(
                keep(img_scores, fraction=frac, verify="none"),
                with_indices=True,
                batched=True,
                load_from_cache_file=False,
            )
        )
        report.add("ds.filter(keep(...), batched)", args.image_rows, t_img_keep, m_img_keep)
        data_mb = sum(f.stat().st_size for f in (workdir / "images").glob("*.arrow")) / 2**20
        print(
            f"  image data on disk: {data_mb:.0f} MB; naive filter: {us_per_row:.1f} us/row -> "
            f"extrapolated to {n:,} rows: {us_per_row * n / 1e6:.0f} s (EXTRAPOLATED from {args.image_rows:,})"
        )

        print(f"\nstreaming (IterableDataset from one parquet file of {args.stream_rows:,} rows):")
        m = min(args.stream_rows, n)
        stream_file = workdir / "stream" / "train.parquet"
        stream_file.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(ds.select(range(m)).with_format("arrow")[:], stream_file, row_group_size=100_000)
        stream_scores = load_scores(write_score_folder(workdir / "stream-scores", ids.slice(0, m), labels[:m], 3))

        def stream():
            return datasets.load_dataset("parquet", data_files=str(stream_file), split="train", streaming=True)

        def count(iterable) -> int:
            return sum(1 for _ in iterable)

        _, t_plain, _ = measure(lambda: count(stream()))
        report.add("iterate, no filter (baseline)", m, t_plain)
        c_idx, t_sidx, _ = measure(lambda: count(prune(stream(), stream_scores, fraction=frac)))
        report.add("prune -> filter(keep(on='idx'))", m, t_sidx, None, f"{t_sidx / t_plain:.2f}x baseline time")
        c_ex, t_sex, _ = measure(lambda: count(prune(stream(), stream_scores, fraction=frac, on="example_id")))
        report.add("prune -> filter(keep(on='example_id'))", m, t_sex, None, f"{t_sex / t_plain:.2f}x baseline time")
        assert c_idx == c_ex == int(np.floor(frac * m + 0.5)), (c_idx, c_ex)

        prune_rate = n / t_prune
        img_naive_rate = img_naive["rows_per_s"]
        print("\nratios (same run):")
        print(f"  prune vs naive filter (numeric, {n:,} rows):      {t_naive_full / t_prune:8.1f}x")
        print(f"  prune vs naive filter (image, per row):          {prune_rate / img_naive_rate:8.1f}x")
        print(f"  batched keep (bs=1000) vs naive (numeric):       {t_naive_full / results[1000]['seconds']:8.1f}x")
        print(f"  batched keep (bs=1000) vs prune:                 {results[1000]['seconds'] / t_prune:8.1f}x slower")
        print(f"  prune memory, image vs numeric dataset:          {m_img_prune} MB vs {m_prune} MB (peak RSS growth)")
        goals = [
            ("prune >= 10M rows/s", prune_rate >= 10e6, f"{prune_rate / 1e6:.1f} M rows/s"),
            (
                "batched keep filter <= 3 s at 10M rows (batch_size=10000)",
                results[10_000]["seconds"] * 10e6 / n <= 3,
                f"{results[10_000]['seconds']:.2f} s (batch_size=10000), {results[1000]['seconds']:.2f} s (default 1000)",
            ),
            (
                ">= 100x the naive filter on images",
                prune_rate / img_naive_rate >= 100,
                f"{prune_rate / img_naive_rate:.0f}x",
            ),
            (
                "memory independent of the non-score columns",
                m_img_prune is not None and m_img_prune < 0.1 * data_mb,
                f"prune touched {m_img_prune} MB of a {data_mb:.0f} MB image dataset",
            ),
        ]
        print("\ngoals:")
        for name, ok, value in goals:
            print(f"  [{'met' if ok else 'MISSED'}] {name}: {value}")
        if args.json:
            Path(args.json).write_text(
                json.dumps(
                    {"rows": report.rows, "goals": [list(g) for g in goals], "version": datadiet_hub.__version__},
                    indent=1,
                    default=str,
                )
            )
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
