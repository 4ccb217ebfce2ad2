"""`NeuMFBlend`: one model made of the default NeuMF and one linear partner (EASE^R or iALS), their scores
standardised per user and mixed with one weight.

For each user row, each member's scores over every item become z-scores ((s - mean) / std over the items;
a constant row becomes zeros; NeuMF's probabilities first become logits by default, `neumf_scores`), and
the blend scores `weight * z_neumf + (1 - weight) * z_partner`. Weight 1 ranks as NeuMF, weight 0 as the
partner. Rows are computed chunk by chunk (`chunk_users` users at a
time); nothing of size users x items is held at once. Scoring pairs (`score`) computes the rows of the
distinct users involved, so it gives exactly the values `score_users` gives.

Where it is usable: wherever the partner fits. EASE^R holds a dense (n_items, n_items) float64 inverse
while fitting (3,706 items of ML-1M: 110 MB; 59,047 of ML-25M: 28 GB) and a float32 one for scoring, so
the EASE^R blend is for catalogues of a few tens of thousands of items at most, not for the large-catalogue
profile (whose model, like the job's default, is `neumf`); iALS holds (n_users + n_items) x factors.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal, Self

import numpy as np
from pydantic import Field

from model.base import MODEL_FILE, Recommender, load_model, save_id_maps
from model.data.interactions import Interactions
from model.data.split import HeldOut

NEUMF_DIR, PARTNER_DIR = "neumf", "partner"
PARTNER_NAMES = {"ease": "EASE^R", "ials": "iALS"}


def standardise_rows(scores: np.ndarray) -> np.ndarray:
    """Per-row z-scores: (c, n_items) float -> (c, n_items) float32, each row minus its mean over the
    items, divided by its standard deviation (rows with zero spread become zeros)."""
    scores = np.asarray(scores, dtype=np.float32)
    mean = scores.mean(axis=1, keepdims=True, dtype=np.float64)
    std = scores.std(axis=1, keepdims=True, dtype=np.float64)
    std[std == 0] = 1.0
    return ((scores - mean) / std).astype(np.float32)


def logits(probabilities: np.ndarray) -> np.ndarray:
    """log(p / (1 - p)) of (c, n_items) probabilities as float32, p clipped to [1e-7, 1 - 1e-7]."""
    p = np.clip(np.asarray(probabilities, dtype=np.float64), 1e-7, 1.0 - 1e-7)
    return np.log(p / (1.0 - p)).astype(np.float32)


def blend_rows(
    neumf: np.ndarray, partner: np.ndarray, weight: float, neumf_scores: str = "probability"
) -> np.ndarray:
    """`weight * z(neumf) + (1 - weight) * z(partner)`, z = `standardise_rows`; both (c, n_items), result
    (c, n_items) float32. `neumf_scores` "logit": NeuMF's probabilities become logits first."""
    ours = logits(neumf) if neumf_scores == "logit" else neumf
    return (weight * standardise_rows(ours) + (1.0 - weight) * standardise_rows(partner)).astype(np.float32)


def _as_json(options: dict[str, Any] | None) -> dict[str, Any] | None:
    """Options as they read back from JSON (tuples become lists), so saved hyperparameters compare equal."""
    return None if options is None else json.loads(json.dumps(options))


