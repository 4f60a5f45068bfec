"""experiments.stats and the pieces of the experiments that decide what the README may claim."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from experiments.common import ResultsCSV
from experiments.pruning_curve import tied_kept
from experiments.stats import bootstrap_interval, fmt_diff, paired, t_interval


def test_t_interval_matches_scipy():
    x = [0.75, 0.08, 0.31, -0.12, 0.44]
    est = t_interval(x)
    lo, hi = scipy_stats.t.interval(0.95, len(x) - 1, loc=np.mean(x), scale=scipy_stats.sem(x))
    assert est.n == 5
    assert est.se == pytest.approx(scipy_stats.sem(x))
    assert (est.lo, est.hi) == pytest.approx((lo, hi))


def test_two_seeds_that_disagree_give_no_finding():
    # the example: EL2N-50% minus full data per seed +0.75 and +0.08 points
    est = t_interval([0.0075, 0.0008])
    assert not est.excludes_zero
    assert "no measurable difference" in fmt_diff(est)
    assert t_interval([0.02, 0.021, 0.019]).excludes_zero


def test_one_value_has_no_interval():
    est = t_interval([0.5])
    assert est.n == 1 and math.isnan(est.lo) and not est.excludes_zero
    with pytest.raises(ValueError, match="at least one"):
        t_interval([])


def test_paired_uses_common_seeds_in_order():
    assert paired({0: 0.9, 1: 0.8, 3: 0.5}, {1: 0.7, 0: 0.6, 2: 0.1}) == pytest.approx([0.3, 0.1])


def test_bootstrap_interval_covers_the_point_and_shrinks_with_n():
    rng = np.random.default_rng(1)
    small, large = rng.normal(size=200), rng.normal(size=5000)
    p_small, lo_small, hi_small = bootstrap_interval(np.mean, [small], n_boot=300)
    p_large, lo_large, hi_large = bootstrap_interval(np.mean, [large], n_boot=300)
    assert lo_small < p_small < hi_small and lo_large < p_large < hi_large
    assert hi_large - lo_large < hi_small - lo_small
    with pytest.raises(ValueError, match="equal length"):
        bootstrap_interval(np.mean, [small, large])


def test_tied_kept_counts_only_ties_cut_by_the_budget():
    scores = np.array([3.0, 1.0, 1.0, 1.0, 1.0, 0.0])
    out = tied_kept(scores, 3)  # 3.0 kept by score, two of the four 1.0s by the tie-break
    assert out["tied_kept"] == 2 and out["tied_share"] == f"{2 / 3:.4f}"
    assert tied_kept(scores, 5)["tied_kept"] == 0  # every 1.0 fits: no choice was made
    assert tied_kept(np.arange(10.0), 4)["same_kept_share"] == "1.0000"


def test_results_csv_migrates_a_new_column_from_old_rows(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("method,seed,acc\nall,0,0.9\nel2n,0,0.8\n")
    results = ResultsCSV(
        path,
        ["method", "seed", "acc", "tie_break"],
        ["method", "seed", "tie_break"],
        {"tie_break": lambda row: "" if row["method"] == "all" else "index"},
    )
    assert results.done(method="el2n", seed=0, tie_break="index")
    assert not results.done(method="el2n", seed=0, tie_break="random")
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["tie_break"] for r in rows] == ["", "index"]
    with pytest.raises(ValueError, match="no default"):
        ResultsCSV(path, ["method", "seed", "acc", "tie_break", "device"], ["method"])


def test_read_config_reads_each_folder_even_when_names_repeat(tmp_path):
    """Two score folders both named ``scores`` (one per noise rate): each read returns its own rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from experiments.common import numpy_columns, read_config

    for rate, value in (("a", 1.0), ("b", 2.0)):
        folder = tmp_path / rate / "scores" / "data" / "cnn-ep2"
        folder.mkdir(parents=True)
        table = pa.table({"idx": [0, 1], "el2n": [value, value], "el2n_per_seed": [[value], [value]]})
        pq.write_table(table, folder / "train-00000-of-00001.parquet")
    first = numpy_columns(read_config(tmp_path / "a" / "scores", "cnn-ep2"))
    second = numpy_columns(read_config(tmp_path / "b" / "scores", "cnn-ep2"))
    assert first["el2n"].tolist() == [1.0, 1.0] and second["el2n"].tolist() == [2.0, 2.0]
    assert second["el2n_per_seed"].shape == (2, 1)
    with pytest.raises(FileNotFoundError, match="cnn-ep9"):
        read_config(tmp_path / "a" / "scores", "cnn-ep9")


