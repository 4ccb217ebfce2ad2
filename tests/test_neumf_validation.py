"""bench/neumf_validation.py's pieces that need no data: overrides, and the summary against NeuMF."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("neumf_validation", ROOT / "bench" / "neumf_validation.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_overrides_are_read_as_json_values(script):
    assert script.parse_overrides(["negative_popularity=0.75", "pretrain=false", "optimizer=sgd"]) == {
        "negative_popularity": 0.75,
        "pretrain": False,
        "optimizer": "sgd",
    }
    with pytest.raises(SystemExit):
        script.parse_overrides(["negative_popularity"])


def test_summary_names_the_figures_below_and_the_real_ones(script):
    def test(d, p):
        return {"mean_difference": d, "t_pvalue": p, "wilcoxon_pvalue": p}

    variant = {
        "against": {
            "neumf": {
                "tests": {
                    "sampled.hr@10": test(-0.05, 1e-9),
                    "sampled.ndcg@10": test(-0.001, 0.6),
                    "full.mrr": test(0.002, 0.01),
                }
            }
        }
    }
    text = script.summary(variant)
    assert "below on 2 of 3 figures (sampled HR@10 (real), sampled NDCG@10)" in text
    assert "at or above on full MRR (real)" in text
