"""Every model's defaults are the hyperparameters the leaderboard chose on validation
(bench/results/leaderboard.json `chosen_params`), so `--model ials` is the tuned iALS."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from model.registry import MODELS, build_model

LEADERBOARD = Path(__file__).resolve().parents[1] / "bench" / "results" / "leaderboard.json"
ROWS = {row["name"]: row for row in json.loads(LEADERBOARD.read_text())["models"]}


@pytest.mark.parametrize("name", sorted(set(ROWS) & {n for n, s in MODELS.items() if s.ncf_kind is None}))
def test_defaults_are_the_leaderboards_validated_choice(name):
    defaults = build_model(name).hyperparameters()
    chosen = ROWS[name]["chosen_params"]
    assert {key: defaults[key] for key in chosen} == chosen


def test_every_tuned_baseline_is_on_the_leaderboard():
    tuned = {"itemknn", "bpr", "ials", "eals", "ease"}
    assert tuned <= set(ROWS)
