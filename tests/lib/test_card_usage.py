"""The card's usage snippet loads a trained config, the one whose seeds agree most (the shipped card: cnn-ep2, the
config every result uses), not simply the first one after initialisation."""

from __future__ import annotations

from datadiet_hub.card import ConfigSummary, usage_config


def summary(name: str, time: str, spearman: str) -> ConfigSummary:
    return ConfigSummary(name=name, model="cnn", time=time, metrics=["el2n"], seed_spearman=spearman)


def test_usage_config_prefers_trained_scores_whose_seeds_agree_most():
    configs = [
        summary("cnn-ep0", "epoch 0", "0.990"),  # at init: never shown, however it agrees
        summary("cnn-ep1", "epoch 1", "0.865"),
        summary("cnn-ep2", "epoch 2", "0.889"),
        summary("cnn-ep10", "epoch 10", "0.849"),
    ]
    assert usage_config(configs).name == "cnn-ep2"


def test_usage_config_without_agreement_is_the_first_trained_one():
    configs = [
        summary("m-ep0", "epoch 0", "n/a"),
        summary("m-ep1", "epoch 1", "n/a"),
        summary("m-ep2", "epoch 2", "n/a"),
    ]
    assert usage_config(configs).name == "m-ep1"
    assert usage_config([summary("m-ep0", "epoch 0", "n/a")]).name == "m-ep0"