def test_report_pairs_each_arm_by_seed_and_names_forgetting_by_its_tie_break(tmp_path):
    from experiments.report import differences_table, pruning_differences, pruning_runs

    path = tmp_path / "pruning_curve.csv"
    rows = [
        ("all", 1.0, 0, 0.90, ""),
        ("all", 1.0, 1, 0.92, ""),
        ("random", 0.5, 0, 0.88, ""),
        ("random", 0.5, 1, 0.90, ""),
        ("el2n", 0.5, 0, 0.89, "random"),
        ("el2n", 0.5, 1, 0.91, "random"),
        ("el2n", 0.5, 2, 0.99, "random"),  # no seed-2 baseline: left out of every paired difference
        ("forgetting", 0.5, 0, 0.89, ""),  # a row from before the tie_break column: index ties
        ("forgetting", 0.5, 1, 0.90, "index"),
        ("forgetting", 0.5, 0, 0.87, "random"),
        ("forgetting", 0.5, 1, 0.89, "random"),
    ]
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["method", "fraction", "seed", "test_accuracy", "tie_break"])
        writer.writerows(rows)
    runs = pruning_runs(path)
    assert runs[("forgetting (index ties)", 0.5)] == {0: 0.89, 1: 0.90}
    assert runs[("forgetting (random ties)", 0.5)] == {0: 0.87, 1: 0.89}
    diffs = pruning_differences(path)
    el2n = diffs[("el2n", 0.5, "random")]
    assert el2n.n == 2 and math.isclose(el2n.mean, 0.01)  # +1 point of accuracy on both shared seeds
    ties = diffs[("forgetting (random ties)", 0.5, "forgetting (index ties)")]
    assert ties.n == 2 and math.isclose(ties.mean, -0.015)
    assert ("forgetting (index ties)", 0.5, "forgetting (index ties)") not in diffs
    table = differences_table(path)
    assert "| 50% | el2n | +1.00 pt" in table and "vs forgetting (index ties)" in table


def test_report_never_pairs_runs_across_devices_and_measures_the_device_offset(tmp_path):
    from experiments.report import device_effect, pruning_differences, pruning_runs

    path = tmp_path / "pruning_curve.csv"
    rows = [
        ("all", 1.0, 0, 0.90, "", "gpu"),
        ("all", 1.0, 0, 0.80, "", "cpu"),  # the same seed again on another device
        ("all", 1.0, 1, 0.92, "", "gpu"),
        ("el2n", 0.5, 0, 0.91, "index", "cpu"),  # pairs with the cpu full-data run only
        ("el2n", 0.5, 1, 0.93, "index", "cpu"),  # full data seed 1 ran on the gpu only: no pair
    ]
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["method", "fraction", "seed", "test_accuracy", "tie_break", "device"])
        writer.writerows(rows)
    vs_full = pruning_differences(path)[("el2n", 0.5, "full")]
    assert vs_full.n == 1 and math.isclose(vs_full.mean, 0.11)  # 0.91 - 0.80, not 0.91 - 0.90 or their mean
    assert pruning_runs(path)[("all", 1.0)] == pytest.approx({0: 0.85, 1: 0.92})  # a seed is one unit
    offset = device_effect(path)[("cpu", "gpu")]
    assert offset.n == 1 and math.isclose(offset.mean, -0.10)


def test_plan_runs_full_data_only_when_asked_and_per_device_resume_repeats_other_devices_runs():
    from experiments.pruning_curve import plan, ran

    assert all(m != "all" for m, *_ in plan([0, 1], [0.5], ["random", "forgetting"], ["index"]))
    assert plan([0], [0.5], ["all", "random"], [])[0] == ("all", 1.0, 0, "")
    rows = [{"method": "forgetting", "fraction": "0.5", "seed": "0", "tie_break": "index", "device": "NVIDIA H200"}]
    assert ran(rows, "forgetting", 0.5, 0, "index", None)
    assert not ran(rows, "forgetting", 0.5, 0, "index", "cpu")  # --per-device: repeat it here
    assert not ran(rows, "forgetting", 0.5, 0, "random", None)  # another tie-break is another run
    assert ran(rows, "forgetting", 0.5, 0, "", "NVIDIA H200")  # float scores: any tie-break counts


def test_pruning_curve_names_an_unknown_method_and_the_choices(capsys):
    from experiments.pruning_curve import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--methods", "el2n,grnad"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "unknown ['grnad']" in err and "grand" in err
