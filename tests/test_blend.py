"""`NeuMFBlend` (model/blend.py): the weight's ends rank as each member, pairs score as rows, save/load keeps
both members, settings are validated, and on ML-100K the weight-0 blend evaluates as its partner."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from model.base import load_model
from model.blend import NeuMFBlend, standardise_rows
from model.data import DataLoader, leave_one_out
from model.evaluation import Evaluator
from model.registry import build_model
from tests.test_recommender_contract import N_USERS, TestNeuMFNumpy, contract_data

NEUMF = TestNeuMFNumpy.options


def fitted(partner: str = "ease", weight: float = 0.5, **options) -> NeuMFBlend:
    partner_options = {"l2": 10.0} if partner == "ease" else {"factors": 4, "iterations": 3, "num_threads": 1}
    model = build_model(
        "neumf_blend",
        partner=partner,
        weight=weight,
        neumf_options=NEUMF,
        partner_options=partner_options,
        **options,
    )
    return model.fit(contract_data()[0])


def with_weight(model: NeuMFBlend, weight: float, **changes) -> NeuMFBlend:
    """The same fitted members under another weight (and other `changes` of the hyperparameters)."""
    other = NeuMFBlend(**{**model.hyperparameters(), "weight": weight, **changes})
    other.neumf_, other.partner_ = model.neumf_, model.partner_
    other.n_users, other.n_items = model.n_users, model.n_items
    return other


@pytest.mark.parametrize("partner", ["ease", "ials"])
def test_weight_one_is_neumf_and_weight_zero_the_partner(partner):
    model = fitted(partner, neumf_scores="probability")
    users = np.arange(N_USERS)
    for weight, member in ((1.0, model.neumf_), (0.0, model.partner_)):
        blend = with_weight(model, weight)
        rows = member.score_users(users)
        np.testing.assert_allclose(blend.score_users(users), standardise_rows(rows), atol=1e-5)
        exclude = contract_data()[0].to_csr()
        items = blend.recommend(users, 3, exclude)[0]
        expected = np.take_along_axis(rows, items, axis=1)
        best = np.sort(np.where(exclude.toarray() > 0, -np.inf, rows), axis=1)[:, ::-1][:, :3]
        np.testing.assert_allclose(expected, best, rtol=1e-6)  # the member's own top 3


def test_the_blend_mixes_standardised_rows():
    model = fitted(weight=0.3, neumf_scores="probability")
    users = np.array([0, 7, 23])
    neumf, partner = model.neumf_.score_users(users), model.partner_.score_users(users)
    expected = 0.3 * standardise_rows(neumf) + 0.7 * standardise_rows(partner)
    np.testing.assert_allclose(model.score_users(users), expected, atol=1e-5)
    z = standardise_rows(neumf)
    np.testing.assert_allclose(z.mean(axis=1), 0.0, atol=1e-5)
    np.testing.assert_allclose(z.std(axis=1), 1.0, atol=1e-4)
    assert (standardise_rows(np.ones((2, 5))) == 0).all()  # no spread: zeros, not NaN


def test_logit_blending_standardises_neumfs_logits():
    """`neumf_scores="logit"`: NeuMF's probabilities enter as log(p / (1 - p)), the partner's as they are;
    at weight 1 the blend still ranks as NeuMF (the logit is monotone)."""
    model = fitted(weight=0.3, neumf_scores="logit")
    users = np.array([0, 7, 23])
    neumf, partner = model.neumf_.score_users(users), model.partner_.score_users(users)
    logit = np.log(neumf.astype(np.float64) / (1 - neumf.astype(np.float64)))
    expected = 0.3 * standardise_rows(logit) + 0.7 * standardise_rows(partner)
    np.testing.assert_allclose(model.score_users(users), expected, atol=1e-4)
    plain = with_weight(model, 0.3, neumf_scores="probability")
    assert not np.allclose(plain.score_users(users), expected, atol=1e-3)  # the option changes the blend
    ranks = np.argsort(-with_weight(model, 1.0).score_users(users), axis=1, kind="stable")
    np.testing.assert_array_equal(ranks, np.argsort(-neumf.astype(np.float64), axis=1, kind="stable"))


def test_pairs_score_as_the_rows_across_chunks():
    model = fitted(chunk_users=5)  # several chunks of distinct users
    rng = np.random.default_rng(1)
    users = rng.integers(0, N_USERS, size=300)
    items = rng.integers(0, model.n_items, size=300)
    rows = model.score_users(np.arange(N_USERS))
    np.testing.assert_array_equal(model.score(users, items), rows[users, items])


@pytest.mark.parametrize("partner", ["ease", "ials"])
def test_save_and_load_keep_both_members_and_the_weight(tmp_path, partner):
    model = fitted(partner, weight=0.7)
    model.save(tmp_path / "blend")
    assert (tmp_path / "blend" / "neumf" / "model.json").is_file()
    assert (tmp_path / "blend" / "partner" / "model.json").is_file()
    loaded = load_model(tmp_path / "blend")
    assert isinstance(loaded, NeuMFBlend) and loaded.weight == 0.7 and loaded.partner == partner
    users = np.arange(N_USERS)
    np.testing.assert_allclose(loaded.score_users(users), model.score_users(users), atol=1e-6)


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"weight": 1.5}, "weight"),
        ({"weight": -0.1}, "weight"),
        ({"partner": "bpr"}, "partner"),
        ({"neumf_scores": "rank"}, "neumf_scores"),
    ],
)
def test_bad_settings_are_a_validation_error(options, field):
    with pytest.raises(ValidationError, match=field):
        build_model("neumf_blend", **options)


def test_warm_start_takes_the_previous_blends_neumf():
    previous = fitted()
    ids = (np.arange(N_USERS), np.arange(previous.n_items))
    model = build_model("neumf_blend", neumf_options=NEUMF, partner_options={"l2": 10.0})
    assert model.warm_start(previous, ids, ids) is None
    assert model.warm_start(previous.partner_, ids, ids) is not None
    assert model.fit(contract_data()[0]).report()["members"]["partner"]["class"] == "model.ease.EASE"


def test_display_name_names_both_members_and_what_of_neumf_is_blended():
    plain = build_model("neumf_blend", partner="ials", weight=0.4, neumf_scores="probability")
    assert plain.display_name() == "NeuMF + iALS blend (w=0.4)"
    assert build_model("neumf_blend").display_name() == "NeuMF + EASE^R blend (logits, w=0.6)"


def test_weight_zero_evaluates_as_its_partner_on_ml100k(ml100k_dir):
    split = leave_one_out(DataLoader(ml100k_dir).load(), seed=0)
    evaluator = Evaluator(split, k=10, protocols=("sampled", "full"))
    options = {**NEUMF, "train_config": {**NEUMF["train_config"], "batch_size": 1024}}
    blend = build_model("neumf_blend", weight=0.0, neumf_options=options).fit(split.train)
    ours = evaluator.evaluate(blend, "validation")
    partner = evaluator.evaluate(blend.partner_, "validation")
    for protocol in ("sampled", "full"):
        for metric in ("hr@10", "ndcg@10"):
            assert ours[protocol][metric] == pytest.approx(partner[protocol][metric], abs=2e-3)