class NeuMFBlend(Recommender):
    """NeuMF blended with EASE^R or iALS per user row (see the module docstring).

    The defaults (EASE^R, NeuMF's logits, weight 0.6) are the choice of `bench/blend_validation.py` on the
    validation item: partner and weight by its rule with logits (bench/results/blend_validation_logit.md),
    logits rather than probabilities by the same rule's figure at each one's best point (-0.0033 against
    -0.0083, bench/results/blend_validation.md), training seed 0.

    Args:
        partner: the linear member, "ease" (EASE^R) or "ials" (iALS), with its registered defaults (the
            leaderboard's validation choice, recency weighting included) unless `partner_options` says
            otherwise.
        weight: share of NeuMF's standardised scores, in [0, 1] (1 - weight goes to the partner's).
        neumf_scores: what of NeuMF is standardised: its probabilities, or their logits.
        seed: training seed of NeuMF (its `train_config.seed`) and of iALS.
        chunk_users: users per block of scored rows.
        neumf_options: `model.registry.build_model("neumf", ...)` options of the NeuMF member (engine,
            config, train_config); none: the default NeuMF (the batch job gives its run's `--engine`,
            NCF and training settings instead).
        partner_options: constructor arguments of the partner overriding its defaults.
    """

    def __init__(
        self,
        partner: Literal["ease", "ials"] = "ease",
        weight: Annotated[float, Field(ge=0.0, le=1.0)] = 0.6,
        neumf_scores: Literal["probability", "logit"] = "logit",
        seed: int = 0,
        chunk_users: Annotated[int, Field(ge=1)] = 1024,
        neumf_options: dict[str, Any] | None = None,
        partner_options: dict[str, Any] | None = None,
    ) -> None:
        self.partner = partner
        self.weight = weight
        self.neumf_scores = neumf_scores
        self.seed = seed
        self.chunk_users = chunk_users
        self.neumf_options = _as_json(neumf_options)
        self.partner_options = _as_json(partner_options)

    def display_name(self) -> str:
        """How results name this model, e.g. "NeuMF + EASE^R blend (w=0.5)", "(logits, w=0.6)" when NeuMF's
        logits are blended."""
        scores = "logits, " if self.neumf_scores == "logit" else ""
        return f"NeuMF + {PARTNER_NAMES[self.partner]} blend ({scores}w={self.weight:g})"

    # --- members ----------------------------------------------------------------------------------
    def _build_neumf(self) -> Recommender:
        from model.registry import build_model

        options = dict(self.neumf_options or {})
        train_config = {**dict(options.pop("train_config", None) or {}), "seed": self.seed}
        return build_model("neumf", **options, train_config=train_config)

    def _build_partner(self) -> Recommender:
        from model.registry import build_model

        options = dict(self.partner_options or {})
        if self.partner == "ials":
            options.setdefault("seed", self.seed)
        return build_model(self.partner, **options)

    def fit(self, train: Interactions, validation: HeldOut | None = None) -> Self:
        """Fit NeuMF (epochs chosen on `validation` when given) and the partner on `train`."""
        neumf = self.__dict__.pop("_warm_neumf", None) or self._build_neumf()
        self.neumf_ = neumf.fit(train, validation)
        self.partner_ = self._build_partner().fit(train, validation)
        self.n_users, self.n_items = train.n_users, train.n_items
        return self

    def refit(self, train: Interactions) -> Recommender:
        """A blend of the same hyperparameters: NeuMF refit for its selected epochs (`NCFModel.refit`),
        the partner refit on `train`."""
        fresh = self.clone()
        fresh.neumf_ = self.neumf_.refit(train)
        fresh.partner_ = self.partner_.refit(train)
        fresh.n_users, fresh.n_items = train.n_users, train.n_items
        return fresh

    def warm_start(
        self,
        previous: Recommender,
        old_ids: tuple[np.ndarray, np.ndarray],
        new_ids: tuple[np.ndarray, np.ndarray],
    ) -> str | None:
        """NeuMF starts from `previous`'s NeuMF (`NCFModel.warm_start`) when `previous` is a blend; the
        partner always fits fresh."""
        if not isinstance(previous, NeuMFBlend):
            return f"the previous model is not a {type(self).__name__}"
        neumf = self._build_neumf()
        why_not = neumf.warm_start(previous.neumf_, old_ids, new_ids)
        if why_not is None:
            self._warm_neumf = neumf
        return why_not

    # --- scoring ----------------------------------------------------------------------------------
    def score_users(self, user_idx: np.ndarray) -> np.ndarray:
        """Blended scores of every item: (c,) int -> (c, n_items) float32, `chunk_users` rows at a time."""
        user_idx = np.asarray(user_idx, dtype=np.int64)
        out = np.empty((user_idx.shape[0], self.n_items), dtype=np.float32)
        for start in range(0, user_idx.shape[0], self.chunk_users):
            users = user_idx[start : start + self.chunk_users]
            out[start : start + users.shape[0]] = blend_rows(
                self.neumf_.score_users(users),
                self.partner_.score_users(users),
                self.weight,
                self.neumf_scores,
            )
        return out

    def score(self, user_idx: np.ndarray, item_idx: np.ndarray) -> np.ndarray:
        """Scores of pairs: (n,) int, (n,) int -> (n,) float32, read from the blended rows of the distinct
        users (so equal to `score_users`' values)."""
        users, inverse = np.unique(np.asarray(user_idx, dtype=np.int64), return_inverse=True)
        item_idx = np.asarray(item_idx, dtype=np.int64)
        out = np.empty(item_idx.shape[0], dtype=np.float32)
        for start in range(0, users.shape[0], self.chunk_users):
            rows = self.score_users(users[start : start + self.chunk_users])
            here = (inverse >= start) & (inverse < start + rows.shape[0])
            out[here] = rows[inverse[here] - start, item_idx[here]]
        return out

    def item_embeddings(self) -> np.ndarray | None:
        """NeuMF's item embeddings (the partner's are not used)."""
        return self.neumf_.item_embeddings()

    # --- report, persistence ----------------------------------------------------------------------
    def report(self) -> dict[str, Any]:
        """`Recommender.report` with NeuMF's history and selected epoch, and each member's report."""
        report = super().report()
        neumf = self.neumf_.report()
        report.update(history=neumf["history"], best_epoch=neumf["best_epoch"])
        report["members"] = {"neumf": neumf, "partner": self.partner_.report()}
        return report

    def save(
        self, path: str | Path, user_ids: np.ndarray | None = None, item_ids: np.ndarray | None = None
    ) -> Path:
        """Write `model.json` (class, hyperparameters, sizes), each member saved in its subfolder
        (`neumf/`, `partner/`) and, when given, `id_maps.npz`."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.neumf_.save(path / NEUMF_DIR)
        self.partner_.save(path / PARTNER_DIR)
        meta = {
            "class": f"{type(self).__module__}.{type(self).__qualname__}",
            "hyperparameters": self.hyperparameters(),
            "n_users": self.n_users,
            "n_items": self.n_items,
            "members": {"neumf": NEUMF_DIR, "partner": PARTNER_DIR},
        }
        (path / MODEL_FILE).write_text(json.dumps(meta, indent=2))
        save_id_maps(path, user_ids, item_ids)
        return path

    @classmethod
    def _load(cls, path: Path, meta: dict[str, Any], **options: Any) -> Recommender:
        """The saved blend; `options` (e.g. `engine=`) go to NeuMF's loader."""
        model = cls(**meta["hyperparameters"])
        model.n_users, model.n_items = meta["n_users"], meta["n_items"]
        model.neumf_ = load_model(path / meta["members"]["neumf"], **options)
        model.partner_ = load_model(path / meta["members"]["partner"])
        return model
