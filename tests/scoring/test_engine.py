"""The engine end to end on a tiny dataset: columns and configs per score time, EL2N and GraNd values equal to an
independent recomputation from the saved checkpoints (eval mode, un-augmented, normalised), the card's provenance,
progress bars with ETA and the throughput log."""

from __future__ import annotations

import json
import logging
import re
import subprocess

import numpy as np
import pytest
import torch
import yaml
from conftest import REPO_ROOT, configs_in, read_scores, tiny_config

from datadiet_hub.scoring import checkpoint as ckpt
from datadiet_hub.scoring.run import STATE, run


def recompute(out, cfg, seed: int, step: int, metric: str) -> np.ndarray:
    """EL2N or (naive) GraNd of every row from the checkpoint file, without the engine's scoring code."""
    from datadiet_hub.scoring.data import load_tensors
    from datadiet_hub.scoring.metrics.reference import naive_grad_norms as naive
    from datadiet_hub.scoring.models import build_model
    from datadiet_hub.sources import load_source

    data = load_tensors(load_source(cfg.dataset, split="train"), progress=False)
    x = data.images.double() / 255.0
    mean, std = x.mean(dim=(0, 2, 3), keepdim=True), x.std(dim=(0, 2, 3), keepdim=True)
    x = ((x - mean) / std).float()
    model = build_model(
        cfg.model, num_classes=data.num_classes, in_channels=x.shape[1], image_size=x.shape[2], width=cfg.width
    )
    tensors, meta = ckpt.load(ckpt.checkpoint_path(out / STATE, seed, step))
    assert meta == {"seed": seed, "step": step}
    model.load_state_dict({k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")})
    model.eval()
    if metric == "el2n":
        with torch.no_grad():
            p = torch.softmax(model(x), 1)
        return torch.linalg.vector_norm(p - torch.nn.functional.one_hot(data.labels, p.shape[1]), dim=1).numpy()
    return naive(model, x, data.labels).numpy()


def test_all_scores_at_init_and_later(tmp_path, tiny_parquet, grand_spy):
    out = tmp_path / "out"
    cfg = tiny_config(out, tiny_parquet, scores=["el2n", "grand", "forgetting"], at=[0, 2], epochs=2)
    assert run(cfg, progress=False, command="python -m datadiet_hub.scoring ...") == out
    assert configs_in(out) == ["cnn-ep0", "cnn-ep2"]

    init, later = read_scores(out, "cnn-ep0"), read_scores(out, "cnn-ep2")
    assert list(init) == [
        "idx",
        "example_id",
        "label",
        "el2n",
        "el2n_std",
        "el2n_per_seed",
        "grand",
        "grand_std",
        "grand_per_seed",
    ]
    assert list(later) == [*init, "forgetting", "forgetting_std", "forgetting_per_seed", "never_learned"]
    calls = list(grand_spy)
    assert calls and not any(call["training"] for call in calls), "GraNd runs with BatchNorm in eval mode"
    assert max(call["n"] for call in calls) <= cfg.grand_batch_size
    for table in (init, later):
        np.testing.assert_array_equal(table["idx"], np.arange(203))
        for metric in ("el2n", "grand"):
            per_seed = table[f"{metric}_per_seed"]
            assert per_seed.shape == (203, 2) and np.isfinite(per_seed).all() and (per_seed >= 0).all()
            np.testing.assert_allclose(table[metric], per_seed.mean(1), rtol=1e-6)
            np.testing.assert_allclose(table[f"{metric}_std"], per_seed.std(1), rtol=1e-5, atol=1e-7)
    assert not np.allclose(init["el2n"], later["el2n"]), "training moved the scores"
    assert later["el2n"].mean() < init["el2n"].mean()

    # Every value is what the checkpoint gives with BN in eval mode on un-augmented, normalised inputs.
    for step, table in ((0, init), (14, later)):
        for i, seed in enumerate(cfg.seeds):
            for metric in ("el2n", "grand"):
                np.testing.assert_allclose(
                    table[f"{metric}_per_seed"][:, i],
                    recompute(out, cfg, seed, step, metric),
                    rtol=2e-4,
                    atol=2e-5,
                    err_msg=f"{metric} seed {seed} step {step}",
                )


def test_card_provenance_and_load_dataset(tmp_path, tiny_parquet):
    import datasets

    out = tmp_path / "out"
    cfg = tiny_config(out, tiny_parquet, scores=["el2n", "forgetting"], at=[1], seeds=[3, 5])
    run(cfg, progress=False, command="datadiet score --seeds 3,5")
    ds = datasets.load_dataset(str(out), "cnn-ep1", split="train")
    assert len(ds) == 203 and ds.features["forgetting_per_seed"].feature.dtype == "float32"

    card = (out / "README.md").read_text()
    header = yaml.safe_load(card.split("---")[1])
    prov = header["datadiet"]
    from datadiet_hub.scoring.state import RESOLVED_LATER

    assert prov["source"]["num_rows"] == 203 and len(prov["source"]["fingerprint"]) == 64
    scoring = prov["scoring"]
    for key, value in cfg.identity().items():
        if key not in ("mean", "std", "augmentation"):
            # left out, the training settings are the ones the data chose, recorded as chosen
            if key in RESOLVED_LATER and value is None:
                assert scoring[key] is not None, key
            else:
                assert scoring[key] == value, key
    assert (scoring["optimizer"], scoring["weight_decay"]) == ("sgd", 5e-4)  # the image family's defaults
    assert scoring["augmentation"] == "none" and len(scoring["mean"]) == 1 and scoring["steps_per_epoch"] == 7
    assert prov["configs"]["cnn-ep1"] == {"step": 7, "epoch": 1.0, "metrics": ["el2n", "forgetting"]}
    assert "never_learned" in prov["forgetting_convention"]
    assert prov["command"] == "datadiet score --seeds 3,5"
    assert "1 process(es)" in prov["hardware"]
    assert "never_learned" in card and "DeepCore" in card

    env = prov.get("environment", prov)  # format 2 keeps the environment in its own block
    import accelerate
    import huggingface_hub

    assert env["torch_version"] == torch.__version__ and env["datasets_version"] == datasets.__version__
    assert env["numpy_version"] == np.__version__ and env["huggingface_hub_version"] == huggingface_hub.__version__
    assert env["accelerate_version"] == accelerate.__version__
    assert env["device"] == "cpu" and env["deterministic_algorithms"] is False and env["cudnn_benchmark"] is False
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=False)
    assert env["code_commit"] == (head.stdout.strip() if head.returncode == 0 else None)


def test_code_commit_is_none_outside_a_checkout_of_this_code(tmp_path):
    from datadiet_hub.scoring.provenance import code_commit

    package = tmp_path / "scoring"
    package.mkdir()
    assert code_commit(package) is None  # not a git repository
    subprocess.run(["git", "init", "-q", str(tmp_path / "outer")], check=True)
    nested = tmp_path / "outer" / "venv" / "site-packages" / "scoring"
    nested.mkdir(parents=True)
    assert code_commit(nested) is None  # inside some other repository, not at its top


def test_state_folder_keeps_example_ids_as_a_fixed_width_array(tmp_path, tiny_parquet):
    """The ids are a numpy ``S`` array (no pickle), equal to the table's column; the safetensors cache holds only
    tensors, not 203 ids in its JSON header."""
    from safetensors import safe_open

    from datadiet_hub.scoring.state import RunState

    out = tmp_path / "out"
    cfg = tiny_config(out, tiny_parquet, seeds=[0])
    run(cfg, progress=False)
    state = RunState(out)
    ids = np.load(state.ids_path, allow_pickle=False)
    assert ids.dtype.kind == "S" and ids.shape == (203,)
    assert [i.decode() for i in ids.tolist()] == read_scores(out, "cnn-ep1")["example_id"].tolist()
    with safe_open(str(state.data_path), framework="pt") as handle:
        assert sorted(handle.keys()) == ["images", "labels"]
        assert len(json.dumps(handle.metadata())) < 100
    data, source = state.load_data()
    assert data.example_ids == [i.decode() for i in ids.tolist()] and data.num_classes == 4
    assert source.input_column == "image" and source.label_column == "label"
    assert not hasattr(data, "source_meta")
    assert RunState.at(out / STATE).load_data()[0].example_ids == data.example_ids


def test_a_damaged_id_file_is_refused_with_the_fix(tmp_path, tiny_parquet):
    from datadiet_hub.scoring.state import RunState, example_ids_npy

    out = tmp_path / "out"
    run(tiny_config(out, tiny_parquet, seeds=[0]), progress=False)
    state = RunState(out)
    state.ids_path.write_bytes(example_ids_npy(["ab", "cd"]))
    with pytest.raises(RuntimeError, match=r"2 example ids for 203 rows.*delete .*\.datadiet and rerun"):
        state.load_data()


def test_step_times_name_configs_by_step(tmp_path, tiny_parquet):
    out = tmp_path / "out"
    run(tiny_config(out, tiny_parquet, at=[3, 7, 9], unit="step", seeds=[0]), progress=False)
    assert configs_in(out) == ["cnn-ep1", "cnn-step3", "cnn-step9"]


def test_rerun_of_a_finished_run_changes_no_score(tmp_path, tiny_parquet):
    out = tmp_path / "out"
    cfg = tiny_config(out, tiny_parquet, scores=["el2n", "forgetting"], seeds=[0])
    run(cfg, progress=False)
    first = read_scores(out, "cnn-ep1")
    mtimes = {p: p.stat().st_mtime_ns for p in (out / STATE).rglob("*.safetensors")}
    run(cfg, progress=False)
    assert {p: p.stat().st_mtime_ns for p in (out / STATE).rglob("*.safetensors")} == mtimes, "nothing retrained"
    for name, column in read_scores(out, "cnn-ep1").items():
        np.testing.assert_array_equal(column, first[name])


def test_cli_progress_bars_with_eta_and_throughput_log(tmp_path, tiny_parquet, capsys, caplog):
    from datadiet_hub.scoring.cli import main

    caplog.set_level(logging.INFO, logger="datadiet_hub.scoring")
    args = [
        "--output-dir",
        str(tmp_path / "out"),
        "--dataset",
        str(tiny_parquet),
        "--seeds",
        "0,1",
        "--at",
        "2",
        "--width",
        "0.25",
        "--batch-size",
        "32",
        "-v",
    ]
    assert main(args) == 0
    captured = capsys.readouterr()
    for seed in (0, 1):
        bars = re.findall(rf"seed {seed}: +\d+%.*?\| *\d+/14 \[\d\d:\d\d<\d\d:\d\d", captured.err)
        assert bars, f"no progress bar with elapsed<remaining (ETA) for seed {seed}"
    assert "Scoring checkpoints" in captured.err
    assert "Scores written to" in captured.out
    epochs = [r.getMessage() for r in caplog.records if "examples/s" in r.getMessage()]
    assert len(epochs) == 4, epochs  # one line per seed per epoch
    assert re.search(r"seed 1 epoch 2/2: loss [\d.]+, \d+ examples/s", "\n".join(epochs))


@pytest.mark.parametrize("model", ["mlp", "resnet18"])
def test_other_registry_models(tmp_path, tiny_parquet, model):
    out = tmp_path / "out"
    run(tiny_config(out, tiny_parquet, model=model, width=0.125, seeds=[0], at=[1]), progress=False)
    assert configs_in(out) == [f"{model}-ep1"]
    assert np.isfinite(read_scores(out, f"{model}-ep1")["el2n"]).all()


@pytest.mark.parametrize("package", ["datadiet_hub.scoring", "datadiet_hub.downstream", "datadiet_hub.scoring.run"])
def test_importing_without_torch_names_the_extra(package):
    """A process where torch cannot be imported gets an ImportError naming the pip extra, not a raw
    ModuleNotFoundError from deep inside."""
    import sys

    from conftest import subprocess_env

    code = (
        "import sys\nsys.modules['torch'] = None  # what an environment without torch looks like to import\n"
        f"try:\n    import {package}\nexcept ImportError as err:\n    print(type(err).__name__, err)\n"
        "else:\n    print('imported')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, env=subprocess_env(), capture_output=True, text=True, check=True
    )
    assert result.stdout.startswith("ImportError scoring needs torch"), result.stdout + result.stderr
    assert "pip install 'datadiet-hub[torch]'" in result.stdout
