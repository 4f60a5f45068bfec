"""The report's sentences follow its intervals: a method "beats" another only where the interval excludes 0, and the
committed docs/report.md is what the CSVs give."""

from __future__ import annotations

import csv
import math
from pathlib import Path

from experiments import report
from experiments.stats import Estimate, holm_survivors, p_value, t_interval

ROOT = Path(__file__).resolve().parents[2]


def write_curve(path: Path, rows: list[tuple[str, float, int, float]]) -> Path:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["method", "fraction", "seed", "test_accuracy", "tie_break", "device"])
        writer.writerows((m, f, s, a, "random" if m != "all" else "", "cpu") for m, f, s, a in rows)
    return path


def curve(tmp_path: Path, el2n_gain: list[float]) -> Path:
    """Full data, random and EL2N at keep 50% over len(el2n_gain) seeds; EL2N = random + the seed's gain."""
    rows = []
    for seed, gain in enumerate(el2n_gain):
        base = 0.90 + 0.003 * seed
        rows += [("all", 1.0, seed, base + 0.01), ("random", 0.5, seed, base), ("el2n", 0.5, seed, base + gain)]
    return write_curve(tmp_path / "pruning_curve.csv", rows)


def test_verdict_says_higher_or_lower_only_when_the_interval_excludes_zero():
    assert report.verdict(0.001, 0.02) == report.ABOVE
    assert report.verdict(-0.02, -0.001) == report.BELOW
    assert report.verdict(-0.001, 0.02) == report.SAME
    assert report.verdict(0.0, 0.02) == report.SAME  # touching 0 is not excluding it


def test_a_gain_whose_interval_contains_zero_is_not_called_a_win(tmp_path):
    path = curve(tmp_path, [0.02, -0.015, 0.01, -0.012, 0.004])  # mean > 0, interval across 0
    est = report.pruning_differences(path)[("el2n", 0.5, "random")]
    assert est.mean > 0 and est.lo < 0 < est.hi
    findings = " ".join(report.pruning_findings(path))
    assert "Against random: no measurable difference: el2n" in findings
    assert "higher: el2n" not in findings
    assert report.where_beats_random(path) == ["el2n: beats random at no kept fraction; not at 50%"]
    assert f"{report.fmt_diff(est)} of test accuracy for a small CNN (no measurable difference)" in report.headline(
        path
    )


def test_a_consistent_gain_is_called_a_win_and_the_headline_cites_its_interval(tmp_path):
    path = curve(tmp_path, [0.010, 0.011, 0.009, 0.012, 0.010])
    est = report.pruning_differences(path)[("el2n", 0.5, "random")]
    assert est.lo > 0
    assert "Against random: higher: el2n" in report.pruning_findings(path)[0]
    assert report.where_beats_random(path) == ["el2n: beats random at 50%"]
    line = report.headline(path)
    assert f"{report.fmt_diff(est)} of test accuracy for a small CNN (higher)" in line


def test_holm_keeps_only_what_survives_the_number_of_tests():
    strong = t_interval([0.010, 0.011, 0.009, 0.0105, 0.0095])
    marginal = t_interval([0.01, 0.002, 0.008, 0.001, 0.009])
    assert p_value(marginal) < 0.05 and marginal.excludes_zero
    assert holm_survivors({"a": strong, "b": marginal}) == {"a", "b"}
    many = dict.fromkeys(range(70), marginal) | {"a": strong}
    assert holm_survivors(many) == {"a"}  # one marginal p among 70 tests is no finding
    assert p_value(Estimate(0.1, math.nan, 1, math.nan, math.nan)) == 1.0


def test_noisy_findings_follow_the_paired_intervals():
    rows = [
        {
            "noise_rate": "0.1",
            "minus": "CNN self-confidence",
            "auroc_diff": "-0.0002",
            "auroc_diff_lo": "-0.0008",
            "auroc_diff_hi": "+0.0004",
            "precision_diff": "-0.0190",
            "precision_diff_lo": "-0.0300",
            "precision_diff_hi": "-0.0080",
        },
        {
            "noise_rate": "0.1",
            "minus": "linear self-confidence",
            "auroc_diff": "+0.0075",
            "auroc_diff_lo": "+0.0060",
            "auroc_diff_hi": "+0.0090",
            "precision_diff": "+0.0400",
            "precision_diff_lo": "+0.0300",
            "precision_diff_hi": "+0.0500",
        },
    ]
    (line,) = report.noisy_findings(rows)
    assert "AUROC is higher than linear self-confidence; not measurably different from CNN self-confidence" in line
    assert "precision at the flip rate is higher than linear self-confidence; lower than CNN self-confidence" in line


def test_cross_device_says_float_rounding_only_for_tiny_differences(monkeypatch):
    rows = [
        {"config": "c-ep0", "score": "el2n", "max_abs_diff": "1.79e-07", "exact_equal_share": "0.64", "spearman": "1.0",
         "card_seed0_vs_seed1_spearman": "0.1"},
        {"config": "c-ep0", "score": "grand", "max_abs_diff": "0.0428", "exact_equal_share": "0.38", "spearman": "1.0",
         "card_seed0_vs_seed1_spearman": "0.9"},
    ]  # fmt: skip
    monkeypatch.setattr(report, "_rows", lambda name: rows)
    el2n, grand = report.cross_device_findings()
    assert "equal up to float rounding" in el2n
    assert "not equal" in grand and "38%" in grand


def test_committed_report_is_what_the_csvs_give():
    assert (ROOT / "docs" / "report.md").read_text() == report.render(), (
        "docs/report.md is stale: run python -m experiments.report"
    )


def test_readme_headline_says_what_the_report_shows():
    readme = (ROOT / "README.md").read_text()
    diffs = report.pruning_differences()
    est, full = diffs[("el2n", 0.5, "random")], diffs[("el2n", 0.5, "full")]
    assert report.fmt_diff(est) in readme and report.short(full) in readme
    assert ("does not survive Holm" in readme) == (("el2n", 0.5, "random") not in report.holm(diffs))
    assert ("no measurable difference" in readme) == (report.est_verdict(full) == report.SAME)
    # "keeping the hardest 30% or 70% by EL2N was not measurably better than random, the hardest 10% far worse"
    assert report.est_verdict(diffs[("el2n", 0.3, "random")]) == report.SAME
    assert report.est_verdict(diffs[("el2n", 0.7, "random")]) == report.SAME
    assert report.est_verdict(diffs[("el2n", 0.1, "random")]) == report.BELOW
