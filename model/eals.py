"""eALS (He, Zhang, Kan & Chua 2016): element-wise ALS for implicit feedback with popularity-weighted
missing data, vectorized in NumPy.

Objective, with observed set R, prediction r̂_ui = p_u · q_i, target 1 on R:

    L = Σ_{(u,i)∈R} w_ui (1 - r̂_ui)² + Σ_u Σ_{i∉R_u} c_i r̂_ui² + λ (‖P‖² + ‖Q‖²)
    c_i = c0 · f_i^α / Σ_j f_j^α        (f_i: training popularity of item i)
    w_ui = w, or w · recent_weight for each user's newest positives (recency weighting, `weighted_csr`)

Each sweep updates one latent coordinate at a time (paper eq. 12 and its item twin), using the caches
S^q = Σ_i c_i q_i q_iᵀ and S^p = Σ_u p_u p_uᵀ so the missing data costs O(K²) per user, not O(n_items).
Users are independent given Q (and items given P), so one coordinate is updated for all users at once with
`np.bincount` over the observed pairs: the same exact coordinate descent as the paper's per-user loop.
"""

from __future__ import annotations

import logging
from typing import Self

import numpy as np

from model.data.interactions import Interactions
from model.data.sampling import weighted_csr
from model.data.split import HeldOut
from model.factorization import FactorRecommender

logger = logging.getLogger(__name__)


def missing_weights(item_counts: np.ndarray, c0: float, alpha: float) -> np.ndarray:
    """(n_items,) float64 c_i = c0 · f_i^α / Σ_j f_j^α (zero for items never seen)."""
    f = np.asarray(item_counts, dtype=np.float64) ** alpha
    f[np.asarray(item_counts) == 0] = 0.0
    return c0 * f / f.sum()


class EALS(FactorRecommender):
    """eALS.

    Args:
        factors: latent dimension K.
        c0: total weight of the missing data (chosen on ML-1M validation).
        alpha: popularity exponent of the missing-data weights (the paper's).
        weight: weight w of an observed pair.
        regularization: L2 penalty λ (chosen on ML-1M validation).
        iterations: sweeps over users then items.
        init_std: standard deviation of the normal initial factors (as the authors' code).
        seed: seed of the initial factors.
        recent_fraction: share of each user's newest training positives weighted `weight * recent_weight`
            (0 = no recency weighting; see `model.data.sampling.recent_mask`).
        recent_weight: factor on the weight of those positives (1 = no weighting).
    """

    def __init__(
        self,
        factors: int = 64,
        c0: float = 512.0,
        alpha: float = 0.4,
        weight: float = 1.0,
        regularization: float = 10.0,
        iterations: int = 20,
        init_std: float = 0.01,
        seed: int = 0,
        recent_fraction: float = 0.0,
        recent_weight: float = 1.0,
    ) -> None:
        self.factors = factors
        self.c0 = c0
        self.alpha = alpha
        self.weight = weight
        self.regularization = regularization
        self.iterations = iterations
        self.init_std = init_std
        self.seed = seed
        self.recent_fraction = recent_fraction
        self.recent_weight = recent_weight

    def fit(self, train: Interactions, validation: HeldOut | None = None) -> Self:
        """Runs `iterations` sweeps; `loss_history_` holds the objective before and after each sweep."""
        self.n_users, self.n_items = train.n_users, train.n_items
        csr = weighted_csr(train, self.recent_fraction, self.recent_weight)
        self.w_ = self.weight * csr.data.astype(np.float64)  # w_ui of each observed pair, in CSR order
        self.users_ = np.repeat(np.arange(self.n_users), np.diff(csr.indptr))
        self.items_ = csr.indices.astype(np.int64)
        self.c_ = missing_weights(train.item_counts(), self.c0, self.alpha)
        rng = np.random.default_rng(self.seed)
        # Factors are held transposed, (K, n): one coordinate of every user (item) is a contiguous row.
        self.p_ = rng.normal(0.0, self.init_std, (self.n_users, self.factors)).T.copy()
        self.q_ = rng.normal(0.0, self.init_std, (self.n_items, self.factors)).T.copy()
        self.pred_ = np.einsum("kn,kn->n", self.p_[:, self.users_], self.q_[:, self.items_])
        self.loss_history_ = [self.loss()]
        for it in range(self.iterations):
            self.update_users()
            self.update_items()
            self.loss_history_.append(self.loss())
            logger.debug("eALS sweep %d: loss %.4f", it + 1, self.loss_history_[-1])
        self.user_factors_ = self.p_.T.astype(np.float32)
        self.item_factors_ = self.q_.T.astype(np.float32)
        logger.info("eALS fitted: %d sweeps, loss %.4f", self.iterations, self.loss_history_[-1])
        return self

    def loss(self) -> float:
        """The objective L above, from the cached observed predictions and the S^q cache."""
        c_obs = self.c_[self.items_]
        observed = np.sum(self.w_ * (1.0 - self.pred_) ** 2 - c_obs * self.pred_**2)
        s_q = (self.q_ * self.c_) @ self.q_.T
        all_missing = np.sum((s_q @ self.p_) * self.p_)
        penalty = self.regularization * (np.sum(self.p_**2) + np.sum(self.q_**2))
        return float(observed + all_missing + penalty)

    def update_users(self) -> None:
        """One coordinate-descent pass over the K user coordinates, all users at once."""
        s_q = (self.q_ * self.c_) @ self.q_.T
        self._coordinate_pass(self.p_, self.q_, self.users_, self.items_, s_q, np.ones(self.n_users))

    def update_items(self) -> None:
        """One coordinate-descent pass over the K item coordinates, all items at once."""
        s_p = self.p_ @ self.p_.T
        self._coordinate_pass(self.q_, self.p_, self.items_, self.users_, s_p, self.c_)

    def _coordinate_pass(
        self,
        target: np.ndarray,
        fixed: np.ndarray,
        rows: np.ndarray,
        others: np.ndarray,
        cache: np.ndarray,
        missing_scale: np.ndarray,
    ) -> None:
        """Updates `target` (K, n) in place, coordinate by coordinate, given `fixed` (K, m); `rows` and
        `others` index the observed pairs into target and fixed; `missing_scale` (n,) multiplies the cache
        term (1 for users, c_i for items)."""
        n = target.shape[1]
        w = self.w_
        w_minus_c = w - self.c_[self.items_]
        for f in range(self.factors):
            fixed_f = np.take(fixed[f], others)
            self.pred_ -= np.take(target[f], rows) * fixed_f  # now the prediction without coordinate f
            residual = w_minus_c * self.pred_
            np.subtract(w, residual, out=residual)
            residual *= fixed_f
            cross = cache[f] @ target - cache[f, f] * target[f]
            numer = np.bincount(rows, residual, n) - missing_scale * cross
            fixed_f_sq = np.square(fixed_f, out=residual)
            fixed_f_sq *= w_minus_c
            denom = np.bincount(rows, fixed_f_sq, n) + missing_scale * cache[f, f] + self.regularization
            target[f] = numer / denom
            self.pred_ += np.take(target[f], rows) * fixed_f
